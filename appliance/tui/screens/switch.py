"""The switch in progress (and after): startup timeline per engine, events, failure lines, rollback."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import Screen

from appliance.tui.widgets.keybar import KeyBar
from appliance.tui.widgets.timeline import SwitchView
from appliance.tui.widgets.titlebar import TitleBar


class SwitchScreen(Screen):
    BINDINGS = [Binding("escape", "back", "Back")]  # b stays the app's Bench key

    def compose(self) -> ComposeResult:
        yield TitleBar("switch")
        with VerticalScroll(id="switch-scroll"):
            yield SwitchView(id="switch-view")
        yield KeyBar()

    def on_mount(self) -> None:
        self.refresh_view()

    def on_screen_resume(self) -> None:
        self.refresh_view()

    def refresh_view(self) -> None:
        self.query_one(TitleBar).show(self.app)
        log = self.app.switch_log
        view = self.query_one(SwitchView)
        if log is None:
            view.update(Text("no switch yet: pick a profile on the profiles screen (p)", style="italic"))
        else:
            view.show(log)
            self.query_one("#switch-scroll").scroll_end(animate=False)

    def action_back(self) -> None:
        self.app.pop_screen()
