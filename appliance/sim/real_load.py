"""Simulated GPUs under a REAL engine: a sidecar that reads a real vLLM's /metrics and writes the engine file the
simulated GPUs read (state.py), so their power, energy and utilisation follow the real engine's load.

    python -m appliance.sim.real_load --port 8123 --gpus 0 [--memory-gib 20]

`appliance demo --real-vllm` and the real-engine tests run one per engine (the rig assembly adds it as a sidecar
service). Board power per GPU = idle + (limit − idle) × busy(requests running) — the same physics the stand-in
engine uses — and energy is integrated between writes. The loop ends when the engine's port has been gone for a
while after it was up (the engine stopped) or on SIGTERM.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import time
import urllib.request

from appliance.sim import physics, state

RUNNING = re.compile(r"^vllm:num_requests_running\{[^}]*\}\s+([0-9.eE+-]+)", re.M)
WAITING = re.compile(r"^vllm:num_requests_waiting\{[^}]*\}\s+([0-9.eE+-]+)", re.M)
GENERATED = re.compile(r"^vllm:generation_tokens_total\{[^}]*\}\s+([0-9.eE+-]+)", re.M)
PROMPT = re.compile(r"^vllm:prompt_tokens_total\{[^}]*\}\s+([0-9.eE+-]+)", re.M)
_stop = False


def _sum(pattern: re.Pattern, text: str) -> float:
    return sum(float(v) for v in pattern.findall(text))


def scrape(port: int, timeout_s: float = 3.0) -> tuple[str | None, bool]:
    """(the metrics page or None, whether the port refused). Only a refused port means the engine is gone: a
    CPU engine holding every core can take seconds to answer, and a sidecar that took that for an exit stopped
    for good and left the card reading idle under load (a CI run on a busy box)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=timeout_s) as r:
            return r.read().decode("utf-8", "replace"), False
    except ConnectionRefusedError:
        return None, True
    except OSError as exc:
        return None, isinstance(getattr(exc, "reason", None), ConnectionRefusedError)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="appliance.sim.real_load")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--gpus", default="0")
    ap.add_argument("--memory-gib", type=float, default=20.0, help="VRAM the engine shows as used per GPU")
    ap.add_argument("--every", type=float, default=0.5)
    args = ap.parse_args(argv)
    sim_dir = state.sim_dir_from_env()
    gpus = [int(g) for g in args.gpus.split(",") if g.strip()]
    rows = state.read_gpus(sim_dir)["gpus"]
    path = sim_dir / f"engine-real-{args.port}.json"

    def on_term(signum, frame):
        global _stop
        _stop = True

    signal.signal(signal.SIGTERM, on_term)
    energy = {i: 0.0 for i in gpus}
    last_t, last_extra = None, {i: 0.0 for i in gpus}
    seen_up, gone_since, started = False, None, time.time()
    last_text: str | None = None
    while not _stop:
        now = time.time()
        text, refused = scrape(args.port)
        if text is not None:
            seen_up, gone_since = True, None
        elif refused:
            gone_since = gone_since or now
            if seen_up and now - gone_since > 5:
                break
        elif seen_up and last_text is not None:
            text = last_text  # slow to answer, not gone: keep the last reading rather than drop to idle
        running = int(_sum(RUNNING, text)) if text else 0
        b = physics.busy(running) if text else 0.0
        if last_t is not None:
            for i in gpus:
                energy[i] += last_extra[i] * (now - last_t)
        limits = {i: state.read_limit_w(sim_dir, i, rows[i]["power_default_w"]) for i in gpus}
        extra = {i: max(0.0, (limits[i] - rows[i]["idle_w"]) * b) for i in gpus}
        state.write_json_atomic(path, {
            "pid": os.getpid(), "port": args.port, "host": "127.0.0.1", "gpus": gpus, "model": "real vLLM",
            "served_model_names": [], "state": "ready" if text else "loading", "t": now, "started": started,
            "active_requests": running + int(_sum(WAITING, text)) if text else 0, "running_requests": running,
            "waiting_requests": int(_sum(WAITING, text)) if text else 0,
            "counters": {"prompt_tokens": _sum(PROMPT, text) if text else 0,
                         "generation_tokens": _sum(GENERATED, text) if text else 0},
            "per_gpu": {str(i): {"power_w": round(rows[i]["idle_w"] + extra[i], 3), "extra_power_w": extra[i],
                                 "extra_energy_j": energy[i],
                                 "memory_used_bytes": int(args.memory_gib * 2**30) if text else 0,
                                 "utilization_pct": round(100 * b, 1), "power_limit_w": limits[i]}
                        for i in gpus},
        })
        last_t, last_extra, last_text = now, extra, text
        time.sleep(args.every)
    state.write_json_atomic(path, {**(state.read_json(path) or {}), "state": "stopped", "t": time.time()})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
