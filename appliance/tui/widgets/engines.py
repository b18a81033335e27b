"""Per-engine table: generation/prompt tokens/s with history, requests, KV cache, TTFT, MTP acceptance, health,
uptime."""

from __future__ import annotations

from rich.text import Text

from appliance.telemetry import Series
from appliance.tui import fmt
from appliance.tui.grid import Col, grid, stack
from appliance.tui.widgets.panel import Panel, rows_key

HEALTH_STYLE = {"healthy": "green", "loading": "yellow", "draining": "yellow", "unhealthy": "bold red",
                "hung": "bold red", "failing": "bold red", "stalled": "bold red", "down": "bold red"}


def health_text(e) -> Text:
    style = HEALTH_STYLE.get(e.health, "yellow")
    word = e.health if e.status in ("running", "missing") or e.health == "healthy" else f"{e.health} ({e.status})"
    return Text(word, style=style)


def ttft_text(s) -> str:
    if s.ttft_p50_s is None:
        return fmt.DASH
    if (s.ttft_p95_s or 0) < 1:
        return f"{s.ttft_p50_s * 1000:.0f}/{(s.ttft_p95_s or 0) * 1000:.0f} ms"
    return f"{s.ttft_p50_s:.2f}/{s.ttft_p95_s:.2f} s"


class EngineTable(Panel):
    DEFAULT_CSS = """
    EngineTable { height: auto; border: round $primary-darken-1; border-title-color: $text-accent; padding: 0 1; }
    """

    def on_mount(self) -> None:
        self.border_title = "engines"

    def show(self, snap, history: dict[str, list[float]], wide: bool) -> None:
        self._args = (snap, history, wide)
        if not snap.engines:
            self._set(Text("no engine: nothing is running", style="bright_black"), "none")
            return
        width = self.content_width()
        spark_w = max(10, min(60, width - 126)) if wide else 6
        info, rows = [], []
        for e in snap.engines:
            s = e.stats
            name = Text("● ", style=HEALTH_STYLE.get(e.health, "yellow")).append(e.name, style="bold")
            gen_hist = history.get(Series.engine_gen_tps(e.name), [])
            sp = Text(fmt.spark(gen_hist, spark_w), style="cyan")
            rw = Text(f"{fmt.count(s.running)}/{fmt.count(s.waiting)}", style="yellow" if (s.waiting or 0) > 0 else "")
            kv = Text(fmt.pct(s.kv_usage), style="bold red" if (s.kv_usage or 0) >= 0.95 else
                      ("yellow" if (s.kv_usage or 0) >= 0.8 else ""))
            mtp = fmt.pct(s.spec_acceptance)
            cells = [name]
            if wide:
                restarts = f" ({e.restarts} restart{'s' if e.restarts > 1 else ''})" if e.restarts else ""
                cells += [health_text(e).append(restarts, style="yellow"), fmt.duration(e.uptime_s)]
            cells += [fmt.tps(s.generation_tps), sp, fmt.tps(s.prompt_tps), rw, kv, ttft_text(s), mtp]
            if wide:
                cells += [fmt.gpu_range(e.gpus), f":{e.port} " + ", ".join(e.aliases)]
            rows.append(cells)
            if not wide:
                line = Text("").append(e.name, style="bold").append(" ")
                line.append_text(health_text(e))
                line.append(f" · up {fmt.duration(e.uptime_s)}")
                if e.restarts:
                    line.append(f" · {e.restarts} restart" + ("s" if e.restarts > 1 else ""), style="yellow")
                line.append(f" · GPU {fmt.gpu_range(e.gpus)} · :{e.port} {', '.join(e.aliases)}",
                            style="bright_black")
                line.truncate(width, overflow="ellipsis")
                info.append(line)
        shape = (wide, len(snap.engines), width)
        key = (shape, rows_key(rows), rows_key([info]))
        if self.unchanged(key):  # the same numbers: no new lines, no repaint
            return
        lines = grid(WIDE_COLUMNS if wide else NARROW_COLUMNS, rows, width)
        self._set(stack(lines, *info) if info else lines, shape, key)


WIDE_COLUMNS = [Col("engine", cut=True), Col("health"), Col("up", right=True), Col("generation", right=True),
                Col("history", flex=True), Col("prompt", right=True), Col("run/wait", right=True),
                Col("KV", right=True), Col("TTFT p50/95", right=True), Col("MTP", right=True), Col("GPUs"),
                Col("aliases", cut=True)]
# below 120 columns: health, uptime, GPUs and aliases go to one line per engine under the table
NARROW_COLUMNS = [Col("engine", cut=True), Col("generation", right=True), Col("history"), Col("prompt", right=True),
                  Col("run/wait", right=True), Col("KV", right=True), Col("TTFT p50/95", right=True),
                  Col("MTP", right=True)]
