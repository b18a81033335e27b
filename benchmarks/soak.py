"""Soak: many agent-like streams through the front door for a long time, across profile switches, on the
simulated rig (stand-in engines as local processes, the real HAProxy + LiteLLM front door). Zero failed requests
is the bar.

    .venv/bin/python benchmarks/soak.py [--streams 24] [--seconds 600] [--switches 3]

Agents send short streaming chats (20–120 output tokens, think time 0–0.5 s) to the alias `local`; the profile is
switched every seconds/(switches+1) round the shipped single-GPU profiles (copies on the soak's own ports: they
differ in model, aliases, fallbacks and power limit) on one simulated RTX 4090. Reports requests, failures (with the first errors),
how many were served locally vs by the fallback, TTFT p50/p99 and the longest request. Loopback only; it uses its
own state dir and ports and stops everything it started.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))


def soak(streams: int, seconds: float, switches: int, log=print, drain_s: int = 90,
         max_tokens: tuple[int, int] = (20, 120)) -> dict:
    """Agents' requests must finish within the drain (the grace a switch gives requests in flight): with 64
    streams on one simulated 4090 each stream gets ~4 tok/s, so 120 tokens take ~30 s."""
    import rigutil  # its ports: APPLIANCE_TEST_PORT_OFFSET when it was first imported (main() sets 30000)

    from appliance import http, load, secrets
    from appliance.profile import load_profile
    from appliance.rig import simulated_rig
    from appliance.stack import Stack

    tmp = Path(tempfile.mkdtemp(prefix="appliance-soak-"))
    import switchutil

    names = switchutil.SINGLE_GPU
    switchutil.write_shipped(tmp / "profiles", names, timeouts=None)  # the shipped timeouts, as an owner has them
    saved = dict(os.environ)
    os.environ.update(rigutil.rig_env(tmp))
    stack = Stack(simulated_rig(runtime="process", cards=["4090"]), lambda e: log(f"  [{e.kind}] {e.message}")
                  if e.kind in ("fail", "rollback", "done", "warn") else None, drain_s=drain_s)
    results: list = []
    switch_log: list = []
    try:
        if not stack.up(load_profile(names[0])).ok:
            raise SystemExit("could not start the soak rig")
        key = secrets.master_key()
        base = f"http://127.0.0.1:{rigutil.PROXY_PORT}/v1"
        stop = threading.Event()

        async def agents():
            async with http.async_client(timeout_s=120) as client:
                async def agent(i):
                    rng = random.Random(i)
                    n = 0
                    while not stop.is_set():
                        n += 1
                        r = await load.stream_chat(client, base, key, "local",
                                                   load.synthetic_prompt(rng.randint(20, 300), i * 7919 + n),
                                                   rng.randint(*max_tokens))
                        results.append(r)
                        await asyncio.sleep(rng.uniform(0, 0.5))
                await asyncio.gather(*(agent(i) for i in range(streams)))

        runner = threading.Thread(target=lambda: asyncio.run(agents()), daemon=True)
        t0 = time.time()
        runner.start()
        for k in range(switches):
            time.sleep(max(0.0, t0 + seconds * (k + 1) / (switches + 1) - time.time()))
            target = names[(k + 1) % len(names)]
            ts = time.time()
            r = stack.switch(load_profile(target))
            switch_log.append((target, r.ok, time.time() - ts))
            log(f"switch {k + 1}/{switches} → {target}: {'ok' if r.ok else 'FAILED'} in {time.time() - ts:.1f} s "
                f"({len(results)} requests so far, {sum(1 for x in results if not x.ok)} failed)")
        time.sleep(max(0.0, t0 + seconds - time.time()))
        stop.set()
        runner.join(timeout=180)
    finally:
        stack.down(all_=True)
        os.environ.clear()
        os.environ.update(saved)
    ok = [r for r in results if r.ok]
    ttft = sorted(r.ttft_s for r in ok if r.ttft_s is not None)
    pick = lambda xs, q: xs[min(len(xs) - 1, int(q * len(xs)))] if xs else float("nan")  # noqa: E731
    return {
        "requests": len(results), "failed": len(results) - len(ok),
        "errors": [r.error for r in results if not r.ok][:5],
        "local": sum(1 for r in ok if (r.model_id or "").startswith("local:")),
        "fallback": sum(1 for r in ok if (r.model_id or "").startswith("hosted:")),
        "ttft_p50_ms": pick(ttft, 0.5) * 1000, "ttft_p99_ms": pick(ttft, 0.99) * 1000,
        "longest_s": max((r.t_end - r.t_start for r in ok), default=0.0),
        "switches": switch_log, "streams": streams, "seconds": seconds,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--streams", type=int, default=24)  # the smallest shipped profile serves 8 at once
    ap.add_argument("--seconds", type=float, default=600)
    ap.add_argument("--switches", type=int, default=3)
    args = ap.parse_args()
    os.environ.setdefault("APPLIANCE_TEST_PORT_OFFSET", "30000")  # away from the test suite's ports
    r = soak(args.streams, args.seconds, args.switches)
    print(f"\nsoak: {r['streams']} agent streams for {r['seconds']:.0f} s across {len(r['switches'])} switches")
    print(f"{'requests':>9} {'failed':>7} {'local':>7} {'fallback':>9} {'TTFT p50':>9} {'TTFT p99':>9} {'longest':>8}")
    print(f"{r['requests']:>9} {r['failed']:>7} {r['local']:>7} {r['fallback']:>9} {r['ttft_p50_ms']:>7.0f}ms "
          f"{r['ttft_p99_ms']:>7.0f}ms {r['longest_s']:>7.1f}s")
    for target, ok, dt in r["switches"]:
        print(f"  switch → {target}: {'ok' if ok else 'failed'} in {dt:.1f} s")
    for e in r["errors"]:
        print(f"  error: {e}")
    sys.exit(1 if r["failed"] else 0)


if __name__ == "__main__":
    main()
