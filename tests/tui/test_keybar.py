"""The key bar (widgets/keybar.py) that stands in for Textual's Footer: the same hints, a click presses the key."""

from __future__ import annotations

from fakes import FakeBackend, clock
from test_app_fake import screen_text, settle

from appliance.tui.app import ApplianceApp
from appliance.tui.screens.modals import HelpScreen
from appliance.tui.screens.profiles import ProfilesScreen
from appliance.tui.widgets.keybar import KeyBar


def bar_text(app) -> str:
    return screen_text(app).splitlines()[-1]


async def test_hints_follow_the_screen_and_its_width():
    app = ApplianceApp(FakeBackend(), clock=clock, interval_s=None)
    async with app.run_test(size=(160, 48)) as pilot:
        await settle(pilot)
        bar = bar_text(app)
        # the dashboard's own keys first, then the app's; the key of the screen one is on is not shown
        assert bar.index("w Power") < bar.index("? Help") < bar.index("p Profiles")
        assert "d Dash" not in bar and bar.rstrip().endswith("^p palette")
        await pilot.press("p")
        await settle(pilot)
        assert isinstance(app.screen, ProfilesScreen)
        bar = bar_text(app)
        assert "d Dash" in bar and "p Profiles" not in bar and "s Switch" in bar
    async with ApplianceApp(FakeBackend(), clock=clock, interval_s=None).run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        assert "palette" not in bar_text(pilot.app)  # below 120 columns: in the help only
        assert len(bar_text(pilot.app)) <= 80


async def test_a_click_on_a_hint_presses_its_key():
    backend = FakeBackend()
    app = ApplianceApp(backend, clock=clock, interval_s=None)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        bar = app.screen.query_one(KeyBar)
        x = bar_text(app).index("? Help")
        await pilot.click(KeyBar, offset=(x + 2, 0))  # on "Help"
        await settle(pilot)
        assert isinstance(app.screen, HelpScreen)
        await pilot.press("escape")
        await settle(pilot)
        gap = bar_text(app).index("? Help") - 1  # the space between two hints presses nothing
        await pilot.click(KeyBar, offset=(gap, 0))
        await settle(pilot)
        assert not isinstance(app.screen, HelpScreen) and backend.power_calls == []  # not "+ +10 W" before it
        x = bar_text(app).index("+ +10 W")
        await pilot.click(KeyBar, offset=(x + 4, 0))
        await settle(pilot)
        assert backend.power_calls == [260.0] and bar.is_mounted
