"""The front door's lifecycle: render the proxy project, start it, route it to the running profile's engines,
drain them before a switch, reload HAProxy seamlessly, wait for LiteLLM.

HAProxy listens on the agents' port (hot path to healthy local engines, master-key check, health checks, drain);
LiteLLM listens on the next port (fallbacks, hosted providers, context-window fallbacks). Both run under the
rig's proxy runtime; the hosted models are whatever the rig's `hosted` part provides.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

from appliance import frontdoor, http, render, secrets
from appliance.errors import ApplianceError, StackError
from appliance.netcheck import port_free
from appliance.profile import Profile
from appliance.render.frontdoor import (
    FrontDoorSettings,
    litellm_service,
    render_frontdoor_compose,
    routes,
)
from appliance.render.litellm import LITELLM_IMAGE, PROXY_PROJECT, engine_base_port, proxy_settings
from appliance.render.plan import ProxyPlan, backend_name, plan
from appliance.settings import UserSettings, load_settings, settings_file
from appliance.stack.state import ProfileRef, ProxyRecord

APPLIED = "settings.applied.json"  # next to the rendered proxy config: the owner's settings the door serves
DRIFT = ("settings.yaml changed after the front door started: the routes shown are what it still serves; "
         "`appliance restore` applies the new settings")


def _stat(path: Path):
    try:
        return path.stat()
    except OSError:
        return None


class FrontDoor:
    def __init__(self, rig, emit: Callable[..., None], routed: Callable[[], Profile | None]):
        self.rig = rig
        self.emit = emit
        self.routed = routed  # the profile whose engines the front door sends requests to now
        self._drift_cache: tuple = (None, None)  # see _settings_now

    # -- what to render ----------------------------------------------------------------------------
    def serving(self, profile: Profile | None = None) -> Profile | None:
        """The profile whose aliases and fallbacks the front door serves: the one being started, else the routed
        one, else the active one (issue #13: never every profile's)."""
        if profile is not None:
            return profile
        routed = self.routed()
        if routed is not None:
            return routed
        from appliance.profile import load_profile as _load

        active = self.rig.state.load().active
        try:
            return _load(active.ref) if active else None
        except ApplianceError:
            return None

    def plan(self, profile: Profile | None = None) -> ProxyPlan:
        """What the front door serves for `profile` (see `serving`) under the owner's settings."""
        return plan(self.serving(profile), load_settings())

    # -- what runs (settings.yaml may have changed since) --------------------------------------------------
    def _record_applied(self, user: UserSettings) -> None:
        """The owner's settings the running door was rendered with. Why: settings.yaml is read again by every
        command, but the door only takes it at up/switch/apply/restore; `status`, `endpoint` and the dashboard
        must show what the door serves (and count the spend of its hosted models), not what the file says now."""
        render.Rendered(self.rig.rendered / "proxy" / APPLIED,
                        json.dumps(user.model_dump(mode="json"), indent=1, sort_keys=True) + "\n").write()

    def applied_settings(self) -> UserSettings | None:
        """The settings the running door serves (see `_record_applied`); None when nothing recorded them (no
        door, or one started before the record existed)."""
        if self.rig.state.load().proxy is None:
            return None
        try:
            data = json.loads((self.rig.rendered / "proxy" / APPLIED).read_text())
            return UserSettings.model_validate(data, strict=False)
        except (OSError, ValueError):
            return None

    def _settings_now(self) -> tuple[UserSettings | None, UserSettings | None, str | None]:
        """(applied, on disk, drift warning); on disk None when the file does not load and the door's record
        exists (the warning says why). Cached on both files' mtime and size: the sampler asks every second."""
        files = (settings_file(), self.rig.rendered / "proxy" / APPLIED)
        key = (self.rig.state.load().proxy is not None,) + tuple(
            (st.st_mtime_ns, st.st_size) if (st := _stat(f)) else None for f in files)
        if self._drift_cache[0] == key:
            return self._drift_cache[1]
        applied = self.applied_settings()
        try:
            now, drift = load_settings(), None
        except ApplianceError as exc:
            if applied is None:
                raise
            now, drift = None, (f"settings.yaml has a mistake ({exc.message}): the front door still serves the "
                                "settings it started with")
        if applied is not None and now is not None and \
                now.model_dump(mode="json") != applied.model_dump(mode="json"):
            drift = DRIFT
        self._drift_cache = (key, (applied, now, drift))
        return applied, now, drift

    def drift(self) -> str | None:
        """The warning when settings.yaml on disk is not what the running door serves (None: it is, or no door
        recorded what it took)."""
        return self._settings_now()[2]

    def running_plan(self, profile: Profile | None = None) -> tuple[ProxyPlan, str | None]:
        """What the running front door serves for `profile` (see `serving`), and a warning when settings.yaml
        on disk says something else (edited, or broken, since the door took it); (plan under the file, None)
        when no record says what the door took."""
        applied, now, drift = self._settings_now()
        return plan(self.serving(profile), applied if applied is not None else now), drift

    def settings(self, profile: Profile | None, litellm_port: int | None = None) -> FrontDoorSettings:
        """Where the front door listens; LiteLLM on `litellm_port`, else on the one in service now."""
        ps = proxy_settings(profile, lan=self.rig.state.load().lan)
        record = self.rig.state.load().proxy
        if profile is None and record is not None:  # nothing runs: the door stays where agents know it
            ps = replace(ps, port=record.port)
        if litellm_port is None:
            record = self.rig.state.load().proxy
            live = record.litellm_port if record and record.port == ps.port else None
            litellm_port = live if live in (ps.port + 1, ps.port + 2) else ps.port + 1
        return FrontDoorSettings(host=ps.host, port=ps.port, litellm_port=litellm_port, engine_base_port=engine_base_port(ps.port),
                                 socket_path=str(frontdoor.socket_path(self.rig.dir)),
                                 stream_s=ps.stream_timeout_s, request_s=ps.request_timeout_s, hold_s=ps.hold_s)

    def _files(self, profile: Profile | None, active: Profile | None, fd: FrontDoorSettings):
        user = load_settings()
        hosted = SimpleNamespace(proxy=SimpleNamespace(hosted=tuple(plan(profile, user).hosted.values())))
        overrides = self.rig.hosted.ensure([hosted], self.emit)
        return render.render_proxy_files(profile, self.rig.rendered, hosted_overrides=overrides, frontdoor=fd,
                                         active=active, user_settings=user)

    def _sock(self) -> Path | None:
        proxy = self.rig.state.load().proxy
        return Path(proxy.socket) if proxy and proxy.socket else None

    def _compose(self, fd: FrontDoorSettings, ports: tuple[int, ...]) -> dict:
        proxy_dir = self.rig.rendered / "proxy"
        compose = render_frontdoor_compose(fd, LITELLM_IMAGE, litellm_ports=ports)
        if self.rig.proxy_runtime.kind == "process":
            for port in ports:
                name, config = litellm_service(port, fd.port)
                compose["services"][name]["command"] = [
                    "--config", str(proxy_dir / config), "--host", "127.0.0.1", "--port", str(port)]
            compose["services"]["frontdoor"]["command"] = [  # the keys first: a reload re-reads them (rotation)
                "haproxy", "-W", "-db", "-f", str(secrets.frontdoor_keys_cfg()), "-f", str(proxy_dir / "haproxy.cfg")]
            compose["services"]["frontdoor"]["stop_grace_period"] = "5s"
            compose["services"]["frontdoor"]["working_dir"] = str(proxy_dir)  # lua-load hold.lua
        return compose

    def _alive(self, fd: FrontDoorSettings) -> bool:
        alive = {s.service for s in self.rig.proxy_runtime.states(PROXY_PROJECT) if s.alive}
        return {"frontdoor", litellm_service(fd.litellm_port, fd.port)[0]} <= alive

    # -- start ---------------------------------------------------------------------------------------
    def ensure(self, profile: Profile | None) -> None:
        """Render the proxy project for `profile` (see `serving`) and start it if it is not running. A running one
        takes a changed config without dropping a connection: HAProxy reloads seamlessly; a new LiteLLM starts
        beside the old one and is swapped in at the front door. It keeps routing to the profile that runs now;
        `route` moves it."""
        secrets.master_key()  # generated on first use, stored 0600
        profile = self.serving(profile)
        pl = self.plan(profile)
        self.rig.hosted.check_keys(SimpleNamespace(proxy=SimpleNamespace(hosted=tuple(pl.hosted.values()))),
                                   self.emit)
        fd = self.settings(profile)
        files = {f.path.name: f for f in self._files(profile, self.routed(), fd)}
        proxy_dir = self.rig.rendered / "proxy"
        Path(fd.socket_path).parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        if not self._alive(fd):
            self._start(profile, pl, fd)
            return
        live_config = proxy_dir / litellm_service(fd.litellm_port, fd.port)[1]
        if not files["litellm.yaml"].same_as(live_config):
            self._swap_litellm(profile, fd)
        elif not files["haproxy.cfg"].same_text():  # e.g. --lan: a seamless reload, then the engines enabled
            files["haproxy.cfg"].write()
            self.reload(Path(fd.socket_path))
            self.rig.state.update(proxy=ProxyRecord(fd.host, fd.port, fd.litellm_port, fd.socket_path))
            self._enable_routed(pl)
        self._record_applied(load_settings())  # the door serves the file's settings now (also when unchanged)

    def rotate(self) -> bool:
        """New keys take effect without a restart: a new LiteLLM (it reads its keys at start) is swapped in and
        HAProxy reloads (it re-reads its keys file). False when the front door is not running."""
        secrets.master_key()  # rewrites each role's secrets file
        profile = self.serving(None)
        fd = self.settings(profile)
        if not self._alive(fd):
            return False
        self._swap_litellm(profile, fd)
        return True

    def _start(self, profile: Profile | None, pl, fd: FrontDoorSettings) -> None:
        rt = self.rig.proxy_runtime
        proxy_dir = self.rig.rendered / "proxy"
        if rt.states(PROXY_PROJECT):  # half of it is running: start both afresh
            self.emit("info", "the front door is only partly running: restarting it")
            rt.down(PROXY_PROJECT, proxy_dir / "compose.yaml", timeout_s=10)
        fd = self.settings(profile, litellm_port=fd.port + 1)
        for f in self._files(profile, self.routed(), fd):
            f.write()
        internal = [(r.listener_port, f"the front door's internal listener for `{r.alias}` (proxy port + 3 …)")
                    for r in routes(pl, None, fd)]
        for port, what in [(fd.port, "the proxy's port"), (fd.litellm_port, "LiteLLM's port (proxy port + 1)")] + \
                internal:
            if not port_free(port):
                raise StackError(f"{what} {port} is already in use",
                                 f"stop what listens there (`ss -ltnp 'sport = :{port}'`) or set proxy.port")
        if fd.host != "127.0.0.1":
            self.emit("warn", f"the proxy listens on {fd.host}:{fd.port}: reachable from your LAN "
                              "(anyone there with the master key can use it)")
        self.emit("info", f"starting the front door on http://{fd.host}:{fd.port} (HAProxy → engines; LiteLLM on "
                          f":{fd.litellm_port} for fallbacks)")
        compose = self._compose(fd, (fd.litellm_port,))
        rt.prepare(proxy_dir / "compose.yaml", compose, self.emit)
        rt.up(PROXY_PROJECT, proxy_dir / "compose.yaml", compose)
        self.rig.state.update(proxy=ProxyRecord(fd.host, fd.port, fd.litellm_port, fd.socket_path))
        frontdoor.wait_ready(Path(fd.socket_path), timeout_s=15)
        self._record_applied(load_settings())
        self._enable_routed(pl)  # a restarted front door starts with its engines disabled

    def _swap_litellm(self, profile: Profile | None, old: FrontDoorSettings) -> None:
        """A new LiteLLM config: start a second LiteLLM with it on the other port, wait until it answers, point
        HAProxy at it (seamless reload), then let the old one finish what it relays and stop."""
        rt = self.rig.proxy_runtime
        proxy_dir = self.rig.rendered / "proxy"
        new_port = old.port + 2 if old.litellm_port == old.port + 1 else old.port + 1
        fd = self.settings(profile, litellm_port=new_port)
        new_name, new_config = litellm_service(new_port, fd.port)
        old_name, _ = litellm_service(old.litellm_port, old.port)
        self.emit("info", f"the proxy config changed: starting a new LiteLLM on :{new_port} beside the one in "
                          "service (no request is dropped)")
        if not port_free(new_port):
            raise StackError(f"port {new_port} (the second LiteLLM, proxy port + {new_port - fd.port}) is in use",
                             f"stop what listens there (`ss -ltnp 'sport = :{new_port}'`) or set proxy.port")
        files = {f.path.name: f for f in self._files(profile, self.routed(), fd)}
        render.Rendered(proxy_dir / new_config, files["litellm.yaml"].text).write()
        compose = self._compose(fd, (old.litellm_port, new_port))
        # docker compose reads the file: both LiteLLMs in it while they overlap (written back to one below)
        render.Rendered(proxy_dir / "compose.yaml", render.dump(compose)).write()
        rt.prepare(proxy_dir / "compose.yaml", compose, self.emit)
        rt.up(PROXY_PROJECT, proxy_dir / "compose.yaml", compose)
        self._wait_litellm(new_port, new_name)
        files["haproxy.cfg"].write()
        self.reload(Path(fd.socket_path))
        self.rig.state.update(proxy=ProxyRecord(fd.host, fd.port, new_port, fd.socket_path))
        self._record_applied(load_settings())
        self._enable_routed(self.plan(profile))
        rt.stop_service(PROXY_PROJECT, old_name, timeout_s=120)  # finishes its streams, then exits
        render.Rendered(proxy_dir / "compose.yaml", render.dump(self._compose(fd, (new_port,)))).write()

    def _enable_routed(self, pl: ProxyPlan) -> None:
        """Enable the routed profile's aliases that the config just written (plan `pl`) sends to its engines. An
        alias the profile being started serves on another port points at that engine now (not started yet): it
        stays disabled as the file has it, so requests take the fallback or wait, until `route`."""
        routed = self.routed()
        if routed is None:
            return
        engines = [SimpleNamespace(aliases=[a for a in e.aliases if pl.alias_port.get(a) == e.port])
                   for e in routed.engines]
        self.enable(SimpleNamespace(name=routed.name, engines=engines))

    # -- routing ---------------------------------------------------------------------------------------
    def enable(self, profile: Profile) -> None:
        """Send the profile's aliases to its engines (those the running config has: before a reload, requests held
        for them go now, in the worker that holds them; the profile being started may lack some)."""
        sock = self._sock()
        if sock is None:
            return
        for e in profile.engines:
            for a in e.aliases:
                try:
                    for b in (backend_name(a), backend_name(a) + "_full", "engine_" + backend_name(a)):
                        frontdoor.set_state(sock, b, "ready")
                except StackError:  # not in the config now
                    continue
                frontdoor.admin(sock, f"set server {backend_name(a)}/local health up")  # the checked one

    def drain(self, profile: Profile | None) -> None:
        """New requests for the profile's aliases go to their fallbacks; requests in flight finish. An alias the
        running config no longer has (the profile being started does not serve it) gets no new request anyway:
        nothing to drain, nothing to warn about."""
        sock = self._sock()
        if sock is None or profile is None:
            return
        for e in profile.engines:
            for a in e.aliases:
                # streams, whole responses, and LiteLLM's way to the engine (its fallback path must not send new
                # requests to an engine that is about to stop either)
                for b in (backend_name(a), backend_name(a) + "_full", "engine_" + backend_name(a)):
                    try:
                        frontdoor.set_state(sock, b, "drain")
                    except frontdoor.NoSuchServer:
                        continue
                    except StackError as exc:
                        if "No such" not in exc.message:  # an alias the new config already dropped: nothing to drain
                            self.emit("warn", f"could not drain {a}: {exc.message}")

    def route(self, profile: Profile) -> None:
        """Point the front door at `profile`'s engines (they are healthy): new config, seamless reload, enable."""
        self.rig.state.update(routed=ProfileRef.of(profile))
        fd = self.settings(profile)
        cfg = [f for f in self._files(profile, profile, fd) if f.path.name == "haproxy.cfg"][0]
        if not cfg.same_text():
            self.enable(profile)  # held requests stay with the worker that holds them: release them there
            cfg.write()
            self.reload(Path(fd.socket_path))
        self.enable(profile)

    def reload(self, sock: Path) -> None:
        """HAProxy re-reads its config in a new worker; connections in flight stay on the old one."""
        before = frontdoor.worker_pid(sock)
        self.rig.proxy_runtime.signal(PROXY_PROJECT, "frontdoor", "SIGUSR2")
        frontdoor.wait_ready(sock, timeout_s=15, not_pid=before)

    # -- LiteLLM ---------------------------------------------------------------------------------------
    def litellm_service_name(self) -> str:
        """The service name of the LiteLLM in service now (for its logs)."""
        proxy = self.rig.state.load().proxy
        return litellm_service(proxy.litellm_port, proxy.port)[0] if proxy else "litellm"

    def wait_ready(self, timeout_s: float = 180.0) -> None:
        """Block until the proxy answers its liveness probe through the front door (LiteLLM needs ~6 s)."""
        proxy = self.rig.state.load().proxy
        if proxy:
            self._wait(f"http://127.0.0.1:{proxy.port}/health/liveliness", ["frontdoor", self.litellm_service_name()],
                       timeout_s)

    def _wait_litellm(self, port: int, service: str, timeout_s: float = 180.0) -> None:
        self._wait(f"http://127.0.0.1:{port}/health/liveliness", [service], timeout_s)

    def _wait(self, url: str, services: list[str], timeout_s: float) -> None:
        rt = self.rig.proxy_runtime
        t0 = time.time()
        with http.client(timeout_s=2.0) as c:
            while True:
                if http.get(c, url).ok:
                    if time.time() - t0 > 1:
                        self.emit("info", f"the proxy is ready ({time.time() - t0:.1f} s)")
                    return
                dead = [s for s in rt.states(PROXY_PROJECT) if s.service in services and
                        (s.status in ("exited", "dead") or s.restarts > 0)]
                if dead or time.time() - t0 > timeout_s:
                    svc = dead[0].service if dead else services[-1]
                    lines = list(rt.logs(PROXY_PROJECT, svc, tail=30))
                    tail = [secrets.redact(ln) for ln in lines if ln.strip()][-6:]
                    raise StackError(f"the proxy ({svc}) did not start" + (
                        f" (exit code {dead[0].exit_code})" if dead else f" within {timeout_s:.0f} s"),
                        "its last log lines: " + " | ".join(tail) if tail else "`appliance logs proxy`")
                if int(time.time() - t0) % 5 == 0 and time.time() - t0 >= 1:  # a line every 5 s, not 2 a second
                    self.emit("wait", f"waiting for the proxy ({time.time() - t0:.0f} s)")
                time.sleep(0.5)

    def stop(self) -> None:
        self.rig.proxy_runtime.down(PROXY_PROJECT, self.rig.rendered / "proxy" / "compose.yaml", timeout_s=10)
        self.rig.hosted.stop()
        (self.rig.rendered / "proxy" / APPLIED).unlink(missing_ok=True)

