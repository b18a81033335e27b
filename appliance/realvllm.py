"""Where the real vLLM (the CPU build, `make real-vllm`) and its tiny test model live, and how to start it.

Why a module of its own: the test suite, the conformance suite and (later) the process runtime and
`appliance demo --real-vllm` all need the same three answers — which `vllm` binary, which model directory, which
environment — and the environment is where a real vLLM goes wrong on these machines (caches in $HOME, usage
stats, ZMQ socket files left in /tmp, the default memory utilisation refusing to start on a CPU node). The
measured facts behind every choice are in ../shared/reference/real-vllm.md.

API (all pure except the file-existence checks):
- `vllm_executable()`  → Path | None: $APPLIANCE_VLLM, else REPO/.venv-vllm/bin/vllm (when `make real-vllm` ran)
- `tiny_model_dir()`   → Path | None: $APPLIANCE_TINY_MODEL, else REPO/.venv-vllm/tiny-model (has config.json)
- `engine_env(workdir, base)` → the environment for one engine, caches and temporary files under `workdir`
- `serve_argv(exe, model, port, …)` → the `vllm serve` command line the tests and the demo use
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from appliance import paths

VENV_NAME = ".venv-vllm"
MODEL_DIR_NAME = "tiny-model"
SERVED_NAMES = ("tiny", "local")  # the first name is the one answers and metric labels carry
# 64 MiB of KV cache: the default gpu_memory_utilization (0.92) refuses to start on an 11 GiB NUMA node, and a
# small explicit size keeps one engine at ~2.2 GB RSS so two fit next to the other tests.
KV_CACHE_BYTES = "64M"
MAX_MODEL_LEN = 2048
# vLLM puts ZMQ IPC sockets at $TMPDIR/<uuid4>; a Unix socket path has at most 107 bytes (measured: a deeper
# TMPDIR fails the start with `ZMQError: ipc path … is longer than 107 characters`).
MAX_TMPDIR_LEN = 64


def venv_dir() -> Path:
    return Path(os.environ.get("APPLIANCE_VLLM_VENV") or paths.REPO_DIR / VENV_NAME)


def vllm_executable() -> Path | None:
    """The real `vllm` console script: $APPLIANCE_VLLM, else the repo's .venv-vllm (never a `vllm` on PATH: on a
    rig that could be anything, and the stand-in is installed as `appliance-sim-vllm`, not `vllm`)."""
    env = os.environ.get("APPLIANCE_VLLM")
    if env:
        return Path(env) if Path(env).is_file() else None
    exe = venv_dir() / "bin" / "vllm"
    return exe if exe.is_file() and (venv_dir() / ".installed").is_file() else None


def tiny_model_dir() -> Path | None:
    """The tiny model `make real-vllm` builds (tools/build_tiny_model.py)."""
    env = os.environ.get("APPLIANCE_TINY_MODEL")
    d = Path(env) if env else venv_dir() / MODEL_DIR_NAME
    return d if (d / "config.json").is_file() and (d / "model.safetensors").is_file() else None


def engine_env(workdir: Path, base: dict[str, str] | None = None) -> dict[str, str]:
    """Environment for one real engine: every cache and temporary file inside `workdir` (each start leaves ZMQ
    socket files and a vllm_dist_* file in TMPDIR), no hub, no usage reporting. TMPDIR is workdir/tmp unless that
    path is too long for ZMQ's Unix sockets; then a fresh /tmp/vllm-* directory (named in workdir/tmp-path)."""
    workdir = Path(workdir)
    env = dict(os.environ if base is None else base)
    for key in [k for k in env if k.startswith(("APPLIANCE_SIM_", "VLLM_"))]:
        env.pop(key)  # a stand-in's settings or a stray VLLM_* knob must not leak into the real engine
    tmp = workdir / "tmp"
    if len(str(tmp)) > MAX_TMPDIR_LEN:
        workdir.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix="vllm-", dir="/tmp"))  # short enough for ZMQ's socket paths
        (workdir / "tmp-path").write_text(str(tmp))  # where it went, for whoever cleans up
    tmp.mkdir(parents=True, exist_ok=True)
    env.update({
        "TMPDIR": str(tmp),
        "VLLM_CACHE_ROOT": str(workdir / "vllm-cache"),
        "TORCHINDUCTOR_CACHE_DIR": str(workdir / "inductor-cache"),
        "HF_HOME": str(workdir / "hf-home"),
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "VLLM_NO_USAGE_STATS": "1",
        "DO_NOT_TRACK": "1",
        "TOKENIZERS_PARALLELISM": "false",
        "PYTHONUNBUFFERED": "1",
    })
    return env


def serve_argv(exe: Path | str, model: Path | str, port: int, *extra: str,
               served: tuple[str, ...] = SERVED_NAMES, host: str = "127.0.0.1",
               max_model_len: int = MAX_MODEL_LEN, kv_cache_bytes: str | None = KV_CACHE_BYTES) -> list[str]:
    """`vllm serve MODEL …` with the settings measured to start in ~25 s on 2 cores (eager: no compile)."""
    argv = [str(exe), "serve", str(model), "--served-model-name", *served, "--host", host, "--port", str(port),
            "--max-model-len", str(max_model_len), "--max-num-seqs", "8", "--enforce-eager"]
    if kv_cache_bytes:
        argv += ["--kv-cache-memory-bytes", kv_cache_bytes]
    return argv + list(extra)
