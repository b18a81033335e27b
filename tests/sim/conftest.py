"""Fixtures: a fresh simulated rig per test and real engine processes on free loopback ports."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from appliance.sim.gpu import SimGPUs

REPO = Path(__file__).resolve().parents[2]
MODEL = "Qwen/Qwen2.5-14B-Instruct-AWQ"  # ~100 tok/s alone on a 3090 at 350 W: quick but measurable


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class EngineProc:
    def __init__(self, proc: subprocess.Popen, port: int, log: Path):
        self.proc = proc
        self.port = port
        self.log = log
        self.url = f"http://127.0.0.1:{port}"

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_ready(self, timeout: float = 15.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"engine exited {self.proc.returncode}:\n{self.output()}")
            try:
                if httpx.get(self.url + "/health", timeout=0.3).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        raise AssertionError(f"engine not ready in {timeout}s:\n{self.output()}")

    def wait_exit(self, timeout: float = 10.0) -> int:
        return self.proc.wait(timeout)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


@pytest.fixture
def rig(tmp_path):
    sim_dir = tmp_path / "sim"
    return SimGPUs.create(sim_dir, ["3090"] * 4)


@pytest.fixture
def start_engine(rig, tmp_path):
    """start_engine(*flags, env={...}, model=MODEL, wait=True) -> EngineProc; every process is stopped after."""
    procs: list[EngineProc] = []

    def start(*flags: str, env: dict | None = None, model: str | None = MODEL, wait: bool = True,
              port: int | None = None) -> EngineProc:
        port = port or free_port()
        log = tmp_path / f"engine-{port}-{len(procs)}.log"
        full_env = {k: v for k, v in os.environ.items() if not k.startswith(("APPLIANCE_SIM_", "CUDA_VISIBLE",
                                                                           "NVIDIA_VISIBLE"))}
        full_env.update({"APPLIANCE_SIM_DIR": str(rig.sim_dir), "APPLIANCE_SIM_LOAD_S": "0.3",
                         "PYTHONPATH": str(REPO)})
        full_env.update(env or {})
        argv = [sys.executable, "-m", "appliance.sim.engine", "serve"]
        if model:
            argv.append(model)
        argv += ["--host", "127.0.0.1", "--port", str(port), *flags]
        with open(log, "wb") as out:
            proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=full_env, cwd=REPO)
        ep = EngineProc(proc, port, log)
        procs.append(ep)
        if wait:
            ep.wait_ready()
        return ep

    yield start
    for ep in procs:
        ep.stop()
