"""`up` on the real path (NVML, docker engines, docker front door) with fake boundaries: pulls with progress,
the host-network check, power limits with the owner's originals remembered first, missing-key warnings, phases
from vLLM's own log lines, the front door enabled after /health, and every refusal and failed start."""

from __future__ import annotations

import socket

import pytest
import yaml

import appliance.render.compose as compose_render
from appliance import secrets
from appliance.errors import ApplianceError, StackError
from appliance.profile import PINNED_IMAGE
from appliance.render.frontdoor import HAPROXY_IMAGE
from appliance.render.litellm import LITELLM_IMAGE

from .conftest import OWNER_LIMITS_W
from .fakedocker import Script


def test_up_on_a_fresh_rig_pulls_checks_powers_follows_and_routes(real):
    result = real.stack.up(real.profile("alpha"))
    assert result.ok, real.events

    # images: the engine's and the front door's, pulled with progress lines in MiB
    assert sorted(real.docker.pulled) == sorted([PINNED_IMAGE, HAPROXY_IMAGE, LITELLM_IMAGE])
    waits = real.messages("wait")
    assert any(m.startswith(f"{PINNED_IMAGE}: Downloading") and m.endswith("/ 3066 MiB") for m in waits), waits
    assert any(m.startswith(f"{HAPROXY_IMAGE}: ") and "MiB" in m for m in waits)
    assert any(f"pulling {PINNED_IMAGE}" in m for m in real.messages("info"))

    # what compose was asked: config (the host-network check) before up, for both projects
    assert real.compose("config") and real.compose("up") == ["appliance-proxy", "appliance-alpha"]
    rendered = yaml.safe_load((real.rig.rendered / "alpha" / "compose.yaml").read_text())
    assert [s["network_mode"] for s in rendered["services"].values()] == ["host"] and "networks" not in rendered
    assert real.index(("compose", "config", str(real.rig.rendered / "alpha" / "compose.yaml"))) < \
        real.index(("compose", "up", "appliance-alpha"))

    # power: the profile's limit on GPU 0 only; the owner's original written to the state BEFORE the change
    assert real.limit_w(0) == 300 and real.limit_w(1) == OWNER_LIMITS_W[1]
    sets = [e for e in real.journal if e[0] == "power"]
    assert sets == [("power", 0, 300, {0: 320.0})]
    assert real.rig.state.load().power_saved == {0: 320.0}
    assert any("GPU 0: power limit 320 W → 300 W" in m for m in real.messages("power"))

    # the hosted fallback has no key: said once, clearly
    warns = [m for m in real.messages("warn") if "OPENAI_API_KEY" in m]
    assert warns == ["fallback `hosted-mini` (openai/gpt-4o-mini) cannot work: OPENAI_API_KEY is not set "
                     "(`appliance keys set openai` or export it)"]

    # phases, in order, from the log lines; ready only from /health
    phases = [e.data["phase"] for e in real.events if e.kind == "phase"]
    assert phases == ["created", "weights", "kv_graphs", "ready"]
    assert [p["phase"] for p in result.timelines["main"]] == phases
    kv = [e for e in real.events if e.kind == "phase" and e.data["phase"] == "kv_graphs"][0]
    assert "Model loading took 5.2 GiB memory and 4.102218 seconds" in kv.data["details"]

    # the front door: enabled for the profile's alias after /health said 200, with HAProxy's own commands
    enable = ["set server alias_local/local state ready", "set server alias_local_full/local state ready",
              "set server engine_alias_local/local state ready", "set server alias_local/local health up"]
    assert real.haproxy.commands[-4:] == enable
    assert real.index(("healthy", "appliance-alpha", "main")) < real.index(("haproxy", enable[0]))
    assert ("kill", "appliance-proxy", "frontdoor", "SIGUSR2") in real.journal  # routed: new config, reload

    state = real.rig.state.load()
    assert (state.active.name, state.last_good.name, state.routed.name, state.starting) == \
        ("alpha", "alpha", "alpha", None)
    assert state.proxy.port == real.ports["proxy"]
    assert real.rig.runtime.projects() == ["appliance-alpha", "appliance-proxy"]
    assert real.messages("done") and real.stack.warnings() == []


def test_a_key_in_the_secrets_file_silences_the_warning(pulled):
    secrets.set_key("openai", "sk-test-not-a-real-key")
    assert pulled.stack.up(pulled.profile("alpha")).ok
    assert not [m for m in pulled.messages("warn") if "OPENAI_API_KEY" in m]
    assert pulled.docker.pulled == []  # nothing to pull: no pull at all


def test_up_again_only_checks(pulled):
    assert pulled.stack.up(pulled.profile("alpha")).ok
    pulled.events.clear()
    assert pulled.stack.up(pulled.profile("alpha")).ok
    assert "alpha is already running; checking it" in pulled.messages("info")


def test_up_refuses_while_another_profile_runs(pulled):
    assert pulled.stack.up(pulled.profile("alpha")).ok
    with pytest.raises(StackError) as e:
        pulled.stack.up(pulled.profile("beta"))
    assert "profile alpha is running" in e.value.message and "appliance switch beta" in e.value.hint


def test_a_bridge_network_is_refused_before_anything_starts(pulled, monkeypatch):
    real_render = compose_render.render_engine_project

    def bridged(profile, settings):
        data = real_render(profile, settings)
        for svc in data["services"].values():
            svc.pop("network_mode")
            svc["networks"] = ["default"]
        data["networks"] = {"default": {"driver": "bridge"}}
        return data

    monkeypatch.setattr(compose_render, "render_engine_project", bridged)
    result = pulled.stack.up(pulled.profile("alpha"))
    assert not result.ok and result.failure == "could not start"
    assert "main are not on the host network" in result.diagnosis.title
    assert "appliance-alpha" not in pulled.compose("up")
    assert not [e for e in pulled.journal if e[:2] == ("start", "appliance-alpha")]
    assert pulled.limit_w(0) == 320 and pulled.rig.state.load().power_saved == {}
    assert pulled.rig.state.load().active is None


@pytest.mark.parametrize("how", ["event", "api"])
def test_a_pull_error_is_a_failed_start_and_the_power_goes_back(real, how):
    import docker.errors

    msg = f"manifest for {PINNED_IMAGE} not found: manifest unknown: manifest unknown"
    if how == "event":  # the registry's answer arrives in the stream
        real.docker.pull_errors[PINNED_IMAGE] = msg
    else:  # the daemon's HTTP API refuses
        real.docker.pull_raises[PINNED_IMAGE] = docker.errors.NotFound("404 Client Error", explanation=msg)
    result = real.stack.up(real.profile("alpha"))
    assert not result.ok and result.failure == "could not start"
    assert result.diagnosis.title == (f"pulling {PINNED_IMAGE}: {msg}" if how == "event" else
                                      f"pulling {PINNED_IMAGE} failed: {msg}")
    assert "check the image tag" in result.diagnosis.fix
    fail = real.messages("fail")
    assert fail and "could not start" in fail[0]
    assert "appliance-alpha" not in real.compose("up")
    assert real.limit_w(0) == 320 and real.rig.state.load().power_saved == {}
    assert real.rig.state.load().active is None and real.rig.state.load().starting is None


@pytest.mark.parametrize("who,said", [
    ("alpha", "port {port} (engine main of alpha) is already in use"),  # refused before anything changes
    ("proxy", "the proxy's port {port} is already in use"),  # refused after the limits: they go back
])
def test_a_port_in_use_is_refused_and_nothing_changes(pulled, who, said):
    port = pulled.ports[who]
    with socket.socket() as s:
        s.bind(("127.0.0.1", port))
        s.listen(1)
        with pytest.raises(StackError) as e:
            pulled.stack.up(pulled.profile("alpha"))
    assert said.format(port=port) in e.value.message and f"ss -ltnp 'sport = :{port}'" in e.value.hint
    assert pulled.compose("up") == [] and pulled.limit_w(0) == 320
    assert pulled.rig.state.load().power_saved == {} and pulled.rig.state.load().active is None


def test_one_changing_command_at_a_time(pulled):
    with pulled.rig.lock():
        with pytest.raises(StackError) as e:
            pulled.stack.up(pulled.profile("alpha"))
        with pytest.raises(StackError):
            pulled.stack.down()
    assert "another appliance command is changing this rig" in e.value.message
    assert pulled.compose("up") == []
    assert pulled.stack.up(pulled.profile("alpha")).ok  # the lock is released with its holder


def test_an_engine_that_crashes_at_start_is_diagnosed_and_cleaned_up(pulled):
    result = pulled.stack.up(pulled.profile("crashy"))
    assert not result.ok and result.failure == "crashed" and result.failed_engine == "main"
    assert result.diagnosis.kind == "no_kv_memory"
    assert any("No available memory for the cache blocks" in ln for ln in result.diagnosis.lines)
    fail = [e for e in pulled.events if e.kind == "fail"][0]
    assert fail.data["reason"] == "crashed" and fail.data["fix"]
    assert pulled.rig.runtime.projects() == ["appliance-proxy"]  # the failed project is gone
    assert pulled.limit_w(0) == 320 and pulled.rig.state.load().active is None


@pytest.mark.parametrize("script,failure,title", [
    (Script.silent, "stuck", "main is stuck: alive, but no log line and no answer on /health"),
    (Script.endless_download, "timeout", "main did not become healthy within 8 s"),
])
def test_stuck_and_timeout(pulled, script, failure, title):
    pulled.docker.plan("appliance-alpha", script())
    result = pulled.stack.up(pulled.profile("alpha"), stall_s=3, timeout_s=8)
    assert not result.ok and result.failure == failure, result
    assert result.diagnosis.title.startswith(title)
    assert result.diagnosis.lines  # the last lines the engine said
    assert [p["phase"] for p in result.timelines["main"]] == ["created", "weights"]
    assert pulled.rig.runtime.projects() == ["appliance-proxy"]
    assert pulled.limit_w(0) == 320
    if failure == "timeout":
        assert any(m.startswith("still starting") for m in pulled.messages("wait"))


def test_a_slow_health_is_not_a_failure(pulled):
    pulled.docker.plan("appliance-alpha", Script.healthy(health_after=4))
    assert pulled.stack.up(pulled.profile("alpha"), stall_s=30, timeout_s=60).ok


def test_the_proxy_that_dies_at_start_says_why(pulled):
    pulled.http.liveness_after = 10**6  # LiteLLM never answers …
    real_create = pulled.docker._create

    def create(project, name, svc, workdir):
        c = real_create(project, name, svc, workdir)
        if name == "litellm":
            c.status, c.exit_code = "exited", 3  # … because it exited at once
        return c

    pulled.docker._create = create
    with pytest.raises(ApplianceError) as e:
        pulled.stack.up(pulled.profile("alpha"))
    assert "the proxy (litellm) did not start (exit code 3)" in e.value.message
    assert "proxy litellm listening" in e.value.hint


def test_two_engines_each_with_its_own_health_and_limit(pulled):
    from .conftest import write_duo

    write_duo(pulled.profiles_dir, ports=(pulled.ports["fast"], pulled.ports["smart"]), proxy_port=pulled.ports["proxy"])
    pulled.docker.plan("appliance-duo/fast", Script.healthy(health_after=1))
    pulled.docker.plan("appliance-duo/smart", Script.healthy("Qwen/Qwen2.5-14B-Instruct-AWQ", health_after=5))
    result = pulled.stack.up(pulled.profile("duo"))
    assert result.ok, pulled.events
    ready = [e.data["engine"] for e in pulled.events if e.kind == "phase" and e.data["phase"] == "ready"]
    assert ready == ["fast", "smart"]  # the small one first: readiness is per engine
    assert pulled.docker.running("appliance-duo")[1].probes == 5
    assert (pulled.limit_w(0), pulled.limit_w(1)) == (300, 260)
    assert pulled.rig.state.load().power_saved == {0: 320.0, 1: 340.0}
    assert {"set server alias_local_fast/local state ready", "set server alias_local_smart/local health up"} <= \
        set(pulled.haproxy.commands)
    with pytest.raises(StackError) as e:
        list(pulled.stack.logs(None, follow=True))
    assert "duo has several engines: fast, smart" in e.value.message
    assert list(pulled.stack.logs(None))[-1].endswith("Application startup complete.")  # the first engine's


def test_a_front_door_on_the_lan_is_said_out_loud(pulled):
    assert pulled.stack.up(pulled.profile("alpha"), lan=True).ok
    assert [m for m in pulled.messages("warn") if "reachable from your LAN" in m]


@pytest.mark.parametrize("after,ok", [(5, True), (10**6, False)])
def test_waiting_for_litellm(pulled, monkeypatch, after, ok):
    import appliance.stack.front_door as fd_mod

    now = [1000.0]

    class VirtualTime:
        time = staticmethod(lambda: now[0])
        sleep = staticmethod(lambda s: now.__setitem__(0, now[0] + s))

    monkeypatch.setattr(fd_mod, "time", VirtualTime)
    pulled.http.liveness_after = after
    if ok:
        assert pulled.stack.up(pulled.profile("alpha")).ok
        assert "the proxy is ready (2.0 s)" in pulled.messages("info")
    else:
        with pytest.raises(StackError) as e:
            pulled.stack.up(pulled.profile("alpha"))
        assert e.value.message == "the proxy (litellm) did not start within 180 s"
        assert e.value.hint == "its last log lines: proxy litellm listening"


def test_nothing_to_route_before_the_front_door_exists(pulled):
    fd = pulled.stack.front_door
    fd.enable(pulled.profile("alpha"))
    fd.drain(pulled.profile("alpha"))
    fd.wait_ready()
    assert pulled.journal == []  # no proxy recorded in the state: nobody to talk to
