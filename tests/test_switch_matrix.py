"""Agents never notice a switch: every ordered pair of the shipped single-GPU profiles on one simulated 4090
(they differ in model, aliases, fallbacks and power limit), and a local-only profile whose requests are held at
the front door while its engine restarts. Streams in flight and starting during each switch: 0 failed, 0 cut.

Left out: the two 4 × 3090 profiles (they need four GPUs; on one simulated 4090 they do not fit)."""

from __future__ import annotations

import itertools

import pytest

import switchutil
from rigutil import apply_env

pytestmark = [pytest.mark.proxy]


def _stack(tmp_path, monkeypatch, names, local_only=None):
    from appliance.rig import simulated_rig
    from appliance.stack import Stack

    switchutil.write_shipped(tmp_path / "profiles", names, local_only)
    apply_env(monkeypatch, switchutil.env_for(tmp_path))
    return Stack(simulated_rig(runtime="process", cards=["4090"]), drain_s=60)


def _check(reports):
    print("\n" + switchutil.table(reports))
    for r in reports:
        assert r.ok, r
        assert r.failed == 0 and r.cut == 0, r
        assert r.local_again_s is not None, r
        if r.speed_ratio is not None:  # the old engine keeps its power limit until its streams are done
            assert r.speed_ratio >= 0.9, r


def test_every_ordered_pair_of_single_gpu_profiles(tmp_path, monkeypatch, litellm_bin):
    names = switchutil.SINGLE_GPU
    # a walk that takes every ordered pair once: a → b, b → c, … (an Eulerian circuit of the complete digraph)
    pairs = list(itertools.permutations(names, 2))
    sequence = [names[0]]
    left = set(pairs)
    while left:
        nxt = next(b for (a, b) in pairs if a == sequence[-1] and (a, b) in left and
                   (any(x == b for (x, _) in left - {(a, b)}) or len(left) == 1))
        left.discard((sequence[-1], nxt))
        sequence.append(nxt)
    stack = _stack(tmp_path, monkeypatch, names)
    try:
        reports = switchutil.run_switches(stack, sequence)
    finally:
        stack.down(all_=True)
    assert {(r.source, r.target) for r in reports} == set(pairs)
    _check(reports)


def test_local_only_profiles_hold_requests_instead_of_refusing(tmp_path, monkeypatch, litellm_bin):
    """Nothing can serve `local` while one engine stops and the other loads: the front door holds the requests
    and the new engine serves them."""
    local_only = {"solo-8b": "rtx4090-llama31-8b-chat", "solo-14b": "rtx4090-qwen25-14b-agent"}
    stack = _stack(tmp_path, monkeypatch, [], local_only)
    try:
        reports = switchutil.run_switches(stack, ["solo-8b", "solo-14b", "solo-8b"])
    finally:
        stack.down(all_=True)
    _check(reports)
    assert all(r.held > 0 and r.fallback == 0 for r in reports), switchutil.table(reports)
