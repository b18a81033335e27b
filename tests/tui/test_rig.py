"""Pilot tests against the simulated rig (stand-in engines as local processes, the real LiteLLM proxy): switch
alpha → beta with confirmation, a power change seen in the next sample, a failed switch to `crashy` (OOM
diagnosis + rollback), logs (follow + search). One rig for the module; always stopped in teardown."""

from __future__ import annotations

import os
import time

import pytest

from appliance.profile import load_profile
from appliance.rig import simulated_rig
from appliance.stack import Stack
from appliance.telemetry import Series
from appliance.tui.app import ApplianceApp
from appliance.tui.backend import StackBackend
from appliance.tui.screens.logs import LogsScreen
from appliance.tui.screens.modals import ConfirmSwitch, PowerDialog
from appliance.tui.screens.profiles import ProfilesScreen
from appliance.tui.screens.switch import SwitchScreen

from rigutil import rig_env, write_profiles

pytestmark = [pytest.mark.proxy, pytest.mark.shared_rig, pytest.mark.timeout(120)]


@pytest.fixture(scope="module")
def rig(tmp_path_factory, litellm_bin):
    tmp = tmp_path_factory.mktemp("tui-rig")
    write_profiles(tmp / "profiles")
    saved = dict(os.environ)
    os.environ.update(rig_env(tmp))
    os.environ["APPLIANCE_SIM_LOAD_S"] = "0.5"
    stack = Stack(simulated_rig(runtime="process"), drain_s=2)
    try:
        assert stack.up(load_profile("alpha")).ok
        yield stack
    finally:
        stack.down(all_=True)
        os.environ.clear()
        os.environ.update(saved)


def screen_text(app) -> str:
    return "\n".join("".join(seg.text for seg in strip) for strip in app.screen._compositor.render_strips())


async def wait_until(pilot, cond, timeout: float = 60.0, what: str = "") -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if cond():
            return
        await pilot.pause(0.2)
    pytest.fail(f"timed out waiting for {what or cond}")


async def open_profiles_and_pick(pilot, app, name: str) -> None:
    await pilot.press("p")
    await wait_until(pilot, lambda: isinstance(app.screen, ProfilesScreen) and app.screen.entries, 20, "profiles")
    scr = app.screen
    await wait_until(pilot, lambda: name in scr.fits, 20, "fit checks")
    names = [e.name for e in scr.entries]
    scr.query_one("#profile-table").move_cursor(row=names.index(name))
    await pilot.pause()


async def test_switch_with_confirmation(rig):
    app = ApplianceApp(StackBackend(rig), interval_s=0.5)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_until(pilot, lambda: app.last is not None and app.last.snapshot.profile == "alpha", 20, "sample")
        await open_profiles_and_pick(pilot, app, "beta")
        assert "changes against alpha" in screen_text(app)
        await pilot.press("s")
        await pilot.pause()
        assert isinstance(app.screen, ConfirmSwitch)
        assert "alpha → beta" in screen_text(app)
        # beta loads for 5 s (not the fixture's 0.5 s): long enough for the dashboard's samples to finish during
        # the switch even when a loaded machine makes one sample take a few seconds
        os.environ["APPLIANCE_SIM_LOAD_S"] = "5"
        try:
            await pilot.press("y")
            await pilot.pause()
            assert isinstance(app.screen, SwitchScreen)
            samples_before = app.samples_done
            await wait_until(pilot, lambda: not app.switch_log.running, 60, "the switch")
        finally:
            os.environ["APPLIANCE_SIM_LOAD_S"] = "0.5"
        assert app.samples_done > samples_before  # the dashboard kept sampling while the switch ran
        assert app.switch_log.result.ok, screen_text(app)
        assert rig.active_profile().name == "beta"
        text = screen_text(app)
        assert "✔ ready" in text and "loading weights" in text, text
        await pilot.press("d")
        await wait_until(pilot, lambda: app.last.snapshot.profile == "beta" and
                         app.last.snapshot.engines[0].health == "healthy", 20, "beta healthy on the dashboard")


async def test_power_change_shows_in_next_sample(rig):
    app = ApplianceApp(StackBackend(rig), interval_s=0.5)
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_until(pilot, lambda: app.last is not None and app.last.snapshot.gpus, 20, "sample")
        before = app.last.snapshot.gpus[0].power_limit_w
        target = before - 50
        await pilot.press("w")
        await pilot.pause()
        assert isinstance(app.screen, PowerDialog)
        assert "allowed:" in screen_text(app)
        app.screen.query_one("#watts").value = f"{target:.0f}"
        await pilot.press("enter")
        await wait_until(pilot, lambda: app.last.snapshot.gpus[0].power_limit_w == target, 15, "the new limit")
        await pilot.press("plus")
        await wait_until(pilot, lambda: app.last.snapshot.gpus[0].power_limit_w == target + 10, 15, "+10 W")


async def test_failed_switch_rolls_back(rig):
    active = rig.active_profile().name
    app = ApplianceApp(StackBackend(rig), interval_s=0.5)
    async with app.run_test(size=(120, 50)) as pilot:
        await wait_until(pilot, lambda: app.last is not None, 20, "sample")
        await open_profiles_and_pick(pilot, app, "crashy")
        await pilot.press("s", "y")
        await wait_until(pilot, lambda: app.switch_log is not None and not app.switch_log.running, 90, "the switch")
        r = app.switch_log.result
        assert r is not None and not r.ok and "rolled back" in r.reason
        text = screen_text(app)
        print(text)
        assert "✘ failed" in text and "rolling back to " + active in text
        assert "memory" in text.lower()  # the OOM diagnosis with its decisive log lines
        assert rig.active_profile().name == active


async def test_logs_follow_and_search(rig):
    app = ApplianceApp(StackBackend(rig), interval_s=1.0)
    async with app.run_test(size=(120, 30)) as pilot:
        await pilot.press("l")
        await wait_until(pilot, lambda: isinstance(app.screen, LogsScreen) and app.screen.lines, 20, "log lines")
        scr = app.screen
        assert scr.target == "main"
        await pilot.press("f")
        assert scr.follow
        await pilot.press("slash", *"startup")
        await pilot.pause(0.3)
        assert scr.matches() and all("startup" in ln.lower() for ln in scr.matches())
        await pilot.press("escape")
        await pilot.press("right")
        await wait_until(pilot, lambda: scr.target == "proxy" and scr.lines, 20, "proxy log")


async def test_first_sample_comes_from_a_forked_child(rig):
    """What `appliance` does on a terminal (cli/demo.py cmd_tui): the first sample and the rig's info come from a
    child forked before Textual is imported; this process builds its own rig only for the second sample, whose
    rates start from the child's scrapes (without them generation would read "—" for one more second)."""
    from appliance.tui.early import EarlySample

    parent, built = os.getpid(), []

    def make_stack():
        built.append(os.getpid())  # the child's append stays in the child
        return Stack(simulated_rig(runtime="process"), drain_s=2)

    early = EarlySample.start(make_stack)
    backend = StackBackend(make_stack=make_stack, early=early)
    app = ApplianceApp(backend, interval_s=1.0)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_until(pilot, lambda: app.samples_done >= 1 and app.info is not None, 20, "the child's sample")
        first = app.last.snapshot
        assert first.profile == rig.active_profile().name and {e.health for e in first.engines} == {"healthy"}
        assert first.engines[0].stats.generation_tps is None  # one scrape: no rate yet
        assert app.info.sim and app.info.running and built == []  # the rig's info came from the child too
        await wait_until(pilot, lambda: app.samples_done >= 2, 20, "the second sample")
        second = app.last.snapshot
        assert built == [parent] and second.t > first.t
        assert second.engines[0].stats.generation_tps is not None  # a rate from the child's scrape on
        assert len(app.last.history[Series.RIG_GEN_TPS]) == 2  # the child's point and this one
    with pytest.raises(ChildProcessError):  # reaped: no zombie left behind
        os.waitpid(early.pid, os.WNOHANG)
