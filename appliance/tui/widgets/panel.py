"""A Static that lays the screen out again only when its shape changes."""

from __future__ import annotations

from textual.widgets import Static


class Panel(Static):
    _shape = None

    def _set(self, renderable, shape) -> None:
        """Update; lay the screen out again only when the panel's shape (rows, width) changed — a layout pass
        costs more than the repaint."""
        self.update(renderable, layout=shape != self._shape)
        self._shape = shape
