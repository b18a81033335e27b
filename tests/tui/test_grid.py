"""The dashboard's column layout (appliance/tui/grid.py): no line wider than the panel, numbers right-aligned,
the flex column filling the width, cut and folded columns when the terminal is narrow, styles kept."""

from hypothesis import given, settings
from hypothesis import strategies as st
from rich.cells import cell_len
from rich.text import Text

from appliance.tui.grid import Col, grid

COLS = [Col("GPU"), Col("power", right=True), Col("history", flex=True), Col("throttle", cut=True)]
ROWS = [["0 RTX 3090", Text("231 / 250 W", style="bold yellow"), "▆▆▅▆", "none"],
        ["1 RTX 3090", "22 / 250 W", "▁▁", Text("HW thermal, SW power cap", style="bold red")]]


def lines(t: Text) -> list[str]:
    return t.plain.split("\n")


def test_flex_column_fills_the_width_and_numbers_align_right():
    out = lines(grid(COLS, ROWS, 80))
    assert out[0].startswith("GPU") and "history" in out[0]
    assert max(cell_len(x) for x in out) == 80  # the flex column took the spare width
    # right-justified: both power cells end in the same column
    ends = [x.index(" W") for x in out[1:]]
    assert ends[0] == ends[1]


def test_too_narrow_cuts_the_cut_column_first_with_an_ellipsis():
    out = lines(grid(COLS, ROWS, 44))
    assert all(cell_len(x) <= 44 for x in out)
    assert out[2].rstrip().endswith("…") and "HW thermal" in out[2]
    assert "231 / 250 W" in out[1]  # the numbers are untouched


def test_fold_breaks_between_words_and_keeps_the_other_columns_on_the_first_line():
    cols = [Col("alias"), Col("route", fold=True), Col("hosted today", right=True)]
    route = Text("engine fast → local local-smart → hosted claude")
    out = lines(grid(cols, [["local-fast", route, "$0.0125"]], 40, gap=2, spread=False))
    assert all(cell_len(x) <= 40 for x in out)
    assert out[1].startswith("local-fast") and out[1].endswith("$0.0125")
    body = [x[12:].replace("$0.0125", "").strip() for x in out[1:]]  # the route column, line by line
    assert " ".join(body).replace("  ", " ") == route.plain  # nothing lost, nothing cut mid-word
    assert len(out) > 2


def test_styles_survive_the_layout():
    t = grid(COLS, ROWS, 80)
    styled = {t.plain[s.start:s.end].strip(): str(s.style) for s in t.spans}
    assert styled["231 / 250 W"] == "bold yellow"
    assert styled["HW thermal, SW power cap"] == "bold red"
    assert styled["GPU"] == "bold"  # the header


def test_without_a_flex_column_the_gaps_spread_a_little_but_not_to_the_edge():
    cols = [Col("a"), Col("b", right=True)]
    out = lines(grid(cols, [["x", "1"]], 80))
    assert 3 <= cell_len(out[1]) <= 6


@settings(max_examples=200, deadline=None)
@given(st.lists(st.lists(st.text(min_size=0, max_size=40), min_size=4, max_size=4), max_size=6),
       st.integers(min_value=30, max_value=200))
def test_no_line_is_ever_wider_than_the_panel_when_it_can_shrink(rows, width):
    cols = [Col("name", cut=True), Col("value", right=True, cut=True), Col("route", fold=True),
            Col("history", flex=True)]
    out = lines(grid(cols, rows, width))
    assert len(out) >= 1 + len(rows)
    assert all(cell_len(x) <= width for x in out), out
