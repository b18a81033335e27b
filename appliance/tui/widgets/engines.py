"""Per-engine table: generation/prompt tokens/s with history, requests, KV cache, TTFT, MTP acceptance, health,
uptime."""

from __future__ import annotations

from rich.console import Group
from rich.table import Table
from rich.text import Text

from appliance.telemetry import Series
from appliance.tui import fmt
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
        if not snap.engines:
            self._set(Text("no engine: nothing is running", style="bright_black"), "none")
            return
        spark_w = max(10, min(60, self.size.width - 130)) if wide else 6
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
                line.no_wrap = True
                line.overflow = "ellipsis"
                info.append(line)
        shape = (wide, len(snap.engines), self.size.width)
        key = (shape, rows_key(rows), rows_key([info]))
        if self.unchanged(key):  # the same numbers: no new table, no repaint
            return
        tab = Table(box=None, padding=(0, 1), collapse_padding=True, pad_edge=False, expand=True, show_edge=False,
                    header_style="bold")
        tab.add_column("engine", no_wrap=True, overflow="ellipsis", max_width=None if wide else 16)
        if wide:
            tab.add_column("health", no_wrap=True)
            tab.add_column("up", justify="right", no_wrap=True)
        tab.add_column("generation", justify="right", no_wrap=True)
        tab.add_column("history", no_wrap=True, ratio=1 if wide else None)
        tab.add_column("prompt", justify="right", no_wrap=True)
        tab.add_column("run/wait", justify="right", no_wrap=True)
        tab.add_column("KV", justify="right", no_wrap=True)
        tab.add_column("TTFT p50/95", justify="right", no_wrap=True)
        tab.add_column("MTP", justify="right", no_wrap=True)
        if wide:
            tab.add_column("GPUs", no_wrap=True)
            tab.add_column("aliases", no_wrap=True, overflow="ellipsis")
        for cells in rows:
            tab.add_row(*cells)
        self._set(Group(tab, *info) if info else tab, shape, key)
