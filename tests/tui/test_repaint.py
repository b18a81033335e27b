"""The dashboard repaints a panel only when what it shows changed (appliance/tui/widgets/panel.py)."""

from __future__ import annotations

from dataclasses import replace

from fakes import FakeBackend, clock
from rich.text import Text
from test_app_fake import screen_text, settle

from appliance.tui.app import ApplianceApp
from appliance.tui.messages import Sample
from appliance.tui.widgets.engines import EngineTable
from appliance.tui.widgets.gpus import GpuTable
from appliance.tui.widgets.headline import Headline
from appliance.tui.widgets.panel import cell_key
from appliance.tui.widgets.proxy import ProxyPanel


def test_a_style_alone_is_a_change():
    """Text's own == ignores the base style: a value turning yellow at the power limit must still repaint."""
    assert cell_key(Text("250 W", style="yellow")) != cell_key(Text("250 W"))
    assert cell_key(Text("250 W", style="yellow")) == cell_key(Text("250 W", style="yellow"))


async def test_same_numbers_no_repaint_new_numbers_shown():
    app = ApplianceApp(FakeBackend(), clock=clock, interval_s=None)
    async with app.run_test(size=(160, 48)) as pilot:
        await settle(pilot)
        screen = app.screen
        updates: list[str] = []
        for widget in (screen.query_one(GpuTable), screen.query_one(EngineTable), screen.query_one(ProxyPanel),
                       screen.query_one(Headline)):
            orig = widget._set
            widget._set = lambda *a, _o=orig, _n=type(widget).__name__, **kw: (updates.append(_n), _o(*a, **kw))
        screen.refresh_view()  # the same sample again
        assert updates == []
        snap = app.last.snapshot
        g0 = snap.gpus[0]
        app.last = Sample(replace(snap, gpus=(replace(g0, power_w=123.0),) + snap.gpus[1:]), app.last.history)
        screen.refresh_view()
        assert updates == ["GpuTable"]
        await settle(pilot)
        assert "123 / 250 W" in screen_text(app)


async def test_lines_too_wide_are_cut_or_wrapped_and_a_last_empty_line_stays():
    """Panel renders the whole Text at once when every line fits; a line too wide goes the slow way (truncated
    with … when the Text does not wrap, wrapped when it does), and a trailing newline still makes an empty row."""
    from textual.app import App

    from appliance.tui.widgets.panel import Panel

    class One(App):
        def compose(self):
            yield Panel()

    app = One()
    async with app.run_test(size=(30, 10)) as pilot:
        panel = app.query_one(Panel)
        await pilot.pause()
        width = panel.content_width()
        cut = Text("x" * 50 + "\nshort", no_wrap=True, overflow="ellipsis")
        panel._set(cut, "cut")
        assert [s.text for s in panel._strips] == ["x" * (width - 1) + "…", "short"]
        panel._set(Text("word " * 12), "wrap")
        assert len(panel._strips) > 1 and all(s.cell_length <= width for s in panel._strips)
        assert "".join(s.text for s in panel._strips).split() == ["word"] * 12
        panel._set(Text("a\n", style="bold"), "trailing")
        assert [s.text for s in panel._strips] == ["a", ""]
        panel._set(Text("b"), "trailing")  # a change of one line in place: still the new text
        assert [s.text for s in panel._strips] == ["b"]


async def test_the_plots_follow_a_new_theme_and_style():
    """HistoryPlot keeps its styled lines until it is refreshed: a theme change, or a style change of the widget
    alone (same theme, same size), must still restyle them."""
    from appliance.tui.widgets.plots import HistoryPlot

    app = ApplianceApp(FakeBackend(), clock=clock, interval_s=None)
    async with app.run_test(size=(160, 48)) as pilot:
        await settle(pilot)
        plot = app.screen.query_one("#plot-power", HistoryPlot)
        before = plot.render_line(0)
        assert before.text.strip()  # something drawn
        app.theme = "textual-light"
        await settle(pilot)
        after = plot.render_line(0)
        assert after.text == before.text
        assert [s.style.bgcolor for s in after] != [s.style.bgcolor for s in before]
        plot.styles.color = "red"
        await settle(pilot)
        assert plot.render_line(0).text == before.text
        assert (255, 0, 0) in [s.style.color.triplet for s in plot.render_line(0) if s.style.color]
