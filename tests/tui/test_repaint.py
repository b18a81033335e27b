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
