"""Pilot tests of every screen and action against the FakeBackend (fast; the real rig is in test_rig.py)."""

from __future__ import annotations


from fakes import FakeBackend, clock, failed_events

from appliance.tui.app import DEMO, ApplianceApp
from appliance.tui.screens.dashboard import DashboardScreen
from appliance.tui.screens.logs import LogsScreen, merge
from appliance.tui.screens.modals import ConfirmSwitch, HelpScreen, PowerDialog
from appliance.tui.screens.profiles import ProfilesScreen
from appliance.tui.screens.switch import SwitchScreen


async def settle(pilot, n: int = 3) -> None:
    for _ in range(n):
        await pilot.app.workers.wait_for_complete()
        await pilot.pause()


def screen_text(app) -> str:
    """What the terminal shows, as plain text."""
    return "\n".join("".join(seg.text for seg in strip) for strip in app.screen._compositor.render_strips())


async def test_dashboard_shows_every_section():
    app = ApplianceApp(FakeBackend(), clock=clock, interval_s=None)
    async with app.run_test(size=(160, 48)) as pilot:
        await settle(pilot)
        assert isinstance(app.screen, DashboardScreen)
        from appliance.tui.widgets.engines import EngineTable
        from appliance.tui.widgets.gpus import GpuTable
        from appliance.tui.widgets.proxy import ProxyPanel

        assert "tok/J" in screen_text(app)
        assert app.screen.has_class("-plots") and app.screen.has_class("-wide")
        for w in (GpuTable, EngineTable, ProxyPanel):
            assert app.screen.query_one(w).display


async def test_sampling_rearms_and_never_overlaps():
    backend = FakeBackend()
    app = ApplianceApp(backend, clock=clock, interval_s=0.05)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause(0.5)
        assert app.samples_done >= 3
        assert len([w for w in app.workers if w.group == "sample" and w.is_running]) <= 1


async def test_power_step_and_dialog():
    backend = FakeBackend()
    app = ApplianceApp(backend, clock=clock, interval_s=None)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await pilot.press("minus")
        await settle(pilot)
        assert backend.power_calls == [240.0]
        assert app.last.snapshot.gpus[0].power_limit_w == 240.0  # a fresh sample after the change
        await pilot.press("w")
        await pilot.pause()
        assert isinstance(app.screen, PowerDialog)
        assert "allowed: 100 W … 350 W" in screen_text(app)
        await pilot.press("up", "up")  # 240 → 260
        await pilot.press("enter")
        await settle(pilot)
        assert backend.power_calls[-1] == 260.0
        await pilot.press("w")
        await pilot.pause()
        app.screen.query_one("#watts").value = "5000"
        await pilot.press("enter")
        await settle(pilot)
        assert backend.power_calls[-1] == 5000.0  # the backend refuses; the app shows the error and lives on
        assert isinstance(app.screen, DashboardScreen)


async def test_switch_with_confirmation_and_timeline():
    backend = FakeBackend()
    backend.release.clear()  # hold the switch so we can see the UI stays responsive meanwhile
    app = ApplianceApp(backend, clock=clock, interval_s=None)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        await pilot.press("p")
        await settle(pilot)
        assert isinstance(app.screen, ProfilesScreen)
        await pilot.press("down", "enter")
        await pilot.pause()
        assert isinstance(app.screen, ConfirmSwitch)
        await pilot.press("y")
        await pilot.pause()
        assert isinstance(app.screen, SwitchScreen)
        assert app.switch_log.running
        await pilot.press("d")  # navigate while the switch runs
        await pilot.pause()
        assert isinstance(app.screen, DashboardScreen)
        backend.release.set()
        await settle(pilot)
        assert backend.switched_to == ["rtx3090x4-qwen35-27b"]
        assert app.switch_log.result.ok
        await pilot.press("t")
        await pilot.pause()
        assert "✔ ready" in screen_text(app)


async def test_failed_switch_shows_diagnosis_and_rollback():
    backend = FakeBackend(switch_events=failed_events("rtx3090x4-qwen35-27b", "rtx3090x4-two-tier"),
                          switch_ok=False)
    app = ApplianceApp(backend, clock=clock, interval_s=None)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        await pilot.press("p")
        await settle(pilot)
        await pilot.press("down", "s")
        await pilot.pause()
        await pilot.press("n")  # cancel first
        await pilot.pause()
        assert backend.switched_to == []
        await pilot.press("s", "y")
        await settle(pilot)
        view = screen_text(app)
        assert "out of memory" in view and "rolling back" in view and "failed" in view


async def test_logs_follow_and_search():
    backend = FakeBackend()
    app = ApplianceApp(backend, clock=clock, interval_s=None)
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        await pilot.press("l")
        await settle(pilot)
        scr = app.screen
        assert isinstance(scr, LogsScreen) and scr.target == "fast" and len(scr.lines) == 41
        await pilot.press("f")
        backend.lines["fast"].append("INFO a new line after follow")
        await pilot.pause(1.3)
        await settle(pilot)
        assert scr.lines[-1] == "INFO a new line after follow"
        await pilot.press("slash")
        await pilot.press(*"kv cache")
        await pilot.pause()
        assert len(scr.matches()) == 1
        await pilot.press("escape")
        await pilot.pause()
        assert scr.search == "" and len(scr.matches()) == 42
        await pilot.press("right")  # next target: smart
        await settle(pilot)
        assert scr.target == "smart"


def test_merge_tails():
    from collections import deque

    assert merge(deque(["a", "b", "c"]), ["b", "c", "d", "e"]) == (["d", "e"], False)
    assert merge(deque(["a", "b", "c"]), ["x", "y"]) == (["x", "y"], True)
    assert merge(deque(), ["x"]) == (["x"], True)


async def test_help_palette_and_demo_offer():
    app = ApplianceApp(FakeBackend(running=False), clock=clock, interval_s=None)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        assert app.screen.query_one("#notice").display
        assert "run the demo" in screen_text(app)
        await pilot.press("question_mark")
        await pilot.pause()
        assert isinstance(app.screen, HelpScreen)
        await pilot.press("escape")
        titles = [c.title for c in app.get_system_commands(app.screen)]
        for t in ("Dashboard", "Profiles", "Logs", "Power limit …", "Help", "Run the demo", "Last switch"):
            assert t in titles
        await pilot.press("D")
        await pilot.pause()
    assert app.return_value == DEMO


async def test_palette_runs_a_switch_command():
    backend = FakeBackend()
    app = ApplianceApp(backend, clock=clock, interval_s=None)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        await pilot.press("p")
        await settle(pilot)
        await pilot.press("ctrl+p")
        await pilot.pause()
        await pilot.press(*"Switch to rtx4090")
        await pilot.pause(0.5)
        await pilot.press("enter")
        await pilot.pause()
        assert isinstance(app.screen, ConfirmSwitch)
        await pilot.press("y")
        await settle(pilot)
        assert backend.switched_to == ["rtx4090-qwen25-14b-agent"]


async def test_mouse_clicks_navigate():
    app = ApplianceApp(FakeBackend(), clock=clock, interval_s=None)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        await pilot.press("p")
        await settle(pilot)
        await pilot.click("#profile-table", offset=(4, 2))  # header, then the second profile row
        await pilot.pause()
        assert app.screen.selected().name == "rtx3090x4-qwen35-27b"


async def test_profiles_screen_follows_the_active_profile_by_itself():
    """After a switch the ● moves to the new profile without `r` (the screen follows the samples)."""
    backend = FakeBackend()
    app = ApplianceApp(backend, clock=clock, interval_s=0.05)
    async with app.run_test(size=(160, 48)) as pilot:
        await settle(pilot)
        await pilot.press("p")
        await settle(pilot)
        assert "● rtx3090x4-two-tier" in screen_text(app)
        backend.switched_to.append("rtx3090x4-qwen35-27b")  # switched elsewhere (the CLI, another TUI)
        for _ in range(40):
            await pilot.pause(0.05)
            if "● rtx3090x4-qwen35-27b" in screen_text(app):
                break
        assert "● rtx3090x4-qwen35-27b" in screen_text(app) and "● rtx3090x4-two-tier" not in screen_text(app)

