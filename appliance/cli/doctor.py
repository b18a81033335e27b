"""`appliance doctor`: is the rig's record sound? If not, rebuild it from the live rig (appliance/doctor.py) and
say what was recovered and what was not."""

from __future__ import annotations


def cmd_doctor(args) -> int:
    from appliance.cli.common import _rig
    from appliance.doctor import examine, stale_active

    rig = _rig(args)
    diag = examine(rig, repair=not args.dry_run)
    if diag.state_error is None:
        st = diag.state
        stale = stale_active(rig, st)
        if stale:  # readable, but not the truth: say so, and what to do (the owner decides: up or down)
            print(f"state: STALE ({rig.state.path}) — {stale}")
            return 1
        print(f"state: fine ({rig.state.path})")
        print(f"  active: {st.active.name if st.active else 'none'}; front door: "
              f"{f'{st.proxy.host}:{st.proxy.port}' if st.proxy else 'not recorded'}; original power limits kept: "
              + (", ".join(f"GPU {i} {w:.0f} W" for i, w in sorted(st.power_saved.items())) or "none"))
        sick = unhealthy_engines(rig) if st.active else []
        for name, health in sick:  # the record is true, the engine is not well: a fine record is not a fine rig
            print(f"  ! engine {name}: {health} — not healthy (`appliance status` shows it live; "
                  f"`appliance logs {name}` says why; `appliance switch {st.active.name}` restarts it)")
        return 1 if sick else 0
    print(f"state: DAMAGED — {diag.state_error}")
    print("rebuilt from the live rig:" if not args.dry_run else "would rebuild from the live rig:")
    for line in diag.recovered:
        print(f"  ✓ {line}")
    for line in diag.lost:
        print(f"  ✗ {line}")
    if diag.kept:
        print(f"the damaged file is kept as {diag.kept}")
    if args.dry_run:
        print("nothing written (--dry-run); run `appliance doctor` to write it")
    return 0


def unhealthy_engines(rig) -> list[tuple[str, str]]:
    """(engine, health) for each engine of the running profile that does not answer its health check as a
    healthy one does (hung, stalled, failing, down …), probed once the way `status` does."""
    from appliance.stack import Stack
    from appliance.telemetry import Sampler

    sampler = Sampler(Stack(rig))
    try:
        snap = sampler.sample()
    finally:
        sampler.close()
    return [(e.name, e.health) for e in snap.engines if e.health not in ("healthy", "loading", "draining")]
