"""`appliance bench` on a REAL vLLM (CPU build, tiny model): its generation throughput, computed from the engine's
counters over the bench's window, agrees with what the engine itself logs every 10 s ("Avg generation throughput")
while the load is steady."""

from __future__ import annotations

import re
import statistics
from datetime import datetime

import pytest

from appliance import bench
from appliance.profile import load_profile

from .test_appliance_real import real_rig  # noqa: F401 - the fixture

pytestmark = [pytest.mark.proxy]
LINE = re.compile(r"INFO (\d\d-\d\d \d\d:\d\d:\d\d) \[loggers\.py:\d+\] Engine \d+: Avg prompt throughput: [0-9.]+ "
                  r"tokens/s, Avg generation throughput: ([0-9.]+) tokens/s, Running: (\d+) reqs, Waiting: (\d+)")


def test_bench_matches_the_real_engines_own_throughput(real_rig):  # noqa: F811
    stack = real_rig
    assert stack.up(load_profile("tiny-a"), timeout_s=420).ok
    s = bench.BenchSettings(concurrency=[2], power_w=[None], duration_s=45, max_tokens=600, prompt_tokens=16,
                            target="engine", warmup=1, settle_s=0.2)
    run = bench.Bench(stack, s).run()
    assert not run.interrupted and len(run.cells) == 1
    cell = run.cells[0]
    assert cell.source == "counters" and cell.requests_failed == 0 and cell.gen_tps > 0
    year = datetime.now().year
    logged = []
    for line in stack.logs("tiny", tail=5000):
        m = LINE.search(line)
        if m and int(m.group(3)) == 2 and int(m.group(4)) == 0:  # a whole 10 s interval at the bench's load
            t = datetime.strptime(f"{year}-{m.group(1)}", "%Y-%m-%d %H:%M:%S")
            logged.append((t, float(m.group(2))))
    steady = [v for _, v in logged[1:-1]] or [v for _, v in logged]  # not the intervals the ramp or tail cut
    assert len(steady) >= 2, logged
    engine_says = statistics.median(steady)
    print(f"bench {cell.gen_tps:.1f} tok/s; the engine logged {engine_says:.1f} tok/s (intervals {steady})")
    assert cell.gen_tps == pytest.approx(engine_says, rel=0.05)
