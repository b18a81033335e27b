"""Pure formatting for the TUI: every number with its unit, "—" for unknown, sparklines as text."""

from __future__ import annotations

from collections.abc import Sequence

DASH = "—"
BARS = "▁▂▃▄▅▆▇█"


def num(value: float | None, unit: str, digits: int = 0) -> str:
    if value is None:
        return DASH
    return f"{value:,.{digits}f} {unit}"


def watts(value: float | None) -> str:
    return num(value, "W")


def tps(value: float | None) -> str:
    """tokens/s with sensible precision."""
    if value is None:
        return DASH
    if value >= 10_000:
        return f"{value / 1000:.1f}k tok/s"
    return f"{value:.0f} tok/s" if value >= 100 else f"{value:.1f} tok/s"


def energy(joules: float | None) -> str:
    if joules is None:
        return DASH
    if joules >= 3.6e6:
        return f"{joules / 3.6e6:.2f} kWh"
    if joules >= 3.6e3:
        return f"{joules / 3.6e3:.1f} Wh"
    return f"{joules:.0f} J"


def gib(n_bytes: float | None) -> str:
    return DASH if n_bytes is None else f"{n_bytes / 2**30:.1f}"


def mem(used: float | None, total: float | None, precise: bool = True) -> str:
    """21.6/24.0 GiB (compact: 21.6/24 GiB)."""
    if used is None and total is None:
        return DASH
    tot = gib(total) if precise or total is None else f"{total / 2**30:.0f}"
    return f"{gib(used)}/{tot} GiB"


def pct(fraction: float | None, digits: int = 0) -> str:
    """A 0–1 fraction as percent."""
    return DASH if fraction is None else f"{fraction * 100:.{digits}f} %"


def seconds(s: float | None) -> str:
    if s is None:
        return DASH
    if s < 1:
        return f"{s * 1000:.0f} ms"
    return f"{s:.2f} s" if s < 10 else f"{s:.0f} s"


def duration(s: float | None) -> str:
    """Uptime: 42 s, 3 m 12 s, 2 h 05 m, 3 d 4 h."""
    if s is None:
        return DASH
    s = int(s)
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} m {s % 60:02d} s"
    if s < 86400:
        return f"{s // 3600} h {s % 3600 // 60:02d} m"
    return f"{s // 86400} d {s % 86400 // 3600} h"


def count(v: float | None) -> str:
    return DASH if v is None else f"{v:.0f}"


def spark(values: Sequence[float], width: int, lo: float | None = 0.0, hi: float | None = None) -> str:
    """The last `width` values as block characters (left-padded with spaces), scaled to [lo, hi].

    Give `hi` when the quantity has a ceiling (power: the limit), so the height means something. Without it the
    series is scaled to its own maximum — except a flat series (within 2 % of its maximum), which is drawn as a
    mid-height line: a steady value at full height reads as "maxed out"."""
    vals = list(values)[-width:]
    if not vals:
        return " " * width
    if hi is None and max(vals) - min(vals) <= 0.02 * abs(max(vals)):
        return " " * (width - len(vals)) + (BARS[len(BARS) // 2 - 1] if max(vals) else BARS[0]) * len(vals)
    low = min(vals) if lo is None else lo
    high = max(vals) if hi is None else max(hi, low)
    span = (high - low) or 1.0
    out = []
    for v in vals:
        i = int((min(max(v, low), high) - low) / span * (len(BARS) - 1) + 0.5)
        out.append(BARS[i])
    return " " * (width - len(out)) + "".join(out)


def gpu_range(indices: Sequence[int]) -> str:
    """[0, 1, 2, 3] → "0–3", [0, 2] → "0,2"."""
    idx = sorted(indices)
    if not idx:
        return DASH
    if len(idx) > 2 and idx == list(range(idx[0], idx[-1] + 1)):
        return f"{idx[0]}–{idx[-1]}"
    return ",".join(map(str, idx))
