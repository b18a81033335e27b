"""Bench results where the decision is made: the recorded runs, their tables (by power level, by concurrency),
the throughput plot, the recommendation, and `a` to write the recommended power limit into the profile (the
same function as `appliance bench apply`; a shipped profile gets a user copy first). Reads the state dir only;
loading and plotting run in a worker."""

from __future__ import annotations

from rich.console import Group
from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, ScrollableContainer
from textual.screen import Screen
from textual.widgets import DataTable, Static

from appliance.errors import ApplianceError
from appliance.tui.widgets.keybar import KeyBar
from appliance.tui.widgets.titlebar import TitleBar


def run_detail(run, plot: str | None) -> Group:
    from appliance import bench

    parts = [Text(f"{run.run_id} · {run.profile} / {run.engine} · {run.model}", style="bold"),
             Text(", ".join(sorted(set(run.hardware))) + ("  [interrupted]" if run.interrupted else ""),
                  style="bright_black")]
    rec = run.recommendation or bench.recommend(run)
    if rec:
        parts.append(Text("recommendation: " + rec["text"], style="bold green"))
        parts.append(Text(f"a: write power_limit_w: {rec['power_limit_w']:.0f} into {run.profile}", style="green"))
    else:
        parts.append(Text("no recommendation (one power level only: bench with --power 200,250,300)",
                          style="yellow"))
    parts += [Text(""), Text("by power level", style="bold"), Text(bench.table_by_power(run), no_wrap=True),
              Text(""), Text("by concurrency", style="bold"), Text(bench.table_by_concurrency(run), no_wrap=True)]
    if plot:
        parts += [Text(""), Text.from_ansi(plot, no_wrap=True)]
    return Group(*parts)


class BenchScreen(Screen):
    BINDINGS = [Binding("a", "apply", "Apply recommendation"), Binding("r", "reload", "Reload")]

    def __init__(self, **kw) -> None:
        super().__init__(**kw)
        self.paths: list = []
        self.runs: dict[str, object] = {}
        self.shown: str | None = None
        self.applied: list = []  # (watts, path) of each apply, for the status line and tests

    def compose(self) -> ComposeResult:
        yield TitleBar("bench")
        with Horizontal(id="bench-body"):
            yield DataTable(id="bench-runs", cursor_type="row", zebra_stripes=True)
            with ScrollableContainer(id="bench-detail-scroll"):
                yield Static(id="bench-detail")
        yield KeyBar()

    def on_mount(self) -> None:
        t = self.query_one(DataTable)
        for col in ("run", "profile", "cells", "advice"):
            t.add_column(col, key=col)
        self.set_class(self.app.size.width < 120, "-narrow")
        self.query_one(TitleBar).show(self.app)
        self.action_reload()

    def on_resize(self) -> None:
        self.set_class(self.app.size.width < 120, "-narrow")

    def on_screen_resume(self) -> None:
        self.query_one(TitleBar).show(self.app)

    def refresh_view(self) -> None:
        self.query_one(TitleBar).show(self.app)

    def action_reload(self) -> None:
        self._load()

    @work(thread=True, exclusive=True, group="bench-runs", exit_on_error=False)
    def _load(self) -> None:
        import json

        from appliance import bench

        runs = {}
        for path in bench.list_runs():
            try:
                runs[path.stem] = bench.BenchRun.from_dict(json.loads(path.read_text()))
            except (OSError, ValueError, TypeError, KeyError):
                continue
        self.app.call_from_thread(self._show_runs, runs)

    def _show_runs(self, runs: dict) -> None:
        from appliance import bench

        self.runs = runs
        t = self.query_one(DataTable)
        t.clear()
        for run_id, run in reversed(list(runs.items())):
            rec = run.recommendation or bench.recommend(run)
            t.add_row(run_id, run.profile, str(len(run.cells)),
                      f"{rec['power_limit_w']:.0f} W" if rec else "–", key=run_id)
        if not runs:
            self.query_one("#bench-detail", Static).update(Text(
                "no bench runs yet:\n`appliance bench PROFILE --power 200,250,300`\nsweeps power limits and "
                "concurrency\nand records tokens/s and tokens per joule", style="italic"))  # the pane does not wrap
            return
        t.move_cursor(row=0)
        self._select()

    def selected(self):
        t = self.query_one(DataTable)
        if not self.runs or t.cursor_row is None:
            return None
        keys = list(reversed(list(self.runs)))
        return self.runs.get(keys[min(t.cursor_row, len(keys) - 1)])

    def on_data_table_row_highlighted(self, _msg) -> None:
        self._select()

    def _select(self) -> None:
        run = self.selected()
        if run is None or run.run_id == self.shown:
            return
        self.shown = run.run_id
        width = max(40, min(100, self.query_one("#bench-detail-scroll").size.width - 2))
        self.query_one("#bench-detail", Static).update(run_detail(run, None))
        self._plot(run, width)

    @work(thread=True, exclusive=True, group="bench-plot", exit_on_error=False)
    def _plot(self, run, width: int) -> None:
        from appliance import bench

        try:
            plot = bench.terminal_plot(run, width=width, height=16) if run.cells else None
        except ImportError:
            plot = None
        self.app.call_from_thread(self._show_plot, run, plot)

    def _show_plot(self, run, plot) -> None:
        if self.shown == run.run_id:
            self.query_one("#bench-detail", Static).update(run_detail(run, plot))

    def action_apply(self) -> None:
        from appliance.tui.screens.editor_dialogs import ConfirmDialog

        run = self.selected()
        if run is None:
            return

        def answer(yes: bool | None) -> None:
            if yes:
                self._apply(run)

        self.app.push_screen(ConfirmDialog(f"Write the recommended power limit of {run.run_id} into "
                                           f"{run.profile}?", "Apply (y)"), answer)

    @work(thread=True, exclusive=True, group="bench-apply", exit_on_error=False)
    def _apply(self, run) -> None:
        from appliance import bench
        from appliance.editing import store

        try:
            path, _ = store.editable(run.profile)  # shipped profiles are read-only: a user copy gets it
            store.backup(path)
            watts, path = bench.apply_recommendation(run, path)
        except ApplianceError as exc:
            self.app.call_from_thread(self.app.notify, exc.message + (f" — {exc.hint}" if exc.hint else ""),
                                      title="not applied", severity="error", timeout=10)
            return
        self.applied.append((watts, path))
        self.app.call_from_thread(self.app.notify, f"{path.name}: power_limit_w: {watts:.0f} (it takes effect "
                                  "at the next switch, or now with w on the dashboard)", title="applied", timeout=8)
