"""The test bed itself: Compose v2 plugin, our dockerd (host networking only), the local sim image.

Needs testbed/up (skipped otherwise; a failure with APPLIANCE_REQUIRE_TESTBED=1). The pure checks of
assert_host_network_only run everywhere.
"""

from __future__ import annotations

import json
import os
import time
import warnings
from pathlib import Path

import pytest

import testbed

IMAGE = "appliance-sim-vllm:local"


def _networks() -> set[str]:
    out = testbed.docker_cli(["network", "ls", "--format", "{{.Name}}"])
    assert out.returncode == 0, out.stderr
    return set(out.stdout.split())


def _compose(project: str, path: Path, *args: str, timeout: float = 120):
    return testbed.docker_cli(["compose", "-p", project, "-f", str(path), *args], timeout=timeout)


# --- assert_host_network_only: pure --------------------------------------------------------------------------

def test_host_network_check_accepts_host_only_services():
    testbed.assert_host_network_only({"name": "p", "services": {"a": {"image": "x", "network_mode": "host"},
                                                                "b": {"image": "y", "network_mode": "host"}}})


def test_host_network_check_names_the_service_without_network_mode():
    config = {"services": {"good": {"image": "x", "network_mode": "host"},
                           "engine-fast": {"image": "x", "networks": {"default": None}}},
              "networks": {"default": {"name": "p_default", "ipam": {}}}}
    with pytest.raises(AssertionError, match="'engine-fast'"):
        testbed.assert_host_network_only(config)


@pytest.mark.parametrize("config, culprit", [
    ({"services": {"a": {"network_mode": "bridge"}}}, "'a'"),
    ({"services": {"a": {"network_mode": "host", "networks": {"lan": None}}}}, "'a'"),
    ({"services": {"a": {"network_mode": "host"}}, "networks": {"lan": {"driver": "bridge"}}}, "lan"),
    ({"services": {}}, "no services"),
])
def test_host_network_check_rejects(config, culprit):
    with pytest.raises(AssertionError, match=culprit):
        testbed.assert_host_network_only(config)


# --- the real test bed ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def bed(docker_env):
    """The running test bed (docker_env skips, or fails under APPLIANCE_REQUIRE_TESTBED=1, when it is down)."""
    return testbed.testbed_env()


@pytest.mark.testbed
def test_compose_plugin_is_v2_40_3(bed):
    out = testbed.docker_cli(["compose", "version"])
    assert out.returncode == 0, out.stderr
    assert "v2.40.3" in out.stdout
    assert bed["DOCKER_CONFIG"] and Path(bed["DOCKER_CONFIG"], "cli-plugins", "docker-compose").is_file()


@pytest.mark.testbed
def test_our_daemon_has_no_bridge_network(bed):
    assert bed["DOCKER_HOST"] != "unix:///var/run/docker.sock"
    assert _networks() == {"host", "none"}


@pytest.mark.testbed
def test_compose_config_fails_on_an_invalid_file(bed, tmp_path):
    bad = tmp_path / "compose.yaml"
    bad.write_text("services:\n  x:\n    image: a\n    network_mode: host\n    bogus_key: 1\n")
    out = _compose("tbinvalid", bad, "config", "--format", "json")
    assert out.returncode == 1, out
    assert "bogus_key" in out.stderr


@pytest.mark.testbed
def test_host_network_check_catches_compose_default_network(bed, tmp_path):
    path = tmp_path / "compose.yaml"
    path.write_text(f"services:\n  ok:\n    image: {IMAGE}\n    network_mode: host\n"
                    f"  forgot:\n    image: {IMAGE}\n")
    out = _compose("tbforgot", path, "config", "--format", "json")
    assert out.returncode == 0, out.stderr
    with pytest.raises(AssertionError, match="'forgot'"):
        testbed.assert_host_network_only(json.loads(out.stdout))


@pytest.mark.testbed
def test_sim_image_is_current_and_runs_python(bed):
    assert bed["APPLIANCE_SIM_IMAGE"] == IMAGE
    label = testbed.docker_cli(["image", "inspect", "-f", "{{ index .Config.Labels \"%s\" }}" % testbed.IMAGE_LABEL,
                                IMAGE])
    assert label.returncode == 0, label.stderr
    if label.stdout.strip() != testbed.expected_image_hash():
        message = f"{IMAGE} was built from other sources (or another python): run testbed/up again"
        if os.environ.get("APPLIANCE_REQUIRE_TESTBED") == "1":
            pytest.fail(message)  # CI runs testbed/up right before the tests: a mismatch is a bug there
        warnings.warn(message)  # a developer may be editing appliance/ while the tests run
    probe = ("import os, sys, appliance\n"
             "assert os.access('/usr/local/bin/vllm', os.X_OK)\n"
             "assert appliance.__file__ == '/opt/appliance/appliance/__init__.py', appliance.__file__\n"
             "print(sys.version)\n")
    if (testbed.REPO_DIR / "appliance" / "sim" / "engine.py").exists():
        probe += "import appliance.sim.engine\n"
    out = testbed.docker_cli(["run", "--rm", "--network", "none", IMAGE, "python3", "-c", probe], timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("3.")


@pytest.mark.testbed
def test_compose_service_comes_up_on_host_network_and_goes_away(bed, tmp_path):
    project = f"tbtest{os.getpid()}"
    path = tmp_path / "compose.yaml"
    path.write_text(
        "services:\n"
        "  hello:\n"
        f"    image: {IMAGE}\n"
        "    network_mode: host\n"
        "    init: true\n"
        "    command: [\"python3\", \"-c\", \"import time; print('hi', flush=True); time.sleep(30)\"]\n")

    config = _compose(project, path, "config", "--format", "json")
    assert config.returncode == 0, config.stderr
    testbed.assert_host_network_only(json.loads(config.stdout))  # before any `up`

    try:
        up = _compose(project, path, "up", "-d")
        assert up.returncode == 0, up.stderr
        assert _networks() == {"host", "none"}  # compose created no <project>_default network

        ps = _compose(project, path, "ps", "-q")
        ids = ps.stdout.split()
        assert len(ids) == 1, ps
        mode = testbed.docker_cli(["inspect", "-f", "{{.HostConfig.NetworkMode}} {{.State.Running}}", ids[0]])
        assert mode.stdout.split() == ["host", "true"], mode

        deadline = time.monotonic() + 20
        logs = ""
        while time.monotonic() < deadline:
            logs = _compose(project, path, "logs", "--no-color", "hello").stdout
            if "hi" in logs.split():
                break
            time.sleep(0.2)
        assert "hi" in logs.split(), logs
        # the container ends on SIGTERM, not on the SIGKILL compose sends after the timeout (init: true forwards it)
        stop = _compose(project, path, "stop", "--timeout", "30")
        assert stop.returncode == 0, stop.stderr
        code = testbed.docker_cli(["inspect", "-f", "{{.State.ExitCode}}", ids[0]]).stdout.strip()
        assert code != "137", "the container was SIGKILLed: the SIGTERM did not reach python (init: true)"
    finally:
        down = _compose(project, path, "down", "--timeout", "10")
    assert down.returncode == 0, down.stderr
    left = testbed.docker_cli(["ps", "-aq", "--filter", f"label=com.docker.compose.project={project}"])
    assert left.stdout.split() == []
    assert _networks() == {"host", "none"}
