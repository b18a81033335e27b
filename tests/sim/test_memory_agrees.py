"""The simulated engine and `appliance check` share one memory model (appliance.memory): for every shipped profile,
the stand-in engine started with the profile's own argv on the profile's card logs the "Available KV cache memory"
and "GPU KV cache size" that the fit check predicts for that engine.

The engine runs as a real process (its own argv parsing, version defaults, card table), so a default resolved
differently on either side (util, max_num_seqs, batched tokens, sampler, visible memory) shows up as a mismatch.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from appliance import cards, vllm_spec
from appliance.fit import GPU, fit_profile
from appliance.profile import load_profile
from appliance.render.compose import vllm_options
from appliance.sim import physics
from appliance.sim.gpu import SimGPUs
from appliance.vllm_versions import version_from_image

from .conftest import REPO, EngineProc, free_port

PROFILES = sorted((REPO / "profiles").glob("*.yaml"))
KV_GIB = re.compile(r"Available KV cache memory: (-?[\d.]+) GiB")
KV_TOKENS = re.compile(r"GPU KV cache size: ([\d,]+) tokens")


def engines():
    for path in PROFILES:
        profile = load_profile(path)
        for engine in profile.engines:
            yield pytest.param(path, engine.name, id=f"{path.stem}:{engine.name}")


def start_like_the_rig(tmp_path: Path, profile, engine, gpu_indices: list[int]) -> EngineProc:
    """The engine as the rig starts it: the profile's vLLM options (host/port moved to loopback), the image's vLLM
    version, only its own GPUs visible."""
    rig = SimGPUs.create(tmp_path / "sim", [profile.card] * (max(gpu_indices) + 1))
    port = free_port()
    opts = {**vllm_options(engine), "host": "127.0.0.1", "port": port}
    argv = [sys.executable, "-m", "appliance.sim.engine", "serve", engine.model,
            *vllm_spec.to_cli_args(opts), *engine.extra_args]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("APPLIANCE_SIM_", "CUDA_VISIBLE",
                                                                    "NVIDIA_VISIBLE"))}
    env.update({"APPLIANCE_SIM_DIR": str(rig.sim_dir), "APPLIANCE_SIM_LOAD_S": "0.3", "PYTHONPATH": str(REPO),
                "CUDA_VISIBLE_DEVICES": ",".join(map(str, gpu_indices)),
                "APPLIANCE_SIM_VLLM_VERSION": version_from_image(engine.image) or vllm_spec.DEFAULT_VERSION})
    log = tmp_path / "engine.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=REPO)
    return EngineProc(proc, port, log)


@pytest.mark.parametrize("path,engine_name", list(engines()))
def test_simulated_engine_logs_what_check_predicts(tmp_path, path, engine_name):
    profile = load_profile(path)
    card = cards.lookup(profile.card)
    n = max(len(profile.gpus) if profile.gpus != "all" else 1, 1)
    report = fit_profile(profile, [GPU.from_card(i, card) for i in range(n)], use_hf_cache=False)
    fit = next(e for e in report.engines if e.engine.split(" ")[0] == engine_name or e.engine == engine_name)
    engine = next(e for e in profile.engines if e.name == engine_name)
    ep = start_like_the_rig(tmp_path, profile, engine, fit.gpus)
    try:
        ep.wait_ready(timeout=30)
        out = ep.output()
    finally:
        ep.stop()
    logged_gib = float(KV_GIB.search(out).group(1))
    logged_tokens = int(KV_TOKENS.search(out).group(1).replace(",", ""))
    assert logged_tokens == fit.kv_tokens, (path.name, engine_name, logged_tokens, fit.kv_tokens)
    assert logged_gib == round(fit.available_kv_bytes / 2**30, 2), (logged_gib, fit.available_kv_bytes / 2**30)


def test_the_plans_agree_where_the_old_overhead_shape_did_not():
    """The hard case: a 4090 whose CUDA total (23.52 GiB) is under NVML's (23.99) and vLLM 0.19's PyTorch sampler
    over Llama's 128k vocabulary. The sim used to budget on NVML's total with a fixed 1.5 GiB overhead."""
    profile = load_profile(REPO / "profiles" / "rtx4090-llama31-8b-chat.yaml")
    engine = profile.engines[0]
    card = cards.lookup(profile.card)
    fit = fit_profile(profile, [GPU.from_card(0, card)], use_hf_cache=False).engines[0]
    size = physics.model_size(engine.model, engine.quantization)
    plan = physics.memory_plan(card, 1, size, engine.gpu_memory_utilization, engine.kv_cache_dtype,
                               engine.max_model_len, False, engine.max_num_seqs, engine.max_num_batched_tokens,
                               vllm_version=version_from_image(engine.image))
    assert plan.kv_available_bytes == fit.available_kv_bytes and plan.kv_tokens == fit.kv_tokens
    assert plan.requested_bytes == fit.budget_bytes_per_gpu < int(card.memory_bytes * engine.gpu_memory_utilization)
