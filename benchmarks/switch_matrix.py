"""Switches under streaming load, per switch: requests in flight, failed, cut, held (and the longest hold),
served by a fallback, time until the alias is served locally again, and the in-flight streams' speed after the
switch began ÷ before it (≥ 0.9: the old engine keeps its power limit until it is drained).

    .venv/bin/python benchmarks/switch_matrix.py [--agents 6]

Every ordered pair of the shipped single-GPU profiles (copies on their own ports) on one simulated RTX 4090, then
two local-only profiles (no fallback: requests wait at the front door). Stand-in engines, the real HAProxy +
LiteLLM front door; loopback only; everything it starts is stopped.
"""

from __future__ import annotations

import argparse
import itertools
import os
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("APPLIANCE_TEST_PORT_OFFSET", "31000")


def run(names, local_only, sequence, agents):
    import switchutil

    from appliance.rig import simulated_rig
    from appliance.stack import Stack

    tmp = Path(tempfile.mkdtemp(prefix="appliance-switch-"))
    switchutil.write_shipped(tmp / "profiles", names, local_only)
    saved = dict(os.environ)
    os.environ.update(switchutil.env_for(tmp))
    stack = Stack(simulated_rig(runtime="process", cards=["4090"]), drain_s=60)
    try:
        return switchutil.run_switches(stack, sequence, agents=agents)
    finally:
        stack.down(all_=True)
        os.environ.clear()
        os.environ.update(saved)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--agents", type=int, default=6)
    args = ap.parse_args()
    import switchutil

    names = switchutil.SINGLE_GPU
    order = [names[0], names[1], names[0], names[2], names[1], names[2], names[0]]  # every ordered pair once
    assert set(zip(order, order[1:])) == set(itertools.permutations(names, 2))
    reports = run(names, None, order, args.agents)
    reports += run([], {"solo-8b": names[0], "solo-14b": names[1]}, ["solo-8b", "solo-14b", "solo-8b"], args.agents)
    print(switchutil.table(reports))


if __name__ == "__main__":
    main()
