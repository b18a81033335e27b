"""`up`, `switch`, `down`, `status`, `logs`: the running rig."""

from __future__ import annotations

import json
import sys

from appliance.cli.common import (
    EventPrinter,
    _fmt,
    _print_endpoint_hint,
    _rig,
    _start_result,
)


def _say_rig(stack, args) -> None:
    """Which rig a changing command acts on, said once (it may be the remembered one)."""
    where = "local processes" if stack.rig.runtime_kind == "process" else "docker"
    print(f"rig: {stack.rig.label} ({where}) — state in {stack.rig.dir}",
          file=sys.stderr if getattr(args, "json", False) else sys.stdout)


def _advice(profile, args) -> None:
    """What vLLM would warn about at start, said once before anything changes; --strict refuses on it."""
    from appliance.engine_checks import blocking, check_engines, print_checks
    from appliance.errors import ApplianceError

    checks = check_engines(profile)
    if any(c.advice or c.warning for c in checks):
        print_checks(checks, sys.stderr if getattr(args, "json", False) else sys.stdout)
    refused = blocking(checks) if getattr(args, "strict", False) else []
    if refused:
        raise ApplianceError(f"--strict: {profile.name} has {len(refused)} advice item(s): "
                             + "; ".join(a.rule for a in refused), "apply each fix above, or drop --strict")


def cmd_up(args) -> int:
    from appliance.profile import load_profile
    from appliance.stack import Stack

    profile = load_profile(args.profile)
    stack = Stack(_rig(args, remember=True), EventPrinter(sys.stderr if args.json else sys.stdout))
    _say_rig(stack, args)
    _advice(profile, args)
    for w in stack.warnings():
        stack.emit("warn", w)
    result = stack.up(profile, force=args.force, timeout_s=args.timeout, lan=args.lan)
    if result.ok and not args.json:
        _print_endpoint_hint(stack)
    return _start_result(result, args)


def cmd_switch(args) -> int:
    from appliance.profile import load_profile
    from appliance.stack import Stack

    profile = load_profile(args.profile)
    stack = Stack(_rig(args, remember=True), EventPrinter(sys.stderr if args.json else sys.stdout),
                  drain_s=int(args.drain))
    _say_rig(stack, args)
    _advice(profile, args)
    from appliance.routes import UNCHANGED

    changes = route_lines(stack, profile)
    for line in changes:
        print(line if line == UNCHANGED else f"routes: {line}", file=sys.stderr if args.json else sys.stdout)
    result = stack.switch(profile, force=args.force, timeout_s=args.timeout, lan=args.lan)
    return _start_result(result, args, route_changes=[c for c in changes if c != UNCHANGED])


def route_lines(stack, profile) -> list[str]:
    """What the switch changes about where requests go (the TUI's switch dialog says the same): from what the
    running door serves to what `profile` under settings.yaml will. [] when the plans cannot be made (the switch
    itself names the mistake)."""
    from appliance import routes
    from appliance.errors import ApplianceError

    try:
        old_pl = stack.front_door.running_plan()[0]
        old = routes.alias_routes(old_pl, stack.front_door.serving()) if old_pl.profile else {}
        return routes.describe(routes.route_changes(old, routes.alias_routes(stack.front_door.plan(profile),
                                                                             profile)))
    except ApplianceError:
        return []


def cmd_down(args) -> int:
    from appliance.stack import Stack

    stack = Stack(_rig(args), EventPrinter())
    _say_rig(stack, args)
    stopped = stack.down(all_=args.all)
    if not stopped and not args.all:
        print("nothing was running")
    return 0


def cmd_status(args) -> int:
    """The rig now. With --json, stdout is JSON whatever happens (an `error` field and a non-zero exit when the
    state cannot be read; the human message goes to stderr)."""
    from appliance.errors import ApplianceError

    try:
        return _status(args)
    except ApplianceError as exc:
        if args.json:
            print(json.dumps({"ok": False, "error": exc.message, "hint": exc.hint}, indent=2))
        raise


def _status(args) -> int:
    import time

    from appliance.doctor import stale_active
    from appliance.stack import Stack
    from appliance.telemetry import Sampler

    stack = Stack(_rig(args))
    sampler = Sampler(stack)
    try:
        sampler.sample()
        time.sleep(max(0.2, args.window))
        snap = sampler.sample()
    finally:
        sampler.close()
    from appliance.cli.agents import print_routes, routes_by_alias

    stale = stale_active(stack.rig)
    plan, _drift = stack.front_door.running_plan()  # what the door serves; the drift is in snap.warnings
    spend = snap.proxy.spend_usd if snap.proxy else None
    if args.json:
        print(json.dumps({**snap.to_dict(), "ok": stale is None, "state_problem": stale,
                          "routes": routes_by_alias(plan), "hosted_spend_today_usd": spend or {},
                          "hosted_spend_known": spend is not None}, indent=2, default=str))
        return 0
    rig = stack.rig.label
    proxy = f"proxy {snap.proxy.url} ({snap.proxy.status})" if snap.proxy else "proxy not started"
    shown = f"{snap.profile} — NOT RUNNING" if stale else (snap.profile or "(none running)")
    print(f"{rig} · profile {shown} · {proxy}")  # the sampler's warnings below say why and what to do
    for w in snap.warnings:
        print(f"! {w}")
    if snap.gpus:
        print(f"\n{'GPU':<4}{'NAME':<27}{'POWER':>8}{'LIMIT':>8}{'TEMP':>8}{'UTIL':>7}{'MEMORY':>19}{'ENERGY':>11}  FLAGS")
        for g in snap.gpus:
            mem = (f"{(g.memory_used_bytes or 0) / 2**30:.1f}/{(g.memory_total_bytes or 0) / 2**30:.1f} GiB"
                   if g.memory_total_bytes else "–")
            energy = _fmt(g.energy_j / 1000 if g.energy_j is not None else None, "kJ", 1)
            print(f"{g.index:<4}{g.name[:26]:<27}{_fmt(g.power_w, 'W'):>8}{_fmt(g.power_limit_w, 'W'):>8}"
                  f"{_fmt(g.temperature_c, '°C'):>8}{_fmt(g.utilization_pct, '%'):>7}{mem:>19}{energy:>11}  "
                  f"{', '.join(g.throttle_reasons)}")
    if snap.engines:
        print(f"\n{'ENGINE':<16}{'STATUS':<11}{'HEALTH':<10}{'GEN':>12}{'PROMPT':>12}{'RUN':>5}{'WAIT':>5}"
              f"{'KV':>6}{'TTFT p50/p95':>18}{'MTP acc':>9}")
        for e in snap.engines:
            s = e.stats
            ttft = (f"{s.ttft_p50_s * 1000:.0f}/{s.ttft_p95_s * 1000:.0f} ms" if s.ttft_p50_s is not None
                    and s.ttft_p95_s is not None else "–")
            acc = _fmt(s.spec_acceptance * 100 if s.spec_acceptance is not None else None, "%")
            kv = _fmt(s.kv_usage * 100 if s.kv_usage is not None else None, "%")
            print(f"{e.name[:15]:<16}{e.status:<11}{e.health:<10}{_fmt(s.generation_tps, 'tok/s', 1):>12}"
                  f"{_fmt(s.prompt_tps, 'tok/s', 1):>12}{_fmt(s.running, ''):>5}{_fmt(s.waiting, ''):>5}{kv:>6}"
                  f"{ttft:>18}{acc:>9}")
    if snap.proxy and (snap.proxy.requests_local or snap.proxy.requests_fallback or snap.proxy.errors):
        print(f"\n{'ALIAS':<16}{'LOCAL':>10}{'FALLBACK':>10}")
        for alias in sorted(set(snap.proxy.requests_local) | set(snap.proxy.requests_fallback)):
            print(f"{alias:<16}{snap.proxy.requests_local.get(alias, 0):>10.0f}"
                  f"{snap.proxy.requests_fallback.get(alias, 0):>10.0f}")
        print(f"proxy errors: {snap.proxy.errors:.0f} (requests since the proxy started)")
    if snap.proxy:
        print()
        print_routes(plan, stack.front_door.serving(), spend, with_spend=True)
    if snap.tokens_per_joule is not None:
        print(f"\nefficiency: {snap.tokens_per_joule:.3f} tok/J · {snap.watts_per_tps:.2f} W per tok/s "
              f"({_fmt(snap.generation_tps, 'tok/s', 1)} at {_fmt(snap.power_w, 'W')})")
    return 0


def cmd_logs(args) -> int:
    from appliance.stack import Stack

    stack = Stack(_rig(args))
    for line in stack.logs(args.engine, follow=args.follow, tail=args.tail):
        print(line, flush=args.follow)
    return 0
