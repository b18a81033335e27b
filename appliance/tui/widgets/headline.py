"""The headline: what the active profile delivers per joule and per watt, totals, and their recent history."""

from __future__ import annotations

from rich.text import Text

from appliance.telemetry import Series
from appliance.tui import fmt
from appliance.tui.widgets.panel import Panel, cell_key


def rig_power_history(snap, history: dict[str, list[float]]) -> list[float]:
    """Sum of the profile's GPUs' power series, aligned on the most recent sample."""
    used = {i for e in snap.engines for i in e.gpus} or {g.index for g in snap.gpus}
    series = [history.get(Series.gpu_power_w(i), []) for i in sorted(used)]
    series = [s for s in series if s]
    if not series:
        return []
    n = min(len(s) for s in series)
    return [sum(s[-n + k] for s in series) for k in range(n)]


def rig_power_ceiling(snap) -> float | None:
    """What the profile's GPUs may draw together (their power limits; the card's maximum where none is read):
    the power sparkline's top, so a steady draw below the limit is not drawn at full height."""
    used = {i for e in snap.engines for i in e.gpus} or {g.index for g in snap.gpus}
    caps = [g.power_limit_w or g.power_max_w for g in snap.gpus if g.index in used]
    return sum(caps) if caps and all(caps) else None


class Headline(Panel):
    """Two lines that change every second: drawn as a Panel (line API), not a Static."""

    DEFAULT_CSS = """
    Headline { height: auto; max-height: 2; padding: 0 1; background: $boost; }
    """

    def show(self, snap, history: dict[str, list[float]] | None = None) -> None:
        self._args = (snap, history)  # Panel shows it again at a new width
        t = Text(no_wrap=True, overflow="ellipsis")
        tpj = snap.tokens_per_joule
        t.append(f"{tpj:.3f} tok/J" if tpj is not None else "— tok/J", style="bold cyan")
        t.append(" · ")
        wpt = snap.watts_per_tps
        t.append(f"{wpt:.2f} W per tok/s" if wpt is not None else "— W per tok/s", style="bold cyan")
        t.append(" · ")
        t.append(fmt.tps(snap.generation_tps) if snap.generation_tps is not None else "— tok/s", style="bold")
        t.append(" at ")
        t.append(fmt.watts(snap.power_w) if snap.power_w is not None else "— W", style="bold")
        capped = [g.index for g in snap.gpus if g.at_power_limit]
        if capped:
            t.append(f" · GPU {fmt.gpu_range(capped)} at power limit", style="yellow")
        history = history or {}
        if not history.get(Series.RIG_GEN_TPS):
            self.set_text(t, 1)
            return
        t.append("\n")
        spark_w = max(8, (self.content_width() - 42) // 2)
        t.append("generation ", style="bright_black")
        t.append(fmt.spark(history.get(Series.RIG_GEN_TPS, []), spark_w), style="cyan")
        t.append("  power ", style="bright_black")
        t.append(fmt.spark(rig_power_history(snap, history), spark_w, 0, rig_power_ceiling(snap)), style="cyan")
        t.append(f"  (last {min(len(history.get(Series.RIG_GEN_TPS, [])), spark_w)} s)", style="bright_black")
        self.set_text(t, 2)

    def set_text(self, t: Text, lines: int) -> None:
        # the same text at the same width and the right height is not painted again; a wrong height (an update
        # that raced the first layout) lays out again even when the text is the same
        key = (self.content_width(), cell_key(t))
        if self.size.height != lines:
            self._shape = None  # Panel lays out when the shape differs
        elif self.unchanged(key):
            return
        self._set(t, lines, key)
