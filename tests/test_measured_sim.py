"""A simulated start is the simulator agreeing with itself: it is recorded in the simulated rig's own store,
labelled as such, and never shows as "measured on this rig" in a check of the real rig."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from appliance import measured
from appliance.rig import real_rig, simulated_rig

from conftest import REPO
from rigutil import rig_env, running_rig


def test_each_rig_has_its_own_store(tmp_path):
    sim, real = simulated_rig(runtime="process", root=tmp_path / "sim"), real_rig(runtime="process",
                                                                                  root=tmp_path / "rig")
    assert sim.measurements().path != real.measurements().path
    assert sim.measurements().rig == "simulated rig" and real.measurements().rig == measured.REAL_RIG


def test_a_record_of_another_or_unknown_rig_is_listed_not_learned(tmp_path):
    path = tmp_path / "measurements.json"
    settings = {"tensor_parallel_size": 1, "gpu_memory_utilization": 0.9, "max_num_seqs": 16,
                "max_num_batched_tokens": 2048}
    m = measured.Measurement("m", "NVIDIA GeForce RTX 4090", "0.19.0", settings, weights_bytes=5 * 2**30,
                             kv_cache_bytes=10 * 2**30, kv_cache_tokens=1000)
    measured.Store(path, rig="simulated rig").record(m)
    real = measured.Store(path)
    assert len(real.all()) == 1 and real.all()[0].rig == "simulated rig"
    assert real.latest("m", m.card) is None and measured.learned(real, "m", m.card, tp=1) is None
    legacy = json.loads(path.read_text())
    legacy["measurements"][0].pop("rig")  # written before records named their rig
    path.write_text(json.dumps(legacy))
    assert measured.Store(path).latest("m", m.card) is None


def _run(env, *args):
    return subprocess.run([sys.executable, "-m", "appliance", *args], capture_output=True, text=True, cwd=REPO,
                          env={**os.environ, **env})


@pytest.mark.timeout(300)
def test_a_simulated_start_is_not_measured_on_the_real_rig(tmp_path, litellm_bin):
    with running_rig(tmp_path, "alpha") as stack:
        sim_store = stack.rig.measurements()
        assert sim_store.all(), "the simulated start recorded nothing: this test would prove nothing"
        assert all(m.rig == "simulated rig" for m in sim_store.all())
    env = rig_env(tmp_path)
    out = _run(env, "check", "alpha", "--gpu", "4090")
    assert out.returncode in (0, 1), out.stderr
    assert "measured on this rig" not in out.stdout
    assert "measured" not in json.loads(_run(env, "check", "alpha", "--gpu", "4090", "--json").stdout)[
        "engines"][0]["inputs"].values()
    listing = _run(env, "measurements")
    assert "simulated rig" in listing.stdout and "Qwen/Qwen2.5-7B-Instruct-AWQ" in listing.stdout
    rows = json.loads(_run(env, "measurements", "--json").stdout)["measurements"]
    assert rows and all(r["rig"] == "simulated rig" for r in rows)
