"""Following a start: engine logs → phases, /health → ready, runtime state → crashed; silence → stuck.

A real vLLM refuses TCP until it is ready and then answers /health with 200 at once, so a refused or timed-out
probe only means "not yet"; the log says where it is. Nothing here starts or stops anything.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from appliance.diagnose import Diagnosis, diagnose
from appliance.phases import LABELS, PHASES, StartupTracker
from appliance.profile import Profile
from appliance.stack.events import StartResult


def _timelines(trackers: dict[str, StartupTracker], now: float) -> dict[str, list[dict]]:
    return {k: t.timeline(now) for k, t in trackers.items()}


def follow_start(runtime, project: str, profile: Profile, emit: Callable[..., None], *, t0: float,
                 timeout_s: float, stall_s: float, probe: Callable[[str], bool] | None = None,
                 clock: Callable[[], float] = time.time, sleep: Callable[[float], None] = time.sleep) -> StartResult:
    """Until every engine of `profile` is healthy (ok), one crashed, one is silent for `stall_s` (stuck), or
    `timeout_s` passed. `probe(url) → bool` answers whether /health said 200 (injected for tests)."""
    from appliance import http

    client = None
    if probe is None:
        client = http.client(timeout_s=0.5)

        def probe(url: str) -> bool:
            return http.get(client, url).ok
    try:
        return _follow(runtime, project, profile, emit, t0, timeout_s, stall_s, probe, clock, sleep)
    finally:
        if client is not None:
            client.close()


def _follow(runtime, project, profile, emit, t0, timeout_s, stall_s, probe, clock, sleep) -> StartResult:
    trackers = {e.label: StartupTracker(t0) for e in profile.engines}
    cursors: dict[str, dict] = {e.label: {} for e in profile.engines}
    lines: dict[str, list[str]] = {e.label: [] for e in profile.engines}
    last_phase = {e.label: "created" for e in profile.engines}
    base_restarts: dict[str, int] = {}
    last_beat = t0
    for e in profile.engines:
        emit("phase", f"{e.label}: {LABELS['created']}", engine=e.label, phase="created", elapsed_s=0.0)
    while True:
        now = clock()
        states = {s.service: s for s in runtime.states(project)}
        for e in profile.engines:
            tr = trackers[e.label]
            if tr.ready:
                continue
            for ln in runtime.new_lines(project, e.label, cursors[e.label]):
                tr.feed(ln, now)
                lines[e.label].append(ln)
            del lines[e.label][:-400]
            st = states.get(e.label)
            if st is not None:
                base_restarts.setdefault(e.label, st.restarts)
            if st is not None and (st.status in ("exited", "dead", "restarting") or
                                   st.restarts > base_restarts.get(e.label, 0)):
                return StartResult(profile.name, False, _timelines(trackers, now),
                                   diagnose(lines[e.label], st.exit_code,
                                            e.gpu_memory_utilization), e.label, "crashed")
            if probe(f"http://127.0.0.1:{e.port}/health"):
                tr.healthy(clock())
            if tr.current != last_phase[e.label]:  # one event for every phase entered, in order
                for ph in PHASES[PHASES.index(last_phase[e.label]) + 1: PHASES.index(tr.current) + 1]:
                    emit("phase", f"{e.label}: {LABELS[ph]}", engine=e.label, phase=ph,
                         elapsed_s=round(tr.started.get(ph, clock()) - t0, 1), details=list(tr.details[-2:]))
                last_phase[e.label] = tr.current
        if all(t.ready for t in trackers.values()):
            return StartResult(profile.name, True, _timelines(trackers, clock()))
        now = clock()
        if now - t0 > timeout_s:
            slow = [k for k, t in trackers.items() if not t.ready][0]
            diag = Diagnosis(f"{slow} did not become healthy within {timeout_s:.0f} s",
                             "a very large model on a slow disk may need longer: --timeout; `appliance logs` shows "
                             "where it is", tuple(lines[slow][-5:]), "timeout")
            return StartResult(profile.name, False, _timelines(trackers, now), diag, slow, "timeout")
        for k, t in trackers.items():
            if not t.ready and t.silent_for(now) > stall_s:
                diag = Diagnosis(f"{k} is stuck: alive, but no log line and no answer on /health for "
                                 f"{t.silent_for(now):.0f} s", "see `appliance logs " + k + "`; a hung download or a "
                                 "deadlocked NCCL init look like this", tuple(lines[k][-5:]), "stuck")
                return StartResult(profile.name, False, _timelines(trackers, now), diag, k, "stuck")
        if now - last_beat >= 5:
            last_beat = now
            waiting = ", ".join(f"{k}: {LABELS[t.current]} {now - t.started[t.current]:.0f} s"
                                for k, t in trackers.items() if not t.ready)
            emit("wait", f"still starting ({now - t0:.0f} s) — {waiting}", elapsed_s=round(now - t0, 1))
        sleep(0.5)
