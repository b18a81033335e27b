"""History plots (plotext) for large terminals: GPU power against the limit, and tokens/s per engine."""

from __future__ import annotations

import time

from rich.text import Text
from textual.reactive import Reactive
from textual_plotext import PlotextPlot

MIN_REDRAW_S = 15.0  # plotext costs ~30 ms per plot and draw: a 5-minute history moves 5 % of its width in 15 s


class HistoryPlot(PlotextPlot):
    auto_links = Reactive(False)  # no links: see Panel
    DEFAULT_CSS = """
    HistoryPlot { height: 1fr; min-height: 8; border: round $primary-darken-1; border-title-color: $text-accent; }
    """

    def __init__(self, title: str, ylabel: str, **kw) -> None:
        super().__init__(**kw)
        self._title = title
        self._ylabel = ylabel
        self._last = None
        self._drawn_at = -MIN_REDRAW_S
        self._built: tuple | None = None  # (size, Text): what render() drew last, until the data or size change

    def on_mount(self) -> None:
        self.border_title = self._title

    def show(self, series: dict[str, list[float]], limit: float | None = None) -> None:
        key = (tuple((k, tuple(v)) for k, v in series.items()), limit)
        if key == self._last:
            return
        now = time.monotonic()
        same_lines = self._last is not None and [k for k, _ in self._last[0]] == list(series) and \
            self._last[1] == limit
        if same_lines and now - self._drawn_at < MIN_REDRAW_S:  # new engines or a new limit draw at once
            return
        if max((len(v) for v in series.values()), default=0) < 2:  # no line yet: drawn, it would stand empty
            return                                                # for MIN_REDRAW_S after the first sample
        self._last, self._drawn_at = key, now
        plt = self.plt
        plt.clear_data()
        plt.clear_figure()
        longest = max((len(v) for v in series.values()), default=0)
        top = 0.0
        for label, values in series.items():
            if not values:
                continue
            xs = list(range(-len(values) + 1, 1))
            plt.plot(xs, values, label=label, marker="braille")
            top = max(top, max(values))
        if limit:
            plt.hline(limit, "red")
            top = max(top, limit)
        plt.ylim(0, top * 1.1 or 1)
        plt.xlim(-max(longest - 1, 10), 0)
        plt.xlabel("seconds ago")
        plt.ylabel(self._ylabel)
        self._built = None
        self.refresh()

    def render(self):
        """plotext builds the whole figure on every call (~20 ms): Textual asks again whenever a layout pass
        touches the screen; the same data at the same size is the same picture."""
        if self._last is None:  # nothing drawn yet (fewer than 2 points): no empty axes at the first paint
            return Text("collecting samples …", style="italic bright_black")
        size = (self.size.width, self.size.height, self.app.theme)
        if self._built is None or self._built[0] != size:
            self._built = (size, super().render())
        return self._built[1]
