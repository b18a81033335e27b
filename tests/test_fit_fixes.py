"""The fixes `appliance check` suggests for a KV-limited or non-fitting engine: each one must help, checked by
applying it and checking again; gpu_memory_utilization is never the advice once it is already high."""

from __future__ import annotations

import pytest
import yaml

from appliance import cards
from appliance.fit import GPU, fit_profile
from appliance.profile import load_profile


def check(tmp_path, card: str = "4090", n: int = 1, rig: int | None = None, **engine):
    """One engine on `n` GPUs of a rig of `rig` (default n) GPUs of `card`."""
    rig = rig or n
    spec = {"name": "p", "gpus": list(range(n)), "engines": [{"aliases": ["local"], **engine}]}
    f = tmp_path / f"p{len(list(tmp_path.iterdir()))}.yaml"
    f.write_text(yaml.safe_dump(spec))
    c = cards.CARDS[card]
    return fit_profile(load_profile(f), [GPU.from_card(i, c) for i in range(rig)], use_hf_cache=False).engines[0]


LLAMA = dict(model="meta-llama/Llama-3.1-8B-Instruct", quantization="fp8", max_model_len=65536, max_num_seqs=32)


@pytest.mark.parametrize("util", [0.95, 0.97])
def test_high_utilization_is_not_the_advice(tmp_path, util):
    """KV-limited at 0.95+: what helps is a shorter context, fp8 KV, fewer sequences or more tensor parallelism."""
    e = check(tmp_path, rig=2, gpu_memory_utilization=util, **LLAMA)
    assert e.fits and not e.full_concurrency_fits, e.verdict
    text = " | ".join(e.fixes)
    assert "gpu_memory_utilization" not in text
    assert e.fixes[0].startswith("lower max_model_len to ") and "max_num_seqs to" in text
    assert "kv_cache_dtype fp8" in text and "tensor_parallel_size 2" in text


def test_every_suggested_fix_helps_when_applied(tmp_path):
    e = check(tmp_path, rig=2, gpu_memory_utilization=0.95, **LLAMA)
    fp8 = check(tmp_path, gpu_memory_utilization=0.95, kv_cache_dtype="fp8", **LLAMA)
    tp2 = check(tmp_path, "4090", 2, gpu_memory_utilization=0.95, tensor_parallel_size=2, **LLAMA)
    assert fp8.kv_tokens > 1.9 * e.kv_tokens and tp2.kv_tokens > 2 * e.kv_tokens
    # the fix says what it would hold, and that is what checking the changed profile gives
    said = lambda start: next(f for f in e.fixes if f.startswith(start))  # noqa: E731
    assert f"holds {fp8.kv_tokens} tokens" in said("or use kv_cache_dtype fp8") or fp8.full_concurrency_fits
    assert f"holds {tp2.kv_tokens} tokens" in said("or spread it over 2 GPUs (tensor_parallel_size 2)")


def test_raising_utilization_is_offered_only_where_it_buys_something(tmp_path):
    low = check(tmp_path, gpu_memory_utilization=0.8, **LLAMA)
    assert any(f.startswith("or raise gpu_memory_utilization to 0.95") for f in low.fixes), low.fixes
    raised = check(tmp_path, gpu_memory_utilization=0.95, **LLAMA)
    offered = next(f for f in low.fixes if "gpu_memory_utilization" in f)
    assert f"holds {raised.kv_tokens} tokens" in offered
    # 0.94 → 0.95 is 1 % of the card: not worth offering
    almost = check(tmp_path, gpu_memory_utilization=0.94, **LLAMA)
    assert not any("gpu_memory_utilization" in f for f in almost.fixes), almost.fixes


def test_tensor_parallel_is_not_offered_when_kv_heads_cannot_split(tmp_path):
    """Qwen2.5-7B has 4 KV heads: at TP 4, TP 8 replicates them and the KV per GPU stays the same."""
    e = check(tmp_path, "3060", 4, model="Qwen/Qwen2.5-7B-Instruct-AWQ", tensor_parallel_size=4,
              max_model_len=32768, max_num_seqs=256, gpu_memory_utilization=0.95)
    assert not e.full_concurrency_fits
    assert not any("tensor_parallel_size 8" in f for f in e.fixes), e.fixes


def test_weights_do_not_fit_never_suggests_lowering_utilization(tmp_path):
    e = check(tmp_path, model="Qwen/Qwen2.5-14B-Instruct", max_model_len=8192, gpu_memory_utilization=0.97)
    assert not e.fits
    assert not any(f.startswith("raise gpu_memory_utilization") for f in e.fixes), e.fixes
    assert any("quantized" in f for f in e.fixes)
