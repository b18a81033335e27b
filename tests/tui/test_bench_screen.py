"""The bench screen: a recorded run shows its tables, its plot and the recommendation; `a` writes the recommended
power limit (into a user copy when the profile is shipped); the editor shows the measured numbers."""

from __future__ import annotations

from fakes import FakeBackend, clock

from appliance import bench, paths
from appliance.tui.app import ApplianceApp
from appliance.tui.screens.bench import BenchScreen
from appliance.tui.screens.editor_dialogs import ConfirmDialog

PROFILE = "rtx4090-qwen25-14b-agent"


def cell(watts: float, conc: int, tps: float, tpj: float) -> bench.Cell:
    return bench.Cell(watts, conc, 30.0, 20, 0, tps, 900.0, tps / conc, tps / conc * 0.9, 0.2, 0.4, 0.03,
                      {"0": watts * 0.97}, watts * 0.97, watts * 0.97 * 30, tpj, None, 0.4, "counters")


def record_run() -> bench.BenchRun:
    cells = [cell(300, 1, 60, 0.21), cell(300, 4, 200, 0.69), cell(350, 1, 64, 0.19), cell(350, 4, 208, 0.61),
             cell(450, 1, 66, 0.15), cell(450, 4, 215, 0.48)]
    run = bench.BenchRun("20261129-120000-" + PROFILE, 1_750_000_000.0, PROFILE, "qwen25-14b",
                         "Qwen/Qwen2.5-14B-Instruct-AWQ", ["NVIDIA GeForce RTX 4090"], {"vllm": "0.19.0"}, {}, cells)
    run.recommendation = bench.recommend(run)
    bench.save(run)
    return run


def screen_text(app) -> str:
    return "\n".join("".join(seg.text for seg in strip) for strip in app.screen._compositor.render_strips())


async def settle(pilot, n: int = 4) -> None:
    for _ in range(n):
        await pilot.app.workers.wait_for_complete()
        await pilot.pause()


async def test_recorded_run_shows_tables_plot_and_apply_writes_the_recommended_limit():
    run = record_run()
    assert run.recommendation["power_limit_w"] == 300  # the most tok/J within 90 % of the best per-request speed
    shipped = paths.SHIPPED_PROFILES_DIR / f"{PROFILE}.yaml"
    before = shipped.read_bytes()
    app = ApplianceApp(FakeBackend(), clock=clock, interval_s=None)
    async with app.run_test(size=(160, 60)) as pilot:
        await settle(pilot)
        await pilot.press("b")
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, BenchScreen)
        text = screen_text(app)
        assert run.run_id[:20] in text and "300 W" in text
        assert "by power level" in text and "Avg gen tok/s" in text  # the table by power
        assert "by concurrency" in text and "TTFT p50/p95 ms" in text  # the table by concurrency
        assert "recommendation: at 4 concurrent request(s), 300 W" in text
        assert "aggregate generation tok/s vs concurrency" in text  # the plot
        assert "200.0" in text and "0.690" in text  # a cell's numbers
        await pilot.press("a")
        await pilot.pause()
        assert isinstance(app.screen, ConfirmDialog)
        await pilot.press("y")
        await settle(pilot)
    copy = paths.user_profiles_dir() / f"{PROFILE}.yaml"
    assert screen.applied == [(300.0, copy)]
    text = copy.read_text()
    assert "\npower_limit_w: 300\n" in text and "# The RTX 4090 agent workhorse" in text
    assert shipped.read_bytes() == before
    from appliance.profile import load_profile

    assert load_profile(PROFILE).power_limit_w == 300


async def test_no_runs_says_how_to_make_one():
    app = ApplianceApp(FakeBackend(), clock=clock, interval_s=None)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await pilot.press("b")
        await settle(pilot)
        assert "no bench runs yet" in screen_text(app)


async def test_editor_shows_the_measured_numbers_at_the_profiles_power_limit():
    record_run()
    from appliance.editing import store
    from appliance.tui.screens.editor import EditorScreen

    path, _ = store.editable(PROFILE)
    store.set_values(path, ["power_limit_w=350"])
    app = ApplianceApp(FakeBackend(), clock=clock, interval_s=None)
    async with app.run_test(size=(160, 48)) as pilot:
        await settle(pilot)
        app.push_screen(EditorScreen(path))
        for _ in range(60):
            await pilot.pause(0.05)
            if app.screen.fits_done:
                break
        await settle(pilot)
        m = app.screen.measured
        assert m is not None and m.power_limit_w == 350 and m.gen_tps == 208 and m.exact
        assert "measured 208 tok/s, 0.610 tok/J at 350 W" in screen_text(app)
