"""Issue #13 in the TUI: the dashboard shows per alias where its requests can go and today's hosted spend (USD);
the switch dialog shows the target's routes and says what the switch changes — including "routes unchanged",
local-only mode, and a settings mistake (named, not a crash). Against the FakeBackend with the real plans."""

from __future__ import annotations

import textwrap

from fakes import FakeBackend, clock
from rich.console import Console

from appliance.profile import load_profile
from appliance.settings import load_settings
from appliance.tui.app import ApplianceApp
from appliance.tui.screens.modals import ConfirmSwitch
from appliance.tui.widgets.proxy import ProxyPanel

from test_app_fake import screen_text, settle


def panel_text(panel, width: int) -> list[str]:
    """The panel's content as the terminal shows it at the panel's content width."""
    console = Console(width=width, record=True, color_system=None)
    console.print(panel.content)
    return console.export_text().splitlines()


async def test_dashboard_shows_route_and_spend_per_alias_nothing_cut_at_80_columns():
    app = ApplianceApp(FakeBackend(), clock=clock, interval_s=None)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        panel = app.screen.query_one(ProxyPanel)
        lines = panel_text(panel, panel.content_size.width)
        assert all(len(ln) <= panel.content_size.width for ln in lines)
        text = "\n".join(lines)
        assert "hosted today $0.0996" in lines[0]  # the sum of the aliases' spend, with its unit
        rows = {ln.split()[0]: i for i, ln in enumerate(lines) if ln and not ln.startswith(" ")}
        # each alias's route (it may wrap inside its column at 80 columns: read the column back)
        for alias, want, spend in [("local-fast", "engine fast → local local-smart → hosted claude", "$0.0000"),
                                   ("local-smart", "engine smart → hosted claude", "$0.0125"),
                                   ("claude", "hosted claude", "$0.0871")]:
            i = rows[alias]
            assert lines[i].rstrip().endswith(spend), text
            start = next(ln for ln in lines if "route → fallbacks" in ln).index("route")  # the route column
            cont = []
            for ln in lines[i + 1:]:
                if ln[:start].strip():
                    break
                cont.append(ln[start:].strip())
            route = " ".join([lines[i][start:].rsplit("$", 1)[0].strip()] + cont)
            assert route == want, (alias, route, text)


async def test_dashboard_without_spend_says_unknown_not_zero():
    backend = FakeBackend()
    base = backend.sample

    def sample():
        from dataclasses import replace

        snap = base()
        return replace(snap, proxy=replace(snap.proxy, spend_usd=None))

    backend.sample = sample
    app = ApplianceApp(backend, clock=clock, interval_s=None)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        text = "\n".join(panel_text(app.screen.query_one(ProxyPanel), 110))
        assert "unknown" in text and "$" not in text and "hosted today" not in text.splitlines()[0]


async def test_dashboard_lists_spend_of_an_alias_served_earlier_today():
    backend = FakeBackend()
    base = backend.sample

    def sample():
        from dataclasses import replace

        snap = base()
        return replace(snap, proxy=replace(snap.proxy, spend_usd={**snap.proxy.spend_usd, "old-coder": 0.25}))

    backend.sample = sample
    app = ApplianceApp(backend, clock=clock, interval_s=None)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        lines = panel_text(app.screen.query_one(ProxyPanel), 110)
        row = next(ln for ln in lines if ln.startswith("old-coder"))
        assert "not served now" in row and row.rstrip().endswith("$0.2500")
        assert "hosted today $0.3496" in lines[0]


async def _open_dialog(app, pilot, target):
    await settle(pilot)
    app.ask_switch(load_profile(target), None, app.backend.active_profile())
    await settle(pilot, 4)
    assert isinstance(app.screen, ConfirmSwitch)
    return app.screen


def _all_text(screen) -> str:
    out = []
    for sid in ("#switch-changes", "#switch-routes"):
        console = Console(width=200, record=True, color_system=None)
        console.print(screen.query_one(sid).content)
        out.append(console.export_text())
    return "\n".join(out)


async def test_switch_dialog_says_what_changes_and_fits_at_80x24():
    backend = FakeBackend()
    app = ApplianceApp(backend, clock=clock, interval_s=None)
    async with app.run_test(size=(80, 24)) as pilot:
        dialog = await _open_dialog(app, pilot, "rtx4090-qwen25-14b-agent")
        text = _all_text(dialog)
        assert "coder:" in text and "new: engine qwen25-14b → hosted openai-mini — costs money" in text
        assert "local-fast:" in text and "gone (was engine fast → local local-smart → hosted claude)" in text
        assert "Where requests go under rtx4090-qwen25-14b-agent:" in text
        shown = screen_text(app)
        assert "Routes:" in shown and "Switch (y)" in shown  # the changes come first, the buttons stay visible
        body = dialog.query_one("#switch-body")
        await pilot.press("pagedown", "pagedown", "pagedown")
        await pilot.pause()
        assert body.scroll_y > 0
        assert "Where requests go" in screen_text(app)  # scrolled to the routes without a mouse
        await pilot.press("n")
        await settle(pilot)
        assert backend.switched_to == []


async def test_switch_dialog_routes_unchanged_and_local_only(tmp_path):
    backend = FakeBackend()
    f = tmp_path / "settings.yaml"
    f.write_text(textwrap.dedent("""\
        local_only: true
        """))
    backend.settings = load_settings(f)
    app = ApplianceApp(backend, clock=clock, interval_s=None)
    from conftest import REPO

    copy = tmp_path / "copy.yaml"  # the running profile under another name, its engine renamed: same routes
    text = (REPO / "profiles" / "rtx3090x4-two-tier.yaml").read_text()
    copy.write_text(text.replace("name: rtx3090x4-two-tier", "name: two-tier-copy").replace("- name: fast",
                                                                                          "- name: quick"))
    async with app.run_test(size=(120, 40)) as pilot:
        dialog = await _open_dialog(app, pilot, copy)
        text = _all_text(dialog)
        assert "Routes: routes unchanged" in text
        assert "(local only: no hosted model)" in text and "hosted" not in text.replace("no hosted model", "")


async def test_switch_dialog_names_a_settings_mistake():
    from appliance.errors import ProfileError

    backend = FakeBackend()

    def broken(profile):
        raise ProfileError("/home/u/.config/appliance/settings.yaml:3: `fallbacks`: …", "define it under hosted")

    backend.plan = broken
    app = ApplianceApp(backend, clock=clock, interval_s=None)
    async with app.run_test(size=(120, 40)) as pilot:
        dialog = await _open_dialog(app, pilot, "rtx4090-qwen25-14b-agent")
        text = _all_text(dialog)
        assert "routes unknown: /home/u/.config/appliance/settings.yaml:3" in text and "define it under hosted" in text
        assert "Switch (y)" in screen_text(app)  # the switch itself is still offered: the start names the mistake


def test_switch_dialog_snapshot_80x24(snap_compare):
    """The dialog on the smallest terminal: the question, what changes (first), the buttons."""
    from test_snapshots import app_with, settle as settle_all

    async def go(pilot):
        await settle_all(pilot)
        pilot.app.ask_switch(load_profile("rtx4090-qwen25-14b-agent"), None, pilot.app.backend.active_profile())
        await settle_all(pilot)

    assert snap_compare(app_with(FakeBackend()), terminal_size=(80, 24), run_before=go)
