"""The Stack: the one place that changes the rig — up, switch (with rollback), down, power.

Views (CLI, TUI, bench) ask the Stack; the Stack asks the rig's parts (appliance.rig): GPUs, the engines' runtime,
the front door's runtime, the hosted models. Long operations report progress as `Event`s through `on_event`;
nothing here prints. The jobs live next door: state.py (the one record), power.py, front_door.py, follow.py.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

from appliance import measured, secrets
from appliance.diagnose import Diagnosis
from appliance.errors import ApplianceError, StackError
from appliance.netcheck import port_free
from appliance.profile import Profile, load_profile, resolve
from appliance.render.compose import PROJECT_PREFIX
from appliance.render.litellm import PROXY_PROJECT
from appliance.stack.events import Event, StartResult
from appliance.stack.follow import follow_start
from appliance.stack.front_door import FrontDoor
from appliance.stack.power import PowerKeeper
from appliance.stack.state import ProfileRef, RigState

DEFAULT_TIMEOUT_S = 1800.0
DEFAULT_STALL_S = 600.0


class Stack:
    def __init__(self, rig, on_event: Callable[[Event], None] | None = None, drain_s: int = 60):
        self.rig = rig
        self.on_event = on_event or (lambda e: None)
        self.drain_s = drain_s  # --shutdown-timeout of the engines: how long a switch lets requests finish
        self._profile_cache: dict = {}
        self._fits: dict = {}  # profile name → the FitReport of its last preflight (to record what vLLM measured)
        self.power = PowerKeeper(rig, self.emit)
        self.front_door = FrontDoor(rig, self.emit, self.routed_profile)

    def emit(self, kind: str, message: str, **data) -> None:
        self.on_event(Event(kind, message, data))

    # -- profiles --------------------------------------------------------------------------------
    @staticmethod
    def project(profile_name: str) -> str:
        return PROJECT_PREFIX + profile_name

    def engine_projects(self) -> list[str]:
        """Profile names whose engine project has services (the proxy's project is not one)."""
        return [p[len(PROJECT_PREFIX):] for p in self.rig.runtime.projects() if p != PROXY_PROJECT]

    def _load(self, ref: ProfileRef | None) -> Profile | None:
        """A profile named in the state, cached until its file changes (the sampler asks every second)."""
        if ref is None:
            return None
        try:
            path = resolve(ref.ref)
            stamp = (str(path), path.stat().st_mtime_ns)
            cached = self._profile_cache.get(stamp)
            if cached is None:
                cached = load_profile(path)
                self._profile_cache = {stamp: cached}
            return cached
        except (ApplianceError, OSError):
            return None

    def active_profile(self, state: RigState | None = None) -> Profile | None:
        """The profile whose engines run (or are starting); `state`: a record the caller has just read."""
        return self._load((state or self.rig.state.load()).active)

    def routed_profile(self) -> Profile | None:
        return self._load(self.rig.state.load().routed)

    # -- checks before anything starts -----------------------------------------------------------
    def _fit(self, profile: Profile, force: bool, ignore_own: bool) -> None:
        from appliance.fit import GPU, fit_profile

        count_used = self.rig.gpu_source.counts_used_memory and not ignore_own
        gpus = [GPU(r.index, r.name, r.memory_total_bytes or 0, (r.memory_used_bytes or 0) if count_used else 0)
                for r in self.rig.gpus().read_all()]
        report = fit_profile(profile, gpus, store=self.rig.measurements())
        self._fits[profile.name] = report
        for e in report.engines:
            self.emit("info" if e.fits else "warn", f"fit {e.engine}: {e.verdict}", fits=e.fits)
        if report.fits:
            return
        fixes = "; ".join(f for e in report.engines for f in e.fixes[:3]) or "; ".join(report.problems)
        what = "; ".join(report.problems) or "; ".join(e.verdict for e in report.engines if not e.fits)
        if force:
            self.emit("warn", f"starting anyway (--force): {what}")
            return
        raise StackError(f"profile {profile.name} does not fit: {what}",
                         (fixes + " — or --force to start anyway") if fixes else "use --force to try anyway")

    def _check_ports(self, profile: Profile, ignore: set[int] = frozenset()) -> None:
        for e in profile.engines:
            if e.port not in ignore and not port_free(e.port):
                raise StackError(f"port {e.port} (engine {e.label} of {profile.name}) is already in use",
                                 f"stop what listens there (`ss -ltnp 'sport = :{e.port}'`) or change the engine's "
                                 "port in the profile")

    def _preflight(self, profile: Profile, force: bool, *, switching: Profile | None) -> None:
        """Everything that can refuse on input, before anything changes."""
        self.rig.gpu_source.prepare(self.rig, profile, bool(self.engine_projects()), self.emit)
        self._fit(profile, force, ignore_own=switching is not None)
        self._check_ports(profile, ignore={e.port for e in switching.engines} if switching else set())
        self.power.check(profile)

    # -- power (the TUI's control and `down`) ----------------------------------------------------------
    def set_power(self, watts: float, gpu_indices: list[int] | None = None) -> list:
        """Change the power limit of the active profile's GPUs, remembering the owner's originals."""
        if gpu_indices is None:
            profile = self.active_profile()
            count = self.rig.gpus().count()
            if profile is None:
                gpu_indices = list(range(count))
            else:
                from appliance.profile.placement import engine_gpu_indices

                gpu_indices = sorted({g for e in profile.engines for g in engine_gpu_indices(profile, e, count)})
        return self.power.set(watts, gpu_indices)

    def restore_power(self) -> list[str]:
        return self.power.restore()

    # -- the front door (kept as Stack methods: the CLI and tests call them) --------------------------
    def ensure_proxy(self, profile: Profile | None) -> None:
        self.front_door.ensure(profile)

    def wait_proxy(self, timeout_s: float = 180.0) -> None:
        self.front_door.wait_ready(timeout_s)

    def stop_proxy(self) -> None:
        self.front_door.stop()

    # -- engines ------------------------------------------------------------------------------------
    def _start(self, profile: Profile, timeout_s: float, stall_s: float, follow=None) -> StartResult:
        """Start the profile's engines, follow them (or those of `follow`) until healthy. A runtime error on the way
        (docker refusing, an image that cannot be pulled) is a failed start like a crash, so callers roll back."""
        t0 = time.time()
        try:
            from appliance import render
            from appliance.render.compose import render_engine_project

            settings = self.rig.render_settings(drain_s=self.drain_s)
            for f in render.render_engine_files(profile, self.rig.rendered, settings):
                f.write()
            compose = render_engine_project(profile, settings)
            compose_file = self.rig.rendered / profile.name / "compose.yaml"
            self.rig.runtime.prepare(compose_file, compose, self.emit)
            engines = (follow or profile).engines
            self.emit("info", f"starting {profile.name} ({', '.join(e.label for e in engines)})")
            self.rig.runtime.up(self.project(profile.name), compose_file, compose)
        except ApplianceError as exc:
            diag = Diagnosis(exc.message, exc.hint or "see the message above", (), "runtime")
            return StartResult(profile.name, False, {}, diag, None, "could not start")
        result = follow_start(self.rig.runtime, self.project(profile.name), follow or profile, self.emit, t0=t0,
                              timeout_s=timeout_s, stall_s=stall_s)
        if result.ok:
            self.emit("done", f"{profile.name} is ready after {time.time() - t0:.1f} s", timelines=result.timelines)
        return result

    def _power_then_start(self, profile: Profile, timeout_s: float, stall_s: float) -> StartResult:
        try:
            self.power.apply(profile)
        except ApplianceError as exc:
            diag = Diagnosis(exc.message, exc.hint or "see the message above", (), "power")
            return StartResult(profile.name, False, {}, diag, None, "could not start")
        return self._start(profile, timeout_s, stall_s)

    def _stop(self, profile_name: str, timeout_s: int = 30) -> None:
        self.rig.runtime.down(self.project(profile_name), self.rig.rendered / profile_name / "compose.yaml",
                              timeout_s=timeout_s)

    def _started(self, profile: Profile, result: StartResult) -> StartResult:
        """A profile's engines are healthy: it is the last known good one, and the front door routes to it."""
        from appliance.stack import upkeep

        self.rig.state.update(last_good=ProfileRef.of(profile))
        upkeep.keep_running_copy(self, profile)
        self.front_door.route(profile)
        self.front_door.wait_ready()
        self._record_measurements(profile)
        return result

    def _record_measurements(self, profile: Profile) -> None:
        """What vLLM measured at this start (its log, `cache_config_info`), next to the prediction: the next
        `check` of the same model on this card shows both and learns the overhead. Never fails a start."""
        from appliance import http

        report = self._fits.get(profile.name)
        if report is None:
            return
        store = self.rig.measurements()
        with http.client(timeout_s=2.0) as client:
            for e, ef in zip(profile.engines, report.engines):
                try:
                    log_text = "\n".join(self.rig.runtime.logs(self.project(profile.name), e.label, tail=2000))
                    probe = http.get(client, f"http://127.0.0.1:{e.port}/metrics")
                    m = measured.record_start(store, ef, log_text=log_text, metrics_text=probe.body if probe.ok
                                              else None)
                except ApplianceError:
                    continue
                if m is not None:
                    self.emit("info", f"{e.label}: vLLM measured {measured.describe(m)}")

    def _report_failure(self, result: StartResult) -> None:
        d = result.diagnosis
        msg = f"{result.failed_engine or result.profile} {result.failure}: {d.title if d else 'unknown'}"
        self.emit("fail", msg, lines=list(d.lines) if d else [], fix=d.fix if d else None, reason=result.failure)

    # -- operations ----------------------------------------------------------------------------------
    def _remember_lan(self, lan: bool | None) -> None:
        if lan is not None:
            self.rig.state.update(lan=bool(lan))

    def up(self, profile: Profile, *, force: bool = False, timeout_s: float = DEFAULT_TIMEOUT_S,
           stall_s: float = DEFAULT_STALL_S, lan: bool | None = None) -> StartResult:
        with self.rig.lock():
            self._remember_lan(lan)
            active = self.rig.state.load().active
            running = self.rig.runtime.projects()
            if active and active.name != profile.name and self.project(active.name) in running:
                raise StackError(f"profile {active.name} is running", f"`appliance switch {profile.name}` replaces "
                                                                      "it (the proxy keeps serving meanwhile)")
            already = active is not None and active.name == profile.name and self.project(active.name) in running
            if already:
                self.emit("info", f"{profile.name} is already running; checking it")
            else:
                self._preflight(profile, force, switching=None)
            try:
                self.power.apply(profile)
                self.front_door.ensure(profile)
            except ApplianceError:
                if not already:
                    self.power.restore()  # nothing started: leave the GPUs as they were
                raise
            self.rig.state.update(active=ProfileRef.of(profile), starting=profile.name)
            result = self._start(profile, timeout_s, stall_s)
            self.rig.state.update(starting=None)
            if result.ok:
                return self._started(profile, result)
            self._report_failure(result)
            self._stop(profile.name, timeout_s=10)
            self.rig.state.update(active=None)
            self.power.restore()
            return result

    def switch(self, profile: Profile, *, force: bool = False, timeout_s: float = DEFAULT_TIMEOUT_S,
               stall_s: float = DEFAULT_STALL_S, drain_s: float | None = None,
               lan: bool | None = None) -> StartResult:
        drain_s = self.drain_s if drain_s is None else drain_s
        self._remember_lan(lan)
        active = self.rig.state.load().active
        if active is None or self.project(active.name) not in self.rig.runtime.projects():
            self.emit("info", "nothing is running: starting instead of switching")
            return self.up(profile, force=force, timeout_s=timeout_s, stall_s=stall_s, lan=lan)
        if active.name == profile.name:  # the running profile, edited: apply the edits (engine by engine)
            return self.apply(profile, timeout_s=timeout_s, stall_s=stall_s, drain_s=drain_s)
        old = self.active_profile()
        with self.rig.lock():
            self._preflight(profile, force, switching=old)
            return self._replace(old, profile, timeout_s, stall_s, drain_s, old_name=active.name)

    def _replace(self, old: Profile | None, profile: Profile, timeout_s: float, stall_s: float,
                 drain_s: float, old_name: str | None = None) -> StartResult:
        """Drain `old`, stop it, start `profile`; roll back to `old` (or the last good) when it fails. `old_name`:
        the running project, stopped even when its profile file no longer loads (`old` is None then)."""
        old_name = old.name if old else old_name
        name = old_name or "(nothing)"
        dropped = sorted({a for e in (old.engines if old else ()) for a in e.aliases} - set(profile.aliases))
        if dropped:
            self.emit("warn", f"{profile.name} does not serve {', '.join(dropped)}: agents asking for it get 404 "
                              "from now on (or set a global fallback in settings.yaml)")
        self.front_door.ensure(profile)
        self.emit("info", f"switching {name} → {profile.name}; the proxy serves the aliases from their fallbacks "
                          "meanwhile (or holds requests that have none)")
        self.emit("info", f"draining {name}: requests in flight finish (up to {drain_s:.0f} s)")
        # A refusal (no root…) must come before anything stops, but the new limits only after the drain:
        # the old engine serves its streams to the end at the speed it had.
        self.power.probe(profile)
        self.front_door.drain(old)
        if old_name is not None:
            self._stop(old_name, timeout_s=int(drain_s) + 15)
        state = self.rig.state.update(active=ProfileRef.of(profile), previous=old_name,
                                      starting=profile.name)
        result = self._power_then_start(profile, timeout_s, stall_s)
        self.rig.state.update(starting=None)
        if result.ok:
            return self._started(profile, result)
        self._report_failure(result)
        self._stop(profile.name, timeout_s=10)
        back = old if old is not None and old.name != profile.name else self._load(state.last_good)
        if back is None or back.name == profile.name:
            self.rig.state.update(active=None)
            self.power.restore()
            return result
        return self._roll_back(back, profile, result, timeout_s, stall_s)

    def apply(self, profile: Profile, *, timeout_s: float = DEFAULT_TIMEOUT_S, stall_s: float = DEFAULT_STALL_S,
              drain_s: float | None = None) -> StartResult:
        """Edits of the running profile, engine by engine with the same drain as a switch (appliance.stack.upkeep)."""
        from appliance.stack import upkeep
        return upkeep.apply(self, profile, timeout_s=timeout_s, stall_s=stall_s,
                            drain_s=self.drain_s if drain_s is None else drain_s)

    def restore(self, *, timeout_s: float = DEFAULT_TIMEOUT_S, stall_s: float = DEFAULT_STALL_S) -> list[str]:
        """After a reboot, a docker restart, a killed front door or an interrupted command (appliance.stack.upkeep)."""
        from appliance.stack import upkeep

        return upkeep.restore(self, timeout_s=timeout_s, stall_s=stall_s)

    def _roll_back(self, back: Profile, failed: Profile, result: StartResult, timeout_s: float,
                   stall_s: float) -> StartResult:
        self.emit("rollback", f"rolling back to {back.name}: {failed.name} {result.failure} "
                              f"({result.diagnosis.title if result.diagnosis else 'no diagnosis'})",
                  to=back.name, failed=failed.name)
        self.rig.state.update(active=ProfileRef.of(back), starting=back.name)
        again = self._power_then_start(back, timeout_s, stall_s)
        self.rig.state.update(starting=None)
        if again.ok:
            self.front_door.ensure(back)  # LiteLLM back to the old profile's aliases and fallbacks
            self.front_door.route(back)
            from appliance.stack import upkeep

            upkeep.keep_running_copy(self, back)
        else:
            self._report_failure(again)
            self._stop(back.name, timeout_s=10)  # like a failed `up`: no exited project, the owner's limits back
            self.emit("fail", f"the rollback to {back.name} failed too; nothing is running")
            self.rig.state.update(active=None)
            self.power.restore()
        result.rolled_back_to, result.rollback_failed = back.name, not again.ok
        return result

    def down(self, *, all_: bool = False, timeout_s: int = 30) -> list[str]:
        with self.rig.lock():
            active = self.rig.state.load().active
            stopped: list[str] = []
            failed: list[ApplianceError] = []
            try:
                names = set(self.engine_projects()) | ({active.name} if active else set())
                for name in sorted(names):
                    self.emit("info", f"stopping {name}")
                    try:
                        self._stop(name, timeout_s)
                    except ApplianceError as exc:  # the other projects still stop; the first failure is raised
                        failed.append(exc)
                        continue
                    stopped.append(name)
                if all_:
                    self.emit("info", "stopping the proxy")
                    self.front_door.stop()
                    self.rig.state.update(lan=None, proxy=None)  # a remembered --lan ends with the front door
            finally:  # whatever failed above, the GPUs get their limits back
                self.rig.state.update(active=None)
                self.power.restore()
            if failed:
                raise failed[0]
            return stopped

    # -- reading ---------------------------------------------------------------------------------------
    def logs(self, engine: str | None, follow: bool = False, tail: int = 200, stop=None) -> Iterator[str]:
        """An engine's (or `proxy`'s, `frontdoor`'s) log, secrets redacted. `stop`: a threading.Event that ends
        a follow on the local-process runtime (docker's stream ends when the caller stops iterating)."""
        if engine in ("proxy", "litellm", "frontdoor"):
            rt, project, service = self.rig.proxy_runtime, PROXY_PROJECT, (
                "frontdoor" if engine == "frontdoor" else self.front_door.litellm_service_name())
        else:
            profile = self.active_profile()
            if profile is None:
                raise StackError("no profile is running", "start one with `appliance up PROFILE`")
            labels = [e.label for e in profile.engines]
            if engine is None:
                if len(labels) > 1 and follow:
                    raise StackError(f"{profile.name} has several engines: {', '.join(labels)}",
                                     "name one: `appliance logs ENGINE --follow`")
                engine = labels[0]
            if engine not in labels:
                raise StackError(f"no engine `{engine}` in {profile.name}",
                                 "engines: " + ", ".join(labels + ["proxy", "frontdoor"]))
            rt, project, service = self.rig.runtime, self.project(profile.name), engine
        kw = {"stop": stop} if stop is not None and rt.kind == "process" else {}
        for line in rt.logs(project, service, tail=tail, follow=follow, **kw):
            yield secrets.redact(line)

    def warnings(self) -> list[str]:
        """Things the owner should know before anything else (appliance.stack.upkeep.warnings)."""
        from appliance.stack import upkeep

        return upkeep.warnings(self)
