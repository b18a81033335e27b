"""The Stack: the one place that changes the rig — up, switch (with rollback), down, power limits.

Views (CLI, TUI, bench) ask the Stack; the Stack uses the three boundaries: the runtime (docker compose or
local processes), the GPUs (NVML or simulated) and HTTP (health probes). Long operations report progress as
`Event`s through the `on_event` callback; nothing here prints.

State that must survive the CLI and the TUI lives in the rig's state dir (`state.json`): the active profile, the
last known good one, and the power limits that were in force before the appliance changed them (restored on
`down`, and kept across a crash of the appliance so the next start can still restore them).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from appliance import paths
from appliance.diagnose import Diagnosis, diagnose
from appliance.errors import ApplianceError, GPUError, StackError
from appliance.phases import LABELS, StartupTracker
from appliance.profile import Profile

DEFAULT_TIMEOUT_S = 1800.0
DEFAULT_STALL_S = 600.0


@dataclass(frozen=True)
class Event:
    kind: str  # info | warn | power | phase | wait | fail | rollback | done
    message: str
    data: dict = field(default_factory=dict)


@dataclass
class StartResult:
    profile: str
    ok: bool
    timelines: dict[str, list[dict]]
    diagnosis: Diagnosis | None = None
    failed_engine: str | None = None
    reason: str | None = None  # crashed | stuck | timeout | unhealthy


def _port_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # like uvicorn: TIME_WAIT is not "in use"
        try:
            s.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return False
            raise
    return True


class Rig:
    """Where a rig's state lives and how to reach its boundaries."""

    def __init__(self, *, sim: bool = False, runtime: str = "docker", docker_env: dict | None = None,
                 sim_cards: list[str] | None = None, root: Path | None = None):
        if runtime not in ("docker", "process"):
            raise ApplianceError(f"--runtime {runtime}", "use docker or process")
        self.sim = sim
        self.runtime_kind = runtime
        self.dir = Path(root) if root else paths.state_dir() / ("sim" if sim else "rig")
        self.dir.mkdir(parents=True, exist_ok=True)
        self.sim_dir = self.dir / "gpus" if sim else None
        self.rendered = self.dir / "rendered"
        self.docker_env = dict(os.environ if docker_env is None else docker_env)
        self._sim_cards = sim_cards
        self._gpus = None
        self._runtime = None
        self._proxy_runtime = None

    # -- boundaries ------------------------------------------------------------------------------
    @property
    def runtime(self):
        if self._runtime is None:
            if self.runtime_kind == "docker":
                from appliance.runtime.docker import DockerRuntime

                env = dict(self.docker_env)
                env.update(self.compose_env())
                self._runtime = DockerRuntime(env)
            else:
                from appliance import secrets
                from appliance.runtime.process import ProcessRuntime

                self._runtime = ProcessRuntime(self.dir / "processes", env_file=secrets.secrets_file())
        return self._runtime

    @property
    def proxy_runtime(self):
        """The proxy runs as a local process on the simulated rig and with --runtime process; under docker on a
        real rig it is its own compose project."""
        if self._proxy_runtime is None:
            if self.sim or self.runtime_kind == "process":
                from appliance import secrets
                from appliance.runtime.process import ProcessRuntime

                self._proxy_runtime = ProcessRuntime(self.dir / "processes", env_file=secrets.secrets_file())
            else:
                self._proxy_runtime = self.runtime
        return self._proxy_runtime

    def compose_env(self) -> dict[str, str]:
        from appliance import secrets

        env = {"APPLIANCE_SECRETS_FILE": str(secrets.secrets_file())}
        if self.sim_dir:
            env["APPLIANCE_SIM_DIR"] = str(self.sim_dir)
        return env

    def gpus(self, cards: list[str] | None = None):
        if self._gpus is None:
            from appliance.gpu import open_gpus

            if self.sim:
                from appliance.sim import state as simstate

                fresh = not simstate.gpus_path(self.sim_dir).exists()
                self._gpus = open_gpus(self.sim_dir, (cards or self._sim_cards or ["3090"] * 4) if fresh else None)
            else:
                self._gpus = open_gpus()
        return self._gpus

    def reset_sim(self, cards: list[str]) -> None:
        """A fresh simulated rig with these cards (only when nothing runs on it)."""
        from appliance.gpu import open_gpus

        self._gpus = open_gpus(self.sim_dir, cards)

    # -- state -------------------------------------------------------------------------------------
    @property
    def state_file(self) -> Path:
        return self.dir / "state.json"

    def load_state(self) -> dict:
        try:
            return json.loads(self.state_file.read_text())
        except (OSError, ValueError):
            return {}

    def save_state(self, state: dict) -> None:
        tmp = self.state_file.with_name("state.json.tmp")
        tmp.write_text(json.dumps(state, indent=2, sort_keys=True))
        os.replace(tmp, self.state_file)

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """One changing operation at a time per rig (a second `up` waits for a clear message instead)."""
        f = open(self.dir / "lock", "w")
        try:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise StackError("another appliance command is changing this rig right now",
                                 "wait for it to finish (see `appliance status`)") from None
            yield
        finally:
            f.close()


class Stack:
    def __init__(self, rig: Rig, on_event: Callable[[Event], None] | None = None, drain_s: int = 60):
        self.rig = rig
        self.on_event = on_event or (lambda e: None)
        self.drain_s = drain_s  # --shutdown-timeout of the engines: how long a switch lets requests finish
        self._profile_cache: dict = {}

    def emit(self, kind: str, message: str, **data) -> None:
        self.on_event(Event(kind, message, data))

    # -- profile helpers -------------------------------------------------------------------------
    @staticmethod
    def project(profile_name: str) -> str:
        from appliance.render.compose import PROJECT_PREFIX

        return PROJECT_PREFIX + profile_name

    def engine_projects(self) -> list[str]:
        """Profile names whose engine project has services (the proxy and the hosted stand-ins are not)."""
        from appliance.render.litellm import PROXY_PROJECT
        from appliance.sim_hosted import PROJECT as HOSTED

        return [p[len("appliance-"):] for p in self.rig.runtime.projects() if p not in (PROXY_PROJECT, HOSTED)]

    def _state_profile(self, key: str) -> Profile | None:
        """The profile named in the state file under `key` (the file it was loaded from first). Cached until the
        profile file changes: the sampler asks every second."""
        from appliance.profile import load_profile, resolve

        state = self.rig.load_state()
        if not state.get(key):
            return None
        ref = state.get(f"{key}_file") or state[key]
        try:
            path = resolve(ref)
            stamp = (str(path), path.stat().st_mtime_ns)
            cached = self._profile_cache.get(stamp)
            if cached is None:
                cached = load_profile(path)
                self._profile_cache = {stamp: cached}
            return cached
        except (ApplianceError, OSError):
            return None

    def active_profile(self) -> Profile | None:
        return self._state_profile("active")

    def _proxy_profiles(self, extra: Profile | None) -> list[Profile]:
        from appliance.profile import available_files, load_profile

        out: dict[str, Profile] = {}
        for f in available_files():
            try:
                p = load_profile(f)
            except ApplianceError as exc:
                self.emit("warn", f"skipping {f.name} for the proxy config: {exc.message.splitlines()[0]}")
                continue
            out[p.name] = p
        if extra is not None:
            out[extra.name] = extra
        # profiles whose aliases clash with the one being started are left out (the started one wins)
        from appliance.render.litellm import collect

        ordered = [extra] if extra is not None else []
        for p in out.values():
            if extra is not None and p.name == extra.name:
                continue
            try:
                collect(ordered + [p])
            except ApplianceError as exc:
                self.emit("warn", f"leaving {p.name} out of the proxy config: {exc.message}")
                continue
            ordered.append(p)
        return ordered

    def _render(self, profile: Profile) -> tuple[Path, dict]:
        from appliance import render
        from appliance.render.compose import RenderSettings, render_engine_project

        settings = RenderSettings(sim=self.rig.sim, sim_dir=str(self.rig.sim_dir or "${APPLIANCE_SIM_DIR}"),
                                  sim_image=os.environ.get("APPLIANCE_SIM_IMAGE", "appliance-sim-vllm:local"),
                                  gpu_count=self.rig.gpus().count(), drain_s=self.drain_s)
        for f in render.render_engine_files(profile, self.rig.rendered, settings):
            f.write()
        compose = render_engine_project(profile, settings)
        return self.rig.rendered / profile.name / "compose.yaml", compose

    # -- checks before anything starts -----------------------------------------------------------
    def _fit(self, profile: Profile, force: bool, ignore_own: bool) -> None:
        from appliance.fit import GPU, fit_profile

        readings = self.rig.gpus().read_all()
        gpus = [GPU(r.index, r.name, r.memory_total_bytes or 0, 0 if (ignore_own or self.rig.sim) else
                    (r.memory_used_bytes or 0)) for r in readings]
        report = fit_profile(profile, gpus)
        for e in report.engines:
            self.emit("info" if e.fits else "warn", f"fit {e.engine}: {e.verdict}", fits=e.fits)
        if not report.fits:
            fixes = "; ".join(f for e in report.engines for f in e.fixes[:3]) or "; ".join(report.problems)
            what = "; ".join(report.problems) or "; ".join(e.verdict for e in report.engines if not e.fits)
            if force:
                self.emit("warn", f"starting anyway (--force): {what}")
            else:
                raise StackError(f"profile {profile.name} does not fit: {what}",
                                 (fixes + " — or --force to start anyway") if fixes else "use --force to try anyway")

    def _check_ports(self, profile: Profile, ignore: set[int] = frozenset()) -> None:
        for e in profile.engines:
            if e.port in ignore:
                continue
            if not _port_free(e.port):
                raise StackError(f"port {e.port} (engine {e.label} of {profile.name}) is already in use",
                                 f"stop what listens there (`ss -ltnp 'sport = :{e.port}'`) or change the engine's "
                                 "port in the profile")

    # -- power limits ------------------------------------------------------------------------------
    def _apply_power(self, profile: Profile) -> None:
        gpus = self.rig.gpus()
        wanted = profile.power_limits(list(range(gpus.count())) if profile.gpus == "all" else list(profile.gpus))
        state = self.rig.load_state()
        saved = {int(k): v for k, v in state.get("power_saved", {}).items()}
        for idx, watts in sorted(saved.items()):  # GPUs this profile leaves alone get the owner's limit back
            if idx not in wanted and watts is not None and idx < gpus.count():
                change = gpus.set_power_limit(idx, watts)
                if abs(change.previous_w - change.applied_w) > 0.5:
                    self.emit("power", f"GPU {idx}: power limit {change.previous_w:.0f} W → {change.applied_w:.0f} W "
                                       "(the profile sets none: back to your own limit)", gpu=idx,
                              watts=change.applied_w)
        if not wanted:
            return
        for idx, watts in sorted(wanted.items()):
            if idx >= gpus.count():
                raise StackError(f"profile {profile.name} sets GPU {idx}'s power limit; this rig has "
                                 f"{gpus.count()} GPUs", "fix gpus/power_limit_w in the profile")
            current = gpus.read(idx).power_limit_w
            if idx not in saved and current is not None:
                saved[idx] = current  # remember the owner's limit before the first change (write it first)
                state["power_saved"] = {str(k): v for k, v in saved.items()}
                self.rig.save_state(state)
            change = gpus.set_power_limit(idx, watts)
            note = f" ({change.note})" if change.note else ""
            self.emit("power", f"GPU {idx}: power limit {change.previous_w:.0f} W → {change.applied_w:.0f} W{note}",
                      gpu=idx, watts=change.applied_w)

    def restore_power(self) -> list[str]:
        state = self.rig.load_state()
        saved = {int(k): v for k, v in state.get("power_saved", {}).items() if v is not None}
        done = []
        if not saved:
            state["power_saved"] = {}
            self.rig.save_state(state)
            return done
        gpus = self.rig.gpus()
        left = {}
        for idx, watts in sorted(saved.items()):
            try:
                change = gpus.set_power_limit(idx, watts)
                msg = f"GPU {idx}: power limit restored to {change.applied_w:.0f} W"
                done.append(msg)
                self.emit("power", msg, gpu=idx, watts=change.applied_w)
            except GPUError as exc:
                left[str(idx)] = watts
                self.emit("warn", f"GPU {idx}: could not restore {watts:.0f} W: {exc.message}")
        state["power_saved"] = left
        self.rig.save_state(state)
        return done

    def set_power(self, watts: float, gpu_indices: list[int] | None = None) -> list:
        """Change the power limit of the active profile's GPUs (the TUI's power control), remembering the
        owner's original limits so `down` restores them."""
        gpus = self.rig.gpus()
        profile = self.active_profile()
        if gpu_indices is None:
            if profile is None:
                gpu_indices = list(range(gpus.count()))
            else:
                from appliance.fit import engine_gpu_indices

                gpu_indices = sorted({g for e in profile.engines for g in engine_gpu_indices(profile, e,
                                                                                              gpus.count())})
        state = self.rig.load_state()
        saved = {str(k): v for k, v in state.get("power_saved", {}).items()}
        changes = []
        for idx in gpu_indices:
            current = gpus.read(idx).power_limit_w
            if str(idx) not in saved and current is not None:
                saved[str(idx)] = current
                state["power_saved"] = saved
                self.rig.save_state(state)
            change = gpus.set_power_limit(idx, watts)
            changes.append(change)
            note = f" ({change.note})" if change.note else ""
            self.emit("power", f"GPU {idx}: power limit {change.previous_w:.0f} W → {change.applied_w:.0f} W{note}",
                      gpu=idx, watts=change.applied_w)
        return changes

    # -- the proxy -----------------------------------------------------------------------------------
    # The front door: HAProxy on the agents' port (hot path to healthy local engines, master-key check, health
    # checks, drain), LiteLLM on the next port (fallbacks, hosted providers, context-window fallbacks).
    def _frontdoor_settings(self, profiles: list[Profile]):
        from appliance import frontdoor
        from appliance.render.frontdoor import FrontDoorSettings
        from appliance.render.litellm import proxy_settings

        lan = self.rig.load_state().get("lan")
        ps = proxy_settings(profiles, lan=lan)
        return ps, FrontDoorSettings(host=ps.host, port=ps.port, litellm_port=ps.port + 1,
                                     fallback_base_port=ps.port + 2,
                                     socket_path=str(frontdoor.socket_path(self.rig.dir)),
                                     stream_s=ps.stream_timeout_s, request_s=ps.request_timeout_s)

    def _routed_profile(self) -> Profile | None:
        """The profile whose engines the front door routes to now (the running one)."""
        return self._state_profile("routed")

    def ensure_proxy(self, profile: Profile | None) -> None:
        """Render the proxy project from every profile and start it if it is not running (restart it if its
        LiteLLM config changed). The front door keeps routing to the profile that runs now; `_route` moves it."""
        from appliance import render, secrets
        from appliance.render.frontdoor import render_frontdoor_compose
        from appliance.render.litellm import LITELLM_IMAGE, PROXY_PROJECT

        secrets.master_key()  # generated on first use, stored 0600
        profiles = self._proxy_profiles(profile)
        if not self.rig.sim and profile is not None:
            for h in profile.proxy.hosted:
                if not secrets.lookup(h.api_key_env):
                    self.emit("warn", f"fallback `{h.name}` ({h.litellm_model}) cannot work: {h.api_key_env} is not "
                                      f"set (`appliance keys set {h.provider}` or export it)")
        overrides = self._hosted_stand_ins(profiles) if self.rig.sim else None
        ps, fd = self._frontdoor_settings(profiles)
        files = render.render_proxy_files(profiles, self.rig.rendered, hosted_overrides=overrides,
                                          frontdoor=fd, active=self._routed_profile())
        changed = any(not f.same_content() for f in files if f.path.name != "haproxy.cfg")
        frontdoor_changed = any(not f.same_text() for f in files if f.path.name == "haproxy.cfg")
        for f in files:
            f.write()
        Path(fd.socket_path).parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        states = self.rig.proxy_runtime.states(PROXY_PROJECT)
        running = bool(states) and all(s.alive for s in states) and len(states) == 2
        if running and not changed:
            if frontdoor_changed:  # e.g. --lan: a seamless reload, then the engines enabled again
                self._reload_frontdoor(Path(fd.socket_path))
                routed = self._routed_profile()
                if routed is not None:
                    self._enable(routed)
            return
        proxy_dir = self.rig.rendered / "proxy"
        compose = render_frontdoor_compose(fd, LITELLM_IMAGE)
        if self.rig.proxy_runtime.kind == "process":
            compose["services"]["litellm"]["command"] = [
                "--config", str(proxy_dir / "litellm.yaml"), "--host", "127.0.0.1", "--port", str(fd.litellm_port)]
            compose["services"]["frontdoor"]["command"] = ["haproxy", "-W", "-db", "-f", str(proxy_dir / "haproxy.cfg")]
            compose["services"]["frontdoor"]["stop_grace_period"] = "5s"
        if states:
            self.emit("info", "the proxy config changed (new aliases or fallbacks): restarting the proxy")
            self.rig.proxy_runtime.down(PROXY_PROJECT, proxy_dir / "compose.yaml", timeout_s=10)
        from appliance.render.frontdoor import routes

        internal = [(r.fallback_port, f"the front door's fallback listener for `{r.alias}`")
                    for r in routes(profiles, None, fd) if r.fallback_port]
        for port, what in [(fd.port, "the proxy's port"), (fd.litellm_port, "LiteLLM's port (proxy port + 1)")] + \
                internal:
            if not _port_free(port):
                raise StackError(f"{what} {port} is already in use",
                                 f"stop what listens there (`ss -ltnp 'sport = :{port}'`) or set proxy.port")
        if fd.host != "127.0.0.1":
            self.emit("warn", f"the proxy listens on {fd.host}:{fd.port}: reachable from your LAN "
                              "(anyone there with the master key can use it)")
        self.emit("info", f"starting the front door on http://{fd.host}:{fd.port} (HAProxy → engines; LiteLLM on "
                          f":{fd.litellm_port} for fallbacks)")
        self.rig.proxy_runtime.up(PROXY_PROJECT, proxy_dir / "compose.yaml", compose)
        state = self.rig.load_state()
        state["proxy"] = {"host": fd.host, "port": fd.port, "litellm_port": fd.litellm_port,
                          "socket": fd.socket_path}
        self.rig.save_state(state)
        from appliance import frontdoor

        frontdoor.wait_ready(Path(fd.socket_path), timeout_s=15)
        routed = self._routed_profile()
        if routed is not None:  # a restarted front door starts with its engines disabled
            self._enable(routed)

    def _frontdoor_sock(self) -> Path | None:
        sock = (self.rig.load_state().get("proxy") or {}).get("socket")
        return Path(sock) if sock else None

    def _enable(self, profile: Profile) -> None:
        from appliance import frontdoor
        from appliance.render.frontdoor import backend_name

        sock = self._frontdoor_sock()
        if sock is None:
            return
        for e in profile.engines:
            for a in e.aliases:
                for b in (backend_name(a), backend_name(a) + "_full"):  # streams / whole responses
                    frontdoor.set_state(sock, b, "ready")
                frontdoor.admin(sock, f"set server {backend_name(a)}/local health up")  # the checked one

    def _drain(self, profile: Profile | None) -> None:
        """New requests for the profile's aliases go to their fallbacks; requests in flight finish."""
        from appliance import frontdoor
        from appliance.render.frontdoor import backend_name

        sock = self._frontdoor_sock()
        if sock is None or profile is None:
            return
        for e in profile.engines:
            for a in e.aliases:
                for b in (backend_name(a), backend_name(a) + "_full"):
                    try:
                        frontdoor.set_state(sock, b, "drain")
                    except StackError as exc:
                        self.emit("warn", f"could not drain {a}: {exc.message}")

    def _route(self, profile: Profile) -> None:
        """Point the front door at `profile`'s engines (they are healthy): new config, seamless reload, enable."""
        from appliance import render

        state = self.rig.load_state()
        state.update(routed=profile.name, routed_file=profile.source_file)
        self.rig.save_state(state)
        profiles = self._proxy_profiles(profile)
        overrides = self._hosted_stand_ins(profiles) if self.rig.sim else None
        _ps, fd = self._frontdoor_settings(profiles)
        files = render.render_proxy_files(profiles, self.rig.rendered, hosted_overrides=overrides, frontdoor=fd,
                                          active=profile)
        cfg = [f for f in files if f.path.name == "haproxy.cfg"][0]
        sock = Path(fd.socket_path)
        if not cfg.same_text():
            cfg.write()
            self._reload_frontdoor(sock)
        self._enable(profile)

    def _reload_frontdoor(self, sock: Path) -> None:
        """HAProxy re-reads its config in a new worker; connections in flight stay on the old one."""
        from appliance import frontdoor

        before = frontdoor.worker_pid(sock)
        self._signal_frontdoor("SIGUSR2")
        frontdoor.wait_ready(sock, timeout_s=15, not_pid=before)

    def _signal_frontdoor(self, sig: str) -> None:
        import signal as _signal

        from appliance.render.litellm import PROXY_PROJECT

        rt = self.rig.proxy_runtime
        if rt.kind == "process":
            for s in rt.states(PROXY_PROJECT):
                if s.service == "frontdoor" and s.pid:
                    os.kill(s.pid, getattr(_signal, sig))
                    return
            raise StackError("the front door is not running", "`appliance up PROFILE` starts it")
        for c in rt._containers(PROXY_PROJECT):
            if c.labels.get("com.docker.compose.service") == "frontdoor":
                c.kill(signal=sig)
                return
        raise StackError("the front door container is not running", "`appliance up PROFILE` starts it")

    def wait_proxy(self, timeout_s: float = 180.0) -> None:
        """Block until the proxy answers its liveness probe through the front door (LiteLLM needs ~6 s)."""
        from appliance import http
        from appliance.render.litellm import PROXY_PROJECT

        state = self.rig.load_state().get("proxy")
        if not state:
            return
        url = f"http://127.0.0.1:{state['port']}/health/liveliness"
        t0 = time.time()
        with http.client(timeout_s=2.0) as c:
            while True:
                if http.get(c, url).ok:
                    if time.time() - t0 > 1:
                        self.emit("info", f"the proxy is ready ({time.time() - t0:.1f} s)")
                    return
                states = self.rig.proxy_runtime.states(PROXY_PROJECT)
                dead = [s for s in states if s.status in ("exited", "dead") or s.restarts > 0]
                if dead or time.time() - t0 > timeout_s:
                    from appliance import secrets

                    svc = dead[0].service if dead else "litellm"
                    lines = list(self.rig.proxy_runtime.logs(PROXY_PROJECT, svc, tail=30))
                    tail = [secrets.redact(ln) for ln in lines if ln.strip()][-6:]
                    raise StackError(f"the proxy ({svc}) did not start" + (
                        f" (exit code {dead[0].exit_code})" if dead else f" within {timeout_s:.0f} s"),
                        "its last log lines: " + " | ".join(tail) if tail else "`appliance logs proxy`")
                self.emit("wait", f"waiting for the proxy ({time.time() - t0:.0f} s)")
                time.sleep(0.5)

    def _hosted_stand_ins(self, profiles: list[Profile]) -> dict[str, str]:
        """On the simulated rig every hosted model is served by a local stand-in (no hosted API is reachable)."""
        from appliance.sim_hosted import ensure_stand_ins

        return ensure_stand_ins(self, profiles)

    def stop_proxy(self) -> None:
        from appliance.render.litellm import PROXY_PROJECT

        self.rig.proxy_runtime.down(PROXY_PROJECT, self.rig.rendered / "proxy" / "compose.yaml", timeout_s=10)
        if self.rig.sim:
            from appliance.sim_hosted import stop_stand_ins

            stop_stand_ins(self)

    # -- following a start --------------------------------------------------------------------------
    def _follow(self, profile: Profile, t0: float, timeout_s: float, stall_s: float) -> StartResult:
        from appliance import http

        project = self.project(profile.name)
        trackers = {e.label: StartupTracker(t0) for e in profile.engines}
        cursors: dict[str, dict] = {e.label: {} for e in profile.engines}
        lines: dict[str, list[str]] = {e.label: [] for e in profile.engines}
        last_phase = {e.label: "created" for e in profile.engines}
        base_restarts: dict[str, int] = {}
        last_beat = t0
        for e in profile.engines:
            self.emit("phase", f"{e.label}: {LABELS['created']}", engine=e.label, phase="created", elapsed_s=0.0)
        # a loading engine accepts TCP and stays silent: probe briefly, often (a miss just means "not yet")
        with http.client(timeout_s=0.5) as client:
            while True:
                now = time.time()
                states = {s.service: s for s in self.rig.runtime.states(project)}
                for e in profile.engines:
                    tr = trackers[e.label]
                    if tr.ready:
                        continue
                    for ln in self.rig.runtime.new_lines(project, e.label, cursors[e.label]):
                        tr.feed(ln, now)
                        lines[e.label].append(ln)
                    del lines[e.label][:-400]
                    st = states.get(e.label)
                    if st is not None:
                        base_restarts.setdefault(e.label, st.restarts)
                    crashed = st is not None and (st.status in ("exited", "dead") or
                                                  st.restarts > base_restarts.get(e.label, 0) or
                                                  st.status == "restarting")
                    if crashed:
                        diag = diagnose(lines[e.label], st.exit_code)
                        return StartResult(profile.name, False, self._timelines(trackers, now), diag, e.label,
                                           "crashed")
                    probe = http.get(client, f"http://127.0.0.1:{e.port}/health")
                    if probe.ok:
                        tr.healthy(time.time())
                    if tr.current != last_phase[e.label]:  # one event for every phase entered, in order
                        from appliance.phases import PHASES

                        for ph in PHASES[PHASES.index(last_phase[e.label]) + 1: PHASES.index(tr.current) + 1]:
                            self.emit("phase", f"{e.label}: {LABELS[ph]}", engine=e.label, phase=ph,
                                      elapsed_s=round(tr.started.get(ph, time.time()) - t0, 1),
                                      details=list(tr.details[-2:]))
                        last_phase[e.label] = tr.current
                if all(t.ready for t in trackers.values()):
                    return StartResult(profile.name, True, self._timelines(trackers, time.time()))
                now = time.time()
                if now - t0 > timeout_s:
                    slow = [k for k, t in trackers.items() if not t.ready][0]
                    diag = Diagnosis(f"{slow} did not become healthy within {timeout_s:.0f} s",
                                     "a very large model on a slow disk may need longer: --timeout; "
                                     "`appliance logs` shows where it is", tuple(lines[slow][-5:]), "timeout")
                    return StartResult(profile.name, False, self._timelines(trackers, now), diag, slow, "timeout")
                for k, t in trackers.items():
                    if not t.ready and t.silent_for(now) > stall_s:
                        diag = Diagnosis(f"{k} is stuck: alive, but no log line and no answer on /health for "
                                         f"{t.silent_for(now):.0f} s", "see `appliance logs " + k + "`; a hung "
                                         "download or a deadlocked NCCL init look like this",
                                         tuple(lines[k][-5:]), "stuck")
                        return StartResult(profile.name, False, self._timelines(trackers, now), diag, k, "stuck")
                if now - last_beat >= 5:
                    last_beat = now
                    waiting = ", ".join(f"{k}: {LABELS[t.current]} {now - t.started[t.current]:.0f} s"
                                        for k, t in trackers.items() if not t.ready)
                    self.emit("wait", f"still starting ({now - t0:.0f} s) — {waiting}", elapsed_s=round(now - t0, 1))
                time.sleep(0.5)

    @staticmethod
    def _timelines(trackers: dict[str, StartupTracker], now: float) -> dict[str, list[dict]]:
        return {k: t.timeline(now) for k, t in trackers.items()}

    def _start(self, profile: Profile, timeout_s: float, stall_s: float) -> StartResult:
        """Start the profile's engines and follow them until healthy. A runtime error on the way (docker
        refusing, an image that cannot be pulled) is a failed start like a crash, so callers roll back."""
        t0 = time.time()
        try:
            compose_file, compose = self._render(profile)
            if self.rig.runtime_kind == "docker":
                self._check_host_network(compose_file)
                self._ensure_images(compose)
            self.emit("info", f"starting {profile.name} ({', '.join(e.label for e in profile.engines)})")
            self.rig.runtime.up(self.project(profile.name), compose_file, compose)
        except ApplianceError as exc:
            diag = Diagnosis(exc.message, exc.hint or "see the message above", (), "runtime")
            return StartResult(profile.name, False, {}, diag, None, "could not start")
        result = self._follow(profile, t0, timeout_s, stall_s)
        if result.ok:
            total = time.time() - t0
            self.emit("done", f"{profile.name} is ready after {total:.1f} s", timelines=result.timelines)
        return result

    def _check_host_network(self, compose_file: Path) -> None:
        """What Compose will really run (`docker compose config`): every service on the host network and no
        project network, which would be a bridge with a private-range subnet."""
        cfg = self.rig.runtime.config(compose_file)
        bad = [n for n, svc in cfg.get("services", {}).items() if svc.get("network_mode") != "host"]
        if bad or cfg.get("networks"):
            raise StackError(f"{compose_file}: services {', '.join(bad) or '(networks defined)'} are not on the "
                             "host network", "this is a bug in the renderer: engines must use network_mode: host")

    def _ensure_images(self, compose: dict) -> None:
        rt = self.rig.runtime
        for name, svc in compose["services"].items():
            image = svc["image"]
            if rt.image_exists(image):
                continue
            if self.rig.sim:
                raise StackError(f"the simulated engine's image {image} is not in the local docker engine",
                                 "build it with `make testbed` (testbed/up)")
            self.emit("info", f"pulling {image} (the first pull of a vLLM image is ~10 GB)")
            for line in self._pull(image):
                self.emit("wait", line)

    def _pull(self, image: str) -> Iterator[str]:
        """Pull with progress from the docker SDK's stream."""
        import docker

        last = 0.0
        try:
            for ev in self.rig.runtime.client.api.pull(image, stream=True, decode=True):
                now = time.time()
                if "error" in ev:
                    raise StackError(f"pulling {image}: {ev['error']}", "check the image tag and your network")
                prog = ev.get("progressDetail") or {}
                if prog.get("total") and now - last > 2:
                    last = now
                    yield (f"{image}: {ev.get('status', '')} {prog['current'] / 2**20:.0f} / "
                           f"{prog['total'] / 2**20:.0f} MiB")
        except docker.errors.APIError as exc:
            raise StackError(f"pulling {image} failed: {exc.explanation or exc}",
                             "check the image tag in the profile and that this machine reaches the registry") from None

    def _stop(self, profile_name: str, timeout_s: int = 30) -> None:
        self.rig.runtime.down(self.project(profile_name), self.rig.rendered / profile_name / "compose.yaml",
                              timeout_s=timeout_s)

    # -- operations ----------------------------------------------------------------------------------
    def _remember_lan(self, lan: bool | None) -> None:
        if lan is not None:
            state = self.rig.load_state()
            state["lan"] = bool(lan)
            self.rig.save_state(state)

    def up(self, profile: Profile, *, force: bool = False, timeout_s: float = DEFAULT_TIMEOUT_S,
           stall_s: float = DEFAULT_STALL_S, lan: bool | None = None) -> StartResult:
        with self.rig.lock():
            self._remember_lan(lan)
            state = self.rig.load_state()
            active = state.get("active")
            running = self.rig.runtime.projects()
            if active and active != profile.name and self.project(active) in running:
                raise StackError(f"profile {active} is running", f"`appliance switch {profile.name}` replaces it "
                                                                 "(the proxy keeps serving meanwhile)")
            if active == profile.name and self.project(active) in running:
                self.emit("info", f"{profile.name} is already running; checking it")
            else:
                if self.rig.sim:
                    self._prepare_sim(profile)
                self._fit(profile, force, ignore_own=False)
                self._check_ports(profile)
            try:
                self._apply_power(profile)
                self.ensure_proxy(profile)
            except ApplianceError:
                if self.project(profile.name) not in running:
                    self.restore_power()  # nothing started: leave the GPUs as they were
                raise
            state = self.rig.load_state()
            state.update(active=profile.name, active_file=profile.source_file, starting=profile.name)
            self.rig.save_state(state)
            result = self._start(profile, timeout_s, stall_s)
            state = self.rig.load_state()
            state.pop("starting", None)
            if result.ok:
                self.rig.save_state(state)
                return self._started(profile, result)
            self._report_failure(result)
            self._stop(profile.name, timeout_s=10)
            state.update(active=None, active_file=None)
            self.rig.save_state(state)
            self.restore_power()
            return result

    def switch(self, profile: Profile, *, force: bool = False, timeout_s: float = DEFAULT_TIMEOUT_S,
               stall_s: float = DEFAULT_STALL_S, drain_s: float | None = None,
               lan: bool | None = None) -> StartResult:
        drain_s = self.drain_s if drain_s is None else drain_s
        self._remember_lan(lan)
        state = self.rig.load_state()
        old_name = state.get("active")
        if not old_name or self.project(old_name) not in self.rig.runtime.projects():
            self.emit("info", "nothing is running: starting instead of switching")
            return self.up(profile, force=force, timeout_s=timeout_s, stall_s=stall_s, lan=lan)
        if old_name == profile.name:
            self.emit("info", f"{profile.name} is already the active profile")
            return StartResult(profile.name, True, {})
        old = self.active_profile()
        with self.rig.lock():
            if self.rig.sim:
                self._prepare_sim(profile)
            self._fit(profile, force, ignore_own=True)
            own_ports = {e.port for e in old.engines} if old else set()
            self._check_ports(profile, ignore=own_ports)
            self.ensure_proxy(profile)
            self.emit("info", f"switching {old_name} → {profile.name}; the proxy serves the aliases from their "
                              "fallbacks meanwhile")
            self.emit("info", f"draining {old_name}: requests in flight finish (up to {drain_s:.0f} s), new ones "
                              "go to the fallbacks")
            self._apply_power(profile)  # before anything stops: a refusal (no root…) leaves the old one serving
            self._drain(old)
            self._stop(old_name, timeout_s=int(drain_s) + 15)
            state = self.rig.load_state()
            state.update(active=profile.name, active_file=profile.source_file, previous=old_name)
            self.rig.save_state(state)
            result = self._start(profile, timeout_s, stall_s)
            if result.ok:
                return self._started(profile, result)
            self._report_failure(result)
            self._stop(profile.name, timeout_s=10)
            back = old
            last_good = state.get("last_good")
            if back is None and last_good:
                from appliance.profile import load_profile

                back = load_profile(state.get("last_good_file") or last_good)
            if back is None:
                state.update(active=None)
                self.rig.save_state(state)
                self.restore_power()
                return result
            self.emit("rollback", f"rolling back to {back.name}: {profile.name} {result.reason} "
                                  f"({result.diagnosis.title if result.diagnosis else 'no diagnosis'})",
                      to=back.name, failed=profile.name)
            self._apply_power(back)
            state = self.rig.load_state()
            state.update(active=back.name, active_file=back.source_file)
            self.rig.save_state(state)
            again = self._start(back, timeout_s, stall_s)
            if again.ok:
                self._route(back)
            else:
                self._report_failure(again)
                self.emit("fail", f"the rollback to {back.name} failed too; nothing is running")
                state.update(active=None)
                self.rig.save_state(state)
            result.reason = (result.reason or "failed") + f"; rolled back to {back.name}" + (
                "" if again.ok else " (which failed too)")
            return result

    def _started(self, profile: Profile, result: StartResult) -> StartResult:
        """A profile's engines are healthy: it is the last known good one, and the front door routes to it."""
        state = self.rig.load_state()
        state.update(last_good=profile.name, last_good_file=profile.source_file)
        self.rig.save_state(state)
        self._route(profile)
        self.wait_proxy()
        return result

    def _report_failure(self, result: StartResult) -> None:
        d = result.diagnosis
        msg = f"{result.failed_engine or result.profile} {result.reason}: {d.title if d else 'unknown'}"
        self.emit("fail", msg, lines=list(d.lines) if d else [], fix=d.fix if d else None, reason=result.reason)

    def _prepare_sim(self, profile: Profile) -> None:
        """A simulated rig fits the profile: made with its card when none exists yet."""
        from appliance import cards as cardlib
        from appliance.sim import state as simstate

        card = cardlib.lookup(profile.card or "3090")
        need = max(1, max(list(profile.gpus) + [0]) + 1 if profile.gpus != "all" else
                   sum(e.gpu_count for e in profile.engines))
        if simstate.gpus_path(self.rig.sim_dir).exists():
            have = self.rig.gpus().cards
            if have == [card.key] * need:
                return
            if self.engine_projects():
                return  # hardware cannot change under running engines; the fit check will say if it fits
        self.rig.reset_sim([card.key] * need)
        self.emit("info", f"simulated rig: {need} × {card.name}")

    def down(self, *, all_: bool = False, timeout_s: int = 30) -> list[str]:
        with self.rig.lock():
            state = self.rig.load_state()
            stopped = []
            try:
                names = set(self.engine_projects())
                if state.get("active"):
                    names.add(state["active"])
                for name in sorted(names):
                    self.emit("info", f"stopping {name}")
                    self._stop(name, timeout_s)
                    stopped.append(name)
                if all_:
                    self.emit("info", "stopping the proxy")
                    self.stop_proxy()
            finally:  # whatever failed above, the GPUs get their limits back
                state = self.rig.load_state()
                state.update(active=None, active_file=None)
                self.rig.save_state(state)
                self.restore_power()
            return stopped

    def logs(self, engine: str | None, follow: bool = False, tail: int = 200, stop=None) -> Iterator[str]:
        """An engine's (or `proxy`'s, `frontdoor`'s) log, secrets redacted. `stop`: a threading.Event that ends
        a follow on the local-process runtime (docker's stream ends when the caller stops iterating)."""
        kw = {"stop": stop} if stop is not None and self.rig.runtime_kind == "process" else {}
        from appliance import secrets
        from appliance.render.litellm import PROXY_PROJECT

        if engine in ("proxy", "litellm", "frontdoor"):
            service = "frontdoor" if engine == "frontdoor" else "litellm"
            pkw = {"stop": stop} if stop is not None and self.rig.proxy_runtime.kind == "process" else {}
            for line in self.rig.proxy_runtime.logs(PROXY_PROJECT, service, tail=tail, follow=follow, **pkw):
                yield secrets.redact(line)
            return
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
        for line in self.rig.runtime.logs(self.project(profile.name), engine, tail=tail, follow=follow, **kw):
            yield secrets.redact(line)

    def warnings(self) -> list[str]:
        """Things the owner should know before anything else (e.g. limits left behind by a crash)."""
        out = []
        state = self.rig.load_state()
        saved = {k: v for k, v in (state.get("power_saved") or {}).items() if v is not None}
        active = state.get("active")
        try:
            running = self.rig.runtime.projects()
        except ApplianceError:
            running = []
        if saved and (not active or self.project(active) not in running):
            lims = ", ".join(f"GPU {k}: {v:.0f} W" for k, v in sorted(saved.items()))
            out.append(f"power limits changed by an earlier run are still applied (originals: {lims}); "
                       "`appliance down` restores them")
        if state.get("starting"):
            out.append(f"an earlier start of {state['starting']} did not finish (the appliance was interrupted)")
        return out
