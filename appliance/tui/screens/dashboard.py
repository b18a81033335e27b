"""The dashboard: GPUs, engines, proxy, the headline efficiency numbers, history plots on large terminals."""

from __future__ import annotations

import gc

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.screen import Screen
from textual.widgets import Static

from appliance.telemetry import Series
from appliance.tui.widgets.engines import EngineTable
from appliance.tui.widgets.gpus import GpuTable
from appliance.tui.widgets.headline import Headline
from appliance.tui.widgets.keybar import KeyBar
from appliance.tui.widgets.proxy import ProxyPanel
from appliance.tui.widgets.titlebar import TitleBar

WIDE = 120  # columns from which tables show every column
PLOTS_H = 40  # rows from which the history plots show
FREEZE_AFTER_S = 2.0  # after the first sample shows: startup is over, and the first paint is not delayed
_freeze = {"scheduled": False}


def freeze_startup_objects() -> None:
    """Collect once, then move every object alive now (imports, CSS, the app's widgets: ~86k objects) out of the
    collector's reach for good: a full (generation 2) pass walked them all — ~70 ms every half minute or so, a
    tenth of the dashboard's steady CPU (benchmarks/tui_cpu.py). They live as long as the app anyway; what the app
    makes later is still collected as before. Once per process (scheduled by the first sample shown)."""
    gc.collect()
    gc.freeze()


class DashboardScreen(Screen):
    BINDINGS = [
        Binding("w", "app.power", "Power"),
        Binding("minus", "app.power_step(-10)", "−10 W", key_display="-"),
        Binding("plus,equals_sign", "app.power_step(10)", "+10 W", key_display="+"),
    ]

    def compose(self) -> ComposeResult:
        # the layout classes before the first styling: set after mount, each restyles every widget (~50 ms)
        self._layout_classes(update=False)
        yield TitleBar("dashboard")
        yield Headline()
        yield Static(id="notice")
        with VerticalScroll(id="dash"):
            yield GpuTable()
            yield EngineTable()
            yield ProxyPanel()
            yield Horizontal(id="plots")  # the plots are mounted with the first history worth a line: _plots()
            yield Static(id="warnings")
        yield KeyBar()

    def on_mount(self) -> None:
        self.query_one("#notice").display = False
        self._layout_classes()  # a no-op unless the size changed since compose
        self.refresh_view()

    def on_resize(self) -> None:
        self._layout_classes()
        self.refresh_view()

    def on_screen_resume(self) -> None:
        self.refresh_view()

    def _layout_classes(self, update: bool = True) -> None:
        w, h = self.app.size
        self.set_class(w >= WIDE, "-wide", update=update)
        self.set_class(h >= PLOTS_H and w >= 100, "-plots", update=update)

    @property
    def wide(self) -> bool:
        return self.has_class("-wide")

    def refresh_view(self) -> None:
        app = self.app
        self.query_one(TitleBar).show(app)
        self._notice()
        sample = app.last
        if sample is None:
            self.query_one(Headline).set_text(Text("waiting for the first sample …", style="italic"), 1)
            return
        if not _freeze["scheduled"]:
            _freeze["scheduled"] = True
            self.app.set_timer(FREEZE_AFTER_S, freeze_startup_objects)
        snap = sample.snapshot
        self.query_one(Headline).show(snap, sample.history)
        self.query_one(GpuTable).show(snap, sample.history, self.wide)
        self.query_one(EngineTable).show(snap, sample.history, self.wide)
        self.query_one(ProxyPanel).show(snap)
        # plotext is the costliest render: redraw on every third new sample (the first one included), not on
        # refreshes that bring no new sample (rig info arriving, a resize)
        new_sample = sample is not getattr(self, "_plot_sample", None)
        if new_sample:
            self._plot_sample = sample
            self._plot_n = getattr(self, "_plot_n", -1) + 1
        if self.has_class("-plots") and new_sample and self._plot_n % 3 == 0:
            power, tps = self._plots(sample)
            if power is not None:
                limits = [g.power_limit_w for g in snap.gpus if g.power_limit_w]
                power.show({f"GPU {g.index}": sample.history.get(Series.gpu_power_w(g.index), [])
                            for g in snap.gpus}, max(limits) if limits else None)
                tps.show({e.name: sample.history.get(Series.engine_gen_tps(e.name), []) for e in snap.engines})
        warn = self.query_one("#warnings", Static)
        dup = app.info is not None and app.info.gpu_problem
        lines = [w for w in snap.warnings if not (dup and w.startswith("GPUs:"))]
        if lines != getattr(self, "_warn_lines", None):
            self._warn_lines = lines
            warn.display = bool(lines)
            warn.update(Text("\n".join("! " + w for w in lines), style="yellow"))

    def _plots(self, sample):
        """The two history plots, mounted the first time a history has two points (a line to draw): plotext and
        the plots' layout stay out of the first paint, whose sample has one point (~50 ms)."""
        box = self.query_one("#plots", Horizontal)
        if not box.children:
            if max((len(v) for v in sample.history.values()), default=0) < 2:
                self._plot_n -= 1  # not drawn: draw with the next sample
                return None, None
            from appliance.tui.widgets.plots import HistoryPlot

            box.mount(HistoryPlot("GPU power (W)", "W", id="plot-power"),
                      HistoryPlot("generation (tok/s)", "tok/s", id="plot-tps"))
        return box.query_one("#plot-power"), box.query_one("#plot-tps")

    def _notice(self) -> None:
        """When nothing runs, or docker or NVML is missing: say so and offer the demo."""
        app = self.app
        notice = self.query_one("#notice", Static)
        info = app.info
        snap = app.last.snapshot if app.last else None
        msgs = []
        if info is not None:
            if info.gpu_problem:
                msgs.append(("No GPU readings: " + info.gpu_problem, "bold red"))
            if info.runtime_problem:
                msgs.append(("No container runtime: " + info.runtime_problem, "bold red"))
        running = (snap is not None and snap.profile is not None) or (info is not None and info.running)
        if info is not None and not running and not (app.switch_log and app.switch_log.running):
            msgs.append(("Nothing is running on this rig.", "bold yellow"))
        if app.sample_error:
            msgs.append((f"sampling failed: {app.sample_error}", "bold red"))
        if not msgs:
            notice.display = False
            return
        t = Text()
        for m, style in msgs:
            t.append(m + "\n", style=style)
        t.append("p", style="bold reverse")
        t.append(" pick a profile and start it")
        if not app.demo:
            t.append("   ")
            t.append("D", style="bold reverse")
            t.append(" run the demo: a simulated 4-GPU rig with the real proxy (no GPU or docker needed)")
        notice.update(t)
        notice.display = True
