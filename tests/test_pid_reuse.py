"""A pid is signalled only while it is still the process the appliance started: a stale pid file (or status
file) naming a pid the kernel gave to someone else's process must leave that process alone."""

from __future__ import annotations

import json
import subprocess
import time

import pytest

from appliance.runtime.process import ProcessRuntime
from appliance.runtime.supervise import start_time


@pytest.fixture
def stranger():
    """Someone else's process, in its own session (like a supervised child would be)."""
    p = subprocess.Popen(["sleep", "60"], start_new_session=True)
    yield p
    p.kill()
    p.wait()


def _project(rt: ProcessRuntime, name: str = "svc"):
    d = rt.root / "appliance-x"
    d.mkdir(parents=True)
    return d


@pytest.mark.parametrize("content", ["{pid}", "{pid} {start}", "{pid} 12345"])
def test_stale_pid_file_is_not_signalled(tmp_path, stranger, content):
    rt = ProcessRuntime(root=tmp_path)
    d = _project(rt)
    (d / "svc.pid").write_text(content.format(pid=stranger.pid, start=start_time(stranger.pid)))
    assert [s.status for s in rt.states("appliance-x")] == ["dead"]
    rt.down("appliance-x", timeout_s=1)
    rt.stop_service("appliance-x", "svc")
    assert rt.projects() == []
    time.sleep(0.2)
    assert stranger.poll() is None  # still running


def test_stale_child_pid_is_not_killed(tmp_path, stranger):
    rt = ProcessRuntime(root=tmp_path)
    d = _project(rt)
    (d / "svc.pid").write_text("999999 1")  # the supervisor is long gone
    (d / "svc.status.json").write_text(json.dumps({"state": "running", "child_pid": stranger.pid,
                                                   "child_start": (start_time(stranger.pid) or 0) + 1}))
    st = rt.states("appliance-x")
    assert st[0].pid is None and st[0].status == "dead"
    with pytest.raises(Exception):
        rt.signal("appliance-x", "svc", "SIGTERM")
    rt.down("appliance-x", timeout_s=1)
    time.sleep(0.2)
    assert stranger.poll() is None


def test_own_processes_are_still_stopped(tmp_path):
    rt = ProcessRuntime(root=tmp_path)
    rt.up("appliance-y", None, {"services": {"svc": {"entrypoint": ["sleep"], "command": ["60"], "restart": "no",
                                                     "stop_grace_period": "2s"}}})
    deadline = time.time() + 10
    while time.time() < deadline and not any(s.status == "running" for s in rt.states("appliance-y")):
        time.sleep(0.1)
    (st,) = rt.states("appliance-y")
    assert st.status == "running" and st.pid
    child = st.pid
    rt.down("appliance-y", timeout_s=3)
    time.sleep(0.2)
    assert start_time(child) is None or _zombie(child)
    assert rt.states("appliance-y") == []


def _zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(") ", 1)[1].split()[0] == "Z"
    except OSError:
        return True
