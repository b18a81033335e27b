"""What a new user's trial of the editor found: the fit pane empty while the first fit runs, the advice of
`appliance check` missing from it, a 4-GPU profile judged on a 1-GPU rig as if its knobs were wrong; and the
footer and the power sparkline of the other screens."""

from __future__ import annotations

import threading

from fakes import FakeBackend, clock
from test_editor import fitted, screen_text, settle, to_profiles

from appliance.tui.app import ApplianceApp
from appliance.tui.screens.editor import EditorScreen


def pane_text(editor) -> str:
    """The fit pane's whole content (it scrolls: the screen shows only its top)."""
    group = editor.query_one("#editor-fit").content
    return "\n".join(r.plain for r in group.renderables if hasattr(r, "plain"))


class GatedFit(FakeBackend):
    """fit() waits for `gate` once `hold` is set (the profiles list loads its fits before that)."""

    def __init__(self, **kw):
        super().__init__(**kw)
        self.hold = False
        self.gate = threading.Event()

    def fit(self, profile):
        if self.hold:
            self.gate.wait(20)
        return super().fit(profile)


class OneGpuRig(FakeBackend):
    def fit(self, profile):
        from appliance import cards
        from appliance.fit import GPU, fit_profile

        return fit_profile(profile, [GPU.from_card(0, cards.lookup("3090"))], use_hf_cache=False)


async def open_editor(pilot) -> EditorScreen:
    await to_profiles(pilot)
    await pilot.press("e")
    for _ in range(100):
        await pilot.pause(0.05)
        if isinstance(pilot.app.screen, EditorScreen) and pilot.app.screen.is_mounted:
            return pilot.app.screen
    raise AssertionError("the editor did not open")


async def test_the_fit_pane_says_computing_until_the_first_fit_is_ready_then_shows_it():
    backend = GatedFit()
    app = ApplianceApp(backend, clock=clock, interval_s=None)
    async with app.run_test(size=(160, 48)) as pilot:
        await to_profiles(pilot)
        backend.hold = True
        await pilot.press("e")
        for _ in range(100):
            await pilot.pause(0.05)
            if isinstance(app.screen, EditorScreen) and app.screen.is_mounted:
                break
        editor = app.screen
        await pilot.pause(0.3)
        assert editor.fits_done == 0 and "computing the fit" in pane_text(editor)
        assert "computing the fit" in screen_text(app)  # drawn, not only set
        backend.gate.set()
        await fitted(pilot, editor, 0)
        text = pane_text(editor)
        assert "computing" not in text and "FITS" in text and "tok of KV" in text


async def test_the_advice_of_check_shows_in_the_fit_pane_and_follows_the_knobs():
    app = ApplianceApp(FakeBackend(), clock=clock, interval_s=None)
    async with app.run_test(size=(160, 48)) as pilot:
        editor = await open_editor(pilot)  # rtx3090x4-two-tier: agent engines with prefix caching on
        await fitted(pilot, editor, 0)
        text = pane_text(editor)
        assert "fast: vLLM 0.19.0 · no advice" in text and "smart: vLLM 0.19.0 · no advice" in text
        n = editor.fits_done
        editor.query_one("#k-prefix").value = "off"  # an agent engine without prefix caching: vLLM warns
        await fitted(pilot, editor, n)
        text = pane_text(editor)
        assert "fast: vLLM 0.19.0 · 1 advice item" in text and "smart: vLLM 0.19.0 · no advice" in text
        assert "warning: prefix caching is turned off on an agent engine" in text
        assert "fix: write enable_prefix_caching: true" in text
        n = editor.fits_done
        editor.query_one("#k-quantization").value = "awq"  # vLLM 0.19 forces its slow AWQ kernel then
        await fitted(pilot, editor, n)
        text = pane_text(editor)
        assert "fast: vLLM 0.19.0 · 2 advice items" in text and "quantization: awq forces" in text
        n = editor.fits_done
        editor.query_one("#k-prefix").value = "on"
        editor.query_one("#k-quantization").value = "awq_marlin"
        await fitted(pilot, editor, n)
        assert "fast: vLLM 0.19.0 · no advice" in pane_text(editor)


async def test_a_profile_for_more_gpus_than_the_rig_says_so_in_the_list_the_detail_and_the_editor():
    app = ApplianceApp(OneGpuRig(), clock=clock, interval_s=None)
    async with app.run_test(size=(160, 48)) as pilot:
        screen = await to_profiles(pilot)
        await settle(pilot)
        text = screen_text(app)
        assert "needs 4 GPUs" in text  # the list's fit column, not "no fit"
        detail = "\n".join(r.plain for r in screen.query_one("#profile-detail").content.renderables
                           if hasattr(r, "plain"))
        assert "needs 4 GPUs, this rig has 1: it cannot start here" in detail
        assert "appliance check rtx3090x4-two-tier --gpu 3090x4" in detail
        assert "does not fit: engine fast needs 2 GPUs" not in detail  # the misleading per-engine verdict
        editor = await open_editor(pilot)
        await fitted(pilot, editor, 0)
        text = pane_text(editor)
        assert "needs 4 GPUs, this rig has 1: it cannot start here" in text
        assert editor.result.rig_gpus == 1 and editor.result.report.fits  # the knobs judged on its own card
        assert "GPU 0,1 " in text and "GPU 2,3 " in text  # a bar per engine's GPUs on the card


async def test_footer_key_hints_fit_at_80_and_120_columns_on_every_screen():
    for size in ((80, 24), (120, 40)):
        app = ApplianceApp(FakeBackend(), clock=clock, interval_s=None)
        async with app.run_test(size=size) as pilot:
            await settle(pilot)
            for key, own in (("d", "Dash"), ("p", "Profiles"), ("l", "Logs"), ("b", "Bench")):
                await pilot.press(key)
                await settle(pilot)
                footer = screen_text(app).splitlines()[-1]
                assert "? Help" in footer and "q Quit" in footer, (size, key, footer)
                others = {"Dash", "Profiles", "Logs", "Bench"} - {own}
                assert all(f" {o}" in footer for o in others), (size, key, footer)
                assert f"{key} {own}" not in footer  # the screen's own key is not offered on it
                assert footer.rstrip().endswith("palette") == (size[0] >= 120), (size, key, footer)
            await pilot.press("p")
            await settle(pilot)
            await pilot.press("e")
            for _ in range(100):
                await pilot.pause(0.05)
                if isinstance(app.screen, EditorScreen):
                    break
            await settle(pilot)
            footer = screen_text(app).splitlines()[-1]
            assert "Save" in footer and "q Quit" in footer and "p Profiles" in footer, (size, footer)


def test_a_flat_power_series_is_drawn_low_against_the_limit_not_at_full_height():
    from appliance.tui import fmt
    from appliance.tui.widgets.headline import rig_power_ceiling
    from fakes import snapshot

    snap = snapshot(250.0, True)
    ceiling = rig_power_ceiling(snap)
    used = {i for e in snap.engines for i in e.gpus}
    assert ceiling == sum(g.power_limit_w for g in snap.gpus if g.index in used)
    flat = [0.5 * ceiling] * 20
    line = fmt.spark(flat, 20, 0, ceiling)
    assert len(set(line)) == 1 and line[0] not in "▇█"  # half the limit: a mid line
    assert fmt.spark(flat, 20) == "▄" * 20  # no ceiling known: a steady value is still not drawn maxed out
    rising = fmt.spark([100, 200, 300, 400], 4)
    assert rising[-1] == "█" and rising[0] != "█"  # a moving series still uses the full height
    assert fmt.spark([0.0] * 5, 5) == "▁" * 5


def test_the_diff_against_the_active_profile_shows_a_default_port_as_the_port_it_runs_on():
    """The trial's "wrong port": after a save, the switch dialog (and the profiles detail) read `port 8001 → —`
    for a profile that leaves its port at the default 8000."""
    from appliance.profile import load_profile
    from appliance.tui.diff import profile_diff

    two_tier, qwen = load_profile("rtx3090x4-two-tier"), load_profile("rtx3090x4-qwen35-27b")
    rows = {k: (old, new) for k, old, new in profile_diff(two_tier, qwen)}
    assert rows["engines[0].port"] == (8001, 8000)
    assert rows["engines[1].port"] == (8002, None)  # no second engine: "—"
    assert profile_diff(qwen, qwen) == []
    assert "proxy.port" not in rows and not any(k.startswith("proxy.timeouts") for k in rows)  # equal defaults
