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
    # a switch every 15 s. Back-to-back switches (~2 s apart) cut LiteLLM-relayed streams until the front door took
    # one request per connection: tests/test_switch_back_to_back.py is the sharp test of that
    r = soak.soak(streams=24, seconds=60, switches=3, log=lambda *a: None)
    assert r["failed"] == 0, r["errors"]
    assert all(ok for _, ok, _ in r["switches"]) and len(r["switches"]) == 3
    assert r["local"] > 0 and r["fallback"] > 0 and r["requests"] > 100
