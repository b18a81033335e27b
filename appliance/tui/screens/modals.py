"""Modal dialogs: confirm a switch, set the power limit (with the constraints shown), help."""

from __future__ import annotations

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Static
from textual.worker import WorkerState

from appliance import routes
from appliance.tui import fmt
from appliance.tui.widgets.proxy import route_cell


class ConfirmSwitch(ModalScreen[bool]):
    """Switch? — with the fit, and per alias where its requests will go under the target profile and what that
    changes against the running one (a hosted fallback appearing or going costs or saves money)."""

    BINDINGS = [Binding("y", "yes", "Switch"), Binding("n,escape", "no", "Cancel"),
                Binding("down,j", "scroll_body(1)", "Scroll", show=False),
                Binding("up,k", "scroll_body(-1)", "Scroll", show=False),
                Binding("pagedown", "scroll_body(8)", "Page", show=False),
                Binding("pageup", "scroll_body(-8)", "Page", show=False)]
    DEFAULT_CSS = """
    ConfirmSwitch #switch-body { height: auto; max-height: 60vh; }
    ConfirmSwitch #switch-body Static { margin-top: 1; }
    ConfirmSwitch #switch-body Static:first-child { margin-top: 0; }
    """

    def __init__(self, profile, fit_report, active, **kw) -> None:
        super().__init__(**kw)
        self.profile, self.fit_report, self.active = profile, fit_report, active

    def compose(self) -> ComposeResult:
        p = self.profile
        q = Text()
        if self.active is None:
            q.append("Start ", style="bold")
            q.append(p.name, style="bold cyan")
            q.append(" on this rig?")
        else:
            q.append("Switch ", style="bold")
            q.append(self.active.name, style="bold")
            q.append(" → ", style="bold")
            q.append(p.name, style="bold cyan")
            q.append("?")
        t = Text()
        fr = self.fit_report
        if fr is not None and not fr.fits:
            t.append("This profile does not fit: " + "; ".join(fr.problems or [e.verdict for e in fr.engines
                                                                                 if not e.fits]) + "\n",
                     style="bold red")
        elif fr is not None:
            t.append("fit: " + "; ".join(f"{e.engine} {e.verdict}" for e in fr.engines) + "\n", style="green")
        if self.active is not None:
            t.append("The running engines drain (requests in flight finish), the proxy serves the aliases from "
                     "their fallbacks meanwhile. A failed start rolls back to the active profile.")
        t.rstrip()
        with Vertical(id="dialog"):
            with VerticalScroll(id="switch-body"):
                yield Static(q)
                # what changes first: on a small terminal it is what must be seen without scrolling
                yield Static(Text("routes: reading the settings …", style="italic"), id="switch-changes")
                yield Static(t, id="switch-fit")
                yield Static(id="switch-routes")
            with Horizontal(classes="buttons"):
                yield Button("Switch (y)", variant="primary", id="yes")
                yield Button("Cancel (n)", id="no")

    def on_mount(self) -> None:
        self._load_routes()

    @work(thread=True, exclusive=True, group="routes", exit_on_error=False)
    def _load_routes(self):
        """Both plans (reads settings.yaml: off the UI thread)."""
        backend = self.app.backend
        new = backend.plan(self.profile)
        running = getattr(backend, "running_plan", backend.plan)  # the door's routes now, not settings.yaml's
        old = running(self.active) if self.active is not None else None
        return new, old

    def on_worker_state_changed(self, event) -> None:
        if event.worker.group != "routes" or event.state not in (WorkerState.SUCCESS, WorkerState.ERROR):
            return
        box = self.query_one("#switch-changes", Static)
        if event.state == WorkerState.ERROR:
            err = event.worker.error
            box.update(Text(f"routes unknown: {getattr(err, 'message', err)}"
                            + (f" — {err.hint}" if getattr(err, "hint", None) else ""), style="bold red"))
            return
        new_pl, old_pl = event.worker.result
        changes, table = routes_text(self.profile, new_pl, self.active, old_pl)
        box.update(changes)
        self.query_one("#switch-routes", Static).update(table)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "yes")

    def action_scroll_body(self, lines: int) -> None:
        """On a small terminal the routes need scrolling: the keys do it wherever the focus is."""
        body = self.query_one("#switch-body", VerticalScroll)
        body.scroll_to(y=body.scroll_y + lines, animate=False)

    def action_yes(self) -> None:
        self.dismiss(True)

    def action_no(self) -> None:
        self.dismiss(False)


def _two_columns(title: Text, rows: list[tuple[str, Text]]) -> Group:
    """A heading, then alias | text rows; a long text wraps under itself, not under the alias."""
    t = Table(box=None, show_header=False, padding=(0, 1, 0, 0), pad_edge=False)
    t.add_column(no_wrap=True, style="bold")
    t.add_column(overflow="fold")
    for alias, text in rows:
        t.add_row("  " + alias, text)
    return Group(title, t)


def routes_text(profile, new_pl, active, old_pl) -> tuple[Group, Group]:
    """What the switch changes about where requests go (against `active`), and the routes under `profile`."""
    new = routes.alias_routes(new_pl, profile)
    old = routes.alias_routes(old_pl, active) if old_pl is not None else {}
    changes = routes.route_changes(old, new)
    head = Text("Routes: ", style="bold")
    if not changes:
        head.append(routes.UNCHANGED, style="green")
    rows = []
    for c in changes:
        text = Text(c.what)
        if c.money:
            text.append(f" — {c.money}", style="bold yellow" if c.money == "costs money" else "green")
        rows.append((c.alias + ":", text))
    title = Text(f"Where requests go under {profile.name}", style="bold")
    title.append(" (local only: no hosted model):" if new_pl.local_only else ":",
                 style="green" if new_pl.local_only else "")
    table = [(a + ":", route_cell(r)) for a, r in new.items()] or [
        ("", Text("nothing (no alias)", style="bright_black"))]
    return _two_columns(head, rows), _two_columns(title, table)


class PowerDialog(ModalScreen[float | None]):
    """The active profile's GPUs: current limit, draw, min/max/default; one new limit for all of them."""

    BINDINGS = [Binding("escape", "cancel", "Cancel"), Binding("up", "step(10)", "+10 W"),
                Binding("down", "step(-10)", "−10 W")]

    def __init__(self, snap, **kw) -> None:
        super().__init__(**kw)
        self.snap = snap
        used = {i for e in snap.engines for i in e.gpus} if snap else set()
        self.gpus = [g for g in (snap.gpus if snap else ()) if not used or g.index in used]

    def bounds(self) -> tuple[float | None, float | None]:
        mins = [g.power_min_w for g in self.gpus if g.power_min_w is not None]
        maxs = [g.power_max_w for g in self.gpus if g.power_max_w is not None]
        return (max(mins) if mins else None, min(maxs) if maxs else None)

    def compose(self) -> ComposeResult:
        t = Table(box=None, padding=(0, 1), header_style="bold")
        for col in ("GPU", "draw", "limit", "min", "max", "default"):
            t.add_column(col, justify="right" if col != "GPU" else "left")
        for g in self.gpus:
            t.add_row(f"{g.index} {g.name.replace('NVIDIA ', '').replace('GeForce ', '')}", fmt.watts(g.power_w),
                      Text(fmt.watts(g.power_limit_w), style="bold"), fmt.watts(g.power_min_w),
                      fmt.watts(g.power_max_w), fmt.watts(g.power_default_w))
        lo, hi = self.bounds()
        current = self.gpus[0].power_limit_w if self.gpus else None
        with Vertical(id="dialog"):
            yield Static(Text("Power limit of the active profile's GPUs", style="bold"))
            yield Static(t)
            yield Static(Text(f"allowed: {fmt.watts(lo)} … {fmt.watts(hi)} (out-of-range values are clamped); "
                              "↑/↓ step 10 W, Enter applies", style="bright_black"), id="constraints")
            yield Input(value=f"{current:.0f}" if current else "", placeholder="watts", id="watts",
                        restrict=r"[0-9.]*")
            with Horizontal(classes="buttons"):
                yield Button("Apply", variant="primary", id="apply")
                yield Button("Cancel", id="cancel")

    def on_mount(self) -> None:
        self.query_one(Input).focus()

    def _value(self) -> float | None:
        try:
            return float(self.query_one(Input).value)
        except ValueError:
            return None

    def action_step(self, delta: int) -> None:
        v = self._value() or 0
        self.query_one(Input).value = f"{v + delta:.0f}"

    def on_input_submitted(self, _event) -> None:
        self._apply()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "apply":
            self._apply()
        else:
            self.dismiss(None)

    def _apply(self) -> None:
        v = self._value()
        if v is None or v <= 0:
            self.app.notify("type a limit in watts", severity="warning")
            return
        self.dismiss(v)

    def action_cancel(self) -> None:
        self.dismiss(None)


HELP = """\
[b]Screens[/b]
  [b]d[/b] dashboard   [b]p[/b] profiles   [b]l[/b] logs   [b]b[/b] bench   [b]t[/b] the last switch   [b]?[/b] this help   [b]q[/b] quit
  [b]ctrl+p[/b] command palette: every action by name (switch to a profile, power, logs …)

[b]Dashboard[/b]
  [b]w[/b] set the power limit of the active profile's GPUs (the card's min/max are shown)
  [b]-[/b] / [b]+[/b] lower / raise that limit by 10 W — watch tokens/s and tok/J respond
  [b]D[/b] run the demo (a simulated rig) when nothing is running
  proxy panel: per alias its requests, its route (engine → fallbacks, [yellow]hosted[/] ones cost money) and
  today's hosted spend; a switch asks first and says which routes it changes

[b]Profiles[/b]
  [b]↑ ↓[/b] choose · [b]Enter[/b] or [b]s[/b] switch (asks first) · [b]r[/b] reload the files
  the right pane: fit breakdown (VRAM per GPU) and what changes against the active profile
  [b]e[/b] edit (a shipped profile: your own copy) · [b]n[/b] new from a profile or a model · [b]c[/b] copy · [b]x[/b] delete

[b]Editor[/b]
  [b]Tab[/b]/[b]Shift+Tab[/b] move · the fit updates as you type · [b]ctrl+s[/b] save (then: switch?) · [b]Esc[/b] back
  [b]ctrl+n[/b] next engine

[b]Bench[/b] ([b]b[/b])
  recorded runs, tables, plot · [b]a[/b] write the recommended power limit into the profile

[b]Logs[/b]
  [b]← →[/b] or click: engine / proxy · [b]f[/b] follow · [b]/[/b] search · [b]Esc[/b] clear the search
  [b]h[/b] show/hide the telemetry's own GET /health and /metrics lines

[b]Colours[/b]
  [yellow]yellow[/] power limit reached (power cap), requests waiting, KV ≥ 80 %, a fallback serving now
  [red]red[/] thermal throttling, unhealthy or down, errors, KV ≥ 95 %, a failed start
  [green]green[/] healthy, fits · [cyan]cyan[/] efficiency and history · [bright_black]grey[/] idle or unused

[b]Units[/b] W watts · tok/s tokens per second · tok/J tokens per joule · W per tok/s (lower is better)
  $ US dollars spent on hosted models today (their token counts × LiteLLM's bundled price map)
  TTFT time to first token (p50/p95) · MTP draft-token acceptance · KV cache use · Wh energy since the driver
  started counting
"""


class HelpScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,q,question_mark", "close", "Close")]

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="dialog"):
            yield Static(HELP, markup=True)
            yield Button("Close", id="close")

    def on_button_pressed(self, _event) -> None:
        self.dismiss(None)

    def action_close(self) -> None:
        self.dismiss(None)
