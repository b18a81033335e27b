"""The editor's live fit: a VRAM bar per GPU (weights / KV cache / overhead / free), tokens of KV, concurrent
requests at full context, the verdict and the fix, the measured bench numbers, and the diff against the file."""

from __future__ import annotations

from rich.console import Group
from rich.text import Text

from appliance.tui import fmt

SEGMENTS = (("weights", "blue"), ("KV", "green"), ("overhead", "yellow"), ("others", "magenta"),
            ("free", "bright_black"))


def vram_bar(g, width: int) -> Text:
    """One GPU as a bar of `width` cells; every part that exists gets at least one cell."""
    others = g.used_by_others_bytes
    used = g.weights_bytes + g.kv_bytes + g.overhead_bytes + others
    parts = [g.weights_bytes, g.kv_bytes, g.overhead_bytes, others, max(0, g.memory_bytes - used)]
    total = max(1, sum(parts))
    cells = [max(1, round(p / total * width)) if p > 0 else 0 for p in parts]
    while sum(cells) > width:
        i = cells.index(max(cells))
        cells[i] -= 1
    t = Text(no_wrap=True, overflow="crop")
    for (_, style), n in zip(SEGMENTS, cells):
        t.append("█" * n if style != "bright_black" else "░" * n, style=style)
    return t


def legend() -> Text:
    t = Text(no_wrap=True, overflow="ellipsis")
    for name, style in SEGMENTS:
        t.append("■ ", style=style)
        t.append(name + "  ", style="bright_black")
    return t


def fit_view(lf, measured, width: int = 40, other_errors: list[str] | None = None) -> Group:
    parts: list = []
    if lf is None:
        return Group(Text("computing the fit …", style="italic"))
    if not lf.ok:
        parts.append(Text("does not load — the fit waits for a valid profile", style="bold red"))
        for line in (lf.error.message.splitlines() if lf.error else [])[:4]:
            parts.append(Text("  " + line.split(": ", 1)[-1], style="red"))
        for line in other_errors or []:
            parts.append(Text("  " + line, style="red"))
        return Group(*parts)
    if lf.fit_error:
        parts.append(Text("fit check failed: " + lf.fit_error, style="bold red"))
        return Group(*parts)
    r = lf.report
    full = r.fits and all(e.full_concurrency_fits for e in r.engines)
    if lf.rig_gpus is not None:
        need = max(g.index for g in r.gpus) + 1 if r.gpus else 0
        parts.append(Text(f"needs {need} GPUs, this rig has {lf.rig_gpus}: it cannot start here", style="bold red"))
        parts.append(Text(f"the fit below is on its own card ({r.gpus[0].name if r.gpus else '?'} × {need})",
                          style="bright_black"))
    head = Text(no_wrap=True, overflow="ellipsis")
    head.append("FITS" if full else "FITS, KV-limited" if r.fits else "DOES NOT FIT",
                style="bold green" if full else "bold yellow" if r.fits else "bold red")
    if measured is not None:
        head.append(f" · measured {measured.gen_tps:.0f} tok/s" +
                    (f", {measured.tokens_per_joule:.3f} tok/J" if measured.tokens_per_joule else "") +
                    f" at {measured.power_limit_w:.0f} W", style="cyan")
    parts.append(head)
    for e in r.engines:
        style = "green" if e.full_concurrency_fits else ("yellow" if e.fits else "bold red")
        t = Text(no_wrap=True, overflow="ellipsis")
        t.append(f"{e.engine}: ", style="bold")
        t.append(f"{e.kv_tokens:,} tok of KV ({e.kv_dtype}) · ")
        t.append(f"{e.max_concurrency_at_max_len:.1f} × {e.max_model_len:,} tok at once", style=style)
        parts.append(t)
    bar_w = max(10, width - 26)
    groups: dict[tuple, list] = {}  # GPUs used alike share one bar (4 × 3090 under one TP engine: one line)
    for g in r.gpus:
        key = (g.memory_bytes, g.weights_bytes, g.kv_bytes, g.overhead_bytes, g.used_by_others_bytes)
        groups.setdefault(key, []).append(g)
    for same in groups.values():
        g = same[0]
        used = g.weights_bytes + g.kv_bytes + g.overhead_bytes + g.used_by_others_bytes
        t = Text(f"GPU {fmt.gpu_range([x.index for x in same]):<4}", no_wrap=True, overflow="crop")
        t.append_text(vram_bar(g, bar_w - 2))
        t.append(f" {fmt.gib(used)}/{fmt.gib(g.memory_bytes)} GiB" + (" each" if len(same) > 1 else ""))
        parts.append(t)
    parts.append(legend())
    for e in r.engines:
        style = "green" if e.full_concurrency_fits else ("yellow" if e.fits else "bold red")
        parts.append(Text(f"{e.engine}: {e.verdict}", style=style))
        for fix in e.fixes[:3]:
            parts.append(Text("  fix: " + fix, style="yellow"))
        for note in e.notes[:2]:
            parts.append(Text("  note: " + note, style="bright_black"))
    for p in r.problems:
        parts.append(Text("problem: " + p, style="bold red"))
    if measured is not None:
        parts.append(Text(measured.text(), style="cyan"))
    parts += advice_lines(lf.checks)
    return Group(*parts)


ADVICE_STYLE = {"info": "cyan", "warning": "yellow", "error": "bold red"}


def advice_lines(checks) -> list[Text]:
    """What `appliance check` prints beyond the fit: the vLLM version each engine is checked against and the
    advice vLLM would log at start, each with its fix."""
    out: list[Text] = []
    for c in checks or ():
        t = Text(f"{c.engine}: vLLM {c.version}", style="bold")
        if c.requested and c.requested != c.version:
            t.append(f" (the image says {c.requested})", style="bright_black")
        n = len(c.advice)
        t.append(f" · {n} advice item{'s' if n != 1 else ''}" if n else " · no advice", style="bright_black")
        out.append(t)
        if c.warning:
            out.append(Text("  ! " + c.warning, style="yellow"))
        for a in c.advice:
            line = Text("  ")
            line.append(f"{a.severity}: ", style=ADVICE_STYLE.get(a.severity, "yellow"))
            line.append(a.message)
            out.append(line)
            out.append(Text("    fix: " + a.fix, style="bright_black"))
    return out


def diff_view(lines: list[str], limit: int = 60) -> Group:
    if not lines:
        return Group(Text("no changes against the saved file", style="bright_black"))
    out = [Text("changes against the saved file", style="bold")]
    for ln in lines[2:limit + 2]:  # skip the ---/+++ header
        style = "green" if ln.startswith("+") else "red" if ln.startswith("-") else (
            "cyan" if ln.startswith("@@") else "bright_black")
        out.append(Text(ln, style=style, no_wrap=True, overflow="ellipsis"))
    if len(lines) > limit + 2:
        out.append(Text(f"… {len(lines) - limit - 2} more lines", style="bright_black"))
    return Group(*out)
