"""What happens around a save in the profile editor (screens/editor.py): a file changed on disk meanwhile, and
the running profile saved."""

from __future__ import annotations

from appliance.editing import knobs, roundtrip
from appliance.errors import ApplianceError


def rebase_on_disk(editor) -> bool:
    """The file was changed outside the editor since it was opened (by hand, `appliance set`): saving now
    would put back the old text and lose that. The edits are replayed on the file as it is now instead —
    they are kept as edits of fields, not as a copy of the file — and the owner checks the new diff and
    saves again."""
    try:
        disk = editor.path.read_text(encoding="utf-8")
    except OSError:
        return False  # deleted meanwhile: the save writes it again
    if disk == editor.saved:
        return False
    editor.saved = disk
    editor.data = roundtrip.load(disk, str(editor.path))
    for (eng, knob_id), raw in list(editor.edits.items()):
        try:
            knobs.apply(knobs.BY_ID[knob_id], editor.data, eng, raw)
        except (ValueError, ApplianceError, KeyError, IndexError):
            editor.edits.pop((eng, knob_id))  # its engine or field is gone from the new file
    editor._reload_widgets()
    editor.app.notify(f"{editor.path.name} changed on disk since it was opened: your edits now apply to that "
                      "version — check the diff, ctrl+s saves", title="not saved yet", severity="warning",
                      timeout=10)
    return True


def offer_apply(editor, profile) -> None:
    """The running profile was saved: a power-only change can be applied now (the dashboard's power
    control); anything else with `appliance apply` (offered), or at the profile's next start."""
    from appliance.tui.diff import profile_diff
    from appliance.tui.screens.editor_dialogs import ConfirmDialog

    changed = {k.split(".")[0] for k, _, _ in profile_diff(editor.active, profile)}
    watts = profile.power_limit_w
    if changed == {"power_limit_w"} and isinstance(watts, int):
        def answer(yes: bool | None) -> None:
            if yes:
                editor.app.set_power(watts)

        editor.app.push_screen(ConfirmDialog(f"{profile.name} is running: apply the power limit {watts} W "
                                             "now?", "Apply (y)"), answer)
    else:  # `appliance apply`: the changed engines drain and restart one at a time (Stack.switch → apply)
        active = editor.active

        def apply(yes: bool | None) -> None:
            if yes:
                editor.app.start_switch(profile, active)
            else:
                editor.app.notify(f"{profile.name}: the change takes effect at its next start, or with "
                                  f"`appliance apply {profile.name}`", timeout=8)

        editor.app.push_screen(ConfirmDialog(f"{profile.name} is running: apply the changes now? The engines "
                                             "that changed drain and restart one at a time; agents' requests "
                                             "are held or go to their fallbacks meanwhile.", "Apply (y)"), apply)
    editor.active = profile
