"""The proxy: requests per alias served locally vs by a fallback, errors; a fallback that is serving right now
(its count rose in the last samples) is highlighted."""

from __future__ import annotations

from rich.columns import Columns
from rich.console import Group
from rich.text import Text

from appliance.tui.widgets.panel import Panel

RECENT = 10  # samples: a fallback counted within them is "active"


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
        p = snap.proxy
        if p is None:
            self._set(Text("no proxy has been started on this rig", style="bright_black"), "none")
            return
        self._seen = (self._seen + [dict(p.requests_fallback)])[-RECENT:]
        active = self.fallback_active()
        head = Text(no_wrap=True, overflow="ellipsis")
        head.append("● ", style="green" if p.healthy else "bold red")
        head.append(p.url.replace("http://", ""), style="bold")
        head.append("  healthy" if p.healthy else f"  {p.status}", style="green" if p.healthy else "bold red")
        head.append("  ·  errors ")
        head.append(f"{p.errors:.0f}", style="bold red" if p.errors else "green")
        head.append("  ·  requests per alias:", style="bright_black")
        aliases = sorted(set(p.requests_local) | set(p.requests_fallback) |
                         {a for e in snap.engines for a in e.aliases})
        cells = []
        for a in aliases:
            loc, fb = p.requests_local.get(a, 0), p.requests_fallback.get(a, 0)
            t = Text()
            t.append(a, style="bold")
            t.append(f" {loc:.0f} local · ")
            t.append(f"{fb:.0f} fallback", style="bold yellow" if a in active else ("yellow" if fb else ""))
            if a in active:
                t.append(" ⚠ active", style="bold yellow")
            cells.append(t)
        shape = (self.size.width, tuple(len(c.plain) for c in cells))
        self._set(Group(head, Columns(cells, padding=(0, 3))) if cells else head, shape)
