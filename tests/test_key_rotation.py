"""A new master key takes effect at the front door with a seamless reload, no restart: HAProxy reads the keys from
keys.cfg (`setenv`), which every reload re-reads, while its environment stays what it was at start."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time

import httpx

from appliance import secrets
from appliance.profile import load_profile
from appliance.render import render_proxy_files
from appliance.render.frontdoor import FrontDoorSettings


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _code(port: int, key: str) -> int:
    r = httpx.get(f"http://127.0.0.1:{port}/v1/models", headers={"Authorization": f"Bearer {key}"}, timeout=5)
    return r.status_code


def _wait(port: int, key: str, want, timeout=10.0) -> int:
    deadline = time.time() + timeout
    code = -1
    while time.time() < deadline:
        try:
            code = _code(port, key)
            if code in want:
                return code
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    return code


def test_master_key_rotation_without_restart(tmp_path):
    haproxy = shutil.which("haproxy")
    if haproxy is None:
        from conftest import missing

        missing("HAProxy", "`make install` installs Debian's haproxy")
    old = "sk-appliance-old-0123456789abcdefghij"
    new = "sk-appliance-new-9876543210zyxwvutsrq"
    secrets.set_key("LITELLM_MASTER_KEY", old)
    port = _port()
    run = tmp_path / "run"
    run.mkdir(mode=0o700)
    p = load_profile("rtx4090-qwen25-14b-agent")
    fd = FrontDoorSettings(port=port, litellm_port=_port(), engine_base_port=_port(),
                           socket_path=str(run / "h.sock"))
    for f in render_proxy_files(p, tmp_path / "out", active=p, frontdoor=fd):
        f.write()
    proxy_dir = tmp_path / "out" / "proxy"
    # the environment a container gets at start holds the OLD key; keys.cfg must win and be re-read
    env = {"PATH": "/usr/sbin:/usr/bin:/bin", "LITELLM_MASTER_KEY": old}
    proc = subprocess.Popen([haproxy, "-W", "-db", "-f", str(secrets.frontdoor_keys_cfg()), "-f", "haproxy.cfg"],
                            cwd=proxy_dir, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        # past the key check, LiteLLM is not running: 503; a wrong key: 401
        assert _wait(port, old, (503,)) == 503
        assert _code(port, new) == 401
        secrets.set_key("LITELLM_MASTER_KEY", new)
        proc.send_signal(signal.SIGUSR2)  # what FrontDoor.reload does through the runtime
        assert _wait(port, new, (503,)) == 503
        assert _code(port, old) == 401
        assert proc.poll() is None
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    assert os.stat(secrets.frontdoor_keys_cfg()).st_mode & 0o077 == 0
