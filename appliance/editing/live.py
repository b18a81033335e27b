"""The live fit of a profile being edited: what the file would say, whether it loads (and which field is wrong),
what it does to VRAM and concurrency, and what changed against the saved file. Pure and fast enough to run on
every keystroke (debounced, in a worker: the TUI editor) — no GPU, docker or network.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from appliance import yamlsrc
from appliance.editing import roundtrip, store
from appliance.errors import ApplianceError, ProfileError


@dataclass
class LiveFit:
    text: str  # what would be written
    profile: object | None  # the validated Profile, or None
    error: ProfileError | None  # why it does not load
    field_errors: dict[str, str] = field(default_factory=dict)  # "engines.0.max_model_len" → message (+ fix)
    report: object | None = None  # fit.FitReport
    fit_error: str | None = None
    diff: list[str] = field(default_factory=list)  # unified diff against the saved file
    checks: list = field(default_factory=list)  # engine_checks.EngineChecks: vLLM version and its advice
    rig_gpus: int | None = None  # set when the rig has fewer GPUs than the profile needs (the report is then
    #                              against the profile's own card)

    @property
    def ok(self) -> bool:
        return self.profile is not None


def gpus_needed(profile) -> int:
    """How many GPUs a machine needs for the profile: its highest GPU index + 1, or (gpus: all) what its engines
    use together."""
    need = (max(profile.gpus) + 1) if profile.gpus != "all" else sum(e.gpu_count for e in profile.engines)
    return max(1, need)


def gpus_for(profile) -> list:
    """The GPUs to fit against when the caller has none: the profile's card (a 4090 when it names none), as many
    as the profile uses."""
    from appliance import cards
    from appliance.fit import GPU

    card = cards.lookup(profile.card or "") or cards.lookup("4090")
    return [GPU.from_card(i, card) for i in range(gpus_needed(profile))]


def fit_for(profile, gpus: list | None = None):
    from appliance.fit import fit_profile

    return fit_profile(profile, gpus if gpus is not None else gpus_for(profile))


_LOC = re.compile(r"^(?P<file>.+?):(?P<line>\d+): (?P<msg>.*)$")


def field_errors(err: ProfileError, text: str, file: str) -> dict[str, str]:
    """Map each `file:LINE: message` of a validation error back to the field on that line."""
    try:
        src = yamlsrc.load(text, file)
    except ProfileError:
        return {}
    by_line: dict[int, tuple] = {}
    for path, line in src.lines.items():
        if line not in by_line or len(path) > len(by_line[line]):
            by_line[line] = path
    out: dict[str, str] = {}
    for i, row in enumerate(err.message.splitlines()):
        m = _LOC.match(row)
        if not m or m.group("file") != file:
            continue
        path = by_line.get(int(m.group("line")), ())
        key = ".".join(str(p) for p in path)
        msg = m.group("msg") + (f" — fix: {err.hint}" if i == 0 and err.hint else "")
        out.setdefault(key, msg)
    return out


def unified(saved: str, text: str, name: str) -> list[str]:
    return [ln.rstrip("\n") for ln in difflib.unified_diff(saved.splitlines(True), text.splitlines(True),
                                                            f"{name} (saved)", f"{name} (edited)", n=1)]


def live_fit(data, saved: str, path: Path, fit: Callable | None = None) -> LiveFit:
    """`data`: the round-trip document being edited; `saved`: the file's text on disk ('' for a new one);
    `fit`: Profile → FitReport (default: against the profile's card)."""
    text = roundtrip.render(saved, data)
    diff = unified(saved, text, Path(path).name)
    try:
        profile = store.validate_text(text, Path(path))
    except ProfileError as exc:
        return LiveFit(text, None, exc, field_errors(exc, text, str(path)), diff=diff)
    rig_gpus = None
    try:
        report = (fit or fit_for)(profile)
        if fit is not None and len(report.gpus) < gpus_needed(profile):
            # fitted against a rig too small for it: that "does not fit" says nothing about the knobs; the fit
            # against the profile's own card does (the caller says the rig is too small)
            rig_gpus, report = len(report.gpus), fit_for(profile)
        fit_error = None
    except ApplianceError as exc:
        report, fit_error = None, exc.message + (f" — {exc.hint}" if exc.hint else "")
    return LiveFit(text, profile, None, {}, report, fit_error, diff, advice_for(profile, report), rig_gpus)


def advice_for(profile, report=None) -> list:
    """What `appliance check` says beyond the fit: the vLLM version each engine is checked against, and the
    advice vLLM itself would log at start (with the fix), judged for the card the fit used."""
    from appliance.engine_checks import check_engines

    gpu = report.gpus[0].name if report is not None and report.gpus else None
    try:
        return check_engines(profile, gpu_name=gpu)
    except ApplianceError:
        return []


def summary(report) -> list[str]:
    """The fit in a few lines (what `appliance set` prints after a change)."""
    out = []
    for e in report.engines:
        out.append(f"{e.engine}: {e.kv_tokens:,} tokens of KV cache ({e.kv_dtype}), "
                   f"{e.max_concurrency_at_max_len:.1f} requests of {e.max_model_len:,} at once")
        out.append(f"  {e.verdict}")
        if e.fixes:
            out.append("  fix: " + ", ".join(e.fixes))
    out += [f"problem: {p}" for p in report.problems]
    out.append(report.headline)
    return out
