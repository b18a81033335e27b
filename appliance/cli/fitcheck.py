"""`check`, `profiles`, `render`: the fit check and rendered files, before anything runs."""

from __future__ import annotations

import json
import sys

EXIT_UNKNOWN_MODEL = 3  # `check`: a model nothing is known about; not "does not fit" (1) nor bad input (2)


def _gpus_from_arg(spec: str | None, needed: int):
    """`--gpu TEXT` → (fit.GPU list, what was assumed) (the rules: appliance/gpu_arg.py), None without --gpu."""
    from appliance.gpu_arg import parse_gpu_arg_noted

    return None if spec is None else parse_gpu_arg_noted(spec, needed)


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
        gpus, note = given
        return gpus, f"--gpu {spec}" + (f" ({note})" if note else "")
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
        overhead_how = (e.inputs or {}).get("overhead", "estimated")
        kv = f"{_gib(e.available_kv_bytes)} per GPU → {e.kv_tokens:,} tokens (what vLLM allocates)"
        if e.measured:
            m = e.measured
            kv += (f" (last measured on this rig: {m.get('kv_cache_tokens', 0):,} tokens, vLLM "
                   f"{m.get('vllm_version', '?')})")
        rows = [
            ("weights", f"{_gib(e.weights_bytes_per_gpu)} per GPU ({_gib(e.weights_bytes)} in all; "
                        f"{(e.inputs or {}).get('weights', 'estimated')})"),
            ("memory budget", f"{_gib(e.budget_bytes_per_gpu)} per GPU (gpu_memory_utilization × "
                              f"{_gib(e.visible_bytes_per_gpu)} CUDA sees)"),
            ("overhead", f"{_gib(e.overhead_bytes_per_gpu)} per GPU (activation peak "
                         f"{_gib(e.activation_bytes_per_gpu)}, non-torch {_gib(e.non_torch_bytes_per_gpu)}, CUDA "
                         f"graphs {_gib(e.cudagraph_bytes_per_gpu)}; {overhead_how})"),
            ("KV cache", kv),
            ("KV per token", f"{e.kv_bytes_per_token / 1024:.1f} KiB per GPU (kv_cache_dtype {e.kv_dtype})"),
            (f"KV needed {e.max_model_len:,} × {e.max_num_seqs}",
             f"{_gib(e.kv_cache_needed_bytes)} per GPU (max_model_len × max_num_seqs at once)"),
            ("at max_model_len", f"{e.max_concurrency_at_max_len:.1f} requests at once"),
        ]
        for k, v in rows:
            print(f"  {k:<24} {v}")
        for n in e.notes:
            print(f"  note: {n}")
        print(f"  verdict: {e.verdict}")
        if e.confidence:
            print(f"  how sure: {e.confidence}")
        if e.fixes:
            print(f"  fix: {', '.join(e.fixes)}")
    for p in report.problems:
        print(f"problem: {p}")
    if getattr(report, "measurements_problem", None):
        print(f"note: {report.measurements_problem}")
    if report.verdict == "unknown model":
        from appliance.catalog_user import EXAMPLE, models_path

        print(f"\nto check it, describe the model in {models_path()} (the fields of its config.json), e.g.:")
        print("".join(f"  {line}\n" for line in EXAMPLE.format(model=report.unknown_models[0]).splitlines()), end="")
    print()
    print(report.headline)


def cmd_check(args) -> int:
    from appliance import measured
    from appliance.engine_checks import blocking, check_engines, print_checks
    from appliance.fit import fit_profile
    from appliance.profile import load_profile

    profile = load_profile(args.profile)
    gpus, source = _gpus_for(profile, args.gpu)
    where = source.split(" (")[0] if source.startswith("--gpu") else "this machine"
    report = fit_profile(profile, gpus, store=measured.open_store(), gpus_from=where)
    checks = check_engines(profile, upgrade_to=args.vllm, gpu_name=gpus[0].name if gpus else None)
    refused = blocking(checks) if args.strict else []
    upgraded = None
    if args.vllm:  # the fit under that version's memory accounting and defaults
        tag = f"vllm/vllm-openai:v{args.vllm.lstrip('v')}"
        moved = profile.model_copy(update={"engines": [e.model_copy(update={"image": tag}) for e in profile.engines]})
        upgraded = fit_profile(moved, gpus, store=measured.open_store(), gpus_from=where)
    if args.json:
        out = report.to_dict()
        out["gpu_source"] = source
        out["vllm"] = [c.to_dict() for c in checks]
        if upgraded is not None:
            out["upgrade_fit"] = upgraded.to_dict()
        print(json.dumps(out, indent=2, default=str))
    else:
        _print_fit(report, profile, source)
        print()
        print_checks(checks, sys.stdout)
        if upgraded is not None:
            for now, then in zip(report.engines, upgraded.engines):
                print(f"  fit under vLLM {args.vllm}: {then.engine}: {then.kv_tokens:,} tokens of KV "
                      f"(now {now.kv_tokens:,}), {then.max_concurrency_at_max_len:.1f} requests at full context — "
                      f"{then.verdict.split(':')[0]}")
        if refused:
            print(f"\n--strict: {len(refused)} advice item(s) would refuse to start")
    if report.verdict == "unknown model" and not refused:
        return EXIT_UNKNOWN_MODEL
    return 0 if report.fits and not refused else 1


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
                "fits, KV-limited" if report.fits else report.verdict)
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
    if args.sim:
        from appliance.rig import simulated_rig

        settings = simulated_rig(runtime="docker").render_base
    else:
        settings = RenderSettings()
    files = []
    for p in targets:
        files += render.render_engine_files(p, out, settings)
        # the front door serves one profile at a time: its proxy project next to its engine project (the owner's
        # user settings are left out: these files show what the profile alone asks for)
        files += render.render_proxy_files(p, out / p.name, active=p)
    stale = [f for f in files if not f.is_current()]
    if args.check:
        for f in stale:
            print(f"stale: {f.path}")
        return 1 if stale else 0
    for f in files:
        f.write()
        print(f"{'wrote' if f in stale else 'unchanged'} {f.path}")
    return 0


def cmd_measurements(args) -> int:
    """What vLLM measured at each start, per rig: the GPU rig's records (the fit check learns from them) and the
    simulated rig's, kept apart and labelled so a simulated start is never mistaken for a real one."""
    from dataclasses import asdict

    from appliance import measured, rig

    stores = [measured.open_store(), measured.open_store(rig.sim_root() / rig.SIM_MEASUREMENTS, rig="simulated rig")]
    items = [(s, m) for s in stores for m in s.all()]
    if args.json:
        print(json.dumps({"measurements": [dict(asdict(m), rig=m.rig or f"not recorded (in the {s.rig}'s store)")
                                           for s, m in items],
                          "stores": [{"rig": s.rig, "path": str(s.path), "problem": s.problem} for s in stores],
                          "problem": stores[0].problem}, indent=2, default=str))
        return 0
    for s in stores:
        if s.problem:
            print(f"note ({s.rig}): {s.problem}")
    if not items:
        print("no measurements yet: each successful `up`/`switch` records what vLLM measured")
    for s, m in items:
        line = measured.describe(m)
        if not m.rig:
            line += f" (in the {s.rig}'s store, recorded before records named their rig: not learned from)"
        elif m.rig != s.rig:
            line += f" (in the {s.rig}'s store; not learned from)"
        print(line)
    return 0
