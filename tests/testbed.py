"""The test docker engine started by testbed/up, seen from the tests: plain functions, no pytest fixtures.

testbed/up writes `$APPLIANCE_TESTBED_DIR/env` (default /tmp/appliance-testbed/env) as shell exports of
DOCKER_HOST, DOCKER_CONFIG and APPLIANCE_SIM_IMAGE; testbed/down removes it.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

REPO_DIR = Path(__file__).resolve().parent.parent
SIMIMAGE = REPO_DIR / "testbed" / "simimage.py"
IMAGE_LABEL = "appliance.sim.hash"
ENV_KEYS = ("DOCKER_HOST", "DOCKER_CONFIG", "APPLIANCE_SIM_IMAGE")
ALLOWED_NETWORK_MODES = {"host"}


def testbed_dir() -> Path:
    return Path(os.environ.get("APPLIANCE_TESTBED_DIR") or "/tmp/appliance-testbed")


def _env_file_vars() -> dict[str, str] | None:
    """The variables of the env file, or None if testbed/up has not written it (or down removed it)."""
    try:
        text = (testbed_dir() / "env").read_text()
    except OSError:
        return None
    out: dict[str, str] = {}
    for line in text.splitlines():
        words = shlex.split(line, comments=True)
        if len(words) == 2 and words[0] == "export" and "=" in words[1]:
            key, value = words[1].split("=", 1)
            out[key] = value
    return out if all(k in out for k in ENV_KEYS) else None


def _run_docker(args: list[str], env_vars: dict[str, str], **kwargs) -> subprocess.CompletedProcess:
    docker = shutil.which("docker")
    if docker is None:
        raise FileNotFoundError("the docker CLI is not installed (testbed/up installs docker.io)")
    env = dict(os.environ)
    env.pop("DOCKER_CONTEXT", None)  # DOCKER_HOST wins anyway; never a context pointing elsewhere
    env.update(env_vars)
    kwargs.setdefault("capture_output", True)
    kwargs.setdefault("text", True)
    kwargs.setdefault("timeout", 120)
    return subprocess.run([docker, *args], env=env, **kwargs)


def testbed_env() -> dict[str, str] | None:
    """DOCKER_HOST, DOCKER_CONFIG and APPLIANCE_SIM_IMAGE of the running test bed, or None if it is not up
    (no env file, no docker CLI, or the daemon does not answer)."""
    env_vars = _env_file_vars()
    if env_vars is None:
        return None
    try:
        out = _run_docker(["version", "--format", "{{.Server.Version}}"], env_vars, timeout=15)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if out.returncode != 0 or not out.stdout.strip():
        return None
    return {k: env_vars[k] for k in ENV_KEYS}


def docker_cli(args: list[str], **kwargs) -> subprocess.CompletedProcess:
    """Run `docker ARGS` against OUR daemon and compose plugin (text, captured; check=False unless given).
    Raises RuntimeError if the test bed is not up: never falls back to the default /var/run/docker.sock."""
    env_vars = _env_file_vars()
    if env_vars is None:
        raise RuntimeError(f"the test bed is not up ({testbed_dir() / 'env'} missing): run testbed/up")
    return _run_docker(list(args), env_vars, **kwargs)


def expected_image_hash() -> str:
    """The content hash testbed/up would label the sim image with now (sources, builder, python version).
    Computed with this interpreter: testbed/up must have used the same python (make passes the venv's)."""
    out = subprocess.run([sys.executable, str(SIMIMAGE), "hash"], capture_output=True, text=True, check=True)
    return out.stdout.strip()


def assert_host_network_only(config_json: dict) -> None:
    """Check a rendered compose config (`docker compose config --format json`) before any `up`: every service
    has `network_mode: host` and no `networks`, and there is no top-level network compose would create (a
    bridge network gets a private-range subnet: forbidden here). Raises AssertionError naming the offender."""
    services = config_json.get("services")
    if not isinstance(services, dict) or not services:
        raise AssertionError("the compose config has no services")
    for name, svc in services.items():
        mode = (svc or {}).get("network_mode")
        if mode not in ALLOWED_NETWORK_MODES:
            raise AssertionError(f"service {name!r}: network_mode is {mode!r}, must be 'host' "
                                 "(without it compose creates a <project>_default bridge network)")
        if (svc or {}).get("networks"):
            raise AssertionError(f"service {name!r}: has networks {sorted(svc['networks'])}; "
                                 "only network_mode: host is allowed")
    networks = config_json.get("networks") or {}
    # Allowed only: references to the engine's own `host`/`none` networks (external), which create nothing.
    offending = [net for net, spec in networks.items()
                 if not (isinstance(spec, dict) and spec.get("external") and spec.get("name", net) in {"host", "none"})]
    if offending:
        raise AssertionError(f"top-level networks {offending} would be created; no networks are allowed")
