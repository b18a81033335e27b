"""The whole rig as local processes on the simulated GPUs, with the real LiteLLM proxy in front:
up → request → status → switch → failed switch with rollback → down, power limits restored."""

from __future__ import annotations


import pytest

from appliance import secrets
from appliance.profile import load_profile
from appliance.rig import simulated_rig
from appliance.stack import Stack
from appliance.telemetry import Sampler

from rigutil import ENGINE_PORT, apply_env, chat, rig_env, write_profiles, wait_local

pytestmark = pytest.mark.proxy


def _alive(pid):
    import os

    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False


def test_up_status_switch_rollback_down(tmp_path, monkeypatch, litellm_bin):
    write_profiles(tmp_path / "profiles")
    apply_env(monkeypatch, rig_env(tmp_path))
    events = []
    rig = simulated_rig(runtime="process")
    stack = Stack(rig, events.append)
    try:
        result = stack.up(load_profile("alpha"))
        assert result.ok, result
        phases = [e.data.get("phase") for e in events if e.kind == "phase"]
        assert phases[0] == "created" and phases[-1] == "ready"
        assert [p["phase"] for p in result.timelines["main"]] == ["created", "weights", "kv_graphs", "ready"]
        gpus = rig.gpus()
        assert gpus.read(0).power_limit_w == 300
        assert rig.state.load().power_saved == {0: 450.0}  # the 4090's limit before `up`

        key = secrets.master_key()
        code, model_id, _ = chat(key)
        assert code == 200 and model_id == f"local:local@{ENGINE_PORT}"

        sampler = Sampler(stack)
        sampler.sample()
        code, _, _ = chat(key, max_tokens=200, stream=True)
        assert code == 200
        snap = sampler.sample()
        sampler.close()
        eng = snap.engines[0]
        assert eng.health == "healthy" and eng.status == "running"
        assert eng.stats.generation_tokens_total >= 200
        assert eng.stats.generation_tps and eng.stats.generation_tps > 0
        assert snap.gpus[0].power_limit_w == 300 and snap.proxy and snap.proxy.healthy

        result = stack.switch(load_profile("beta"))
        assert result.ok
        assert rig.state.load().active.name == "beta" and gpus.read(0).power_limit_w == 350
        assert chat(key)[0] == 200

        events.clear()
        result = stack.switch(load_profile("crashy"))
        assert not result.ok
        assert result.diagnosis.kind == "no_kv_memory"
        assert any("No available memory for the cache blocks" in ln for ln in result.diagnosis.lines)
        assert "rolled back to beta" in result.reason
        assert [e.kind for e in events].count("rollback") == 1
        assert rig.state.load().active.name == "beta" and gpus.read(0).power_limit_w == 350
        wait_local(key)
    finally:
        stack.down(all_=True)
    assert rig.gpus().read(0).power_limit_w == 450
    assert rig.state.load().power_saved == {}
    assert rig.runtime.projects() == []
    for pid_file in (rig.dir / "processes").rglob("*.pid"):
        pytest.fail(f"left behind: {pid_file}")


def test_power_limits_survive_a_crash_of_the_appliance(tmp_path, monkeypatch):
    """Limits set by an appliance that died are noticed by the next one and restored by `down`."""
    write_profiles(tmp_path / "profiles")
    apply_env(monkeypatch, rig_env(tmp_path))
    rig = simulated_rig(runtime="process")
    stack = Stack(rig)
    rig.gpu_source.prepare(rig, load_profile("alpha"), False, stack.emit)
    stack.power.apply(load_profile("alpha"))
    assert rig.gpus().read(0).power_limit_w == 300
    # a new process: fresh objects over the same state dir
    again = Stack(simulated_rig(runtime="process"))
    assert any("power limits changed by an earlier run" in w for w in again.warnings())
    again.down()
    assert again.rig.gpus().read(0).power_limit_w == 450
    assert again.warnings() == []
