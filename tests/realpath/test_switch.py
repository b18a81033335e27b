"""`switch` on the real path with fake boundaries: the front door ready for the new profile, the power permission
probed, drain before stop, stop, the new limits, start, route with a seamless reload; a crashing target rolls back
(limits of the old profile back); a rollback that fails too leaves nothing running and the owner's limits back; a
changed LiteLLM config starts a second LiteLLM beside the first, HAProxy is never restarted."""

from __future__ import annotations

import pytest

from .conftest import write_profile
from .fakedocker import Script

DRAIN = ["set server alias_local/local state drain", "set server alias_local_full/local state drain",
         "set server engine_alias_local/local state drain"]
ENABLE = ["set server alias_local/local state ready", "set server alias_local_full/local state ready",
          "set server engine_alias_local/local state ready", "set server alias_local/local health up"]


def _after(real, mark: int) -> list:
    return real.journal[mark:]


def _last(j: list, entry: tuple) -> int:
    assert entry in j, f"{entry} not in {j}"
    return len(j) - 1 - j[::-1].index(entry)


def test_switch_drains_before_it_stops_then_starts_and_routes(pulled):
    assert pulled.stack.up(pulled.profile("alpha")).ok
    mark = len(pulled.journal)
    result = pulled.stack.switch(pulled.profile("beta"))
    assert result.ok and result.reason is None, pulled.events
    j = _after(pulled, mark)
    reload = ("kill", "appliance-proxy", "frontdoor", "SIGUSR2")
    # beta serves `chat` too: LiteLLM's config changes, so a second LiteLLM starts beside the first, HAProxy is
    # pointed at it (seamless reload) and the old one stops; then the power permission is probed (alpha's own
    # limit set again), alpha drained and stopped, and only then beta's limit applied (alpha served its streams to
    # the end at the speed it had)
    probe, limit = ("power", 0, 300, {0: 320.0}), ("power", 0, 250, {0: 320.0})
    order = [("start", "appliance-proxy", "litellm-b"), reload, ("stop", "appliance-proxy", "litellm"), probe,
             ("haproxy", DRAIN[0]), ("haproxy", DRAIN[1]), ("compose", "down", "appliance-alpha"), limit,
             ("compose", "up", "appliance-beta"), ("healthy", "appliance-beta", "main")]
    assert [j.index(e) for e in order] == sorted(j.index(e) for e in order), j
    assert [e for e in j if e[0] == "power"] == [probe, limit]  # the owner's original still the one remembered
    routed = _last(j, reload)  # the reload that routes beta
    assert routed > j.index(("healthy", "appliance-beta", "main"))
    assert ("haproxy", ENABLE[0]) in j[routed:] and ("haproxy", "set server alias_chat/local state ready") in j[routed:]
    assert ("start", "appliance-proxy", "frontdoor") not in j  # HAProxy itself never restarted
    assert pulled.rig.state.load().proxy.litellm_port == pulled.ports["proxy"] + 2
    assert [c.service for c in pulled.docker.running("appliance-proxy")] == ["frontdoor", "litellm-b"]
    assert "routing the aliases of `beta`" in (pulled.rig.rendered / "proxy" / "haproxy.cfg").read_text()
    state = pulled.rig.state.load()
    assert (state.active.name, state.previous, state.last_good.name, state.routed.name) == \
        ("beta", "alpha", "beta", "beta")
    assert state.power_saved == {0: 320.0} and pulled.limit_w(0) == 250
    assert pulled.rig.runtime.projects() == ["appliance-beta", "appliance-proxy"]
    assert pulled.compose("down").count("appliance-proxy") == 0  # the front door kept serving
    assert any("draining alpha" in m for m in pulled.messages("info"))


def test_a_crashing_target_rolls_back_to_the_old_profile(pulled):
    assert pulled.stack.up(pulled.profile("alpha")).ok
    mark = len(pulled.journal)
    result = pulled.stack.switch(pulled.profile("crashy"))
    assert not result.ok and result.failure == "crashed" and result.diagnosis.kind == "no_kv_memory"
    assert result.rolled_back_to == "alpha" and not result.rollback_failed
    assert result.reason == "crashed; rolled back to alpha"
    j = _after(pulled, mark)
    assert ("exit", "appliance-crashy", "main", 1) in j
    assert j.index(("compose", "down", "appliance-crashy")) < j.index(("compose", "up", "appliance-alpha"))
    # the probe (alpha's own limit set again), crashy's limit after the drain, then alpha's again
    assert [e[2] for e in j if e[0] == "power"] == [300, 200, 300]
    assert j.index(("power", 0, 300, {0: 320.0})) < j.index(("haproxy", DRAIN[0])) < \
        j.index(("compose", "down", "appliance-alpha")) < j.index(("power", 0, 200, {0: 320.0}))
    assert pulled.limit_w(0) == 300 and pulled.rig.state.load().power_saved == {0: 320.0}
    assert [c.status for c in pulled.docker.running("appliance-alpha")] == ["running"]
    assert pulled.rig.runtime.projects() == ["appliance-alpha", "appliance-proxy"]
    assert _last(j, ("haproxy", ENABLE[0])) > j.index(("healthy", "appliance-alpha", "main"))  # served again
    rb = [e for e in pulled.events if e.kind == "rollback"]
    assert len(rb) == 1 and rb[0].data == {"to": "alpha", "failed": "crashy"}
    state = pulled.rig.state.load()
    assert (state.active.name, state.last_good.name, state.routed.name) == ("alpha", "alpha", "alpha")


def test_a_rollback_puts_the_front_door_back_to_the_old_profile(pulled):
    """crashy serves `chat` too: its LiteLLM config was swapped in before the drain; the rollback swaps alpha's back
    (once alpha is healthy again) and routes alpha, so `chat` is not served any more."""
    write_profile(pulled.profiles_dir, "crashy", engine_port=pulled.ports["crashy"], proxy_port=pulled.ports["proxy"],
                  aliases=("local", "chat"))
    assert pulled.stack.up(pulled.profile("alpha")).ok
    mark = len(pulled.journal)
    result = pulled.stack.switch(pulled.profile("crashy"))
    assert not result.ok and result.rolled_back_to == "alpha" and not result.rollback_failed
    j = _after(pulled, mark)
    order = [("start", "appliance-proxy", "litellm-b"), ("stop", "appliance-proxy", "litellm"),
             ("haproxy", DRAIN[0]), ("exit", "appliance-crashy", "main", 1), ("healthy", "appliance-alpha", "main"),
             ("start", "appliance-proxy", "litellm"), ("stop", "appliance-proxy", "litellm-b")]
    assert [j.index(e) for e in order] == sorted(j.index(e) for e in order), j
    assert _last(j, ("haproxy", ENABLE[0])) > j.index(("start", "appliance-proxy", "litellm"))
    assert ("start", "appliance-proxy", "frontdoor") not in j and ("compose", "down", "appliance-proxy") not in j
    assert pulled.rig.state.load().proxy.litellm_port == pulled.ports["proxy"] + 1
    assert [c.service for c in pulled.docker.running("appliance-proxy")] == ["frontdoor", "litellm"]
    rendered = pulled.rig.rendered / "proxy"
    assert "alias_chat" not in (rendered / "haproxy.cfg").read_text()
    assert "model_name: chat" not in (rendered / "litellm.yaml").read_text()


def test_a_rollback_that_fails_too_leaves_nothing_running_and_the_owner_limits(pulled):
    pulled.docker.plan("appliance-alpha", Script.healthy(), Script.crash())
    assert pulled.stack.up(pulled.profile("alpha")).ok
    result = pulled.stack.switch(pulled.profile("crashy"))
    assert not result.ok and result.rolled_back_to == "alpha" and result.rollback_failed
    assert result.reason == "crashed; rolled back to alpha (which failed too)"
    assert "the rollback to alpha failed too; nothing is running" in pulled.messages("fail")
    assert pulled.rig.state.load().active is None
    assert pulled.rig.runtime.projects() == ["appliance-proxy"]  # no exited engine project left behind
    assert pulled.limit_w(0) == 320 and pulled.rig.state.load().power_saved == {}
    assert pulled.stack.warnings() == []


def test_switch_with_nothing_running_starts_and_to_itself_applies_nothing(pulled):
    result = pulled.stack.switch(pulled.profile("alpha"))
    assert result.ok and "nothing is running: starting instead of switching" in pulled.messages("info")
    pulled.events.clear()
    mark = len(pulled.journal)
    assert pulled.stack.switch(pulled.profile("alpha")).ok  # the running profile, unedited: applies its edits
    assert pulled.messages("done") == ["alpha: nothing to restart"]
    assert _after(pulled, mark) == []


def test_a_drain_the_socket_refuses_is_a_warning_not_a_stop(pulled):
    assert pulled.stack.up(pulled.profile("alpha")).ok
    pulled.haproxy.fail.add("state drain")
    assert pulled.stack.switch(pulled.profile("beta")).ok
    assert [m for m in pulled.messages("warn") if m.startswith("could not drain local: the front door's runtime")]


def test_a_new_profile_with_new_aliases_swaps_in_a_second_litellm_and_keeps_haproxy_running(pulled):
    assert pulled.stack.up(pulled.profile("alpha")).ok
    write_profile(pulled.profiles_dir, "gamma", engine_port=pulled.ports["gamma"], proxy_port=pulled.ports["proxy"],
                  aliases=("coder",))
    mark = len(pulled.journal)
    assert pulled.stack.switch(pulled.profile("gamma")).ok
    j = _after(pulled, mark)
    assert any("the proxy config changed" in m for m in pulled.messages("info"))
    assert ("compose", "down", "appliance-proxy") not in j and ("start", "appliance-proxy", "frontdoor") not in j
    order = [("start", "appliance-proxy", "litellm-b"), ("kill", "appliance-proxy", "frontdoor", "SIGUSR2"),
             ("stop", "appliance-proxy", "litellm"), ("power", 0, 300, {0: 320.0}),
             ("compose", "down", "appliance-alpha"), ("power", 0, 280, {0: 320.0}),
             ("compose", "up", "appliance-gamma"), ("healthy", "appliance-gamma", "main"),
             ("haproxy", "set server alias_coder/local state ready")]
    assert [j.index(e) for e in order] == sorted(j.index(e) for e in order), j
    # the front door serves gamma's aliases only: alpha's `local` left the config with the new LiteLLM, so there
    # is nothing of it to drain (and no warning that says so)
    cfg = (pulled.rig.rendered / "proxy" / "haproxy.cfg").read_text()
    assert "backend alias_coder\n" in cfg and "alias_local" not in cfg
    assert not [m for m in pulled.messages("warn") if "could not drain" in m]
    assert [c.service for c in pulled.docker.running("appliance-proxy")] == ["frontdoor", "litellm-b"]
    compose = (pulled.rig.rendered / "proxy" / "compose.yaml").read_text()
    assert "litellm-b:" in compose and "  litellm:" not in compose  # written back to the one in service


def test_lan_reloads_the_front_door_seamlessly(pulled):
    assert pulled.stack.up(pulled.profile("alpha")).ok
    mark = len(pulled.journal)
    assert pulled.stack.up(pulled.profile("alpha"), lan=True).ok
    j = _after(pulled, mark)
    assert pulled.rig.state.load().lan is True
    assert ("kill", "appliance-proxy", "frontdoor", "SIGUSR2") in j and ("compose", "up", "appliance-proxy") not in j
    assert "bind 0.0.0.0:" in (pulled.rig.rendered / "proxy" / "haproxy.cfg").read_text()
    assert j.index(("kill", "appliance-proxy", "frontdoor", "SIGUSR2")) < j.index(("haproxy", ENABLE[0]))


def test_a_profile_whose_limit_goes_away_gives_the_gpu_its_owner_limit_back(pulled):
    assert pulled.stack.up(pulled.profile("alpha")).ok
    pulled.stack.set_power(280, [1])  # the TUI's control on GPU 1
    assert pulled.limit_w(1) == 280 and pulled.rig.state.load().power_saved == {0: 320.0, 1: 340.0}
    assert pulled.stack.switch(pulled.profile("beta")).ok
    assert pulled.limit_w(1) == 340 and pulled.limit_w(0) == 250
    assert any("GPU 1: power limit 280 W → 340 W (the profile sets none: back to your own limit)" in m
               for m in pulled.messages("power"))


@pytest.mark.parametrize("force", [False, True])
def test_a_profile_that_does_not_fit_is_refused_unless_forced(pulled, force):
    from appliance.errors import StackError

    write_profile(pulled.profiles_dir, "huge", engine_port=pulled.ports["gamma"], proxy_port=pulled.ports["proxy"],
                  model="Qwen/Qwen2.5-72B-Instruct")
    if not force:
        with pytest.raises(StackError) as e:
            pulled.stack.up(pulled.profile("huge"))
        assert "profile huge does not fit" in e.value.message and "--force" in e.value.hint
        assert pulled.compose("up") == [] and pulled.limit_w(0) == 320
    else:
        assert pulled.stack.up(pulled.profile("huge"), force=True).ok
        assert any(m.startswith("starting anyway (--force)") for m in pulled.messages("warn"))


def test_a_switch_to_an_alias_on_another_port_keeps_the_front_door_running(pulled):
    """LiteLLM's config names the alias's port: a second LiteLLM takes the new one, HAProxy only reloads."""
    write_profile(pulled.profiles_dir, "beta", engine_port=pulled.ports["gamma"], proxy_port=pulled.ports["proxy"])
    assert pulled.stack.up(pulled.profile("alpha")).ok
    mark = len(pulled.journal)
    assert pulled.stack.switch(pulled.profile("beta")).ok
    j = _after(pulled, mark)
    assert ("compose", "down", "appliance-proxy") not in j and ("start", "appliance-proxy", "frontdoor") not in j
    assert j.index(("start", "appliance-proxy", "litellm-b")) < j.index(("stop", "appliance-proxy", "litellm")) < \
        j.index(("compose", "down", "appliance-alpha"))
    # from the swap on, `local` points at beta's port, where nothing listens yet: it is not enabled (requests take
    # the fallback) until beta is healthy and routed
    before = j[j.index(("start", "appliance-proxy", "litellm-b")):j.index(("healthy", "appliance-beta", "main"))]
    assert not [e for e in before if e[0] == "haproxy" and e[1] in ENABLE], before
    assert ("haproxy", ENABLE[0]) in j[j.index(("healthy", "appliance-beta", "main")):]
    cfg = (pulled.rig.rendered / "proxy" / "haproxy.cfg").read_text()
    assert f"127.0.0.1:{pulled.ports['alpha']}" not in cfg
    server = [ln for ln in cfg.splitlines() if f"server local 127.0.0.1:{pulled.ports['gamma']} check" in ln]
    assert server and not server[0].endswith(" disabled")  # beta is routed: enabled in the file itself


def test_a_failed_switch_away_from_a_deleted_profile_has_nowhere_to_go_back(pulled):
    assert pulled.stack.up(pulled.profile("alpha")).ok
    (pulled.profiles_dir / "alpha.yaml").unlink()
    result = pulled.stack.switch(pulled.profile("crashy"))
    assert not result.ok and result.rolled_back_to is None and result.reason == "crashed"
    assert pulled.rig.state.load().active is None
    assert pulled.rig.runtime.projects() == ["appliance-proxy"]
    assert pulled.limit_w(0) == 320 and pulled.rig.state.load().power_saved == {}


def test_a_limit_for_a_gpu_the_rig_lacks_is_refused_even_when_forced(pulled):
    from appliance.errors import StackError

    p = pulled.profiles_dir / "wide.yaml"
    write_profile(pulled.profiles_dir, "wide", engine_port=pulled.ports["gamma"], proxy_port=pulled.ports["proxy"])
    p.write_text(p.read_text().replace("gpus: [0]", "gpus: [0, 2]").replace(
        "    max_num_seqs: 16\n", "    max_num_seqs: 16\n    tensor_parallel_size: 2\n"))
    with pytest.raises(StackError) as e:
        pulled.stack.up(pulled.profile("wide"), force=True)
    assert e.value.message == "profile wide sets GPU 2's power limit; this rig has 2 GPUs"
    assert pulled.compose("up") == [] and pulled.limit_w(0) == 320
