"""History plots (plotext) for large terminals: GPU power against the limit, and tokens/s per engine."""

from __future__ import annotations

import time

from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual.reactive import Reactive
from textual.strip import Strip
from textual_plotext import PlotextPlot

MIN_REDRAW_S = 15.0  # plotext costs ~30 ms per plot and draw: a 5-minute history moves 5 % of its width in 15 s


class HistoryPlot(PlotextPlot):
    """Drawn through Textual's line API from plotext's character matrix: plotext's own path writes the figure as
    one ANSI string, Rich parses it back into a Text and Textual converts that into Content before cutting it into
    lines — about 40 % of a redraw (~10 of ~28 ms at 160×48) spent only on moving the same cells between formats.
    The colours still come from plotext's own ANSI codes (parsed once per colour), so the picture is the same."""

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
        self._built: tuple | None = None  # (size, strips): what was drawn last, until the data or size change
        self._styled: list[Strip] | None = None  # the built lines with the widget's style
        self._styles: dict[tuple, Style] = {}  # plotext's (foreground, style, background) → the Rich style

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

    def render_line(self, y: int) -> Strip:
        """plotext builds the whole figure on every call (~20 ms): the same data at the same size and theme is the
        same picture, so it is built once and its lines handed out until one of those changes. The lines carry the
        widget's style, worked out again only when the widget was refreshed (what Widget.render_line's own cache
        does: the style walks the widget's ancestors, ~0.2 ms)."""
        if self._last is None:  # nothing drawn yet (fewer than 2 points): no empty axes at the first paint
            return self._waiting(y)
        size = (self.size.width, self.size.height, self.app.theme)
        if self._built is None or self._built[0] != size:
            self._built = (size, self._draw())
            self._styled = None
        if self._styled is None or self._dirty_regions:
            style = self.rich_style
            self._styled = [strip.apply_style(style) for strip in self._built[1]]
            self._dirty_regions.clear()
        return self._styled[y] if y < len(self._styled) else Strip.blank(self.size.width, self.rich_style)

    def _waiting(self, y: int) -> Strip:
        style = self.rich_style
        if y != 0:
            return Strip.blank(self.size.width, style)
        text = Text("collecting samples …", style="italic bright_black")
        text.truncate(self.size.width, pad=True)
        return Strip(list(text.render(self.app.console, end="")), self.size.width).apply_style(style)

    def _draw(self) -> list[Strip]:
        """The figure as one Strip per row — what PlotextPlot.render sets up, then plotext's matrix read cell by
        cell (runs of one colour become one Segment) instead of its ANSI canvas."""
        from plotext._utility import colors_to_ansi

        width, height = self.size
        plt = self._plot
        plt.plotsize(width, height)
        plt._set_size(width, height)  # see PlotextPlot.render: resizing needs both
        plt.theme(self._get_plotext_theme_name(self.app.theme))
        plt._set_sizes()
        plt._build_matrix()
        m = plt.monitor.matrix
        strips = []
        for row in reversed(range(m.rows)):  # plotext's row 0 is the bottom one
            marker, fg, st, bg = m.marker[row], m.fullground[row], m.style[row], m.background[row]
            segments = []
            start = 0
            for col in range(1, m.cols + 1):
                if col < m.cols and fg[col] == fg[start] and st[col] == st[start] and bg[col] == bg[start]:
                    continue
                colors = (fg[start], st[start], bg[start])
                style = self._styles.get(colors)
                if style is None:
                    spans = Text.from_ansi(colors_to_ansi(*colors) + "x").spans
                    style = self._styles[colors] = spans[0].style if spans else Style.null()
                segments.append(Segment("".join(marker[start:col]), style))
                start = col
            strips.append(Strip(segments, m.cols))
        return strips
