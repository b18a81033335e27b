"""`bench`: concurrency × power sweeps, their results, and applying the recommendation."""

from __future__ import annotations

import json
import sys

from appliance.cli.common import EventPrinter, _rig


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
    elif len({c.power_limit_w for c in run.cells}) < 2:
        print("\nno recommendation: one power limit was measured (give two or more with --power 200,250,300)")
