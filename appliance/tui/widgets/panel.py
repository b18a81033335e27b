"""A Static that repaints only when what it shows changed, and lays the screen out again only when its shape
changed."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static


def cell_key(cell) -> object:
    """What a table cell shows, comparable: Text's own `==` ignores its base style (a value turning yellow at the
    power limit would not count as a change)."""
    if isinstance(cell, Text):
        return cell.plain, str(cell.style), tuple(cell.spans)
    return cell


def rows_key(rows) -> tuple:
    return tuple(tuple(cell_key(c) for c in row) for row in rows)


class Panel(Static):
    _shape = None
    _content = None

    def _set(self, renderable, shape, content=None) -> None:
        """Update; lay the screen out again only when the panel's shape (rows, width) changed — a layout pass
        costs more than the repaint. `content`: the key `unchanged` compares the next time."""
        self.update(renderable, layout=shape != self._shape)
        self._shape = shape
        self._content = content

    def unchanged(self, content) -> bool:
        """True when `content` (a comparable key of every value the panel would show, its layout included) is
        what the panel shows already: the caller skips building and rendering its Rich table — a table of four
        rows costs ~10 ms to render, and an idle rig's numbers mostly stand still from one second to the next."""
        return content is not None and content == self._content
