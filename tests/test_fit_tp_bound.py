"""A tensor-parallel fix only points at GPUs that are there and free: the rig's (or --gpu's) GPUs that no other
engine of the profile uses. Once: "spread it over 2 GPUs" on one 4090, "over 4 GPUs" for an engine whose other
GPUs the profile's second engine holds, "over 8 GPUs" on a 4×L4 rig."""

from __future__ import annotations

import subprocess
import sys

import yaml

from appliance import cards
from appliance.fit import GPU, fit_profile
from appliance.profile import load_profile

from conftest import REPO

LLAMA = dict(model="meta-llama/Llama-3.1-8B-Instruct", max_model_len=65536, max_num_seqs=32,
             gpu_memory_utilization=0.95)


def fit(tmp_path, card: str, rig: int, *engines: dict, uses: int | None = None):
    """The engines on the profile's first `uses` GPUs (default: all) of a rig of `rig` GPUs of `card`."""
    spec = {"name": "p", "gpus": list(range(uses or rig)),
            "engines": [{"name": f"e{i}", "aliases": [f"a{i}"], "port": 8001 + i, **e} for i, e in enumerate(engines)]}
    f = tmp_path / "p.yaml"
    f.write_text(yaml.safe_dump(spec))
    c = cards.CARDS[card]
    return fit_profile(load_profile(f), [GPU.from_card(i, c) for i in range(rig)], use_hf_cache=False)


def spread(e) -> list[str]:
    return [f for f in e.fixes if "spread it over" in f]


def test_one_card_gets_no_tensor_parallel_fix(tmp_path):
    e = fit(tmp_path, "4090", 1, LLAMA).engines[0]
    assert not e.full_concurrency_fits and e.fixes and not spread(e), e.fixes
    big = fit(tmp_path, "4090", 1, dict(model="Qwen/Qwen2.5-14B-Instruct", max_model_len=8192)).engines[0]
    assert not big.fits and big.fixes and not spread(big), big.fixes


def test_a_free_gpu_is_offered(tmp_path):
    e = fit(tmp_path, "4090", 2, LLAMA, uses=1).engines[0]
    assert spread(e) and "over 2 GPUs (tensor_parallel_size 2)" in spread(e)[0]


def test_gpus_of_another_engine_are_not_offered(tmp_path):
    r = fit(tmp_path, "4090", 2, dict(LLAMA, gpus=[0]), dict(LLAMA, gpus=[1]))
    assert all(not e.full_concurrency_fits and not spread(e) for e in r.engines), [e.fixes for e in r.engines]


def test_no_eight_gpus_on_four_l4s(tmp_path):
    e = fit(tmp_path, "l4", 4, dict(LLAMA, tensor_parallel_size=4, max_model_len=131072, max_num_seqs=64)).engines[0]
    assert not e.full_concurrency_fits and not spread(e), e.fixes


def test_two_tier_fast_engine_is_not_told_to_take_the_smart_engines_gpus():
    out = subprocess.run([sys.executable, "-m", "appliance", "check", "rtx3090x4-two-tier", "--gpu", "3090x4"],
                         capture_output=True, text=True, cwd=REPO)
    assert "fits, KV-limited" in out.stdout and "over 4 GPUs" not in out.stdout, out.stdout
