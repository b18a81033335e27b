"""`appliance doctor`: when the rig's state file is damaged, rebuild what can be known from the live rig.

Why: every other command refuses a corrupt state.json (stack/state.py) instead of starting from an empty record,
which would forget the owner's power limits and the front door. Doctor is the way out: it looks at what runs
(engine projects, the front door and where it listens, the GPUs), writes a new record from that, keeps the
damaged file beside it, and says plainly what it could not recover (the rollback target, the previous profile).
The owner's original power limits come from their own file (power-originals.json), which a damaged state.json
does not touch.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from appliance.render.compose import PROJECT_PREFIX
from appliance.render.litellm import PROXY_PROJECT
from appliance.stack.state import ProfileRef, ProxyRecord, RigState, StateError


@dataclass
class Diagnosis:
    state_error: str | None  # why the state file cannot be read (None: it is fine)
    state: RigState | None  # the record: the file's, or the rebuilt one
    recovered: list[str] = field(default_factory=list)  # what the rebuilt record knows, and from where
    lost: list[str] = field(default_factory=list)  # what could not be recovered, with what it means
    kept: str | None = None  # where the damaged file went (after repair)


def _profile_ref(name: str) -> ProfileRef:
    from appliance.profile import load as profile_load

    try:
        return ProfileRef(name, str(profile_load.resolve(name)))
    except Exception:  # noqa: BLE001 — a profile that is gone is still the one that runs
        return ProfileRef(name)


def _front_door(rig) -> tuple[ProxyRecord | None, str]:
    """Where the running front door listens, from the config it was started with."""
    alive = {s.service for s in rig.proxy_runtime.states(PROXY_PROJECT) if s.alive}
    if "frontdoor" not in alive:
        return None, "the front door is not running"
    try:
        cfg = (rig.rendered / "proxy" / "haproxy.cfg").read_text()
    except OSError:
        return None, "the front door runs but its config (rendered/proxy/haproxy.cfg) is gone"
    bind = re.search(r"^frontend agents\n\s+bind ([0-9.]+):(\d+)$", cfg, re.M)
    lite = re.search(r"^\s+server litellm 127\.0\.0\.1:(\d+) check", cfg, re.M)
    sock = re.search(r"^\s+stats socket (\S+)", cfg, re.M)
    if not bind:
        return None, "the front door's config names no agents' listener"
    port = int(bind.group(2))
    return ProxyRecord(host=bind.group(1), port=port, litellm_port=int(lite.group(1)) if lite else port + 1,
                       socket=sock.group(1) if sock else None), f"{bind.group(1)}:{port} (its running config)"


def rebuild(rig) -> Diagnosis:
    """A record from the live rig (nothing is written)."""
    recovered: list[str] = []
    lost: list[str] = []
    engines = [p[len(PROJECT_PREFIX):] for p in rig.runtime.projects()
               if p.startswith(PROJECT_PREFIX) and p != PROXY_PROJECT]
    active = None
    if len(engines) == 1:
        active = _profile_ref(engines[0])
        recovered.append(f"active profile: {engines[0]} (its engines run)")
    elif engines:
        lost.append(f"several engine projects run ({', '.join(engines)}): none was recorded as active — stop the "
                    "ones you do not want with `appliance down`, then `appliance up PROFILE`")
    else:
        recovered.append("active profile: none (no engines run)")
    proxy, where = _front_door(rig)
    recovered.append(f"front door: {where}")
    lan = proxy.host == "0.0.0.0" if proxy else None
    try:
        originals = rig.state.originals()
        if originals:
            recovered.append("your original power limits: " + ", ".join(
                f"GPU {i} {w:.0f} W" for i, w in sorted(originals.items())) + f" (from {rig.state.originals_path.name})")
        else:
            recovered.append("your original power limits: none recorded (the appliance changed no limit, or they "
                             "were restored)")
    except StateError as exc:
        originals = {}
        lost.append(f"your original power limits: {exc.message} — set them yourself (`nvidia-smi -pl WATTS`)")
    try:
        gpus = rig.gpus()
        now = ", ".join(f"GPU {i} {gpus.read(i).power_limit_w or 0:.0f} W" for i in range(gpus.count()))
        recovered.append(f"GPUs now: {now or 'none'}")
    except Exception as exc:  # noqa: BLE001 — doctor reports, it does not fail on a broken GPU boundary
        lost.append(f"the GPUs could not be read ({getattr(exc, 'message', exc)})")
    lost.append("the last profile that started fine (rollback target) and the one before it: unknown until the "
                "next successful `up`/`switch`")
    state = RigState(active=active, last_good=active, routed=active if proxy and active else None,
                     power_saved=originals, lan=lan, proxy=proxy)
    return Diagnosis(state_error=None, state=state, recovered=recovered, lost=lost)


def stale_active(rig, state: RigState | None = None) -> str | None:
    """What is wrong when the record reads fine but names an active profile whose engines do not run (the stack
    was stopped behind the appliance's back, the containers are gone, the machine rebooted): the sentence `status`
    and `doctor` print instead of trusting the record. None when the record is true, a start is under way (its
    engines may not exist yet; an interrupted start is a warning of its own), or the runtime cannot be asked."""
    from appliance.errors import ApplianceError

    state = state if state is not None else rig.state.load()
    if state.active is None or state.starting:
        return None
    name = state.active.name
    try:
        alive = any(s.alive for s in rig.runtime.states(PROJECT_PREFIX + name))
    except ApplianceError:
        return None
    return None if alive else stale_message(name)


def stale_message(name: str) -> str:
    return (f"the state says {name} is active, but its engines are not running; run `appliance restore` (or "
            f"`appliance up {name}`) to start them again, or `appliance down` to clear the record (it restores the "
            "GPUs' power limits)")


def examine(rig, repair: bool = True) -> Diagnosis:
    """Read the state; if it is damaged, rebuild it from the live rig and (with `repair`) write it, keeping the
    damaged file beside the new one."""
    try:
        return Diagnosis(state_error=None, state=rig.state.load())
    except StateError as exc:
        error = exc.message
    diag = rebuild(rig)
    diag.state_error = error
    if repair:
        kept = rig.state.replace_corrupt(diag.state)
        diag.kept = str(kept) if kept else None
    return diag
