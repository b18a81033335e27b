"""Keeping the rig what the owner set: `apply` (edits of the running profile, engine by engine, with the same drain
as a switch) and `restore` (after a reboot, a docker restart, a killed front door or an interrupted command).

Both work from what runs now: the profile file as it was when its engines started is kept next to the state
(`running/<name>.yaml`), so an edit can be compared with it and rolled back to it.
"""

from __future__ import annotations

import time
from pathlib import Path
from types import SimpleNamespace

from appliance.errors import ApplianceError, StackError
from appliance.profile import Profile, load_profile
from appliance.stack.events import StartResult
from appliance.stack.follow import follow_start
from appliance.stack.state import ProfileRef


def keep_running_copy(stack, profile: Profile) -> None:
    """The profile as its engines run now (what `apply` compares an edit with, and rolls back to)."""
    if not profile.source_file:
        return
    d = stack.rig.dir / "running"
    d.mkdir(parents=True, exist_ok=True)
    try:
        text = Path(profile.source_file).read_text()
    except OSError:
        return
    tmp = d / f"{profile.name}.yaml.tmp"
    tmp.write_text(text)
    tmp.replace(d / f"{profile.name}.yaml")


def running_copy(stack, name: str) -> Profile | None:
    path = stack.rig.dir / "running" / f"{name}.yaml"
    try:
        return load_profile(path) if path.exists() else None
    except ApplianceError:
        return None


def _services(stack, profile: Profile) -> dict:
    from appliance.render.compose import render_engine_project

    return render_engine_project(profile, stack.rig.render_settings(drain_s=stack.drain_s))["services"]


def apply(stack, profile: Profile, *, timeout_s: float, stall_s: float, drain_s: float) -> StartResult:
    """Restart only the engines whose service changed, one at a time: drain its aliases, let its requests finish,
    start it with the new settings, route it again. A failed engine is started again as it was."""
    state = stack.rig.state.load()
    if state.active is None or state.active.name != profile.name or \
            stack.project(profile.name) not in stack.rig.runtime.projects():
        raise StackError(f"{profile.name} is not running", f"`appliance up {profile.name}` starts it")
    old = running_copy(stack, profile.name) or stack.active_profile()
    with stack.rig.lock():
        stack._preflight(profile, False, switching=old)
        old_svc = _services(stack, old) if old else {}
        new_svc = _services(stack, profile)
        if set(old_svc) != set(new_svc):
            stack.emit("info", f"{profile.name}: engines added or removed — restarting the whole profile")
            return stack._replace(old, profile, timeout_s, stall_s, drain_s)
        changed = [e for e in profile.engines if old_svc.get(e.label) != new_svc[e.label]]
        stack.front_door.ensure(profile)
        power_changed = old is None or old.power_limit_w != profile.power_limit_w or old.gpus != profile.gpus
        if not changed:
            if power_changed:
                stack.power.apply(profile)
            stack.rig.state.update(active=ProfileRef.of(profile))
            keep_running_copy(stack, profile)
            stack.emit("done", f"{profile.name}: nothing to restart" + (" (power limits applied)" if power_changed
                                                                        else ""))
            return StartResult(profile.name, True, {})
        stack.power.probe(profile)
        for i, e in enumerate(changed):
            result = _restart_engine(stack, profile, old, e, timeout_s, stall_s, drain_s,
                                     power=power_changed and i == 0)
            if not result.ok:
                return result
        stack.rig.state.update(active=ProfileRef.of(profile))
        return stack._started(profile, StartResult(profile.name, True, {}))


def _restart_engine(stack, profile, old, engine, timeout_s, stall_s, drain_s, *, power: bool) -> StartResult:
    project = stack.project(profile.name)
    one = SimpleNamespace(name=profile.name, engines=[engine])
    stack.emit("info", f"applying {profile.name}: draining {engine.label} (requests in flight finish, up to "
                       f"{drain_s:.0f} s), then starting it with the new settings")
    stack.front_door.drain(one)
    _stop_one(stack, project, engine.label, drain_s)
    if power:
        stack.power.apply(profile)
    result = _start_one(stack, profile, one, timeout_s, stall_s)
    if result.ok:
        stack.front_door.enable(one)
        return result
    stack._report_failure(result)
    back = next((e for e in (old.engines if old else ()) if e.label == engine.label), None)
    if back is None:
        return result
    stack.emit("rollback", f"starting {engine.label} again as it was", to=profile.name, failed=engine.label)
    _stop_one(stack, project, engine.label, 10)
    if power:
        stack.power.apply(old)
    again = _start_one(stack, old, SimpleNamespace(name=old.name, engines=[back]), timeout_s, stall_s)
    if again.ok:
        stack.front_door.enable(SimpleNamespace(name=old.name, engines=[back]))
    result.rolled_back_to, result.rollback_failed = old.name, not again.ok
    return result


def _stop_one(stack, project: str, service: str, drain_s: float) -> None:
    rt = stack.rig.runtime
    rt.stop_service(project, service, timeout_s=int(drain_s) + 15)
    deadline = time.time() + drain_s + 20
    while time.time() < deadline:
        st = {s.service: s for s in rt.states(project)}.get(service)
        if st is None or not st.alive or st.status == "exited":
            return
        time.sleep(0.2)


def _start_one(stack, profile: Profile, one, timeout_s: float, stall_s: float) -> StartResult:
    """Render and `up` the whole project (the runtime leaves unchanged, running services alone), follow `one`."""
    return stack._start(profile, timeout_s, stall_s, follow=one)


def restore(stack, *, timeout_s: float, stall_s: float) -> list[str]:
    """The rig as the owner set it: the active profile's power limits (NVML forgets them at a reboot), the front
    door running with its engines enabled, the engines running — started again when they are gone, the last good
    profile when the active one cannot start; an interrupted start finished or rolled back."""
    done: list[str] = []
    state = stack.rig.state.load()
    profile = stack.active_profile() or (running_copy(stack, state.active.name) if state.active else None)
    if profile is None:
        if state.proxy is not None:
            stack.front_door.ensure(None)
            done.append("front door running (no profile is active)")
        return done
    with stack.rig.lock():
        stack.power.apply(profile)
        done.append(f"power limits of {profile.name} applied")
        stack.front_door.ensure(profile)
        done.append("front door running")
        project = stack.project(profile.name)
        states = {s.service: s for s in stack.rig.runtime.states(project)}
        alive = all(states.get(e.label) is not None and states[e.label].alive for e in profile.engines)
        if not alive or state.starting:
            stack.emit("info", f"{profile.name}: engines " + ("interrupted while starting" if alive else
                                                              "not running") + " — starting them")
            stack.rig.state.update(starting=profile.name)
            result = stack._start(profile, timeout_s, stall_s)
            stack.rig.state.update(starting=None)
            if not result.ok:
                stack._report_failure(result)
                back = stack._load(state.last_good) if state.last_good and state.last_good.name != profile.name \
                    else None
                stack._stop(profile.name, timeout_s=10)
                if back is None:
                    stack.rig.state.update(active=None)
                    stack.power.restore()
                    raise StackError(f"{profile.name} does not start: {result.reason}",
                                     "`appliance logs`; `appliance up PROFILE` with another profile")
                stack.rig.state.update(active=ProfileRef.of(back))
                stack.power.apply(back)
                again = stack._start(back, timeout_s, stall_s)
                if not again.ok:
                    stack.rig.state.update(active=None)
                    raise StackError(f"neither {profile.name} nor the last good {back.name} starts",
                                     "`appliance logs`")
                profile = back
                done.append(f"rolled back to {back.name}")
            done.append(f"engines of {profile.name} started")
        else:
            follow_start(stack.rig.runtime, project, profile, stack.emit, t0=time.time(), timeout_s=timeout_s,
                         stall_s=stall_s)
        stack._started(profile, StartResult(profile.name, True, {}))
        done.append(f"{', '.join(a for e in profile.engines for a in e.aliases)} served by {profile.name} again")
    return done


def warnings(stack) -> list[str]:
    """Things the owner should know before anything else: limits left behind by a crash (only those that still
    differ from the owner's: a limit back at its original is nothing to warn about), an interrupted start, and
    settings.yaml edited since the front door took it (the door does not re-read it by itself)."""
    out = []
    state = stack.rig.state.load()
    try:
        running = stack.rig.runtime.projects()
    except ApplianceError:
        running = []
    if state.power_saved and (state.active is None or stack.project(state.active.name) not in running):
        differ = _limits_changed(stack, state.power_saved)
        if differ:
            lims = ", ".join(f"GPU {k}: {state.power_saved[k]:.0f} W" for k in sorted(differ))
            out.append(f"power limits changed by an earlier run are still applied (originals: {lims}); "
                       "`appliance down` restores them")
    if state.starting:
        out.append(f"an earlier start of {state.starting} did not finish (the appliance was interrupted); "
                   "`appliance restore` finishes it (or rolls back to the last good profile)")
    try:
        drift = stack.front_door.drift()
    except ApplianceError as exc:
        drift = f"settings.yaml: {exc.message}" if state.proxy else None
    if drift and state.proxy:
        out.append(drift)
    return out


def _limits_changed(stack, saved: dict) -> list[int]:
    """The GPUs whose limit no longer equals the saved original (all saved ones when the limits cannot be
    read)."""
    try:
        gpus = stack.rig.gpus()
        now = {i: gpus.read(i).power_limit_w for i in saved if i < gpus.count()}
    except ApplianceError:
        now = {}
    return [i for i, w in saved.items() if now.get(i) is None or abs(now[i] - w) > 0.5]
