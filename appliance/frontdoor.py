"""The front door at run time: HAProxy's runtime API (a unix socket) to enable, drain and count the local
engines, and a seamless reload (master-worker: SIGUSR2; connections in flight stay on the old worker)."""

from __future__ import annotations

import csv
import hashlib
import io
import os
import socket
import time
from pathlib import Path

from appliance.errors import StackError


def socket_path(rig_dir: Path) -> Path:
    """A unix socket path short enough for sun_path (108 bytes)."""
    p = rig_dir / "run" / "haproxy.sock"
    if len(str(p)) < 100:
        return p
    h = hashlib.sha1(str(rig_dir).encode()).hexdigest()[:12]
    return Path(f"/tmp/appliance-{os.getuid()}-{h}") / "haproxy.sock"


def admin(sock: Path, command: str, timeout_s: float = 2.0) -> str:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout_s)
    try:
        s.connect(str(sock))
        s.sendall(command.encode() + b"\n")
        chunks = []
        while True:
            data = s.recv(65536)
            if not data:
                break
            chunks.append(data)
        return b"".join(chunks).decode("utf-8", "replace")
    except OSError as exc:
        raise StackError(f"the front door's runtime socket {sock} does not answer ({exc})",
                         "is the proxy running? `appliance up` starts it") from None
    finally:
        s.close()


def worker_pid(sock: Path) -> int | None:
    try:
        for line in admin(sock, "show info", timeout_s=1.0).splitlines():
            if line.startswith("Pid:"):
                return int(line.split(":", 1)[1])
    except (StackError, ValueError):
        return None
    return None


def wait_ready(sock: Path, timeout_s: float = 10.0, not_pid: int | None = None) -> int:
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        pid = worker_pid(sock)
        if pid and pid != not_pid:
            return pid
        time.sleep(0.05)
    raise StackError("the front door (HAProxy) did not come up", "`appliance logs proxy`; is haproxy installed?")


class NoSuchServer(StackError):
    """The running HAProxy config has no such backend/server (a profile it does not serve now)."""


def set_state(sock: Path, backend: str, state: str, server: str = "local") -> None:
    """state: ready | drain | maint"""
    out = admin(sock, f"set server {backend}/{server} state {state}").strip()
    if out and "No such" in out:
        raise NoSuchServer(f"front door: {out}", "this is a bug: the config and the profile disagree")


def stats(sock: Path) -> list[dict]:
    text = admin(sock, "show stat")
    if text.startswith("# "):
        text = text[2:]
    return list(csv.DictReader(io.StringIO(text)))


def counts(sock: Path) -> dict:
    """Per alias backend: requests relayed to the local engine and to the fallback, and 5xx answers sent to
    agents from those backends (what went through LiteLLM is counted by LiteLLM's own metrics)."""
    out: dict = {"local": {}, "fallback": {}, "errors": 0.0, "status": {}}
    for row in stats(sock):
        px, sv = row.get("pxname", ""), row.get("svname", "")
        alias_px = px.removesuffix("_full")  # streams and whole responses of one alias
        if px.startswith("alias_") and sv in ("local", "fallback"):
            out[sv][alias_px] = out[sv].get(alias_px, 0.0) + float(row.get("stot") or 0)
            if sv == "local" and px == alias_px:
                out["status"][px] = row.get("status")
        if px.startswith("alias_") and sv == "BACKEND":  # inference answers only (not the liveness probes)
            out["errors"] += float(row.get("hrsp_5xx") or 0)
    return out
