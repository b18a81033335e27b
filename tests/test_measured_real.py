"""End to end on a REAL vLLM (the CPU build of [2/8], `make real-vllm`): start it, read its startup log and its
`vllm:cache_config_info` metric through appliance.measured, record the measurement, read it back after a
"restart" of the store. One engine, ~30 s, ~2.2 GB of RAM; skipped where the real engine is not installed
(a failure under APPLIANCE_REQUIRE_TESTBED=1)."""

from __future__ import annotations

import dataclasses

import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import httpx

from appliance import measured
from conftest import REPO, missing

START_TIMEOUT_S = 240.0
KV_BYTES = 64 * 1024 * 1024


def _real_vllm() -> tuple[Path, Path]:
    venv = Path(os.environ.get("APPLIANCE_VLLM_VENV") or REPO / ".venv-vllm")
    exe = Path(os.environ.get("APPLIANCE_VLLM") or venv / "bin" / "vllm")
    model = Path(os.environ.get("APPLIANCE_TINY_MODEL") or venv / "tiny-model")
    if not exe.is_file() or not (model / "config.json").is_file():
        missing("the real vLLM (CPU build)", "run `make real-vllm`, or set APPLIANCE_VLLM and APPLIANCE_TINY_MODEL")
    return exe, model


def _env(workdir: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VLLM_", "APPLIANCE_SIM_"))}
    for key, sub in (("VLLM_CACHE_ROOT", "vllm-cache"), ("TORCHINDUCTOR_CACHE_DIR", "inductor"), ("HF_HOME", "hf"),
                     ("TMPDIR", "tmp")):
        (workdir / sub).mkdir(parents=True, exist_ok=True)
        env[key] = str(workdir / sub)
    env.update(HF_HUB_OFFLINE="1", VLLM_NO_USAGE_STATS="1", DO_NOT_TRACK="1")
    return env


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_real_start_is_read_recorded_and_survives_a_restart(tmp_path):
    exe, model = _real_vllm()
    port = _port()
    argv = [str(exe), "serve", str(model), "--served-model-name", "tiny", "--host", "127.0.0.1", "--port", str(port),
            "--max-model-len", "2048", "--max-num-seqs", "8", "--enforce-eager", "--kv-cache-memory-bytes", "64M"]
    log_path = tmp_path / "engine.log"
    with open(log_path, "wb") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=_env(tmp_path), cwd=tmp_path,
                                start_new_session=True)
    try:
        deadline, metrics = time.monotonic() + START_TIMEOUT_S, None
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                    metrics = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
                    break
            except httpx.HTTPError:
                pass
            time.sleep(1)
        assert metrics is not None, f"the real engine did not come up:\n{log_path.read_text()[-3000:]}"
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)
    log = log_path.read_text(errors="replace")
    settings = {"tensor_parallel_size": 1, "pipeline_parallel_size": 1, "gpu_memory_utilization": None,
                "max_model_len": 2048, "max_num_seqs": 8, "max_num_batched_tokens": None, "kv_cache_dtype": "auto",
                "enforce_eager": True}
    from_log = measured.read_log(log)
    from_metric = measured.read_cache_config_info(metrics)
    assert from_log["device"] == "cpu" and "weights_bytes" not in from_log  # the CPU build has no loading line
    assert from_log["kv_cache_tokens"] > 2048
    assert from_metric["kv_cache_tokens"] == from_log["kv_cache_tokens"]  # the two readers agree
    m = measured.measurement("tiny", "cpu", "0.32.0", settings, log_text=log, metrics_text=metrics)
    assert m.source == "log+metrics" and m.vllm_version.startswith("0.")
    if m.kv_cache_bytes is not None:
        assert abs(m.kv_cache_bytes - KV_BYTES) <= KV_BYTES * 0.02
    store = measured.Store(tmp_path / "state" / "measurements.json")
    store.record(m)
    again = measured.Store(tmp_path / "state" / "measurements.json")
    # recorded here, it names this store's rig (the GPU rig by default); otherwise read back as it was written
    assert again.problem is None and again.all() == [dataclasses.replace(m, rig=measured.REAL_RIG)]
    assert measured.learned(again, "tiny", "cpu", tp=1) is None  # a CPU start teaches no GPU overhead
