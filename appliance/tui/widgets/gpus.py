"""Per-GPU table: power against limit with history, energy, temperature, utilization, memory, clock, throttle."""

from __future__ import annotations

from rich.text import Text

from appliance.telemetry import Series
from appliance.tui import fmt
from appliance.tui.grid import Col, grid
from appliance.tui.widgets.panel import Panel, rows_key

THERMAL = ("HW thermal", "SW thermal", "HW slowdown", "power brake")


def throttle_text(g) -> Text:
    reasons = [r for r in g.throttle_reasons if r != "idle"]
    if g.lost:
        return Text("lost (needs reset)", style="bold red")
    if any(r in THERMAL for r in reasons):
        return Text(", ".join(reasons), style="bold red")
    if reasons:
        return Text(", ".join(reasons), style="yellow")
    if "idle" in g.throttle_reasons:
        return Text("idle", style="bright_black")
    return Text("none", style="green")


def power_text(g) -> Text:
    t = Text()
    t.append(f"{g.power_w:.0f}" if g.power_w is not None else fmt.DASH,
             style="bold yellow" if g.at_power_limit else "bold")
    t.append(f" / {g.power_limit_w:.0f} W" if g.power_limit_w is not None else " W")
    return t


class GpuTable(Panel):
    DEFAULT_CSS = """
    GpuTable { height: auto; border: round $primary-darken-1; border-title-color: $text-accent; padding: 0 1; }
    """

    def on_mount(self) -> None:
        self.border_title = "GPUs"

    def show(self, snap, history: dict[str, list[float]], wide: bool) -> None:
        self._args = (snap, history, wide)
        if not snap.gpus:
            self._set(Text("no GPU readings", style="bold yellow"), "none")
            return
        width = self.content_width()
        spark_w = max(10, min(90, width - 96)) if wide else 6
        rows = []
        used = {i for e in snap.engines for i in e.gpus}
        for g in snap.gpus:
            name = f"{g.index}" + (f" {g.name.replace('NVIDIA ', '').replace('GeForce ', '')}" if wide else "")
            label = Text(name, style="bold" if g.index in used else "bright_black")
            hist = history.get(Series.gpu_power_w(g.index), [])
            sp = Text(fmt.spark(hist, spark_w, 0, g.power_max_w or g.power_limit_w),
                      style="yellow" if g.at_power_limit else "cyan")
            temp = Text(fmt.num(g.temperature_c, "°C"),
                        style="bold red" if (g.temperature_c or 0) >= 83 else ("yellow" if (g.temperature_c or 0) >= 75
                                                                                else ""))
            util = Text(fmt.num(g.utilization_pct, "%"), style="bright_black" if not g.utilization_pct else "")
            rows.append((label, power_text(g), sp, fmt.energy(g.energy_j), temp, util,
                         fmt.mem(g.memory_used_bytes, g.memory_total_bytes, wide),
                         fmt.num(g.sm_clock_mhz, "MHz").replace(",", ""), throttle_text(g)))
        shape = (wide, len(snap.gpus), width)
        key = (shape, rows_key(rows))
        if self.unchanged(key):  # the same numbers: no new lines, no repaint
            return
        self._set(grid(COLUMNS if wide else NARROW, rows, width), shape, key)


COLUMNS = [Col("GPU"), Col("power/limit", right=True), Col("history", flex=True), Col("energy", right=True),
           Col("temp", right=True), Col("util", right=True), Col("memory", right=True), Col("clock", right=True),
           Col("throttle", cut=True)]
NARROW = [Col("history") if c.flex else c for c in COLUMNS]  # below 120 columns the sparkline stays short
