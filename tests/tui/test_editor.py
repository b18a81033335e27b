"""The profile editor end to end against the FakeBackend (fits against 4 × RTX 3090): new from a model, knobs
changed, the fit following them live, save keeping the file's comments, the switch; errors at their field;
shipped profiles edited as a user copy; delete; SVG snapshots at 80×24 and 160×48."""

from __future__ import annotations

from fakes import FakeBackend, clock

from appliance import paths
from appliance.tui.app import ApplianceApp
from appliance.tui.screens.editor import EditorScreen
from appliance.tui.screens.editor_dialogs import ConfirmDialog, NewProfileDialog
from appliance.tui.screens.modals import ConfirmSwitch
from appliance.tui.screens.profiles import ProfilesScreen
from appliance.tui.screens.switch import SwitchScreen

MTP_MODEL = "cyankiwi/Qwen3.5-27B-AWQ-BF16-INT8"


async def settle(pilot, n: int = 3) -> None:
    for _ in range(n):
        await pilot.app.workers.wait_for_complete()
        await pilot.pause()


async def fitted(pilot, editor: EditorScreen, after: int) -> None:
    """Until the debounced live fit after `after` fits has finished."""
    for _ in range(100):
        await pilot.pause(0.05)
        await pilot.app.workers.wait_for_complete()
        if editor.fits_done > after and editor._timer is None:
            return
    raise AssertionError("the live fit never finished")


async def to_profiles(pilot) -> ProfilesScreen:
    await settle(pilot)
    await pilot.press("p")
    await settle(pilot)
    assert isinstance(pilot.app.screen, ProfilesScreen)
    return pilot.app.screen


async def retype(pilot, editor, knob_id: str, text: str) -> None:
    """Focus a field and type into it, as a user would (ctrl+e: end of the line, ctrl+u: clear to its left)."""
    editor.query_one(f"#k-{knob_id}").focus()
    await pilot.press("ctrl+e", "ctrl+u", *text)


async def change(pilot, editor, knob_id: str, text: str) -> None:
    """Retype a field and wait for the live fit that follows it."""
    n = editor.fits_done
    await retype(pilot, editor, knob_id, text)
    await fitted(pilot, editor, n)


def screen_text(app) -> str:
    return "\n".join("".join(seg.text for seg in strip) for strip in app.screen._compositor.render_strips())


async def test_new_from_model_change_knobs_fit_follows_save_keeps_comments_and_switch():
    backend = FakeBackend()
    app = ApplianceApp(backend, clock=clock, interval_s=None)
    async with app.run_test(size=(160, 48)) as pilot:
        await to_profiles(pilot)
        await pilot.press("n")
        await pilot.pause()
        dlg = app.screen
        assert isinstance(dlg, NewProfileDialog)
        await pilot.press(*"mtp-rig", "tab", "tab", *MTP_MODEL)
        dlg.query_one("#new-card").value = "3090"
        dlg.query_one("#new-count").value = "2"
        await pilot.press("enter")
        await settle(pilot)
        editor = app.screen
        assert isinstance(editor, EditorScreen)
        path = paths.user_profiles_dir() / "mtp-rig.yaml"
        assert editor.path == path and path.is_file()
        created = path.read_text()
        await fitted(pilot, editor, 0)
        first = editor.result.report.engines[0]
        assert editor.result.ok and first.kv_dtype == "auto" and not editor.result.diff

        n = editor.fits_done
        await retype(pilot, editor, "max_model_len", "65536")
        editor.query_one("#k-kv_cache_dtype").value = "fp8"
        editor.query_one("#k-spec").value = "mtp"
        await retype(pilot, editor, "power", "280")
        await fitted(pilot, editor, n)
        e = editor.result.report.engines[0]
        assert (e.max_model_len, e.kv_dtype) == (65536, "fp8")
        assert e.kv_bytes_per_token != first.kv_bytes_per_token  # fp8 halves it, MTP adds a layer
        assert any("MTP" in note for note in e.notes)
        assert editor.query_one("#k-spec_tokens").value == "2"
        shown = screen_text(app)
        assert "65,536 tok at once" in shown and "changes against the saved file" in shown
        assert "+power_limit_w: 280" in "\n".join(editor.result.diff)
        assert path.read_text() == created  # nothing written before save

        await pilot.press("ctrl+s")
        await settle(pilot)
        saved = path.read_text()
        assert isinstance(app.screen, ConfirmSwitch)
        # the file: the header and every inline comment of the new file kept, the changes in place
        assert saved.splitlines()[:4] == created.splitlines()[:4]
        assert "    max_model_len: 65536    # context per request, tokens\n" in saved
        assert "    kv_cache_dtype: fp8     # fp8 holds twice the tokens\n" in saved  # comment stays in its column
        assert "    speculative_config: {method: mtp, num_speculative_tokens: 2}\n" in saved
        assert saved.index("power_limit_w: 280") < saved.index("engines:")  # in its usual place, not appended
        assert "# power_limit_w: 300    # watts per GPU" in saved
        from appliance.editing import store

        assert [h.read_text() for h in store.history(path)] == [created]
        await pilot.press("y")
        await settle(pilot)
        assert backend.switched_to == ["mtp-rig"]
        assert isinstance(app.screen, SwitchScreen)


async def test_errors_show_at_their_field_and_block_the_save():
    app = ApplianceApp(FakeBackend(), clock=clock, interval_s=None)
    async with app.run_test(size=(160, 48)) as pilot:
        profiles = await to_profiles(pilot)
        await pilot.press("n")
        await pilot.pause()
        await pilot.press(*"bad", "tab", "tab", *"Qwen/Qwen2.5-7B-Instruct-AWQ", "enter")
        await settle(pilot)
        editor = app.screen
        await fitted(pilot, editor, 0)
        saved = editor.path.read_text()
        n = editor.fits_done
        await retype(pilot, editor, "max_num_seqs", "lots")
        await pilot.pause()
        err = editor.query_one("#err-max_num_seqs")
        assert err.display and "not a whole number" in str(err.render())
        await retype(pilot, editor, "max_num_seqs", "0")
        await retype(pilot, editor, "gpu_memory_utilization", "1.5")
        await fitted(pilot, editor, n)
        assert not editor.query_one("#err-max_num_seqs").display or "0" in str(
            editor.query_one("#err-max_num_seqs").render())
        util = editor.query_one("#err-gpu_memory_utilization")
        assert util.display and "1.5" in str(util.render())
        assert "does not load" in screen_text(app)
        await pilot.press("ctrl+s")
        await settle(pilot)
        assert isinstance(app.screen, EditorScreen) and editor.path.read_text() == saved
        n = editor.fits_done
        await retype(pilot, editor, "max_num_seqs", "4")
        await retype(pilot, editor, "gpu_memory_utilization", "0.85")
        await fitted(pilot, editor, n)
        assert editor.result.ok and not editor.query_one("#err-gpu_memory_utilization").display
        # Esc with unsaved changes warns first, then leaves without writing
        await pilot.press("escape")
        assert isinstance(app.screen, EditorScreen)
        await pilot.press("escape")
        await settle(pilot)
        assert app.screen is profiles and editor.path.read_text() == saved


async def test_edit_a_shipped_profile_makes_a_user_copy_and_delete_only_user_profiles():
    app = ApplianceApp(FakeBackend(), clock=clock, interval_s=None)
    shipped = paths.SHIPPED_PROFILES_DIR / "rtx3090x4-two-tier.yaml"
    before = shipped.read_bytes()
    async with app.run_test(size=(120, 40)) as pilot:
        profiles = await to_profiles(pilot)
        await pilot.press("x")
        await pilot.pause()
        assert app.screen is profiles  # shipped: refused, no dialog
        await pilot.press("e")
        await settle(pilot)
        editor = app.screen
        assert isinstance(editor, EditorScreen)
        copy = paths.user_profiles_dir() / shipped.name
        # the copy is written by the first save, not by opening (a trial found a look-and-leave left a copy
        # behind that hid every later version of the shipped profile)
        assert editor.path == copy and not copy.exists()
        await fitted(pilot, editor, 0)
        assert editor.query_one("#k-engine") is not None  # two engines: a selector
        n = editor.fits_done
        await pilot.press("ctrl+n")
        await fitted(pilot, editor, n)
        assert editor.eng == 1 and editor.query_one("#k-max_model_len").value == "8192"
        await pilot.press("escape")
        await settle(pilot)
        await pilot.press("escape")  # the engine switch is no edit, but be sure to leave
        await settle(pilot)
        assert not copy.exists()
        await pilot.press("e")
        await settle(pilot)
        editor = app.screen
        await fitted(pilot, editor, 0)
        await change(pilot, editor, "max_num_seqs", "5")
        await pilot.press("ctrl+s")
        await settle(pilot)
        assert copy.is_file() and copy.read_text().startswith("# Your copy of the shipped profile")
        # the copy is a user profile: it can be deleted (the shipped one shows again), the shipped file untouched
        from appliance.editing import store
        from appliance.profile import resolve

        store.delete("rtx3090x4-two-tier")
        assert not copy.exists() and shipped.read_bytes() == before and resolve("rtx3090x4-two-tier") == shipped


async def test_delete_asks_first():
    app = ApplianceApp(FakeBackend(), clock=clock, interval_s=None)
    async with app.run_test(size=(120, 40)) as pilot:
        profiles = await to_profiles(pilot)
        from appliance.editing import create
        from appliance.tui.backend import ProfileEntry

        path = create.new_profile("mine", model="Qwen/Qwen2.5-7B-Instruct-AWQ")
        from appliance.profile import load_profile

        app.backend.profiles = lambda: [ProfileEntry(path, load_profile(path))] if path.exists() else []
        profiles.action_reload()
        await settle(pilot)
        await pilot.press("x")
        await pilot.pause()
        assert isinstance(app.screen, ConfirmDialog)
        await pilot.press("n")
        await pilot.pause()
        assert path.exists()
        await pilot.press("x")
        await pilot.pause()
        await pilot.press("y")
        await pilot.pause()
        assert not path.exists()


def _snap_editor(snap_compare, size):
    async def go(pilot):
        await to_profiles(pilot)
        await pilot.press("e")
        await settle(pilot)
        editor = pilot.app.screen
        await fitted(pilot, editor, 0)
        await change(pilot, editor, "max_model_len", "16384")
        from textual.widgets import Input

        for field in editor.query(Input):
            field.cursor_blink = False  # a blinking cursor would make the picture depend on timing
        editor.query_one("#k-max_model_len").focus()
        pilot.app.clear_notifications()
        await pilot.pause()

    return snap_compare(ApplianceApp(FakeBackend(), clock=clock, interval_s=None), terminal_size=size, run_before=go)


def test_editor_snapshot_80x24(snap_compare):
    assert _snap_editor(snap_compare, (80, 24))


def test_editor_snapshot_160x48(snap_compare):
    assert _snap_editor(snap_compare, (160, 48))


async def test_new_profile_dialog_keeps_its_input_on_an_error():
    app = ApplianceApp(FakeBackend(), clock=clock, interval_s=None)
    async with app.run_test(size=(100, 30)) as pilot:
        await to_profiles(pilot)
        await pilot.press("n")
        await pilot.pause()
        await pilot.press(*"x1", "tab", "tab", *"acme/unknown-7b", "enter")
        await pilot.pause()
        dlg = app.screen
        assert isinstance(dlg, NewProfileDialog)
        assert "nothing is known about model `acme/unknown-7b`" in str(dlg.query_one("#new-error").render())
        assert not (paths.user_profiles_dir() / "x1.yaml").exists()
        dlg.query_one("#new-model").value = "Qwen/Qwen2.5-7B-Instruct-AWQ"
        await pilot.press("enter")
        await settle(pilot)
        assert isinstance(app.screen, EditorScreen) and (paths.user_profiles_dir() / "x1.yaml").is_file()


async def test_saving_the_running_profile_offers_to_apply_a_power_change_now():
    backend = FakeBackend()  # runs rtx3090x4-two-tier
    app = ApplianceApp(backend, clock=clock, interval_s=None)
    async with app.run_test(size=(120, 40)) as pilot:
        await to_profiles(pilot)
        await pilot.press("e")
        await settle(pilot)
        editor = app.screen
        await fitted(pilot, editor, 0)
        await change(pilot, editor, "power", "230")
        await pilot.press("ctrl+s")
        await settle(pilot)
        assert isinstance(app.screen, ConfirmDialog) and "apply the power limit 230 W" in str(
            app.screen.query_one("Static").render())
        await pilot.press("y")
        await settle(pilot)
        assert backend.power_calls == [230] and backend.switched_to == []
        # any other change of the running profile: offered as `appliance apply` (a switch to itself)
        await change(pilot, editor, "max_num_seqs", "6")
        await pilot.press("ctrl+s")
        await settle(pilot)
        assert isinstance(app.screen, ConfirmDialog) and "apply the changes now" in str(
            app.screen.query_one("Static").render())
        await pilot.press("y")
        await settle(pilot)
        assert backend.switched_to == ["rtx3090x4-two-tier"]


async def test_a_profile_that_does_not_load_opens_with_the_error_at_its_field():
    from appliance.tui.backend import ProfileEntry

    d = paths.user_profiles_dir()
    d.mkdir(parents=True)
    broken = d / "broken.yaml"
    text = (paths.SHIPPED_PROFILES_DIR / "rtx4090-qwen25-14b-agent.yaml").read_text()
    broken.write_text(text.replace("name: rtx4090-qwen25-14b-agent", "name: broken").replace(
        "kv_cache_dtype: fp8", "kv_cache_dtype: fp9"))
    from appliance.errors import ProfileError
    from appliance.profile import load_profile

    try:
        load_profile(broken)
    except ProfileError as exc:
        error = exc
    app = ApplianceApp(FakeBackend(), clock=clock, interval_s=None)
    async with app.run_test(size=(160, 48)) as pilot:
        profiles = await to_profiles(pilot)
        profiles._show_entries([ProfileEntry(broken, None, error)], None)
        await pilot.pause()
        await pilot.press("e")
        await settle(pilot)
        editor = app.screen
        assert isinstance(editor, EditorScreen)
        await fitted(pilot, editor, 0)
        err = editor.query_one("#err-kv_cache_dtype")
        assert err.display and "fp9" in str(err.render())
        editor.query_one("#k-kv_cache_dtype").value = "fp8"
        await fitted(pilot, editor, editor.fits_done)
        assert editor.result.ok and not err.display
        await pilot.press("ctrl+s")
        await settle(pilot)
        assert "kv_cache_dtype: fp8" in broken.read_text() and load_profile(broken).name == "broken"


async def test_no_key_leaves_unsaved_edits_at_the_first_press():
    """q, d, p, l and b (the app's keys, shown in the editor's hint line) are guarded like Esc: the first press
    says how to go on, the second leaves without saving (found by a new-user trial: they threw edits away)."""
    app = ApplianceApp(FakeBackend(), clock=clock, interval_s=None)
    async with app.run_test(size=(120, 40)) as pilot:
        await to_profiles(pilot)
        await pilot.press("e")
        await settle(pilot)
        editor = app.screen
        await fitted(pilot, editor, 0)
        await change(pilot, editor, "max_num_seqs", "3")
        editor.query_one("#k-kv_cache_dtype").focus()  # a dropdown: these keys reach the app (a text field
        await pilot.pause()                             # would take them as typing)
        for key in ("d", "p", "l", "b", "q"):
            editor._leave_armed = False
            await pilot.press(key)
            await settle(pilot)
            assert app.screen is editor and app.is_running, key
        await pilot.press("d")  # the same key again: leaves, the edit is dropped
        await settle(pilot)
        assert app.current_mode == "dashboard"


async def test_saving_over_a_file_changed_on_disk_keeps_both_changes():
    """The file is edited by hand while the editor has it open: ctrl+s does not write the editor's old copy back
    over it; the edits are replayed on the new text, shown, and the next ctrl+s saves both."""
    from appliance.editing import store

    store.editable("rtx4090-qwen25-14b-agent")  # the owner's own copy of a shipped profile
    app = ApplianceApp(FakeBackend(), clock=clock, interval_s=None)
    async with app.run_test(size=(120, 40)) as pilot:
        profiles = await to_profiles(pilot)
        names = [e.name for e in profiles.entries]
        profiles.query_one("#profile-table").move_cursor(row=names.index("rtx4090-qwen25-14b-agent"))
        await pilot.press("e")
        await settle(pilot)
        editor = app.screen
        await fitted(pilot, editor, 0)
        await change(pilot, editor, "max_num_seqs", "3")
        path = editor.path
        by_hand = path.read_text().replace("engines:", "# MY NOTE: hand-written\nengines:", 1)
        path.write_text(by_hand)
        n = editor.fits_done
        await pilot.press("ctrl+s")
        await fitted(pilot, editor, n)
        assert path.read_text() == by_hand  # nothing written yet: the owner sees the rebased diff first
        assert "max_num_seqs" in editor.result.text and "# MY NOTE: hand-written" in editor.result.text
        await pilot.press("ctrl+s")
        await settle(pilot)
        saved = path.read_text()
        assert "# MY NOTE: hand-written" in saved and "max_num_seqs: 3" in saved
        reads, listing = [], app.backend.profiles
        app.backend.profiles = lambda: reads.append(1) or listing()
        while not isinstance(app.screen, ProfilesScreen):  # the switch question, then the editor
            await pilot.press("escape")
            await settle(pilot)
        assert reads  # back on the list, the files are read again (it stayed stale after a save)
