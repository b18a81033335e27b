"""The appliance TUI: a live rig dashboard and profile control.

`ApplianceApp(backend)` takes its boundaries in the constructor (a `Backend`, see backend.py: the real Stack +
Sampler, or a fake in tests) and never blocks: sampling, switching, power changes and logs run in thread workers;
the 1 Hz sample timer is re-armed after each finished sample, so samples never overlap. `run_app(stack)` is what
the CLI calls.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

from textual import work
from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.worker import Worker, WorkerState

from appliance.telemetry import Series
from appliance.tui import fmt
from appliance.tui.backend import Backend, RigInfo, StackBackend
from appliance.tui.messages import Sample, SwitchFinished, SwitchProgress
from appliance.tui.screens.dashboard import DashboardScreen

DEMO = "demo"  # App return value: the user asked for the demo


def _err_text(exc: BaseException) -> str:
    msg = getattr(exc, "message", None)
    if msg:
        hint = getattr(exc, "hint", None)
        return msg + (f" — {hint}" if hint else "")
    return f"{type(exc).__name__}: {exc}"


def _profiles_screen():
    from appliance.tui.screens.profiles import ProfilesScreen

    return ProfilesScreen()


def _logs_screen():
    from appliance.tui.screens.logs import LogsScreen

    return LogsScreen()


def _bench_screen():
    from appliance.tui.screens.bench import BenchScreen

    return BenchScreen()


class ApplianceApp(App):
    CSS_PATH = "app.tcss"
    TITLE = "appliance"
    # only the dashboard is imported up front: the other screens on first use (the first paint comes sooner)
    MODES = {"dashboard": DashboardScreen, "profiles": _profiles_screen, "logs": _logs_screen, "bench": _bench_screen}
    DEFAULT_MODE = "dashboard"
    # Help and Quit first: they stay visible on every screen at 80 columns; a screen's own key is not shown on it
    # (check_action); the key bar drops the palette hint below 120 columns (widgets/keybar.py)
    BINDINGS = [
        Binding("question_mark", "help", "Help", key_display="?"),
        Binding("q", "quit", "Quit"),
        Binding("d", "mode('dashboard')", "Dash"),
        Binding("p", "mode('profiles')", "Profiles"),
        Binding("l", "mode('logs')", "Logs"),
        Binding("b", "mode('bench')", "Bench"),
        Binding("t", "timeline", "Last switch", show=False),
        Binding("D", "demo", "Demo", show=False),
    ]
    HORIZONTAL_BREAKPOINTS = [(0, "-cols-lt120"), (120, "-cols-ge120")]

    def __init__(self, backend: Backend, *, demo: bool = False, clock: Callable[[], float] = time.time,
                 interval_s: float | None = 1.0):
        super().__init__()
        self.backend = backend
        self.demo = demo
        self.clock = clock
        self.interval_s = interval_s  # None: sample once (tests)
        self.last: Sample | None = None
        self.info: RigInfo | None = None
        self.sample_error: str | None = None
        self.switch_log = None  # a SwitchLog (widgets/timeline.py) once a switch started
        self.profile_entries: list = []
        self._sampling = False
        self._sample_timer = None
        self.samples_done = 0

    # -- lifecycle -------------------------------------------------------------------------------------
    def on_mount(self) -> None:
        self._load_info()
        self.request_sample()

    def on_unmount(self) -> None:
        try:
            self.backend.close()
        except Exception:  # noqa: BLE001 - closing an HTTP client on exit must not mask the exit
            pass

    # -- sampling: one worker at a time, re-armed after each finished sample -----------------------------
    def request_sample(self) -> None:
        if self._sampling:
            return
        self._sampling = True
        self._sample_worker()

    @work(thread=True, exclusive=True, group="sample", exit_on_error=False)
    def _sample_worker(self) -> Sample:
        snap = self.backend.sample()
        keys = [Series.RIG_GEN_TPS] + [Series.gpu_power_w(g.index) for g in snap.gpus]
        for e in snap.engines:
            keys += [Series.engine_gen_tps(e.name), Series.engine_prompt_tps(e.name)]
        return Sample(snap, {k: self.backend.history(k) for k in keys})

    @work(thread=True, exclusive=True, group="info", exit_on_error=False)
    def _load_info(self) -> RigInfo:
        return self.backend.info()

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        w, state = event.worker, event.state
        if state not in (WorkerState.SUCCESS, WorkerState.ERROR, WorkerState.CANCELLED):
            return
        if w.group == "sample":
            self._sampling = False
            if state == WorkerState.SUCCESS:
                self.last = w.result
                self.sample_error = None
                self.samples_done += 1
            elif state == WorkerState.ERROR:
                self.sample_error = _err_text(w.error)
                self.log.error("sample failed", w.error)
            self._refresh_screen()
            if self.interval_s is not None:
                self._sample_timer = self.set_timer(self.interval_s, self.request_sample)
        elif w.group == "info" and state == WorkerState.SUCCESS:
            self.info = w.result
            self._refresh_screen()
        elif w.group == "switch":
            if state == WorkerState.SUCCESS:
                self.post_message(SwitchFinished(result=w.result))
            elif state == WorkerState.ERROR:
                self.post_message(SwitchFinished(error=_err_text(w.error)))
        elif w.group == "power":
            if state == WorkerState.SUCCESS:
                self._power_done(w.result)
            elif state == WorkerState.ERROR:
                self.notify(_err_text(w.error), title="power limit", severity="error", timeout=8)

    def _refresh_screen(self) -> None:
        if not self.screen_stack:  # a sample that finishes while the app is closing has no screen to show
            return
        screen = self.screen
        # a sample can finish between a screen's push and its mount (a loaded machine): its widgets are not
        # there yet, and its on_mount shows the latest sample anyway
        if hasattr(screen, "refresh_view") and screen.is_mounted:
            screen.refresh_view()

    # -- navigation --------------------------------------------------------------------------------------
    def _unsaved(self, key: str) -> bool:
        """A screen holding unsaved edits (the editor) keeps the first try to leave it: see EditorScreen.unsaved."""
        return any(hasattr(s, "unsaved") and s.unsaved(key) for s in reversed(self.screen_stack))

    async def action_quit(self) -> None:
        if not self._unsaved("q"):
            self.exit()

    def action_mode(self, mode: str) -> None:
        if self.current_mode != mode or len(self.screen_stack) > 1:
            if self._unsaved(mode[0]):
                return
        while len(self.screen_stack) > 1:  # back to the mode's own screen, under any pushed over it
            self.pop_screen()
        self.switch_mode(mode)

    def check_action(self, action: str, parameters: tuple) -> bool | None:
        """Hide the key of the screen the user is on (`p Profiles` on the profiles list); on a screen pushed over
        it (the editor) the key leads back, so it shows."""
        if action == "mode" and parameters and self.screen_stack:
            if self.current_mode == str(parameters[0]) and len(self.screen_stack) == 1:
                return False
        return True

    def action_help(self) -> None:
        from appliance.tui.screens.modals import HelpScreen

        self.push_screen(HelpScreen())

    def action_timeline(self) -> None:
        from appliance.tui.screens.switch import SwitchScreen

        if not isinstance(self.screen, SwitchScreen):
            self.push_screen(SwitchScreen())

    def action_demo(self) -> None:
        if self.demo:
            self.notify("this is the demo already")
            return
        self.exit(DEMO)

    # -- power ----------------------------------------------------------------------------------------------
    def action_power(self) -> None:
        snap = self.last.snapshot if self.last else None
        if snap is None or not snap.gpus:
            self.notify("no GPU readings yet", severity="warning")
            return

        def done(watts: float | None) -> None:
            if watts is not None:
                self.set_power(watts)

        from appliance.tui.screens.modals import PowerDialog

        self.push_screen(PowerDialog(snap), done)

    def action_power_step(self, delta: int) -> None:
        snap = self.last.snapshot if self.last else None
        used = {i for e in snap.engines for i in e.gpus} if snap else set()
        limits = [g.power_limit_w for g in (snap.gpus if snap else ()) if g.power_limit_w and
                  (not used or g.index in used)]
        if not limits:
            self.notify("no power limit to change yet", severity="warning")
            return
        self.set_power(max(limits) + delta)

    def set_power(self, watts: float) -> None:
        self.notify(f"setting the power limit to {watts:.0f} W …", timeout=3)
        self._power_worker(watts)

    @work(thread=True, exclusive=True, group="power", exit_on_error=False)
    def _power_worker(self, watts: float):
        return self.backend.set_power(watts)

    def _power_done(self, changes) -> None:
        if not changes:
            self.notify("no GPU to change", severity="warning")
            return
        applied = {c.applied_w for c in changes}
        prev = {c.previous_w for c in changes}
        idx = fmt.gpu_range([c.index for c in changes])
        msg = (f"GPU {idx}: {'/'.join(f'{p:.0f}' for p in sorted(prev))} W → "
               f"{'/'.join(f'{a:.0f}' for a in sorted(applied))} W")
        notes = sorted({c.note for c in changes if c.note})
        self.notify(msg + ("\n" + "\n".join(notes) if notes else ""), title="power limit",
                    severity="warning" if notes else "information", timeout=6)
        if not self._sampling:
            if self._sample_timer is not None:
                self._sample_timer.stop()
            self.request_sample()

    # -- switching ---------------------------------------------------------------------------------------------
    def ask_switch(self, profile, fit_report=None, active=None) -> None:
        if self.switch_log is not None and self.switch_log.running:
            self.notify(f"a switch to {self.switch_log.target} is running; wait for it", severity="warning")
            self.action_timeline()
            return
        if active is not None and active.name == profile.name:
            self.notify(f"{profile.name} is already the active profile")
            return

        def answer(yes: bool | None) -> None:
            if yes:
                self.start_switch(profile, active)

        from appliance.tui.screens.modals import ConfirmSwitch

        self.push_screen(ConfirmSwitch(profile, fit_report, active), answer)

    def start_switch(self, profile, active=None) -> None:
        from appliance.tui.widgets.timeline import SwitchLog

        self.switch_log = SwitchLog(profile.name, active.name if active is not None else
                                    (self.last.snapshot.profile if self.last else None))
        self._switch_worker(profile)
        self.action_timeline()

    @work(thread=True, exclusive=True, group="switch", exit_on_error=False)
    def _switch_worker(self, profile):
        return self.backend.switch(profile, lambda ev: self.post_message(SwitchProgress(ev)))

    def on_switch_progress(self, message: SwitchProgress) -> None:
        if self.switch_log is not None:
            self.switch_log.add(message.event)
        self._refresh_screen()

    def on_switch_finished(self, message: SwitchFinished) -> None:
        log = self.switch_log
        if log is None:
            return
        log.finish(message.result, message.error)
        r = message.result
        if message.error:
            self.notify(message.error, title=f"switch to {log.target}", severity="error", timeout=10)
        elif r is not None and r.ok:
            self.notify(f"{log.target} is running", title="switch", timeout=5)
        elif r is not None:
            self.notify(f"{log.target} failed: {r.reason}", title="switch", severity="error", timeout=10)
        self._load_info()
        self._refresh_screen()
        for name in ("profiles",):
            try:
                scr = self.get_screen(name)
            except Exception:  # noqa: BLE001 - not created yet
                continue
            scr.action_reload()

    # -- command palette -------------------------------------------------------------------------------------
    def get_system_commands(self, screen) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        yield SystemCommand("Dashboard", "GPUs, engines, proxy, efficiency", lambda: self.action_mode("dashboard"))
        yield SystemCommand("Profiles", "list, fit check, diff, switch", lambda: self.action_mode("profiles"))
        yield SystemCommand("Logs", "engine and proxy logs (follow, search)", lambda: self.action_mode("logs"))
        yield SystemCommand("Bench results", "recorded runs, tables, plot, apply the recommended power limit",
                            lambda: self.action_mode("bench"))
        yield SystemCommand("Power limit …", "set the limit of the active profile's GPUs", self.action_power)
        yield SystemCommand("Power −10 W", "lower the GPU power limit", lambda: self.action_power_step(-10))
        yield SystemCommand("Power +10 W", "raise the GPU power limit", lambda: self.action_power_step(10))
        yield SystemCommand("Last switch", "the startup timeline of the last switch", self.action_timeline)
        yield SystemCommand("Help", "keys, colours and units", self.action_help)
        if not self.demo:
            yield SystemCommand("Run the demo", "a simulated rig with the real proxy", self.action_demo)
        active = self.last.snapshot.profile if self.last else None
        for e in self.profile_entries:
            if e.profile is not None and e.name != active:
                yield SystemCommand(f"Switch to {e.name}", e.profile.description or "start this profile",
                                    lambda p=e.profile: self._palette_switch(p))

    def _palette_switch(self, profile) -> None:
        active = None
        if self.last and self.last.snapshot.profile:
            active = next((e.profile for e in self.profile_entries if e.name == self.last.snapshot.profile), None)
        self.ask_switch(profile, None, active)


def run_app(stack=None, demo: bool = False, *, make_stack=None, early=None) -> None:
    """Run the TUI on a Stack, or on `make_stack` with the first sample from `early` (a forked child, see
    early.py: the CLI's entry point). When nothing runs and the user picks the demo, the demo runs next (a
    simulated rig in its own state dir), then stops."""
    backend = StackBackend(stack, make_stack=make_stack, early=early)
    if early is None:
        backend.prefetch()
    result = ApplianceApp(backend, demo=demo).run()
    if result == DEMO:
        _run_demo()


def _run_demo() -> None:
    from appliance import secrets
    from appliance.errors import ApplianceError
    from appliance.load import BackgroundTraffic
    from appliance.profile import load_profile
    from appliance.rig import simulated_rig
    from appliance.stack import Stack

    stack = Stack(simulated_rig(runtime="process"), lambda ev: print(f"  {ev.message}", flush=True))
    profile = load_profile("rtx3090x4-qwen35-27b")
    print(f"appliance demo: {profile.name} on a simulated rig — starting (about 10 s) …", flush=True)
    traffic = None
    try:
        try:
            result = stack.up(profile)
        except ApplianceError as exc:
            print(f"error: {exc.message}" + (f"\n  fix: {exc.hint}" if exc.hint else ""))
            return
        if not result.ok:
            return
        port = stack.rig.state.load().proxy.port
        traffic = BackgroundTraffic(f"http://127.0.0.1:{port}/v1", secrets.master_key(),
                                    profile.engines[0].aliases[0], concurrency=3).start()
        backend = StackBackend(stack)
        backend.prefetch()
        ApplianceApp(backend, demo=True).run()
    finally:
        if traffic:
            traffic.stop()
        print("stopping the demo …", flush=True)
        stack.down(all_=True)


__all__ = ["ApplianceApp", "run_app"]
