"""Pure: the proxy render plan — what the front door serves, as one typed value that the LiteLLM and HAProxy
renderers both read: every alias with its engine port, the hosted models, and the fallback chains."""

from __future__ import annotations

from dataclasses import dataclass

from appliance.errors import ProfileError
from appliance.profile import Hosted, Profile


def backend_name(alias: str) -> str:
    """The HAProxy backend of an alias (HAProxy names allow letters, digits and `_`)."""
    return "alias_" + "".join(c if c.isalnum() else "_" for c in alias)


@dataclass(frozen=True)
class ProxyPlan:
    """Aliases, hosted models and fallback chains across the profiles the proxy serves."""

    alias_port: dict[str, tuple[int, str]]  # alias → (engine port, the profile file that says so)
    hosted: dict[str, Hosted]  # hosted name → model
    fallbacks: dict[str, list[str]]  # alias → fallback chain
    ctx_fallbacks: dict[str, list[str]]  # alias → context-window fallback chain


def _merge_chain(a: list[str], b: tuple[str, ...]) -> list[str]:
    out = list(a)
    for x in b:
        if x not in out:
            out.append(x)
    return out


def plan(profiles: list[Profile]) -> ProxyPlan:
    """Aliases (→ port, engine max_model_len per profile), hosted models and fallback chains across profiles."""
    alias_port: dict[str, tuple[int, str]] = {}
    hosted: dict[str, tuple[Hosted, str]] = {}
    fallbacks: dict[str, list[str]] = {}
    ctx_fallbacks: dict[str, list[str]] = {}
    for p in profiles:
        for e in p.engines:
            for a in e.aliases:
                if a in alias_port and alias_port[a][0] != e.port:
                    port, where = alias_port[a]
                    raise ProfileError(
                        f"{p.source_file or p.name}: alias `{a}` is on port {e.port} here and on port {port} in "
                        f"{where}", "the proxy routes an alias to one port: give it the same port in every profile")
                alias_port.setdefault(a, (e.port, p.source_file or p.name))
        for h in p.proxy.hosted:
            if h.name in hosted and hosted[h.name][0] != h:
                raise ProfileError(
                    f"{p.source_file or p.name}: hosted model `{h.name}` differs from the one in {hosted[h.name][1]}",
                    "a hosted name means one model everywhere: rename one or make them identical")
            hosted.setdefault(h.name, (h, p.source_file or p.name))
        for alias, chain in p.proxy.fallbacks.items():
            fallbacks[alias] = _merge_chain(fallbacks.get(alias, []), chain)
        for alias, chain in p.proxy.context_window_fallbacks.items():
            ctx_fallbacks[alias] = _merge_chain(ctx_fallbacks.get(alias, []), chain)
    seen_backends: dict[str, str] = {}
    for a in alias_port:
        other = seen_backends.setdefault(backend_name(a), a)
        if other != a:
            raise ProfileError(f"aliases `{other}` and `{a}` differ only in punctuation; the front door cannot "
                               "tell them apart", "rename one of them (letters and digits differ)")
    clash = set(alias_port) & set(hosted)
    if clash:
        name = sorted(clash)[0]
        raise ProfileError(f"`{name}` is a local alias in {alias_port[name][1]} and a hosted model in "
                           f"{hosted[name][1]}", "rename one of them")
    return ProxyPlan(alias_port, {k: v[0] for k, v in hosted.items()}, fallbacks, ctx_fallbacks)


