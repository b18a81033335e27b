"""`down` on the real path with fake boundaries: everything stops and the owner's limits come back even when
docker fails on the way; `--all` stops the front door; leftovers of a crashed appliance are noticed; logs."""

from __future__ import annotations

import pytest

from appliance.errors import ApplianceError, RuntimeBoundaryError, StackError
from appliance.stack import Stack
from appliance.stack.state import RigState

from .fakedocker import Script


def test_down_stops_the_engines_keeps_the_front_door_and_restores_power(pulled):
    assert pulled.stack.up(pulled.profile("alpha")).ok
    assert pulled.stack.down() == ["alpha"]
    assert pulled.rig.runtime.projects() == ["appliance-proxy"]
    assert pulled.limit_w(0) == 320 and pulled.limit_w(1) == 340
    assert "GPU 0: power limit restored to 320 W" in pulled.messages("power")
    state = pulled.rig.state.load()
    assert state.active is None and state.power_saved == {} and state.last_good.name == "alpha"
    assert pulled.stack.warnings() == []


def test_down_all_stops_the_front_door_too(pulled):
    assert pulled.stack.up(pulled.profile("alpha")).ok
    assert pulled.stack.down(all_=True) == ["alpha"]
    assert pulled.rig.runtime.projects() == [] and pulled.docker.containers == []
    assert "stopping the proxy" in pulled.messages("info")
    assert pulled.compose("down")[-1] == "appliance-proxy"


def test_a_failing_compose_down_still_stops_the_rest_and_restores_power(pulled):
    assert pulled.stack.up(pulled.profile("alpha")).ok
    pulled.docker.plan("appliance-beta", Script.healthy())  # a stray project from an earlier run
    pulled.rig.runtime.up("appliance-beta", pulled.rig.rendered / "alpha" / "compose.yaml")
    pulled.docker.fail_down.add("appliance-alpha")
    with pytest.raises(RuntimeBoundaryError) as e:
        pulled.stack.down()
    assert e.value.message.startswith("`docker compose -p appliance-alpha …` failed (exit code 1): Error response "
                                      "from daemon: cannot stop container")
    assert "appliance-beta" not in pulled.rig.runtime.projects()  # the other project stopped anyway
    assert pulled.limit_w(0) == 320 and pulled.rig.state.load().power_saved == {}
    assert pulled.rig.state.load().active is None


def test_a_limit_that_cannot_be_restored_is_kept_for_the_next_down(pulled):
    import pynvml

    assert pulled.stack.up(pulled.profile("alpha")).ok
    pulled.nvml.fail["nvmlDeviceSetPowerManagementLimit"] = pynvml.NVMLError_GpuIsLost()
    pulled.stack.down()
    assert [m for m in pulled.messages("warn") if m.startswith("GPU 0: could not restore 320 W")]
    assert pulled.rig.state.load().power_saved == {0: 320.0}
    assert any("power limits changed by an earlier run are still applied (originals: GPU 0: 320 W)" in w
               for w in pulled.stack.warnings())
    del pulled.nvml.fail["nvmlDeviceSetPowerManagementLimit"]
    assert pulled.stack.restore_power() == ["GPU 0: power limit restored to 320 W"]
    assert pulled.stack.warnings() == []


def test_an_interrupted_start_and_an_unreachable_docker_are_warnings(pulled):
    pulled.rig.state.update(starting="alpha")
    assert pulled.stack.warnings() == ["an earlier start of alpha did not finish (the appliance was interrupted); "
                                       "`appliance restore` finishes it (or rolls back to the last good profile)"]

    class Unreachable:
        @property
        def containers(self):
            raise RuntimeBoundaryError("docker is not reachable (ConnectionError)", "start docker")

    pulled.rig.runtime._client = Unreachable()
    pulled.rig.state.update(starting=None, power_saved={0: 250.0})  # 320 W now: not the original
    assert [w for w in pulled.stack.warnings() if "power limits changed" in w]
    pulled.rig.gpus().set_power_limit(0, 250)  # back at the original: nothing to say
    assert not [w for w in pulled.stack.warnings() if "power limits changed" in w]


def test_power_control_without_and_with_a_profile(pulled):
    changes = pulled.stack.set_power(200)  # nothing runs: every GPU
    assert [c.index for c in changes] == [0, 1] and (pulled.limit_w(0), pulled.limit_w(1)) == (200, 200)
    assert pulled.rig.state.load().power_saved == {0: 320.0, 1: 340.0}  # originals, not our 200 W
    pulled.stack.restore_power()
    assert pulled.stack.up(pulled.profile("alpha")).ok
    assert [c.index for c in pulled.stack.set_power(260)] == [0]  # the active profile's GPU only
    assert pulled.rig.state.load().power_saved == {0: 320.0}


def test_logs_of_engines_and_proxy_with_secrets_redacted(pulled):
    with pytest.raises(StackError) as e:
        list(pulled.stack.logs(None))
    assert "no profile is running" in e.value.message
    assert pulled.stack.up(pulled.profile("alpha")).ok
    lines = list(pulled.stack.logs(None))
    assert lines[-1].endswith("Application startup complete.") and "Starting to load model" in lines[1]
    assert list(pulled.stack.logs("main", tail=2)) == lines[-2:]
    assert list(pulled.stack.logs("main", follow=True)) == lines
    assert list(pulled.stack.logs("proxy")) == ["proxy litellm listening"]
    assert list(pulled.stack.logs("frontdoor")) == ["proxy frontdoor listening"]
    with pytest.raises(StackError) as e:
        list(pulled.stack.logs("nope"))
    assert e.value.message == "no engine `nope` in alpha" and "proxy, frontdoor" in e.value.hint


def test_a_damaged_state_is_a_loud_error_never_a_silent_reset(pulled):
    from appliance.stack.state import StateError

    path = pulled.rig.state.path
    for text in ("{not json", "[1, 2]"):
        path.write_text(text)
        with pytest.raises(StateError, match="appliance doctor"):
            pulled.rig.state.load()
        assert path.read_text() == text  # nothing was changed
    path.unlink()
    assert pulled.rig.state.load() == RigState()  # no file yet: a fresh rig
    with pulled.rig.state.edit() as changes:
        changes["lan"] = True
    assert pulled.rig.state.load().lan is True


def test_a_profile_file_removed_under_a_running_rig_is_no_crash(pulled):
    assert pulled.stack.up(pulled.profile("alpha")).ok
    (pulled.profiles_dir / "alpha.yaml").unlink()
    assert pulled.stack.active_profile() is None and pulled.stack.routed_profile() is None
    with pytest.raises(StackError):
        list(pulled.stack.logs(None))
    assert pulled.stack.down() == ["alpha"]  # the project is still found through docker


def test_a_broken_profile_next_to_the_good_ones_does_not_touch_the_proxy(pulled):
    """The front door serves the active profile only: another profile's file, even a broken one, plays no part."""
    (pulled.profiles_dir / "broken.yaml").write_text("name: broken\nengines: 7\n")
    assert pulled.stack.up(pulled.profile("alpha")).ok
    assert not [m for m in pulled.messages("warn") if "broken" in m]


def test_the_stack_reaches_docker_only_through_the_runtime(pulled):
    """The proxy helpers the CLI calls, over a fresh Stack on the same rig dir (another process). With no profile
    running the front door stays on the port it was recorded on (where the agents know it)."""
    assert pulled.stack.up(pulled.profile("alpha")).ok
    pulled.stack.down()
    again = Stack(pulled.rig)
    again.ensure_proxy(None)
    again.wait_proxy(timeout_s=5)
    assert pulled.rig.runtime.projects() == ["appliance-proxy"]
    assert pulled.rig.state.load().proxy.port == pulled.ports["proxy"]
    again.stop_proxy()
    assert pulled.rig.runtime.projects() == []
    with pytest.raises(ApplianceError):
        pulled.stack.front_door.reload(pulled.rig.dir / "run" / "haproxy.sock")
