"""Shared fixtures. Real-component tests skip when a component is genuinely absent on a user's machine; with
APPLIANCE_REQUIRE_TESTBED=1 (CI) such a skip is a failure instead."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

REPO = Path(__file__).resolve().parent.parent
REQUIRE = os.environ.get("APPLIANCE_REQUIRE_TESTBED") == "1"


def missing(what: str, how: str):
    """Skip on a user's machine, fail in CI."""
    if REQUIRE:
        pytest.fail(f"{what} is missing ({how}) and APPLIANCE_REQUIRE_TESTBED=1")
    pytest.skip(f"{what} is missing ({how})")


@pytest.fixture(autouse=True)
def _isolated_home(request, tmp_path, monkeypatch):
    """Every test gets its own config/state dirs; no test touches the user's. Tests marked `shared_rig` share
    one rig per module (its fixture sets the environment)."""
    if request.node.get_closest_marker("shared_rig"):
        return
    monkeypatch.setenv("APPLIANCE_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("APPLIANCE_PROFILES", raising=False)


@pytest.fixture(scope="session")
def litellm_bin() -> Path:
    from appliance.proxyenv import litellm_executable

    exe = litellm_executable()
    if exe is None:
        missing("the LiteLLM proxy environment", "run `make install` to create .venv-proxy")
    return exe


@pytest.fixture(scope="session")
def docker_env() -> dict:
    """Environment for the test docker engine and Compose v2 (started by `make testbed`)."""
    import testbed

    env = testbed.testbed_env()
    if env is None:
        missing("the test docker engine", "run `make testbed`")
    full = dict(os.environ)
    full.update(env)
    return full


@pytest.fixture(scope="session")
def compose_cmd(docker_env):
    """argv prefix for `docker compose` with our plugin, plus the env to run it in."""
    docker = shutil.which("docker")
    if docker is None:
        missing("the docker CLI", "install docker.io (testbed/up does)")
    out = subprocess.run([docker, "compose", "version"], env=docker_env, capture_output=True, text=True)
    if out.returncode != 0 or "v2." not in out.stdout:
        missing("the Compose v2 plugin", f"`docker compose version` said: {out.stdout or out.stderr}")
    return [docker, "compose"], docker_env
