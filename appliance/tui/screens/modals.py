"""Modal dialogs: confirm a switch, set the power limit (with the constraints shown), help."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Static

from appliance.tui import fmt


class ConfirmSwitch(ModalScreen[bool]):
    BINDINGS = [Binding("y", "yes", "Switch"), Binding("n,escape", "no", "Cancel")]

    def __init__(self, profile, fit_report, active, **kw) -> None:
        super().__init__(**kw)
        self.profile, self.fit_report, self.active = profile, fit_report, active

    def compose(self) -> ComposeResult:
        p = self.profile
        t = Text()
        if self.active is None:
            t.append("Start ", style="bold")
            t.append(p.name, style="bold cyan")
            t.append(" on this rig?\n\n")
        else:
            t.append("Switch ", style="bold")
            t.append(self.active.name, style="bold")
            t.append(" → ", style="bold")
            t.append(p.name, style="bold cyan")
            t.append("?\n\n")
            t.append("The running engines drain (requests in flight finish), the proxy serves the aliases from "
                     "their fallbacks meanwhile. A failed start rolls back to the active profile.\n")
        fr = self.fit_report
        if fr is not None and not fr.fits:
            t.append("\nThis profile does not fit: " + "; ".join(fr.problems or [e.verdict for e in fr.engines
                                                                                   if not e.fits]) + "\n",
                     style="bold red")
        elif fr is not None:
            t.append("\nfit: " + "; ".join(f"{e.engine} {e.verdict}" for e in fr.engines) + "\n", style="green")
        with Vertical(id="dialog"):
            yield Static(t)
            with Horizontal(classes="buttons"):
                yield Button("Switch (y)", variant="primary", id="yes")
                yield Button("Cancel (n)", id="no")

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "yes")

    def action_yes(self) -> None:
        self.dismiss(True)

    def action_no(self) -> None:
        self.dismiss(False)


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
  [b]d[/b] dashboard   [b]p[/b] profiles   [b]l[/b] logs   [b]t[/b] the last switch   [b]?[/b] this help   [b]q[/b] quit
  [b]ctrl+p[/b] command palette: every action by name (switch to a profile, power, logs …)

[b]Dashboard[/b]
  [b]w[/b] set the power limit of the active profile's GPUs (the card's min/max are shown)
  [b]-[/b] / [b]+[/b] lower / raise that limit by 10 W — watch tokens/s and tok/J respond
  [b]D[/b] run the demo (a simulated rig) when nothing is running

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
