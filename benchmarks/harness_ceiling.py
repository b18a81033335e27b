"""How fast can the bench's load generator go? The highest streamed tokens/s it sustains on ONE core against
the stand-in engine at maximum rate, so that results on a real rig are never limited by the harness.

    .venv/bin/python benchmarks/harness_ceiling.py [--seconds 8] [--concurrency 8,32,64]

The client (appliance.load.stream_chat, the code `appliance bench` uses) is pinned to core 0, the stand-in engine
to core 1. Reported per concurrency: streamed tokens/s received, the client's CPU time per token, and the
ceiling = tokens per CPU-second of the client (what one core of load generation can sustain). Loopback only.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from appliance import http, load  # noqa: E402
from appliance.sim.gpu import SimGPUs  # noqa: E402


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_engine(sim_dir: Path, port: int) -> subprocess.Popen:
    SimGPUs.create(sim_dir, ["h200"])
    env = dict(os.environ, APPLIANCE_SIM_DIR=str(sim_dir), APPLIANCE_SIM_LOAD_S="0.2",
               APPLIANCE_SIM_PARAMS_B="0.001", NVIDIA_VISIBLE_DEVICES="0")
    proc = subprocess.Popen([sys.executable, "-m", "appliance.sim.engine", "serve", "tiny-0.001b", "--host",
                             "127.0.0.1", "--port", str(port), "--max-num-seqs", "256", "--max-model-len", "8192"],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    if hasattr(os, "sched_setaffinity") and os.cpu_count() and os.cpu_count() > 1:
        os.sched_setaffinity(proc.pid, {1})
    import httpx

    deadline = time.time() + 30
    while time.time() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=0.5).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit("the stand-in engine did not start")


async def run(base: str, c: int, seconds: float, max_tokens: int) -> tuple[int, int, int, float, float]:
    tokens = requests = chunks = 0
    stop = time.monotonic() + seconds
    async with http.async_client(timeout_s=60) as client:
        async def worker(i):
            nonlocal tokens, requests, chunks
            n = 0
            while time.monotonic() < stop:
                n += 1
                r = await load.stream_chat(client, base, None, "tiny-0.001b", load.synthetic_prompt(16, i * 997 + n),
                                           max_tokens)
                if r.ok:
                    tokens += r.output_tokens
                    requests += 1
                    chunks += len(r.itl_s) + 1
        cpu0, t0 = time.process_time(), time.monotonic()
        await asyncio.gather(*(worker(i) for i in range(c)))
        return tokens, requests, chunks, time.monotonic() - t0, time.process_time() - cpu0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=8)
    ap.add_argument("--concurrency", default="8,32,64")
    ap.add_argument("--max-tokens", type=int, default=512)
    args = ap.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {0})
    port = free_port()
    with tempfile.TemporaryDirectory() as d:
        engine = start_engine(Path(d), port)
        try:
            rows = []
            for c in [int(x) for x in args.concurrency.split(",")]:
                tokens, reqs, chunks, wall, cpu = asyncio.run(run(f"http://127.0.0.1:{port}/v1", c, args.seconds,
                                                                  args.max_tokens))
                rows.append((c, reqs, tokens / wall, chunks / wall, cpu / wall * 100,
                             cpu / tokens * 1e6 if tokens else 0, tokens / cpu if cpu else 0))
        finally:
            engine.terminate()
            engine.wait(10)
    print(f"load generator ceiling (client on 1 core, stand-in engine on another, {args.seconds:.0f} s per row)")
    print(f"{'streams':>8} {'requests':>9} {'streamed tok/s':>15} {'SSE chunks/s':>13} {'client CPU':>11} "
          f"{'CPU µs/token':>13} {'ceiling tok/s/core':>19}")
    for c, reqs, tps, cps, cpu_pct, us, ceil in rows:
        print(f"{c:>8} {reqs:>9} {tps:>15,.0f} {cps:>13,.0f} {cpu_pct:>10.0f}% {us:>13.1f} {ceil:>19,.0f}")


if __name__ == "__main__":
    main()
