"""`appliance bench` on a REAL vLLM (CPU build, tiny model): its generation throughput (computed by the bench from
the engine's counters over its window) agrees within 5 % with the engine's own counters read independently by
the test, every 0.5 s, over the span in which the bench held 2 requests running."""

from __future__ import annotations

import re
import statistics
import threading
import time

import httpx
import pytest

from appliance import bench
from appliance.profile import load_profile
from rigutil import ENGINE_PORT

from .test_appliance_real import real_rig  # noqa: F401 - the fixture

pytestmark = [pytest.mark.proxy]
RUNNING = re.compile(r"^vllm:num_requests_running\{[^}]*\}\s+([0-9.eE+-]+)", re.M)
GENERATED = re.compile(r"^vllm:generation_tokens_total\{[^}]*\}\s+([0-9.eE+-]+)", re.M)


def test_bench_matches_the_real_engines_own_counters(real_rig):  # noqa: F811
    stack = real_rig
    assert stack.up(load_profile("tiny-a"), timeout_s=420).ok
    samples: list[tuple[float, int, float]] = []
    stop = threading.Event()

    def watch():
        with httpx.Client(timeout=2, trust_env=False) as c:
            while not stop.is_set():
                try:
                    sent = time.time()
                    text = c.get(f"http://127.0.0.1:{ENGINE_PORT}/metrics").text
                    samples.append(((sent + time.time()) / 2, int(float(RUNNING.search(text).group(1))),
                                    float(GENERATED.search(text).group(1))))
                except (httpx.HTTPError, AttributeError):
                    pass
                time.sleep(0.5)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    s = bench.BenchSettings(concurrency=[2], power_w=[None], duration_s=40, max_tokens=600, prompt_tokens=16,
                            target="engine", warmup=1, settle_s=0.2)
    try:
        run = bench.Bench(stack, s).run()
    finally:
        stop.set()
        watcher.join(timeout=5)
    cell = run.cells[0]
    assert not run.interrupted and cell.source == "counters" and cell.requests_failed == 0 and cell.gen_tps > 0
    busy = [x for x in samples if x[1] == 2]
    assert len(busy) >= 20, samples[:5]
    t0, t1 = busy[1][0], busy[-2][0]  # inside the span: not the samples the ramp or the tail cut
    span = [(t, g) for t, _, g in samples if t0 <= t <= t1]
    # least squares over every reading (the stdlib's, not the bench's): one slow scrape on a box the engine
    # keeps busy cannot move it the way it moves a rate read off two ends
    independent = statistics.linear_regression([t for t, _ in span], [g for _, g in span]).slope
    print(f"bench {cell.gen_tps:.1f} tok/s over {cell.window_s:.0f} s; the engine's counters "
          f"{independent:.1f} tok/s over {t1 - t0:.0f} s")
    assert cell.gen_tps == pytest.approx(independent, rel=0.05)
