"""SVG snapshots of the TUI against a FakeBackend (canned 4×RTX 3090 rig, fixed clock): the dashboard at 80×24
and 160×48, the profiles screen, a failed switch with rollback, and the no-GPU/no-docker state.
Refresh with `pytest tests/tui --snapshot-update` and look at the SVGs before committing them."""

from __future__ import annotations

from fakes import FakeBackend, clock, failed_events

from appliance.tui.app import ApplianceApp


def app_with(backend: FakeBackend) -> ApplianceApp:
    return ApplianceApp(backend, clock=clock, interval_s=None)


async def settle(pilot) -> None:
    """Until the rig info and the first sample are both in (their workers finish in either order), then one
    more refresh so the screen shows both."""
    for _ in range(50):
        await pilot.app.workers.wait_for_complete()
        await pilot.pause()
        if pilot.app.info is not None and pilot.app.samples_done >= 1:
            break
    pilot.app._refresh_screen()
    pilot.app.screen.refresh(layout=True)
    await pilot.pause()
    await pilot.pause()


def test_dashboard_80x24(snap_compare):
    assert snap_compare(app_with(FakeBackend()), terminal_size=(80, 24), run_before=settle)


def test_dashboard_160x48(snap_compare):
    assert snap_compare(app_with(FakeBackend()), terminal_size=(160, 48), run_before=settle)


def test_profiles_screen(snap_compare):
    async def go(pilot):
        await settle(pilot)
        await pilot.press("p")
        await settle(pilot)
        await pilot.press("down")
        await settle(pilot)

    assert snap_compare(app_with(FakeBackend()), terminal_size=(120, 40), run_before=go)


def test_failed_switch_with_rollback(snap_compare):
    backend = FakeBackend(switch_events=failed_events("rtx3090x4-qwen35-27b", "rtx3090x4-two-tier"),
                          switch_ok=False)

    async def go(pilot):
        await settle(pilot)
        await pilot.press("p")
        await settle(pilot)
        await pilot.press("down", "s")
        await settle(pilot)
        await pilot.press("y")
        await settle(pilot)

    assert snap_compare(app_with(backend), terminal_size=(100, 40), run_before=go)


def test_no_gpu_no_docker(snap_compare):
    backend = FakeBackend(running=False, gpu_problem="NVML is not available (libnvidia-ml.so.1 not found)",
                          runtime_problem="docker is not installed — install docker.io, or use --runtime process")
    assert snap_compare(app_with(backend), terminal_size=(80, 24), run_before=settle)
