"""A panel of the dashboard that repaints only when what it shows changed, and lays the screen out again only when
its shape changed."""

from __future__ import annotations

from rich.segment import Segment
from rich.text import Text
from textual.geometry import Region
from textual.strip import Strip
from textual.widget import Widget


def cell_key(cell) -> object:
    """What a table cell shows, comparable: Text's own `==` ignores its base style (a value turning yellow at the
    power limit would not count as a change)."""
    if isinstance(cell, Text):
        return cell.plain, str(cell.style), tuple(cell.spans)
    return cell


def rows_key(rows) -> tuple:
    return tuple(tuple(cell_key(c) for c in row) for row in rows)


class Panel(Widget):
    """Draws a Rich Text through Textual's line API: the Text is cut into lines of Segments once per change, and
    each repaint hands Textual those lines. A Static would convert the Text to Content and lay it out again on
    every repaint, tagging every segment with its offset for text selection — for four GPU rows that was ~4 ms
    per repaint, most of the dashboard's CPU (benchmarks/tui_cpu.py)."""

    DEFAULT_CSS = """
    Panel { height: auto; }
    """
    _shape = None
    _content = None
    _args = None  # what `show` was last called with: shown again when the panel's width changes
    _line_style = None  # (width, style) while a repaint runs

    def __init__(self, **kw) -> None:
        super().__init__(**kw)
        self._text = Text()
        self._strips: list[Strip] = []
        self._keys: list = []  # each line's segments: which lines a change repaints

    @property
    def content(self) -> Text:
        """What the panel shows (tests print it)."""
        return self._text

    def content_width(self) -> int:
        """Cells inside the border and padding; before the first layout, the terminal's width less those."""
        return self.content_size.width or max(20, self.app.size.width - 4)

    def on_resize(self) -> None:
        if self._args is not None:
            self._content = None
            self.show(*self._args)

    def _set(self, text: Text, shape, content=None) -> None:
        """Show `text`; lay the screen out again only when the panel's shape (rows, width) changed — a layout
        pass costs more than the repaint. `content`: the key `unchanged` compares the next time."""
        self._text = text
        width = self.content_width()
        lines = self._lines(text, width)
        keys = [tuple(line) for line in lines]  # each line's segments: text and resolved style
        old, self._keys = self._keys, keys
        self._strips = [Strip(line, Segment.get_line_length(line)) for line in lines]
        if shape != self._shape or len(keys) != len(old):
            self.refresh(layout=shape != self._shape)
        else:  # repaint only the lines that changed: an idle GPU's row stands still while a busy one's moves
            for y, (a, b) in enumerate(zip(old, keys)):
                if a != b:
                    self.refresh(Region(0, y, width, 1))
        self._shape = shape
        self._content = content

    def _lines(self, text: Text, width: int) -> list[list[Segment]]:
        """`text` as lines of Segments at most `width` cells wide. The whole Text is rendered at once and cut at
        its newlines (3× faster than cutting the Text into lines and rendering each: the GPU table was ~0.8 ms
        a second); only when a line is too wide is the Text cut into lines first, to truncate or wrap them."""
        console = self.app.console
        lines = list(Segment.split_lines(text.render(console, end="")))
        if text.plain.endswith("\n"):  # a last empty line, as Text.split keeps it
            lines.append([])
        if all(Segment.get_line_length(line) <= width for line in lines):
            return lines
        out: list[list[Segment]] = []
        for line in text.split("\n", allow_blank=True):
            if line.cell_len <= width:
                parts = [line]
            elif text.no_wrap:
                line.truncate(width, overflow=text.overflow or "ellipsis")
                parts = [line]
            else:  # a long head line wraps rather than being cut
                parts = list(line.wrap(console, width))
            out += [list(Strip(list(part.render(console, end="")), part.cell_len).crop(0, width)) for part in parts]
        return out

    def get_content_height(self, container, viewport, width: int) -> int:
        return len(self._strips)

    def render_lines(self, crop: Region) -> list[Strip]:
        """The widget's style is worked out once per repaint, not once per line (it walks the widget's ancestors:
        ~0.6 ms a second for the dashboard's panels)."""
        self._line_style = (self.content_size.width, self.rich_style)
        try:
            return super().render_lines(crop)
        finally:
            self._line_style = None

    def render_line(self, y: int) -> Strip:
        width, style = self._line_style or (self.content_size.width, self.rich_style)
        strip = self._strips[y] if y < len(self._strips) else Strip.blank(0)
        return strip.extend_cell_length(width).apply_style(style)

    def unchanged(self, content) -> bool:
        """True when `content` (a comparable key of every value the panel would show, its layout included) is
        what the panel shows already: the caller skips building its lines — an idle rig's numbers mostly stand
        still from one second to the next."""
        return content is not None and content == self._content
