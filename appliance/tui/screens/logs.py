"""Logs of each engine and of the proxy: bounded, follow mode, search."""

from __future__ import annotations

from collections import deque

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import Input, RichLog, Static, Tab, Tabs

from appliance.tui.widgets.keybar import KeyBar
from appliance.tui.widgets.titlebar import TitleBar

MAX_LINES = 2000
TAIL = 500


def merge(old: deque, new: list[str]) -> tuple[list[str], bool]:
    """New lines of a fresh tail after what we already have: (lines to append, False), or (all, True) when the
    tail no longer overlaps (rotated, restarted). The last (up to) 3 lines we have anchor the overlap."""
    if not old:
        return new, True
    have = list(old)[-3:]
    for i in range(len(new) - 1, -1, -1):
        n = min(len(have), i + 1)
        if new[i - n + 1:i + 1] == have[-n:]:
            return new[i + 1:], False
    return new, True


class LogsScreen(Screen):
    BINDINGS = [
        Binding("f", "toggle_follow", "Follow"),
        Binding("slash", "search", "Search", key_display="/"),
        Binding("escape", "clear_search", "Clear search", show=False),
        Binding("h", "toggle_probes", "Probes"),
        Binding("r", "reload", "Reload"),
    ]

    def __init__(self, **kw) -> None:
        super().__init__(**kw)
        self.lines: deque[str] = deque(maxlen=MAX_LINES)
        self.target: str | None = None
        self.follow = False
        self.search = ""
        self.hide_probes = True  # the sampler's own GET /health and /metrics every second
        self._timer = None
        self._fetching = False
        self.error: str | None = None

    def compose(self) -> ComposeResult:
        yield TitleBar("logs")
        yield Tabs(id="log-targets")
        yield Input(placeholder="search (Enter keeps it, Esc clears)", id="log-search")
        yield Static(id="log-status")
        yield RichLog(id="log", max_lines=MAX_LINES, wrap=False, markup=False, highlight=False, auto_scroll=True)
        yield KeyBar()

    def on_mount(self) -> None:
        self.query_one("#log-search").display = False
        self.query_one(TitleBar).show(self.app)
        self._targets()

    def on_screen_resume(self) -> None:
        self.query_one(TitleBar).show(self.app)
        self._targets()

    def refresh_view(self) -> None:
        self.query_one(TitleBar).show(self.app)

    @work(thread=True, exclusive=True, group="log-targets", exit_on_error=False)
    def _targets(self) -> None:
        targets = self.app.backend.log_targets()
        self.app.call_from_thread(self._set_targets, targets)

    def _set_targets(self, targets: list[str]) -> None:
        tabs = self.query_one(Tabs)
        have = [t.id.removeprefix("log-") for t in tabs.query(Tab)]
        if have == targets:
            return
        tabs.clear()
        for t in targets:
            tabs.add_tab(Tab(t, id=f"log-{t}"))
        if self.target in targets:
            tabs.active = f"log-{self.target}"

    def on_tabs_tab_activated(self, event: Tabs.TabActivated) -> None:
        if event.tab is None:
            return
        target = event.tab.id.removeprefix("log-")
        if target != self.target:
            self.target = target
            self.lines.clear()
            self.action_reload()

    def select(self, target: str) -> None:
        self.query_one(Tabs).active = f"log-{target}"

    # -- fetching ------------------------------------------------------------------------------------
    def action_reload(self) -> None:
        if self.target is None or self._fetching:
            return
        self._fetching = True
        self._fetch(self.target)

    @work(thread=True, exclusive=True, group="logs", exit_on_error=False)
    def _fetch(self, target: str) -> None:
        try:
            lines = self.app.backend.logs(target, tail=TAIL)
            err = None
        except Exception as exc:  # noqa: BLE001 - shown on screen: an ApplianceError's message, or the bug
            lines, err = [], getattr(exc, "message", None) or f"{type(exc).__name__}: {exc}"
        self.app.call_from_thread(self._got, target, lines, err)

    def _got(self, target: str, lines: list[str], err: str | None) -> None:
        self._fetching = False
        if target != self.target:
            return
        self.error = err
        fresh, replace = merge(self.lines, lines)
        if replace:
            self.lines.clear()
        self.lines.extend(fresh)
        if replace:
            self._render_all()
        else:
            log = self.query_one(RichLog)
            for ln in fresh:
                if self._match(ln):
                    log.write(self._styled(ln))
        self._status()

    # -- follow --------------------------------------------------------------------------------------
    def action_toggle_follow(self) -> None:
        self.follow = not self.follow
        if self.follow:
            self._timer = self.set_interval(1.0, self.action_reload)
            self.action_reload()
        elif self._timer is not None:
            self._timer.stop()
            self._timer = None
        self._status()

    # -- search --------------------------------------------------------------------------------------
    def action_search(self) -> None:
        box = self.query_one("#log-search", Input)
        box.display = True
        box.focus()

    def action_clear_search(self) -> None:
        box = self.query_one("#log-search", Input)
        box.value = ""
        box.display = False
        self.query_one(Tabs).focus()

    def on_input_changed(self, event: Input.Changed) -> None:
        self.search = event.value
        self._render_all()
        self._status()

    def on_input_submitted(self, _event) -> None:
        self.query_one(Tabs).focus()

    def _match(self, line: str) -> bool:
        if self.hide_probes and ('"GET /health' in line or '"GET /metrics' in line):
            return False
        return not self.search or self.search.lower() in line.lower()

    def action_toggle_probes(self) -> None:
        self.hide_probes = not self.hide_probes
        self._render_all()
        self._status()

    def _styled(self, line: str) -> Text:
        t = Text(line)
        low = line.lower()
        if "error" in low or "traceback" in low:
            t.stylize("red")
        elif "warn" in low:
            t.stylize("yellow")
        if self.search:
            t.highlight_words([self.search], style="bold reverse", case_sensitive=False)
        return t

    def matches(self) -> list[str]:
        return [ln for ln in self.lines if self._match(ln)]

    def _render_all(self) -> None:
        log = self.query_one(RichLog)
        log.clear()
        for ln in self.matches():
            log.write(self._styled(ln))

    def _status(self) -> None:
        t = Text(no_wrap=True, overflow="ellipsis")
        t.append(self.target or "—", style="bold")
        t.append(f" · {len(self.lines)} lines (last {MAX_LINES} kept)")
        t.append(" · follow ")
        t.append("on" if self.follow else "off", style="bold green" if self.follow else "bright_black")
        if self.hide_probes:
            t.append(" · health/metrics probes hidden (h)", style="bright_black")
        if self.search:
            t.append(f" · “{self.search}”: {len(self.matches())} matching lines", style="bold")
        if self.error:
            t.append(f" · {self.error}", style="bold red")
        self.query_one("#log-status", Static).update(t)
