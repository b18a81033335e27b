"""Pure: where each alias's requests can go, and what a switch changes about that.

Why: a request that reaches a hosted model is money the owner may not have planned for (issue #13). `endpoint`,
`status`, the dashboard and the switch dialog all show, per alias the front door serves, its route — the local
engine first, then its fallbacks in order — and the switch dialog says which routes the target profile changes
(a fallback to a hosted model appearing or going, an alias no longer served). One typed value and one diff here,
so the CLI and the TUI say the same thing. Nothing here reads a file or the network: callers pass the plans
(`appliance.render.plan.plan(profile, settings)`) and the profiles.
"""

from __future__ import annotations

from dataclasses import dataclass

UNCHANGED = "routes unchanged"


@dataclass(frozen=True)
class Hop:
    """One place a request can be answered: the profile's own engine, another local alias, or a hosted model."""

    kind: str  # "engine" | "alias" | "hosted"
    name: str  # the engine's label, the local alias, or the hosted model's name
    model: str = ""  # what answers: the engine's model, or the hosted provider/model

    @property
    def hosted(self) -> bool:
        return self.kind == "hosted"

    def text(self, long: bool = False) -> str:
        if self.kind == "hosted":
            return f"hosted {self.name}" + (f" ({self.model})" if long and self.model else "")
        if self.kind == "engine":
            return f"engine {self.name}" + (f" ({self.model})" if long and self.model else "")
        return f"local {self.name}"

    def same_place(self, other: "Hop") -> bool:
        """Same answerer: an engine is the same when its model is (its label or port may differ between
        profiles); a hosted model when its name and model are."""
        if self.kind != other.kind:
            return False
        if self.kind == "engine":
            return self.model == other.model
        return (self.name, self.model) == (other.name, other.model)


Route = tuple[Hop, ...]  # first: who answers normally; then the fallbacks in order


def alias_routes(pl, profile=None) -> dict[str, Route]:
    """Per name the front door serves under plan `pl` (a ProxyPlan): its route. `profile` (the plan's profile)
    names the engines and their models; without it a local engine is shown by its port."""
    engines = {}
    if profile is not None:
        for e in profile.engines:
            for a in e.aliases:
                engines.setdefault(a, e)

    def hosted(name: str) -> Hop:
        h = pl.hosted.get(name)
        return Hop("hosted", name, f"{h.provider}/{h.model}" if h is not None else "")

    out: dict[str, Route] = {}
    for a in pl.served():
        hops: list[Hop] = []
        if a in pl.alias_port:
            e = engines.get(a)
            hops.append(Hop("engine", e.label, e.model) if e is not None else Hop("engine", f":{pl.alias_port[a]}"))
        elif a in pl.hosted:
            hops.append(hosted(a))
        for t in pl.fallbacks.get(a) or pl.global_aliases.get(a) or []:
            hops.append(hosted(t) if t in pl.hosted else Hop("alias", t))
        out[a] = tuple(hops)
    return out


def route_text(route: Route, long: bool = False) -> str:
    return " → ".join(h.text(long) for h in route) if route else "refused (not served)"


def reaches_hosted(route: Route) -> bool:
    return any(h.hosted for h in route)


def _chain(route: Route) -> str:
    return ", ".join(h.text(long=True) for h in route) or "none"


@dataclass(frozen=True)
class RouteChange:
    """One change to one alias's route; `money`: "costs money" when the alias can reach a hosted model now and
    could not before, "stays local" for the reverse, "" otherwise."""

    alias: str
    what: str
    money: str = ""

    def __str__(self) -> str:
        return f"{self.alias}: {self.what}" + (f" — {self.money}" if self.money else "")


def route_changes(old: dict[str, Route], new: dict[str, Route]) -> list[RouteChange]:
    """What moving from routes `old` (the running profile) to `new` (the target) changes, per alias and kind of
    change, aliases in order; [] when nothing does (see `describe`). An engine renamed or moved to another port
    with the same model is no change an agent notices."""
    out: list[RouteChange] = []
    for a in sorted(set(old) | set(new)):
        before, after = old.get(a), new.get(a)
        if before == after:
            continue
        if before is None:
            out.append(RouteChange(a, f"new: {route_text(after)}", _money(False, reaches_hosted(after))))
            continue
        if after is None:
            out.append(RouteChange(a, f"gone (was {route_text(before)}): refused after the switch"))
            continue
        mine: list[str] = []
        if not (before and after and before[0].same_place(after[0])):
            mine.append(f"answered by {before[0].text(True) if before else 'nothing'} → "
                        f"{after[0].text(True) if after else 'nothing'}")
        fb_before, fb_after = before[1:], after[1:]
        if len(fb_before) != len(fb_after) or not all(x.same_place(y) for x, y in zip(fb_before, fb_after)):
            mine.append(f"fallback {_chain(fb_before)} → {_chain(fb_after)}")
        out += [RouteChange(a, what) for what in mine[:-1]]
        if mine:
            out.append(RouteChange(a, mine[-1], _money(reaches_hosted(before), reaches_hosted(after))))
    return out


def _money(before: bool, after: bool) -> str:
    if after and not before:
        return "costs money"
    if before and not after:
        return "stays local"
    return ""


def describe(changes: list[RouteChange]) -> list[str]:
    """The lines `status`-style text shows: one per change, or "routes unchanged"."""
    return [str(c) for c in changes] or [UNCHANGED]


def usd(value: float | None) -> str:
    """A dollar amount as the CLI and the TUI show it (hosted spend is small: 4 decimals)."""
    if value is None:
        return "–"
    if 0 < value < 0.00005:
        return "<$0.0001"
    return f"${value:.4f}"
