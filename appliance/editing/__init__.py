"""Editing profiles without losing what their owner wrote: the core behind `appliance new/set/edit` and the
TUI's profile editor (no textual here).

    create.new_profile(name, from_profile=None, model=None, card=None, gpu_count=1) -> Path
    store.set_values(ref, ["key=value", "engines.0.max_model_len=16384"]) -> SetResult
    store.duplicate(ref, name) / store.delete(ref) / store.editable(ref) / store.restore(path)
    edit.edit(ref, run=run_editor) -> EditResult           ($EDITOR loop, like crontab -e)
    live.live_fit(data, saved_text, path, fit=None) -> LiveFit   (validation, field errors, fit, diff)
    benchinfo.measured(profile) -> Measured | None          (bench tok/s and tok/J at the profile's power limit)
"""
