"""The TUI's cost: steady-state CPU use (4 simulated GPUs, 2 engines, 1 Hz) and time to first paint.

    .venv/bin/python benchmarks/tui_cpu.py [--seconds 30] [--size 120x40] [--profile rtx3090x4-two-tier]

Starts a simulated rig (local processes, the real LiteLLM proxy; APPLIANCE_LITELLM or .venv-proxy) in a temporary
state dir with background traffic, then runs the dashboard as the owner does (`appliance --sim --runtime process`, through the CLI's
`main`) in a child process on a pseudo-terminal of the given size — the real terminal driver, real rendering, nothing headless. Reported:
  - first frame: spawn → the first bytes the app writes to the terminal (Python start and imports included);
  - first paint with data: spawn → the dashboard shows the first sample (the headline's "tok/J");
  - steady CPU: the child's user+system CPU time over the window after a warm-up, as % of one core,
    and per thread (the main thread runs the UI; the busiest other one is the sampler's worker);
Targets (issue #17): at 160×48 at most 3 % of one core, first paint with data within 1 s. Measured, printed, never
asserted; on a shared machine measure a few times (the CPU time is the TUI process's own, but contention inflates it).
Loopback only; the rig is stopped at the end. `--port-offset N` (default: APPLIANCE_TEST_PORT_OFFSET, else 0) runs a
copy of the profile with every port moved by N, so the benchmark can run next to tests or another rig.
"""

from __future__ import annotations

import argparse
import os
import pty
import select
import signal
import struct
import sys
import tempfile
import termios
import fcntl
import re
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

CHILD = """
import sys
sys.path.insert(0, {repo!r})
from appliance.cli import main
sys.exit(main(["--sim", "--runtime", "process"]))
"""


def cpu_seconds(pid: int) -> float:
    return cpu_seconds_of(Path(f"/proc/{pid}/stat"))


def thread_cpu(pid: int) -> dict[int, float]:
    """CPU seconds per thread of `pid` (by thread id; the main thread's id is the pid): which thread costs what —
    the UI's event loop (main) or the sampler's worker."""
    out = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            out[int(task.name)] = cpu_seconds_of(task / "stat")
        except OSError:  # the thread ended meanwhile
            pass
    return out


def cpu_seconds_of(stat: Path) -> float:
    fields = stat.read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def spawn(cols: int, rows: int, env: dict) -> tuple[int, int]:
    pid, fd = pty.fork()
    if pid == 0:
        os.execve(sys.executable, [sys.executable, "-c", CHILD.format(repo=str(REPO))], env)
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
    return pid, fd


def drain(fd: int, until: float, marker: bytes | None = None) -> tuple[bytes, float | None]:
    """Read the terminal until `until`; return what was read and when the marker first appeared."""
    buf = b""
    seen = None
    while time.time() < until:
        r, _, _ = select.select([fd], [], [], 0.1)
        if not r:
            continue
        try:
            chunk = os.read(fd, 65536)
        except OSError:
            break
        buf += chunk
        if marker and seen is None and marker in buf[-len(chunk) - len(marker):]:
            seen = time.time()
            return buf, seen
    return buf, seen


def offset_profile(d: Path, name: str, offset: int) -> None:
    """A copy of a shipped profile with its engine and proxy ports (and the simulated hosted models') moved by
    `offset`, found first through APPLIANCE_PROFILES."""
    from appliance.profile.model import DEFAULT_PROXY_PORT

    text = (REPO / "profiles" / f"{name}.yaml").read_text()
    text = re.sub(r"^(\s+port:) (\d+)$", lambda m: f"{m[1]} {int(m[2]) + offset}", text, flags=re.M)
    if re.search(r"^proxy:\n", text, flags=re.M):
        text = re.sub(r"^proxy:\n(?!  port:)", f"proxy:\n  port: {DEFAULT_PROXY_PORT + offset}\n", text, flags=re.M)
    else:
        text += f"\nproxy:\n  port: {DEFAULT_PROXY_PORT + offset}\n"
    d.mkdir(parents=True, exist_ok=True)
    (d / f"{name}.yaml").write_text(text)
    os.environ["APPLIANCE_PROFILES"] = str(d)
    os.environ["APPLIANCE_HOSTED_BASE_PORT"] = str(4100 + offset)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=30.0, help="measurement window (30)")
    ap.add_argument("--warmup", type=float, default=5.0)
    ap.add_argument("--size", default="120x40", help="terminal COLSxROWS (120x40)")
    ap.add_argument("--profile", default="rtx3090x4-two-tier", help="4 GPUs, 2 engines")
    ap.add_argument("--agents", type=int, default=3)
    ap.add_argument("--port-offset", type=int, default=int(os.environ.get("APPLIANCE_TEST_PORT_OFFSET", "0")),
                    help="move every port of the profile by this much (APPLIANCE_TEST_PORT_OFFSET or 0)")
    args = ap.parse_args()
    cols, rows = map(int, args.size.lower().split("x"))

    home = Path(tempfile.mkdtemp(prefix="tui-bench-"))
    os.environ["APPLIANCE_HOME"] = str(home)
    os.environ.setdefault("APPLIANCE_SIM_LOAD_S", "1")
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    if args.port_offset:
        offset_profile(home / "profiles", args.profile, args.port_offset)
    from appliance import secrets
    from appliance.load import BackgroundTraffic
    from appliance.profile import load_profile
    from appliance.rig import simulated_rig
    from appliance.stack import Stack

    stack = Stack(simulated_rig(runtime="process"))
    profile = load_profile(args.profile)
    print(f"starting {profile.name} on a simulated rig in {home} …", file=sys.stderr)
    traffic = None
    pid = None
    try:
        res = stack.up(profile)
        if not res.ok:
            print(f"the rig did not start: {res.reason}", file=sys.stderr)
            return 1
        port = stack.rig.state.load().proxy.port
        traffic = BackgroundTraffic(f"http://127.0.0.1:{port}/v1", secrets.master_key(),
                                    profile.engines[0].aliases[0], concurrency=args.agents).start()
        time.sleep(3)
        env = dict(os.environ, TERM="xterm-256color", COLUMNS=str(cols), LINES=str(rows))
        t0 = time.time()
        pid, fd = spawn(cols, rows, env)
        _, first = drain(fd, t0 + 30, b"\x1b[")
        _, painted = drain(fd, t0 + 30, b"tok/J")
        drain(fd, time.time() + args.warmup)
        c0, t0s, w0 = cpu_seconds(pid), thread_cpu(pid), time.time()
        drain(fd, w0 + args.seconds)
        c1, t1s, w1 = cpu_seconds(pid), thread_cpu(pid), time.time()
        cpu_pct = 100 * (c1 - c0) / (w1 - w0)
        engines = len(profile.engines)
        gpus = stack.rig.gpus().count()
        print()
        print(f"TUI benchmark · {profile.name} · {gpus} simulated GPUs · {engines} engines · 1 Hz sampling · "
              f"terminal {cols}×{rows} · {args.agents} agents of background traffic")
        print(f"{'metric':<34}{'measured':>12}{'target':>12}")
        print(f"{'first frame (spawn → first bytes)':<34}{(first - t0) if first else float('nan'):>10.2f} s"
              f"{'':>12}")
        print(f"{'first paint with data':<34}{(painted - t0) if painted else float('nan'):>10.2f} s"
              f"{'≤ 1 s':>12}")
        print(f"{'steady-state CPU (one core)':<34}{cpu_pct:>10.2f} %{'≤ 3 %':>12}")
        for tid in sorted(t1s, key=lambda k: t0s.get(k, 0.0) - t1s[k]):
            share = 100 * (t1s[tid] - t0s.get(tid, 0.0)) / (w1 - w0)
            if share >= 0.05:
                name = "main thread (UI)" if tid == pid else f"thread {tid}"
                print(f"{'  ' + name:<34}{share:>10.2f} %")
        print(f"{'window':<34}{w1 - w0:>10.1f} s")
        return 0
    finally:
        if pid:
            try:
                os.kill(pid, signal.SIGTERM)
                os.waitpid(pid, 0)
            except OSError:
                pass
        if traffic:
            traffic.stop()
        stack.down(all_=True)


if __name__ == "__main__":
    raise SystemExit(main())
