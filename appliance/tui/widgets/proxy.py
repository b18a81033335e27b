"""The proxy: per alias, requests served locally vs by a fallback, where its requests can go (its engine, then its
fallbacks: appliance/routes.py) and today's hosted spend in USD; errors. A fallback that is serving right now (its
count rose in the last samples) is highlighted, and so is a route that can reach a hosted model (money)."""

from __future__ import annotations

from rich.text import Text

from appliance import routes
from appliance.tui.grid import Col, grid, stack
from appliance.tui.widgets.panel import Panel, rows_key

RECENT = 10  # samples: a fallback counted within them is "active"


def route_cell(route) -> Text:
    """A route (appliance.routes) as one line: hosted hops in yellow (they cost money)."""
    t = Text()
    for i, hop in enumerate(route):
        if i:
            t.append(" → ", style="bright_black")
        t.append(hop.text(), style="yellow" if hop.hosted else "")
    return t


class ProxyPanel(Panel):
    DEFAULT_CSS = """
    ProxyPanel { height: auto; border: round $primary-darken-1; border-title-color: $text-accent; padding: 0 1; }
    """

    def on_mount(self) -> None:
        self.border_title = "proxy"
        self._seen: list[dict] = []

    def fallback_active(self) -> set[str]:
        if len(self._seen) < 2:
            return set()
        old, new = self._seen[0], self._seen[-1]
        return {a for a, v in new.items() if v > old.get(a, 0)}

    def show(self, snap) -> None:
        self._args = (snap,)
        p = snap.proxy
        if p is None:
            self._set(Text("no proxy has been started on this rig", style="bright_black"), "none")
            return
        self._seen = (self._seen + [dict(p.requests_fallback)])[-RECENT:]
        active = self.fallback_active()
        head = Text()  # wraps on a narrow terminal rather than cutting the spend off
        head.append("● ", style="green" if p.healthy else "bold red")
        head.append(p.url.replace("http://", ""), style="bold")
        head.append("  healthy" if p.healthy else f"  {p.status}", style="green" if p.healthy else "bold red")
        head.append("  ·  errors ")
        head.append(f"{p.errors:.0f}", style="bold red" if p.errors else "green")
        if p.local_only:
            head.append("  ·  local only", style="green")
        spend = p.spend_usd
        if spend is not None:
            head.append("  ·  hosted today ")
            total = sum(spend.values())
            head.append(routes.usd(total), style="bold yellow" if total else "green")
        aliases = sorted(set(p.requests_local) | set(p.requests_fallback) | set(p.routes) | set(spend or ()) |
                         {a for e in snap.engines for a in e.aliases})  # spend: also under a profile run earlier
        rows = []
        for a in aliases:
            loc, fb = p.requests_local.get(a, 0), p.requests_fallback.get(a, 0)
            req = Text(f"{loc:.0f} local · ")
            req.append(f"{fb:.0f} fallback", style="bold yellow" if a in active else ("yellow" if fb else ""))
            if a in active:
                req.append(" ⚠ active", style="bold yellow")
            route = p.routes.get(a)
            if route is None:  # no routes at all: the settings did not load (`appliance endpoint` names why)
                rt = Text("not served now" if p.routes else "unknown", style="bright_black")
            else:
                rt = route_cell(route)
            hosted = route is not None and routes.reaches_hosted(route)
            if spend is None:
                cost = Text("–" if not hosted else "unknown", style="bright_black")
            elif hosted or spend.get(a):
                v = spend.get(a, 0.0)
                cost = Text(routes.usd(v), style="bold yellow" if v else "")
            else:
                cost = Text("– local", style="bright_black")
            rows.append((Text(a), req, rt, cost))
        width = self.content_width()
        key = (width, rows_key([[head]]), rows_key(rows))
        if self.unchanged(key):  # the same counts: no new lines, no repaint
            return
        # the screen is laid out again only when the panel's height changes (a count gaining a digit does not)
        head_lines = -(-head.cell_len // max(1, width))
        if not aliases:
            self._set(head, (width, head_lines), key)
            return
        for row in rows:
            row[0].stylize("bold")
        table = grid(COLUMNS, rows, width, header_style="bright_black", gap=2, spread=False)
        self._set(stack(head, table), (width, head_lines, table.plain.count("\n")), key)


COLUMNS = [Col("alias"), Col("requests"), Col("route → fallbacks", fold=True),
           Col("hosted today", right=True)]
