"""The whole rig under the test docker engine: real containers of the stand-in engine (the local image), the
real LiteLLM proxy in front (a local process, as on the simulated rig), simulated GPUs.
up → request → status → switch → failed switch rolls back with the OOM explanation → down: no container left,
GPUs back at their previous limits."""

from __future__ import annotations

import json

import pytest

from appliance import secrets
from appliance.profile import load_profile
from appliance.rig import simulated_rig
from appliance.stack import Stack
from appliance.telemetry import Sampler

from rigutil import ENGINE_PORT, apply_env, chat, rig_env, write_profiles, wait_local

pytestmark = [pytest.mark.testbed, pytest.mark.proxy]


def test_docker_up_switch_rollback_down(tmp_path, monkeypatch, docker_env, compose_cmd, litellm_bin):
    import testbed

    write_profiles(tmp_path / "profiles")
    apply_env(monkeypatch, rig_env(tmp_path))
    monkeypatch.setenv("APPLIANCE_SIM_IMAGE", docker_env["APPLIANCE_SIM_IMAGE"])
    events = []
    rig = simulated_rig(runtime="docker", docker_env=docker_env)
    stack = Stack(rig, events.append)
    try:
        result = stack.up(load_profile("alpha"))
        assert result.ok, (result, [e.message for e in events])
        rendered = rig.rendered / "alpha" / "compose.yaml"
        argv, env = compose_cmd
        import subprocess

        env = dict(env, APPLIANCE_SECRETS_FILE=rig.runtime.env["APPLIANCE_SECRETS_FILE"])
        cfg = json.loads(subprocess.run(argv + ["-f", str(rendered), "config", "--format", "json"], env=env,
                                        capture_output=True, text=True, check=True).stdout)
        testbed.assert_host_network_only(cfg)
        states = rig.runtime.states("appliance-alpha")
        assert [s.status for s in states] == ["running"] and states[0].ident  # a real container
        ps = testbed.docker_cli(["ps", "--format", "{{.Names}}"])
        assert "appliance-alpha-main-1" in ps.stdout.split()
        net = testbed.docker_cli(["network", "ls", "--format", "{{.Name}}"]).stdout.split()
        assert "bridge" not in net and not [n for n in net if n not in ("host", "none")]

        key = secrets.master_key()
        code, model_id, _ = chat(key)
        assert code == 200 and model_id == f"local:local@{ENGINE_PORT}"
        sampler = Sampler(stack)
        sampler.sample()
        assert chat(key, max_tokens=120, stream=True)[0] == 200
        snap = sampler.sample()
        sampler.close()
        assert snap.engines[0].health == "healthy" and snap.engines[0].stats.generation_tps > 0
        assert snap.gpus[0].power_limit_w == 300

        assert stack.switch(load_profile("beta")).ok
        assert rig.gpus().read(0).power_limit_w == 350

        events.clear()
        result = stack.switch(load_profile("crashy"))
        assert not result.ok and "rolled back to beta" in result.reason
        assert result.diagnosis.kind == "no_kv_memory"
        fail = [e for e in events if e.kind == "fail"][0]
        assert "no GPU memory is left for the KV cache" in fail.message and fail.data["fix"]
        assert rig.state.load().active.name == "beta"
        wait_local(key)
    finally:
        stack.down(all_=True)
    left = testbed.docker_cli(["ps", "-a", "--filter", "label=com.docker.compose.project", "--format", "{{.Names}}"])
    assert left.stdout.strip() == ""
    assert rig.gpus().read(0).power_limit_w == 450
