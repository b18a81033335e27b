"""The rig stays what the owner set: a killed front door comes back serving locally, a simulated boot is
restored by one command, a switch interrupted at each phase is finished or rolled back by the next command, and
edits of the running profile are applied engine by engine without a failed request."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time

import httpx
import pytest

from appliance import secrets
from appliance.profile import load_profile
from appliance.rig import simulated_rig
from appliance.stack import Stack

from rigutil import ENGINE_PORT, apply_env, chat, rig_env, wait_local, write_profiles

pytestmark = pytest.mark.proxy
LOCAL = f"local:local@{ENGINE_PORT}"


@pytest.fixture
def rig(tmp_path, monkeypatch, litellm_bin):
    write_profiles(tmp_path / "profiles")
    apply_env(monkeypatch, rig_env(tmp_path))
    stack = Stack(simulated_rig(runtime="process"), drain_s=10)
    try:
        assert stack.up(load_profile("alpha")).ok
        yield stack
    finally:
        stack.down(all_=True)


def _pid(stack, project: str, service: str) -> int:
    return {s.service: s for s in stack.rig.proxy_runtime.states(project) if s.alive}[service].pid


def test_a_killed_front_door_comes_back_serving_locally(rig):
    """HAProxy restarted by its supervisor (or docker's restart policy) loads its server-state file: the local
    engine is enabled again without any appliance command."""
    key = secrets.master_key()
    assert chat(key)[1] == LOCAL
    os.kill(_pid(rig, "appliance-proxy", "frontdoor"), signal.SIGKILL)
    wait_local(key, timeout=30)


def test_a_simulated_boot_is_restored_by_one_command(rig, tmp_path):
    key = secrets.master_key()
    gpus = rig.rig.gpus()
    assert gpus.read(0).power_limit_w == 300
    # the boot: every process gone, the cards back at their default limit
    for project in ("appliance-alpha", "appliance-proxy"):
        rt = rig.rig.runtime if project != "appliance-proxy" else rig.rig.proxy_runtime
        for st in rt.states(project):
            sup = rt._supervisor_pid(rt._dir(project), st.service)
            for pid in (st.pid, sup):
                if pid:
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
    rig.rig.hosted.stop()
    gpus.set_power_limit(0, 450)
    time.sleep(1)
    with pytest.raises(httpx.ConnectError):  # nothing listens after the "boot"
        chat(key, timeout=5)
    again = Stack(simulated_rig(runtime="process"), drain_s=10)  # a new process after the boot
    done = again.restore(timeout_s=120)
    assert any("power limits" in d for d in done) and any("served by alpha" in d for d in done), done
    assert again.rig.gpus().read(0).power_limit_w == 300
    wait_local(key)


@pytest.mark.parametrize("phase", ["draining", "starting beta"])
def test_a_switch_killed_at_each_phase_is_finished_by_restore(rig, phase):
    """`appliance switch` killed (SIGKILL) while it drains, and while the new engine starts; `restore` then leaves
    a consistent rig that serves `local` from a local engine (the new profile, or the old one)."""
    key = secrets.master_key()
    env = dict(os.environ)
    cmd = [sys.executable, "-m", "appliance", "switch", "beta", "--sim", "--runtime", "process", "--drain", "10"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    seen = []
    for line in proc.stdout:
        seen.append(line)
        if re.search(phase, line):
            proc.send_signal(signal.SIGKILL)
            break
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL, "".join(seen)
    again = Stack(simulated_rig(runtime="process"), drain_s=10)
    done = again.restore(timeout_s=120)
    state = again.rig.state.load()
    assert state.starting is None and state.active is not None, done
    assert state.active.name in ("alpha", "beta")
    wait_local(key)
    # the next switch is a real one, not "already the active profile"
    target = "alpha" if state.active.name == "beta" else "beta"
    assert again.switch(load_profile(target)).ok
    assert again.rig.state.load().active.name == target


def test_apply_restarts_the_edited_engine_without_failing_a_request(rig, tmp_path):
    import asyncio

    from appliance import http, load

    path = tmp_path / "profiles" / "alpha.yaml"
    path.write_text(path.read_text().replace("max_num_seqs: 16", "max_num_seqs: 4"))
    key = secrets.master_key()
    results: list = []

    async def main():
        stop = asyncio.Event()

        async def agent(i):
            async with http.async_client(timeout_s=60) as c:
                n = 0
                while not stop.is_set():
                    n += 1
                    results.append(await load.stream_chat(c, _base(), key, "local",
                                                          load.synthetic_prompt(40, i * 100 + n), 30))
        tasks = [asyncio.create_task(agent(i)) for i in range(3)]
        await asyncio.sleep(1)
        result = await asyncio.to_thread(rig.apply, load_profile("alpha"), timeout_s=120, drain_s=10)
        await asyncio.sleep(1)
        stop.set()
        await asyncio.gather(*tasks)
        return result

    result = asyncio.run(main())
    assert result.ok, result
    assert not [r for r in results if not r.ok], [r.error for r in results if not r.ok]
    st = [s for s in rig.rig.runtime.states("appliance-alpha") if s.service == "main"][0]
    cmdline = open(f"/proc/{st.pid}/cmdline").read().split("\0")
    assert cmdline[cmdline.index("--max-num-seqs") + 1] == "4"
    # applying again changes nothing
    assert rig.apply(load_profile("alpha")).ok


def _base() -> str:
    from rigutil import PROXY_PORT

    return f"http://127.0.0.1:{PROXY_PORT}/v1"


def test_service_install_writes_a_unit_that_restores_at_boot(tmp_path):
    out = subprocess.run([sys.executable, "-m", "appliance", "service", "install", "--dir", str(tmp_path),
                          "--sim", "--runtime", "process"], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    text = (tmp_path / "appliance.service").read_text()
    assert "ExecStart=" in text and "restore --sim --runtime process" in text
    assert "WantedBy=multi-user.target" in text
