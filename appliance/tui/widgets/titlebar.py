"""One line on top of every screen: the app, the active profile, the rig, and whether the numbers are live."""

from __future__ import annotations

from rich.text import Text
from textual.reactive import Reactive
from textual.widgets import Static

from appliance.tui.widgets.panel import cell_key


class TitleBar(Static):
    auto_links = Reactive(False)  # no links: see Panel
    DEFAULT_CSS = """
    TitleBar { height: 1; background: $primary; color: $text; padding: 0 1; }
    """

    def __init__(self, section: str, **kw) -> None:
        super().__init__(**kw)
        self.section = section

    def show(self, app) -> None:
        t = Text(no_wrap=True, overflow="ellipsis")
        t.append("appliance", style="bold")
        snap = app.last.snapshot if app.last else None
        profile = snap.profile if snap else None
        t.append(" · ")
        t.append(profile or "no profile running", style="bold" if profile else "italic")
        t.append(f" · {self.section}")
        if app.switch_log is not None and app.switch_log.running:
            t.append(f" → {app.switch_log.target} (switching)", style="bold yellow")
        if app.info is not None:
            t.append(f" · {app.info.description}")
        if app.demo:
            t.append(" · DEMO", style="bold reverse")
        if snap is not None:
            age = app.clock() - snap.t
            if app.sample_error:
                t.append(" · sampling failed", style="bold red")
            elif age > 5:
                t.append(f" · stale {age:.0f} s", style="bold yellow")
        key = cell_key(t)
        if key != getattr(self, "_shown", None):  # the same line (most seconds): no repaint
            self._shown = key
            self.update(t, layout=False)  # always one line
