"""The `appliance` command. Every TUI action exists here too, with --json where the output is data.

Start-up must stay fast: this module imports only the standard library at the top; each command imports what
it needs (never litellm; textual only for the TUI). User errors print one clear message and exit 2.
"""

from __future__ import annotations

import argparse
import json
import sys

EPILOG = """\
quick start:
  appliance demo                      the whole thing on a simulated rig (no GPU needed)
  appliance profiles                  list profiles with their fit verdict
  appliance check PROFILE --gpu 4090  will it fit? weights, KV cache, concurrency, fixes
  appliance render --all              write compose/ and the proxy config from profiles/
exit codes: 0 ok · 1 did not fit / failed · 2 bad input (the message says what to fix)
"""


def _gpus_from_arg(spec: str | None, needed: int):
    """`--gpu 4090`, `--gpu 3090x4`, `--gpu 24` (GiB) or `--gpu 4090,3090` → fit.GPU list."""
    from appliance import cards
    from appliance.errors import ApplianceError
    from appliance.fit import GPU

    if spec is None:
        return None
    parts = [p for p in spec.split(",") if p.strip()]
    gpus: list = []
    for part in parts:
        part = part.strip()
        count = 1
        low = part.lower()
        if "x" in low and low.rsplit("x", 1)[1].isdigit() and low.rsplit("x", 1)[0]:
            low, n = low.rsplit("x", 1)
            part, count = part[: len(low)], int(n)
        try:
            gib = float(part)
        except ValueError:
            gib = None
        if gib is not None:
            if not 1 <= gib <= 1024:
                raise ApplianceError(f"--gpu {spec}: {gib:g} GiB is not a GPU memory size",
                                     "give GiB between 1 and 1024, or a card name like 4090")
            card_gpus = [GPU(0, f"{gib:g} GiB GPU", int(gib * cards.GIB))] * count
        else:
            card = cards.lookup(part)
            if card is None:
                raise ApplianceError(f"--gpu {spec}: unknown card `{part}`",
                                     "one of " + ", ".join(cards.CARDS) + ", or a size in GiB like 24")
            card_gpus = [GPU(0, card.name, card.memory_bytes)] * count
        gpus.extend(card_gpus)
    if len(gpus) == 1 and needed > 1:
        gpus = gpus * needed
    return [GPU(i, g.name, g.memory_bytes) for i, g in enumerate(gpus)]


def _machine_gpus():
    """GPUs from NVML, or None when there is no NVIDIA driver here."""
    from appliance.errors import GPUError
    from appliance.fit import GPU

    try:
        from appliance.gpu.nvml import NvmlGPUs

        nv = NvmlGPUs()
    except (GPUError, ImportError):
        return None
    try:
        return [GPU(r.index, r.name, r.memory_total_bytes or 0, r.memory_used_bytes or 0) for r in nv.read_all()]
    finally:
        nv.close()


def _profile_needs(profile) -> int:
    if profile.gpus != "all":
        return max(profile.gpus) + 1
    return sum(e.gpu_count for e in profile.engines)


def _gpus_for(profile, spec: str | None):
    from appliance import cards
    from appliance.errors import ApplianceError
    from appliance.fit import GPU

    given = _gpus_from_arg(spec, _profile_needs(profile))
    if given is not None:
        return given, "--gpu"
    found = _machine_gpus()
    if found:
        return found, "NVML"
    if profile.card:
        card = cards.lookup(profile.card)
        return [GPU(i, card.name, card.memory_bytes) for i in range(_profile_needs(profile))], \
            f"the profile's card ({profile.card}; no NVIDIA GPU visible here)"
    raise ApplianceError("no NVIDIA GPU is visible here (NVML not available)",
                         "say which card to check against: --gpu 4090, --gpu 3090x4 or --gpu 24 (GiB)")


def _gib(b: int | float) -> str:
    return f"{b / 2**30:.2f} GiB"


def _print_fit(report, profile, source: str) -> None:
    print(f"profile {profile.name}" + (f" — {profile.description}" if profile.description else ""))
    print(f"GPUs from {source}:")
    for g in report.gpus:
        print(f"  GPU {g.index}  {g.name:<28} {_gib(g.memory_bytes):>11}   engines: {', '.join(g.engines) or '-'}")
    for e in report.engines:
        print()
        print(f"engine {e.engine}: {e.model}  (facts from {e.model_source})")
        print(f"  GPUs {', '.join(map(str, e.gpus)) or '-'}, tensor parallel {e.tensor_parallel_size}")
        rows = [
            ("weights", f"{_gib(e.weights_bytes_per_gpu)} per GPU ({_gib(e.weights_bytes)} in all)"),
            ("memory budget", f"{_gib(e.budget_bytes_per_gpu)} per GPU (gpu_memory_utilization × total)"),
            ("overhead", f"{_gib(e.overhead_bytes_per_gpu)} per GPU (CUDA context, activations, graphs; estimate)"),
            ("KV cache", f"{_gib(e.available_kv_bytes)} per GPU → {e.kv_tokens:,} tokens"),
            ("KV per token", f"{e.kv_bytes_per_token / 1024:.1f} KiB per GPU (kv_cache_dtype {e.kv_dtype})"),
            (f"KV for {e.max_model_len:,} × {e.max_num_seqs}",
             f"{_gib(e.kv_cache_bytes)} per GPU (max_model_len × max_num_seqs)"),
            ("at max_model_len", f"{e.max_concurrency_at_max_len:.1f} requests at once"),
        ]
        for k, v in rows:
            print(f"  {k:<24} {v}")
        for n in e.notes:
            print(f"  note: {n}")
        print(f"  verdict: {e.verdict}")
        if e.fixes:
            print(f"  fix: {', '.join(e.fixes)}")
    for p in report.problems:
        print(f"problem: {p}")
    print()
    print("FITS" if report.fits else "DOES NOT FIT")


def cmd_check(args) -> int:
    from appliance.fit import fit_profile
    from appliance.profile import load_profile

    profile = load_profile(args.profile)
    gpus, source = _gpus_for(profile, args.gpu)
    report = fit_profile(profile, gpus)
    if args.json:
        out = report.to_dict()
        out["gpu_source"] = source
        print(json.dumps(out, indent=2))
    else:
        _print_fit(report, profile, source)
    return 0 if report.fits else 1


def cmd_profiles(args) -> int:
    from appliance.errors import ApplianceError
    from appliance.fit import fit_profile
    from appliance.profile import available_files, load_profile

    rows = []
    for path in available_files():
        try:
            p = load_profile(path)
        except ApplianceError as exc:
            rows.append({"name": path.stem, "file": str(path), "error": exc.message.splitlines()[0]})
            continue
        try:
            gpus, source = _gpus_for(p, args.gpu)
            report = fit_profile(p, gpus)
            verdict = "fits" if report.fits and all(e.full_concurrency_fits for e in report.engines) else (
                "fits, KV-limited" if report.fits else "does not fit")
        except ApplianceError as exc:
            verdict, source = "unknown", exc.message
        rows.append({
            "name": p.name, "file": str(path), "description": p.description,
            "models": [e.model for e in p.engines], "aliases": [a for e in p.engines for a in e.aliases],
            "gpus": p.gpus if p.gpus == "all" else list(p.gpus), "card": p.card,
            "power_limit_w": p.power_limit_w, "fit": verdict, "fit_against": source})
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    if not rows:
        print("no profiles found")
        return 0
    print(f"{'PROFILE':<28} {'MODEL':<38} {'GPUS':<10} {'POWER':>7}  FIT")
    for r in rows:
        if "error" in r:
            print(f"{r['name']:<28} invalid: {r['error']}")
            continue
        gpus = "all" if r["gpus"] == "all" else ",".join(map(str, r["gpus"]))
        pw = r["power_limit_w"]
        power = "-" if pw is None else (f"{pw} W" if isinstance(pw, int) else "per GPU")
        model = r["models"][0] + (f" +{len(r['models']) - 1}" if len(r["models"]) > 1 else "")
        print(f"{r['name']:<28} {model[:38]:<38} {gpus:<10} {power:>7}  {r['fit']}")
    return 0


def cmd_render(args) -> int:
    from pathlib import Path

    from appliance import paths, render
    from appliance.errors import ApplianceError
    from appliance.profile import available_files, load_profile
    from appliance.render.compose import RenderSettings

    if not args.all and not args.profile:
        raise ApplianceError("render needs a PROFILE or --all", "e.g. `appliance render --all`")
    out = Path(args.out) if args.out else paths.COMPOSE_DIR
    all_profiles = [load_profile(f) for f in available_files()] if args.all else None
    targets = all_profiles if args.all else [load_profile(args.profile)]
    proxy_set = all_profiles or _proxy_profiles(targets[0])
    settings = RenderSettings(sim=args.sim)
    files = []
    for p in targets:
        files += render.render_engine_files(p, out, settings)
    files += render.render_proxy_files(proxy_set, out)
    stale = [f for f in files if not f.is_current()]
    if args.check:
        for f in stale:
            print(f"stale: {f.path}")
        return 1 if stale else 0
    for f in files:
        f.write()
        print(f"{'wrote' if f in stale else 'unchanged'} {f.path}")
    return 0


def _proxy_profiles(extra):
    """The proxy is rendered from every profile that loads (it outlives switches), plus `extra`."""
    from appliance.errors import ApplianceError
    from appliance.profile import available_files, load_profile

    out = {}
    for f in available_files():
        try:
            p = load_profile(f)
        except ApplianceError:
            continue
        out[p.name] = p
    out[extra.name] = extra
    return list(out.values())



# --------------------------------------------------------------------------------------------- the running rig


def _rig(args):
    from appliance.stack import Rig

    return Rig(sim=args.sim, runtime=args.runtime)


class EventPrinter:
    """Progress of long operations on the terminal: one line per step, a live line while waiting."""

    def __init__(self, stream=None):
        import time

        self.stream = stream or sys.stdout
        self.tty = self.stream.isatty()
        self.t0 = time.time()
        self._live = False

    def _clear(self):
        if self._live:
            self.stream.write("\r\033[K")
            self._live = False

    def __call__(self, ev) -> None:
        import time

        el = f"[{time.time() - self.t0:6.1f} s]"
        if ev.kind == "wait":
            if self.tty:
                self._clear()
                self.stream.write(f"{el} … {ev.message}"[: 200])
                self._live = True
                self.stream.flush()
                return
            print(f"{el} … {ev.message}", file=self.stream, flush=True)
            return
        self._clear()
        mark = {"fail": "✗", "rollback": "↺", "done": "✓", "warn": "!", "power": "⚡", "phase": "→"}.get(ev.kind, "·")
        print(f"{el} {mark} {ev.message}", file=self.stream, flush=True)
        if ev.kind == "fail":
            for line in ev.data.get("lines") or []:
                print(f"           │ {line}", file=self.stream)
            if ev.data.get("fix"):
                print(f"           fix: {ev.data['fix']}", file=self.stream, flush=True)
        if ev.kind == "done" and ev.data.get("timelines"):
            for engine, phases in ev.data["timelines"].items():
                steps = " → ".join(f"{p['label']} {p['elapsed_s']:.1f} s" for p in phases if p["phase"] != "ready")
                print(f"           {engine}: {steps}", file=self.stream, flush=True)


def _start_result(result, args) -> int:
    if args.json:
        from dataclasses import asdict

        out = {"profile": result.profile, "ok": result.ok, "reason": result.reason,
               "failed_engine": result.failed_engine, "timelines": result.timelines,
               "diagnosis": asdict(result.diagnosis) if result.diagnosis else None}
        print(json.dumps(out, indent=2))
    return 0 if result.ok else 1


def cmd_up(args) -> int:
    from appliance.profile import load_profile
    from appliance.stack import Stack

    profile = load_profile(args.profile)
    stack = Stack(_rig(args), EventPrinter(sys.stderr if args.json else sys.stdout))
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
    stack = Stack(_rig(args), EventPrinter(sys.stderr if args.json else sys.stdout), drain_s=int(args.drain))
    result = stack.switch(profile, force=args.force, timeout_s=args.timeout, lan=args.lan)
    return _start_result(result, args)


def cmd_down(args) -> int:
    from appliance.stack import Stack

    stack = Stack(_rig(args), EventPrinter())
    stopped = stack.down(all_=args.all)
    if not stopped and not args.all:
        print("nothing was running")
    return 0


def _fmt(v, unit: str, nd: int = 0) -> str:
    if v is None:
        return "–"
    return f"{v:.{nd}f} {unit}" if unit else f"{v:.{nd}f}"


def cmd_status(args) -> int:
    import time

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
    if args.json:
        print(json.dumps(snap.to_dict(), indent=2, default=str))
        return 0
    rig = "simulated rig" if args.sim else "rig"
    proxy = f"proxy {snap.proxy.url} ({snap.proxy.status})" if snap.proxy else "proxy not started"
    print(f"{rig} · profile {snap.profile or '(none running)'} · {proxy}")
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


def _print_endpoint_hint(stack) -> None:
    state = stack.rig.load_state().get("proxy")
    if state:
        print(f"\nagents: OPENAI_BASE_URL=http://127.0.0.1:{state['port']}/v1 — `appliance endpoint` prints the "
              "key and the aliases")



DEMO_PROFILE = "rtx3090x4-qwen35-27b"


def cmd_demo(args) -> int:
    """The whole appliance on a simulated rig: local processes, the real front door, background traffic."""
    from appliance import secrets
    from appliance.load import BackgroundTraffic
    from appliance.profile import load_profile
    from appliance.stack import Rig, Stack

    args.sim, args.runtime = True, "process"
    profile = load_profile(args.profile)
    printer = EventPrinter()
    stack = Stack(Rig(sim=True, runtime="process"), printer)
    print(f"appliance demo: {profile.name} on a simulated rig ({profile.description})")
    print("no GPU, no vLLM image: stand-in engines on simulated GPUs, the real front door (HAProxy + LiteLLM)\n")
    state = stack.rig.load_state()
    if state.get("active") and state["active"] != profile.name and state["active"] in stack.engine_projects():
        result = stack.switch(profile)
    else:
        result = stack.up(profile)
    if not result.ok:
        return 1
    port = stack.rig.load_state()["proxy"]["port"]
    traffic = None
    if not args.no_traffic:
        alias = profile.engines[0].aliases[0]
        traffic = BackgroundTraffic(f"http://127.0.0.1:{port}/v1", secrets.master_key(), alias,
                                    concurrency=args.agents).start()
        print(f"\nbackground traffic: {args.agents} agent(s) streaming through the proxy as `{alias}`")
    if args.tui is None:
        args.tui = sys.stdout.isatty() and sys.stdin.isatty() and not args.duration
    try:
        if args.tui:
            from appliance.tui.app import run_app

            run_app(stack, demo=True)
        else:
            _live_status(stack, traffic, args.duration)
    except KeyboardInterrupt:
        print()
    finally:
        if traffic:
            traffic.stop()
        if args.keep:
            print("\nthe simulated rig keeps running (`appliance down --all --sim --runtime process` stops it)")
        else:
            print("\nstopping the demo …")
            stack.down(all_=True)
    return 0


def _live_status(stack, traffic, duration: float | None) -> None:
    import time

    from appliance.telemetry import Sampler

    sampler = Sampler(stack)
    t_end = time.time() + duration if duration else None
    tty = sys.stdout.isatty()
    print("live numbers (Ctrl-C stops the demo):")
    try:
        while t_end is None or time.time() < t_end:
            snap = sampler.sample()
            parts = []
            for e in snap.engines:
                s = e.stats
                parts.append(f"{e.name}: {e.health}, {_fmt(s.generation_tps, 'tok/s', 1)} gen, "
                              f"{_fmt(s.running, '')} running, KV {_fmt((s.kv_usage or 0) * 100, '%')}")
            power = _fmt(snap.power_w, "W")
            eff = f"{snap.tokens_per_joule:.2f} tok/J" if snap.tokens_per_joule else "– tok/J"
            done = f"requests {traffic.done} ok / {traffic.failed} failed" if traffic else ""
            line = f"{time.strftime('%H:%M:%S')}  {'; '.join(parts)} · GPUs {power} · {eff} · {done}"
            if tty:
                sys.stdout.write("\r\033[K" + line[: 160])
                sys.stdout.flush()
            else:
                print(line, flush=True)
            time.sleep(1.0)
    finally:
        sampler.close()



def cmd_keys(args) -> int:
    from appliance import secrets

    if args.action == "set":
        if not args.provider:
            from appliance.errors import ApplianceError

            raise ApplianceError("`appliance keys set` needs a provider",
                                 "one of " + ", ".join(secrets.PROVIDERS) + ", or an env var name")
        name = secrets.env_name(args.provider)
        if args.stdin or not sys.stdin.isatty():
            value = sys.stdin.readline()
        else:
            import getpass

            value = getpass.getpass(f"{name} (input hidden): ")
        secrets.set_key(name, value)
        print(f"stored {name} in {secrets.secrets_file()} (mode 0600); restart the proxy to use it: "
              "`appliance up` / `switch` do that when the config changes, or `appliance down --all` then `up`")
        return 0
    if args.action == "rm":
        name = secrets.env_name(args.provider)
        print(f"removed {name}" if secrets.remove_key(name) else f"{name} was not in the secrets file")
        return 0
    rows = secrets.status()
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    print(f"secrets file: {secrets.secrets_file()}")
    for r in rows:
        print(f"  {r['name']:<22} {'set (' + r['source'] + ')' if r['set'] else 'not set'}")
    return 0


def cmd_endpoint(args) -> int:
    """What an agent needs: base URL, key, aliases and the model behind each right now."""
    from appliance import secrets
    from appliance.errors import StackError
    from appliance.stack import Rig, Stack

    stack = Stack(Rig(sim=args.sim, runtime=args.runtime))
    state = stack.rig.load_state()
    proxy = state.get("proxy")
    if not proxy:
        raise StackError("the proxy has not been started on this rig", "`appliance up PROFILE` starts it")
    host = "127.0.0.1" if proxy.get("host") in (None, "127.0.0.1", "0.0.0.0") else proxy["host"]
    base = f"http://{host}:{proxy['port']}/v1"
    key = secrets.master_key()
    profile = stack.active_profile()
    aliases: dict[str, dict] = {}
    profiles = stack._proxy_profiles(profile) if profile else stack._proxy_profiles(None)
    for p in profiles:
        for e in p.engines:
            for a in e.aliases:
                aliases.setdefault(a, {"local": None, "fallbacks": list(p.proxy.fallbacks.get(a, ()))})
        for h in p.proxy.hosted:
            aliases.setdefault(h.name, {"local": None, "hosted": h.litellm_model, "fallbacks": []})
    if profile:
        for e in profile.engines:
            for a in e.aliases:
                aliases[a]["local"] = e.model
                aliases[a]["engine"] = e.label
    if args.json:
        print(json.dumps({"base_url": base, "api_key": key, "profile": profile.name if profile else None,
                          "aliases": aliases}, indent=2))
        return 0
    print(f"export OPENAI_BASE_URL={base}")
    print(f"export OPENAI_API_KEY={key}")
    print()
    print(f"# aliases (profile {profile.name if profile else 'none running'}):")
    for a, info in sorted(aliases.items()):
        now = info.get("local") or info.get("hosted") or "(no local engine now: served by its fallbacks)"
        fb = f"  → fallbacks: {', '.join(info['fallbacks'])}" if info.get("fallbacks") else ""
        print(f"#   {a:<14} {now}{fb}")
    return 0



def _num_list(text: str, what: str, kind=float) -> list:
    from appliance.errors import ApplianceError

    try:
        values = [kind(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise ApplianceError(f"--{what} {text}: not a comma-separated list of numbers", f"e.g. --{what} 1,2,4") \
            from None
    if not values or any(v <= 0 for v in values):
        raise ApplianceError(f"--{what} {text}: give positive numbers", f"e.g. --{what} 1,2,4")
    return values


def cmd_bench(args) -> int:
    from appliance import bench
    from appliance.errors import ApplianceError
    from appliance.stack import Stack

    words = list(args.words)
    action = words.pop(0) if words and words[0] in ("show", "apply", "list") else "run"
    if action == "list":
        runs = bench.list_runs()
        if args.json:
            print(json.dumps([r.stem for r in runs]))
        for r in runs if not args.json else []:
            print(r.stem)
        return 0
    if action in ("show", "apply"):
        run = bench.load_run(words[0] if words else None)
        if action == "apply":
            from appliance.profile import resolve

            path = resolve(run.profile)
            watts, path = bench.apply_recommendation(run, path)
            print(f"{path}: power_limit_w: {watts:.0f}  ({run.recommendation['text'] if run.recommendation else ''})")
            return 0
        _show_run(run, args)
        return 0
    stack = Stack(_rig(args), EventPrinter(sys.stderr))
    if words:
        from appliance.profile import load_profile

        profile = load_profile(words[0])
        active = stack.active_profile()
        if active is None or active.name != profile.name:
            if active is not None:
                raise ApplianceError(f"{active.name} is running, not {profile.name}",
                                     f"`appliance switch {profile.name}` first (or bench the running profile)")
            if not stack.up(profile).ok:
                return 1
    settings = bench.BenchSettings(
        concurrency=[int(x) for x in _num_list(args.concurrency, "concurrency", int)],
        power_w=_num_list(args.power, "power") if args.power else [None],
        duration_s=None if args.requests else args.duration, requests=args.requests,
        prompt_tokens=args.prompt_tokens, max_tokens=args.max_tokens, target=args.target, engine=args.engine,
        dataset=args.dataset, seed=args.seed, warmup=args.warmup, at_concurrency=args.at_concurrency)
    runner = bench.Bench(stack, settings, on_progress=bench.ProgressLine(sys.stderr))
    n = len(settings.power_w) * len(settings.concurrency)
    per = f"{settings.duration_s:.0f} s" if settings.duration_s else f"{settings.requests} requests"
    print(f"bench {runner.profile.name} / {runner.engine.label}: {n} cells × {per} "
          f"(power {args.power or 'as is'}; concurrency {args.concurrency}; target {settings.target})",
          file=sys.stderr)
    run = runner.run()
    if run.interrupted:
        print("\ninterrupted: power limits restored; the finished cells are saved", file=sys.stderr)
    _show_run(run, args)
    return 130 if run.interrupted else 0


def _show_run(run, args) -> None:
    from appliance import bench

    if getattr(args, "json", False):
        print(json.dumps(run.to_dict(), indent=2))
        return
    d = bench.bench_dir()
    print(f"\nrun {run.run_id}: {run.profile} ({run.model}) on {', '.join(sorted(set(run.hardware)))}"
          + ("  [interrupted]" if run.interrupted else ""))
    print("\nby power level\n" + bench.table_by_power(run))
    print("\nby concurrency\n" + bench.table_by_concurrency(run))
    if run.cells and not getattr(args, "no_plot", False):
        if sys.stdout.isatty():
            try:
                import shutil

                print("\n" + bench.terminal_plot(run, width=min(100, shutil.get_terminal_size().columns)))
            except ImportError:
                pass
        svg = bench.svg_plots(run, d / f"{run.run_id}.svg")
        print(f"\nplots: {svg}")
    print(f"data: {d / (run.run_id + '.json')}, {d / (run.run_id + '.csv')}")
    if run.recommendation:
        print(f"\nrecommendation: {run.recommendation['text']}")
        print("`appliance bench apply` writes it into the profile's power_limit_w")


def cmd_tui(args) -> int:
    """`appliance` on a terminal: the dashboard of this machine's rig (it offers the demo when nothing runs)."""
    from appliance.stack import Stack
    from appliance.tui.app import run_app

    run_app(Stack(_rig(args)))
    return 0


def build_parser() -> argparse.ArgumentParser:
    from appliance import __version__

    parser = argparse.ArgumentParser(
        prog="appliance", formatter_class=argparse.RawDescriptionHelpFormatter, epilog=EPILOG,
        description="Turn one GPU workstation into a well-run local LLM service: vLLM engines from profiles, a "
                    "front door for agents (HAProxy to the engines, LiteLLM for hosted fallbacks), live telemetry and "
                    "power-limit benchmarks.")
    parser.add_argument("--version", action="version", version=f"appliance {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("check", help="will a profile fit the GPUs? (VRAM, KV cache, concurrency, fixes)",
                       description="Fit check: weights, KV cache per token, KV for max_model_len × max_num_seqs, "
                                   "tokens of KV that fit, concurrency at full context, and a fix when it does not "
                                   "fit. GPUs come from NVML, else from --gpu, else from the profile's `card`. "
                                   "Exit 0 when it fits, 1 when not.")
    p.add_argument("profile", metavar="PROFILE_OR_PATH")
    p.add_argument("--gpu", metavar="CARD", help="check against a card: 4090, 3090x4, a100-80, or a size in GiB")
    p.add_argument("--json", action="store_true", help="machine-readable report")
    p.set_defaults(func=cmd_check)

    p = sub.add_parser("profiles", help="list profiles with model, GPUs, power and fit verdict")
    p.add_argument("--gpu", metavar="CARD", help="judge the fit against this card instead of the detected GPUs")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_profiles)

    p = sub.add_parser("render", help="write the compose files and the LiteLLM config from profiles",
                       description="Writes OUT/<profile>/compose.yaml (the engine project) and OUT/proxy/compose.yaml"
                                   " + OUT/proxy/litellm.yaml (the proxy project, from every profile).")
    p.add_argument("profile", nargs="?", metavar="PROFILE")
    p.add_argument("--all", action="store_true", help="every profile")
    p.add_argument("--out", metavar="DIR", help="output directory (default: the repository's compose/)")
    p.add_argument("--sim", action="store_true", help="render for the simulated rig (local image, no GPU reservation)")
    p.add_argument("--check", action="store_true", help="write nothing; exit 1 if any file is stale")
    p.set_defaults(func=cmd_render)

    def rig_opts(p):
        p.add_argument("--sim", action="store_true", help="the simulated rig (no GPU, no vLLM image needed)")
        p.add_argument("--runtime", choices=("docker", "process"), default="docker",
                       help="run engines under docker (default) or as local processes")

    p = sub.add_parser("tui", help="the dashboard (also: `appliance` with no command, on a terminal)")
    rig_opts(p)
    p.set_defaults(func=cmd_tui)

    p = sub.add_parser("up", help="start a profile: fit check, power limits, engines, proxy; follow the startup",
                       description="Fit check (refuses with the fix when it does not fit; --force overrides), power "
                                   "limits (the previous ones are remembered for `down`), render, start the engine "
                                   "project and the proxy, then follow the startup phase by phase. Exit 1 if an "
                                   "engine fails; the decisive log lines and a fix are shown.")
    p.add_argument("profile", metavar="PROFILE")
    p.add_argument("--force", action="store_true", help="start even if the fit check says it does not fit")
    p.add_argument("--timeout", type=float, default=1800, metavar="S", help="give up after S seconds (1800)")
    p.add_argument("--json", action="store_true", help="print the result as JSON (progress goes to stderr)")
    p.add_argument("--lan", action="store_true", default=None,
                   help="the proxy listens on 0.0.0.0 (reachable from your LAN; default 127.0.0.1)")
    rig_opts(p)
    p.set_defaults(func=cmd_up)

    p = sub.add_parser("switch", help="replace the running profile; the proxy keeps serving; rolls back on failure",
                       description="Drains the running engines (requests in flight finish, bounded by --drain), "
                                   "stops them, starts PROFILE, and if it does not become healthy (crash, OOM, "
                                   "stuck, timeout) starts the last known good profile again and says why.")
    p.add_argument("profile", metavar="PROFILE")
    p.add_argument("--force", action="store_true")
    p.add_argument("--timeout", type=float, default=1800, metavar="S")
    p.add_argument("--drain", type=float, default=60, metavar="S",
                   help="requests in flight on the old engines get S s to finish (60)")
    p.add_argument("--json", action="store_true")
    p.add_argument("--lan", action="store_true", default=None, help="the proxy listens on 0.0.0.0")
    rig_opts(p)
    p.set_defaults(func=cmd_switch)

    p = sub.add_parser("down", help="stop the engines (--all: and the proxy); restore the power limits")
    p.add_argument("--all", action="store_true", help="also stop the proxy")
    rig_opts(p)
    p.set_defaults(func=cmd_down)

    p = sub.add_parser("status", help="one snapshot: profile, engines, GPUs (power, energy), tokens/s, queue, KV")
    p.add_argument("--json", action="store_true")
    p.add_argument("--window", type=float, default=1.0, metavar="S", help="rates over S seconds (1)")
    rig_opts(p)
    p.set_defaults(func=cmd_status)

    p = sub.add_parser("logs", help="an engine's (or the proxy's) log")
    p.add_argument("engine", nargs="?", metavar="ENGINE", help="engine name, or `proxy` (default: the first engine)")
    p.add_argument("--follow", "-f", action="store_true")
    p.add_argument("--tail", type=int, default=200, metavar="N")
    rig_opts(p)
    p.set_defaults(func=cmd_logs)

    p = sub.add_parser("demo", help="run a profile on a simulated rig with the real proxy and live numbers",
                       description="No GPU needed: stand-in vLLM engines on simulated GPUs as local processes, the "
                                   "real LiteLLM proxy in front, hosted fallbacks served by local stand-ins, and a "
                                   "few background agents so the numbers move. Ctrl-C stops it all.")
    p.add_argument("--profile", default=DEMO_PROFILE, metavar="PROFILE", help=f"default: {DEMO_PROFILE}")
    p.add_argument("--agents", type=int, default=3, metavar="N", help="background streams through the proxy (3)")
    p.add_argument("--no-traffic", action="store_true", help="no background traffic")
    p.add_argument("--duration", type=float, metavar="S", help="stop after S seconds")
    p.add_argument("--keep", action="store_true", help="leave the simulated rig running on exit")
    p.add_argument("--no-tui", dest="tui", action="store_false",
                   help="plain live lines instead of the dashboard (the default when not on a terminal)")
    p.set_defaults(func=cmd_demo, tui=None)

    p = sub.add_parser("keys", help="store hosted API keys and the HF token (mode 0600, never printed)",
                       description="`keys set PROVIDER` asks for the key without echo (or reads one line from "
                                   "stdin) and stores it in the secrets file; `keys` lists which are set.")
    p.add_argument("action", nargs="?", choices=("list", "set", "rm"), default="list")
    p.add_argument("provider", nargs="?", metavar="PROVIDER",
                   help="openai, anthropic, openrouter, huggingface, or an env var name")
    p.add_argument("--stdin", action="store_true", help="read the key from standard input")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_keys)

    p = sub.add_parser("endpoint", help="what an agent needs: base URL, key, aliases (as export lines or --json)")
    p.add_argument("--json", action="store_true", help="keys: base_url, api_key, aliases")
    rig_opts(p)
    p.set_defaults(func=cmd_endpoint)

    p = sub.add_parser("bench", help="sweep concurrency × power limit: tokens/s, tokens per joule, a recommendation",
                       formatter_class=argparse.RawDescriptionHelpFormatter,
                       description="appliance bench [PROFILE] [options]   run a sweep (PROFILE: started if nothing "
                                   "runs)\nappliance bench show [RUN]          print a saved run's tables and plots"
                                   "\nappliance bench apply [RUN]         write its recommended power limit into "
                                   "the profile\nappliance bench list                saved runs\n\nPower limits are "
                                   "restored afterwards, also on Ctrl-C. Results (JSON, CSV, SVG) live in the "
                                   "state dir.")
    p.add_argument("words", nargs="*", metavar="PROFILE | show RUN | apply RUN | list")
    p.add_argument("--concurrency", default="1,2,4,8", metavar="LIST", help="concurrent streams (1,2,4,8)")
    p.add_argument("--power", metavar="LIST", help="power limits in W, e.g. 200,250,300 (default: leave as is)")
    p.add_argument("--duration", type=float, default=30, metavar="S", help="measured seconds per cell (30)")
    p.add_argument("--requests", type=int, metavar="N", help="instead of --duration: N finished requests per cell")
    p.add_argument("--prompt-tokens", type=int, default=256, metavar="N")
    p.add_argument("--max-tokens", type=int, default=256, metavar="N")
    p.add_argument("--target", choices=("proxy", "engine"), default="proxy")
    p.add_argument("--engine", metavar="NAME", help="which engine of the profile (default: the first)")
    p.add_argument("--dataset", metavar="JSONL", help='real prompts, one {"prompt": …} per line')
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--warmup", type=int, default=2, metavar="N", help="warm-up requests per stream (2)")
    p.add_argument("--at-concurrency", type=int, metavar="N", help="the concurrency you care about (recommendation)")
    p.add_argument("--no-plot", action="store_true")
    p.add_argument("--json", action="store_true")
    rig_opts(p)
    p.set_defaults(func=cmd_bench)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        if not (sys.stdout.isatty() and sys.stdin.isatty()):
            parser.print_help()
            return 0
        args.func = cmd_tui
    if args.func is cmd_tui:
        args.sim = getattr(args, "sim", False)
        args.runtime = getattr(args, "runtime", "docker")
    from appliance.errors import ApplianceError

    try:
        return int(args.func(args) or 0)
    except ApplianceError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        if exc.hint:
            print(f"  fix: {exc.hint}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
