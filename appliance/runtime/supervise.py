"""A tiny process supervisor (stdlib only): what docker's `restart: unless-stopped` does, for local processes.

    python -m appliance.runtime.supervise STATUS_FILE LOG_FILE -- ARGV...

Runs ARGV in its own session with stdout+stderr appended to LOG_FILE, restarts it when it exits (with a
backoff of 1, 2, 4 … 30 s), and keeps STATUS_FILE (JSON, written atomically) up to date: supervisor and child
pid, state, restart count, last exit code, start time. SIGTERM stops the child (SIGTERM, then SIGKILL after
the grace period in $APPLIANCE_STOP_GRACE_S, default 30) and exits without restarting.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

_stop = False


def _write(path: str, data: dict) -> None:
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w") as f:
        json.dump(data, f)
    os.replace(tmp, path)


def start_time(pid: int) -> int | None:
    """The process's start time in clock ticks since boot (/proc/PID/stat field 22): with the pid, it names one
    process for good — a pid reused by another process has another start time."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return int(f.read().rsplit(") ", 1)[1].split()[19])
    except (OSError, IndexError, ValueError):
        return None


def main(argv: list[str]) -> int:
    if len(argv) < 4 or argv[2] != "--":
        print("usage: python -m appliance.runtime.supervise STATUS_FILE LOG_FILE -- ARGV...", file=sys.stderr)
        return 2
    status_file, log_file, cmd = argv[0], argv[1], argv[3:]
    grace = float(os.environ.get("APPLIANCE_STOP_GRACE_S", "30"))
    restart = os.environ.get("APPLIANCE_RESTART", "unless-stopped") != "no"
    status = {"supervisor_pid": os.getpid(), "supervisor_start": start_time(os.getpid()), "child_pid": None,
              "child_start": None, "state": "starting", "restarts": 0,
              "exit_code": None, "started_at": time.time(), "argv": cmd}
    child: subprocess.Popen | None = None

    def on_term(signum, frame):
        global _stop
        _stop = True
        if child and child.poll() is None:
            try:  # the program itself, not its group: a real vLLM's workers exit at once on their own SIGTERM
                os.kill(child.pid, signal.SIGTERM)  # and cut the streams its API server is draining (measured)
            except ProcessLookupError:
                pass

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    backoff = 1.0
    while not _stop:
        with open(log_file, "ab", buffering=0) as logf:
            child = subprocess.Popen(cmd, stdout=logf, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                     start_new_session=True)
        if _stop:  # SIGTERM arrived while the child was being started: it must still get it
            try:
                os.kill(child.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        status.update(child_pid=child.pid, child_start=start_time(child.pid), state="running", started_at=time.time())
        _write(status_file, status)
        started = time.monotonic()
        while True:
            try:
                code = child.wait(timeout=0.5)
                break
            except subprocess.TimeoutExpired:
                if _stop:
                    deadline = time.monotonic() + grace
                    while child.poll() is None and time.monotonic() < deadline:
                        time.sleep(0.05)
                    if child.poll() is None:
                        try:
                            os.killpg(child.pid, signal.SIGKILL)
                        except ProcessLookupError:
                            pass
        code = child.wait()
        status.update(exit_code=code, child_pid=None, child_start=None)
        if _stop or not restart:
            break
        if time.monotonic() - started > 60:
            backoff = 1.0
        status.update(state="restarting")
        _write(status_file, status)
        end = time.monotonic() + backoff
        while time.monotonic() < end and not _stop:
            time.sleep(0.1)
        backoff = min(backoff * 2, 30.0)
        if not _stop:
            status["restarts"] += 1
    status.update(state="exited")
    _write(status_file, status)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
