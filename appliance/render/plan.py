"""Pure: the proxy render plan — what the front door serves NOW, as one typed value that the LiteLLM and HAProxy
renderers, `endpoint` and `status` all read.

The rule (issue #13): the front door serves the aliases of ONE profile (the active one) with that profile's
fallbacks, plus the owner's global fallbacks from the user settings (appliance/settings.py), which hold for every
profile. Nothing from other profiles leaks in: a profile without fallbacks never reaches a hosted model. With
`local_only` in the settings no hosted model is reachable at all.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from appliance.errors import ProfileError
from appliance.profile import Hosted, Profile


def backend_name(alias: str) -> str:
    """The HAProxy backend of an alias (HAProxy names allow letters, digits and `_`)."""
    return "alias_" + "".join(c if c.isalnum() else "_" for c in alias)


@dataclass(frozen=True)
class ProxyPlan:
    """What the front door serves: local aliases, hosted models and fallback chains (all in a stable order)."""

    profile: str | None  # the profile whose aliases are served (None: nothing runs)
    alias_port: dict[str, int]  # alias served by a local engine → engine port
    hosted: dict[str, Hosted]  # hosted models reachable now (callable by name too); empty when local_only
    fallbacks: dict[str, list[str]]  # alias → chain: the profile's own, then the global ones
    ctx_fallbacks: dict[str, list[str]]  # alias → context-window fallback chain
    global_aliases: dict[str, list[str]] = field(default_factory=dict)  # alias the profile lacks → global chain
    local_only: bool = False
    settings_file: str = ""

    def served(self) -> list[str]:
        """Every model name the front door answers now."""
        return sorted(set(self.alias_port) | set(self.hosted) | set(self.global_aliases))

    def where(self, name: str) -> list[str]:
        """Where requests for `name` can go, in order: `local:<port>`, then `hosted:<name>` / `local:<alias>`."""
        out: list[str] = []
        if name in self.alias_port:
            out.append(f"local:{self.alias_port[name]}")
        elif name in self.hosted:
            out.append(f"hosted:{name}")
        chain = self.fallbacks.get(name) or self.global_aliases.get(name) or []
        for target in chain:
            out.append(f"hosted:{target}" if target in self.hosted else f"local:{target}")
        return out

    def reaches_hosted(self, name: str) -> bool:
        return any(w.startswith("hosted:") for w in self.where(name))


def _chain(*parts) -> list[str]:
    out: list[str] = []
    for part in parts:
        for x in part or ():
            if x not in out:
                out.append(x)
    return out


def plan(profile: Profile | None, settings=None) -> ProxyPlan:
    """The plan for `profile` (the active one, or the one being started) under the owner's `settings`
    (an appliance.settings.UserSettings; None: the defaults)."""
    local_only = bool(settings and settings.local_only)
    where_settings = (settings.source_file if settings else "") or "the user settings"
    alias_port: dict[str, int] = {}
    hosted: dict[str, Hosted] = {}
    fallbacks: dict[str, list[str]] = {}
    ctx: dict[str, list[str]] = {}
    glob: dict[str, list[str]] = {}
    if profile is not None:
        for e in profile.engines:
            for a in e.aliases:
                alias_port.setdefault(a, e.port)
        hosted.update({h.name: h for h in profile.proxy.hosted})
    if settings is not None:
        for h in settings.hosted:
            mine = hosted.get(h.name)
            if mine is not None and mine != h:
                raise ProfileError(
                    f"{profile.source_file or profile.name}: hosted model `{h.name}` differs from the one in "
                    f"{where_settings}", "a hosted name means one model everywhere: rename one or make them identical")
            hosted.setdefault(h.name, h)
        clash = sorted(set(alias_port) & {h.name for h in settings.hosted})
        if clash:
            raise ProfileError(f"`{clash[0]}` is a local alias in {profile.source_file or profile.name} and a hosted "
                               f"model in {where_settings}", "rename one of them")
    every = list(settings.fallbacks.get("*", ())) if settings else []
    if profile is not None:
        for a in sorted(alias_port):
            # `"*": [local]` means "every OTHER alias falls back to local": no alias falls back to itself
            chain = _chain(profile.proxy.fallbacks.get(a), settings.fallbacks.get(a) if settings else (),
                           [t for t in every if t != a])
            if chain:
                fallbacks[a] = chain
        for a, c in sorted(profile.proxy.context_window_fallbacks.items()):
            ctx[a] = list(c)
    if settings is not None:
        for a, c in sorted(settings.fallbacks.items()):
            if a != "*" and a not in alias_port and a not in hosted:
                glob[a] = list(c)
        for a, chain in list(fallbacks.items()) + list(glob.items()):
            for t in chain:
                if t not in hosted and t not in alias_port:
                    raise ProfileError(
                        f"{where_settings}: `fallbacks` names `{t}`, which is neither a hosted model (in the settings "
                        f"or in {profile.name if profile else 'the profile'}) nor an alias the profile serves",
                        f"define `{t}` under `hosted:` in {where_settings}, or remove it")
    if local_only:  # the owner said: nothing leaves this machine
        fallbacks = {a: [t for t in c if t in alias_port] for a, c in fallbacks.items()}
        fallbacks = {a: c for a, c in fallbacks.items() if c}
        ctx = {a: [t for t in c if t in alias_port] for a, c in ctx.items()}
        ctx = {a: c for a, c in ctx.items() if c}
        hosted, glob = {}, {}
    seen: dict[str, str] = {}
    for a in list(alias_port) + list(glob):
        other = seen.setdefault(backend_name(a), a)
        if other != a:
            raise ProfileError(f"aliases `{other}` and `{a}` differ only in punctuation; the front door cannot "
                               "tell them apart", "rename one of them (letters and digits differ)")
    return ProxyPlan(profile.name if profile else None, dict(sorted(alias_port.items())),
                     dict(sorted(hosted.items())), fallbacks, ctx, glob, local_only,
                     settings.source_file if settings else "")
