"""The key hints at the bottom of every screen, as one line of text.

Why not Textual's Footer: it makes a widget per key (17 on the dashboard), and each is styled on its own, twice
at start-up (its `compact` watcher sets a class, the data binding sets it back) — ~0.2 s of CPU before the
first paint, a fifth of its budget (benchmarks/tui_cpu.py). This draws the same hints — the screen's shown
bindings, one per action, a disabled one dimmed, the command palette's on the right from 120 columns — as one
line through the line API, and a click on a hint presses its key, as the Footer's does.
"""

from __future__ import annotations

from rich.text import Text
from textual import events
from textual.strip import Strip
from textual.widget import Widget

PALETTE_FROM = 120  # columns from which the command palette's hint shows (it is also in the help)


class KeyBar(Widget, can_focus=False):
    ALLOW_SELECT = False
    COMPONENT_CLASSES = {"keybar--key", "keybar--description"}
    DEFAULT_CSS = """
    KeyBar { dock: bottom; height: 1; padding: 0 0 0 1; background: $footer-background; color: $footer-foreground; }
    KeyBar > .keybar--key { color: $footer-key-foreground; background: $footer-key-background; text-style: bold; }
    KeyBar > .keybar--description { color: $footer-description-foreground; }
    """

    def __init__(self, **kw) -> None:
        super().__init__(**kw)
        self._drawn: tuple | None = None  # (key of what is drawn, Strip, [(x0, x1, key)])

    def on_mount(self) -> None:
        self.screen.bindings_updated_signal.subscribe(self, self._bindings_changed)

    def _bindings_changed(self, screen) -> None:
        self.refresh()  # render_line compares what it would draw with what it drew

    def hints(self) -> list[tuple[str, str, str, bool]]:
        """(key, how the key is shown, description, enabled) for each binding the screen shows; the palette's
        last."""
        app, screen = self.app, self.screen
        out, actions = [], set()
        for active in screen.active_bindings.values():
            b = active.binding
            if not b.show or b.action in actions:
                continue
            actions.add(b.action)
            out.append((b.key, app.get_key_display(b), b.description, active.enabled))
        palette = screen.active_bindings.get(app.COMMAND_PALETTE_BINDING) if app.ENABLE_COMMAND_PALETTE else None
        if palette is not None and app.size.width >= PALETTE_FROM:
            b = palette.binding
            out.append((b.key, app.get_key_display(b), b.description, palette.enabled))
        return out

    def _draw(self, width: int) -> tuple:
        hints = self.hints()
        key = (width, tuple(hints), self.app.current_theme.name if self.app.current_theme else None)
        if self._drawn is not None and self._drawn[0] == key:
            return self._drawn
        key_style = self.get_component_rich_style("keybar--key", partial=True)
        desc_style = self.get_component_rich_style("keybar--description", partial=True)
        text, spans = Text(no_wrap=True, overflow="ellipsis"), []
        palette = hints[-1] if hints and hints[-1][0] == self.app.COMMAND_PALETTE_BINDING else None
        for k, shown, desc, enabled in hints[:-1] if palette else hints:
            x0 = text.cell_len
            part = Text.assemble((shown, key_style), " ", (desc, desc_style))
            if not enabled:
                part.stylize("dim")
            text.append_text(part)
            spans.append((x0, text.cell_len, k))
            text.append(" ")
        if palette:
            k, shown, desc, _ = palette
            right = Text.assemble("│ ", (shown, key_style), " ", (desc, desc_style), " ")
            gap = width - text.cell_len - right.cell_len
            if gap >= 1:
                text.append(" " * gap)
                spans.append((text.cell_len + 2, text.cell_len + right.cell_len, k))
                text.append_text(right)
        text.truncate(width, overflow="ellipsis", pad=True)
        strip = Strip(list(text.render(self.app.console, end="")), width)
        self._drawn = (key, strip, spans)
        return self._drawn

    def render_line(self, y: int) -> Strip:
        width = self.content_size.width
        if y != 0 or width <= 0:
            return Strip.blank(max(width, 0), self.rich_style)
        return self._draw(width)[1].apply_style(self.rich_style)

    def on_click(self, event: events.Click) -> None:
        if self._drawn is None:
            return
        x = event.x - self.styles.padding.left
        for x0, x1, key in self._drawn[2]:
            if x0 <= x < x1:
                event.stop()
                self.app.simulate_key(key)
                return
