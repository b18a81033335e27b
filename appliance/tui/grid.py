"""Aligned columns as one Rich `Text`: the dashboard's tables, at a fraction of `rich.table.Table`'s cost.

The dashboard repaints its GPU, engine and proxy panels whenever a number changes — every second on a busy rig.
A `Table` measures every cell through a Console on every repaint (~9 ms for the four-GPU panel); the same rows
laid out here cost ~1 ms, and a `Text` is drawn by Textual natively (no Console at all). What the panels need and
no more: a header, left/right justification, one column that takes the width left over (the sparklines), columns
that may be cut with "…" or folded onto more lines (routes) when the terminal is narrow.
"""

from __future__ import annotations

from dataclasses import dataclass

from rich.cells import cell_len
from rich.text import Text

MIN_CUT = 4  # a cut column keeps at least this many cells ("ab…" still says something)
MIN_FOLD = 12  # a folded column keeps at least this many cells per line


@dataclass(frozen=True)
class Col:
    header: str
    right: bool = False  # right-justified (numbers)
    flex: bool = False  # takes the width left over (at least its content)
    cut: bool = False  # may be shortened with "…" when the row does not fit
    fold: bool = False  # may be folded onto more lines when the row does not fit


def _text(cell) -> Text:
    return cell.copy() if isinstance(cell, Text) else Text(str(cell))


def widths(cols: list[Col], rows: list[list[Text]], width: int, gap: int = 1) -> list[int]:
    """Each column's width: its widest cell or header; the flex column grows to fill `width`; when the row is
    too wide, cut columns shrink first, then folded ones, then the flex one."""
    w = [max([cell_len(c.header)] + [t.cell_len for t in (row[i] for row in rows)]) for i, c in enumerate(cols)]
    spare = width - sum(w) - gap * (len(cols) - 1)
    flex = [i for i, c in enumerate(cols) if c.flex]
    if spare > 0 and flex:
        w[flex[0]] += spare
        return w
    for kind, floor in (("cut", MIN_CUT), ("fold", MIN_FOLD), ("flex", 1)):
        for i, c in enumerate(cols):
            if spare >= 0:
                return w
            if getattr(c, kind) and w[i] > floor:
                take = min(w[i] - floor, -spare)
                w[i] -= take
                spare += take
    return w


def _fit(t: Text, width: int, right: bool) -> Text:
    if t.cell_len > width:
        t.truncate(width, overflow="ellipsis")
    pad = width - t.cell_len
    if pad > 0:
        if right:
            t.pad_left(pad)
        else:
            t.pad_right(pad)
    return t


def _fold(t: Text, width: int) -> list[Text]:
    """Lines of at most `width` cells, broken after a space where there is one (a route breaks between hops)."""
    cuts, start, plain = [], 0, t.plain
    while len(plain) - start > width:
        space = plain.rfind(" ", start + 1, start + width + 1)
        end = space + 1 if space > start else start + width
        cuts.append(end)
        start = end
    return list(t.divide(cuts)) if cuts else [t]


def grid(cols: list[Col], rows: list[list], width: int, header_style: str = "bold", gap: int = 1,
         show_header: bool = True, spread: bool = True) -> Text:
    """The rows (cells: str or Text) under their headers, one line per row (more where a fold column folds), no
    line wider than `width` cells. `spread`: without a flex column, spare width widens the gaps a little."""
    cells = [[_text(c) for c in row] for row in rows]
    w = widths(cols, cells, width, gap)
    spare = width - sum(w) - gap * (len(cols) - 1)
    if spread and spare > 0 and len(cols) > 1:  # nothing flexes: the columns spread out a little (at most 3 cells more)
        gap += min(3, spare // (len(cols) - 1))
    sep = " " * gap
    lines: list[Text] = []
    if show_header:
        lines.append(Text(sep).join(_fit(Text(c.header, style=header_style), w[i], c.right)
                                    for i, c in enumerate(cols)))
    for row in cells:
        parts = [_fold(t, w[i]) if cols[i].fold else [t] for i, t in enumerate(row)]
        for k in range(max(len(p) for p in parts)):
            line = Text(sep).join(_fit(p[k] if k < len(p) else Text(), w[i], cols[i].right)
                                  for i, p in enumerate(parts))
            line.rstrip()
            lines.append(line)
    out = Text("\n").join(lines)
    out.no_wrap = True
    out.overflow = "ellipsis"
    return out


def stack(*parts: Text) -> Text:
    """Texts one under the other (a head line above a grid); each keeps its own wrapping."""
    return Text("\n").join(parts)
