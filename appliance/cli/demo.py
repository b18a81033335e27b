"""`demo` and the dashboard: the appliance on a simulated rig, the TUI on the running rig."""

from __future__ import annotations

import sys

from appliance.cli.common import EventPrinter, _fmt, _rig

DEMO_PROFILE = "rtx3090x4-qwen35-27b"


def real_vllm_profile(rig_dir) -> str:
    """A profile for the real CPU engine and the tiny model `make real-vllm` builds (its path is this machine's,
    so the file is written into the rig's dir, not shipped)."""
    from pathlib import Path

    from appliance import realvllm
    from appliance.errors import ApplianceError

    model = realvllm.tiny_model_dir()
    if model is None or realvllm.vllm_executable() is None:
        raise ApplianceError("the real vLLM (CPU build) or its tiny model is missing", "run `make real-vllm` first")
    path = Path(rig_dir) / "cpu-tiny-real.yaml"
    path.write_text(
        "# Written by `appliance demo --real-vllm`: vLLM's CPU build serving the tiny model from `make real-vllm`.\n"
        "name: cpu-tiny-real\ndescription: real vLLM 0.32 (CPU) · tiny Qwen2 · on a simulated RTX 4090\n"
        "card: \"4090\"\ngpus: [0]\npower_limit_w: 300\nengines:\n  - name: tiny\n    aliases: [local]\n"
        f"    port: 8000\n    image: vllm/vllm-openai:v0.32.0\n    model: {model}\n    max_model_len: 2048\n"
        "    max_num_seqs: 8\n    enforce_eager: true\n    kv_cache_memory_bytes: 64M\n")
    return str(path)


def cmd_demo(args) -> int:
    """The whole appliance on a simulated rig: local processes, the real front door, background traffic."""
    from appliance import secrets
    from appliance.load import BackgroundTraffic
    from appliance.profile import load_profile
    from appliance.rig import simulated_rig
    from appliance.stack import Stack

    args.sim, args.runtime = True, "process"
    printer = EventPrinter()
    if args.real_vllm:
        rig = simulated_rig(runtime="process", cards=["4090"], engine="vllm")
        profile = load_profile(real_vllm_profile(rig.dir))
        print(f"appliance demo: a REAL vLLM (CPU build, tiny model) on a simulated RTX 4090 ({profile.name})")
        print("the real front door (HAProxy + LiteLLM); the card's power follows the real engine's load; "
              "the first start takes ~30 s\n")
    else:
        rig = simulated_rig(runtime="process")
        profile = load_profile(args.profile)
        print(f"appliance demo: {profile.name} on a simulated rig ({profile.description})")
        print("no GPU, no vLLM image: stand-in engines on simulated GPUs, the real front door (HAProxy + LiteLLM)\n")
    stack = Stack(rig, printer)
    active = stack.rig.state.load().active
    if active and active.name != profile.name and active.name in stack.engine_projects():
        result = stack.switch(profile)
    else:
        result = stack.up(profile)
    if not result.ok:
        return 1
    port = stack.rig.state.load().proxy.port
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
            from appliance.rig import remember_used

            remember_used(sim=True, runtime="process")  # later commands (`status`, `down`) act on this rig
            print("\nthe simulated rig keeps running (`appliance status`, `appliance down --all` act on it)")
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



def _stack(args):
    from appliance.stack import Stack

    return Stack(_rig(args))


def cmd_tui(args) -> int:
    """`appliance` on a terminal: the dashboard of this machine's rig (it offers the demo when nothing runs).
    The first sample is taken in a forked child before Textual is even imported (appliance/tui/early.py)."""
    import functools

    from appliance.tui.early import EarlySample

    make_stack = functools.partial(_stack, args)
    early = EarlySample.start(make_stack)
    from appliance.tui.app import run_app

    run_app(make_stack=make_stack, early=early)
    return 0
