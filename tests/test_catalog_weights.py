"""Weights without a safetensors index: the GQA/MoE-aware count from config.json facts, and what an owner may
state in models.yaml (`num_parameters`, `weights_bytes`, a pasted `quantization_config`)."""

from __future__ import annotations

import pytest
import yaml

from appliance import catalog, memory
from appliance.errors import ProfileError

GIB = 1024**3
QWEN25_7B = dict(model_type="qwen2", hidden_size=3584, intermediate_size=18944, num_hidden_layers=28,
                 num_attention_heads=28, num_key_value_heads=4, vocab_size=152064, tie_word_embeddings=False,
                 max_position_embeddings=32768, torch_dtype="bfloat16")


def _write_models(tmp_path, monkeypatch, data: dict):
    monkeypatch.setenv("APPLIANCE_HOME", str(tmp_path))
    (tmp_path / "config").mkdir(parents=True, exist_ok=True)
    (tmp_path / "config" / "models.yaml").write_text(yaml.safe_dump(data))


def test_gqa_count_matches_the_checkpoints():
    """Qwen2.5-7B-Instruct is 7.62 B parameters (its model card); a count that ignored the 4 KV heads would say 8.3."""
    arch = catalog.arch_from_config(QWEN25_7B, "t")
    linear, other = memory.param_counts(arch)
    assert (linear + other) / 1e9 == pytest.approx(7.62, rel=0.01)
    assert arch.params_b == pytest.approx(7.62, rel=0.01)


def test_moe_count_holds_every_expert():
    """Qwen3-30B-A3B: 30.5 B parameters resident, 3.3 B active."""
    arch = catalog.arch_from_config(dict(model_type="qwen3_moe", hidden_size=2048, intermediate_size=6144,
                                         moe_intermediate_size=768, num_experts=128, num_experts_per_tok=8,
                                         num_hidden_layers=48, num_attention_heads=32, num_key_value_heads=4,
                                         head_dim=128, vocab_size=151936), "t")
    assert sum(memory.param_counts(arch)) / 1e9 == pytest.approx(30.5, rel=0.01)


def test_models_yaml_pasted_quantization_config(tmp_path, monkeypatch):
    _write_models(tmp_path, monkeypatch, {"acme/Qwen-7B-AWQ": dict(QWEN25_7B, torch_dtype="float16",
                  quantization_config={"quant_method": "awq", "bits": 4, "group_size": 128})})
    ck = catalog.lookup("acme/Qwen-7B-AWQ", use_hf_cache=False)
    assert ck.quant_method == "awq" and ck.weight_bits == 4
    # vLLM logged 5.29 GiB for Qwen2.5-7B-Instruct-AWQ (tests/calibration/4080-qwen25-7b-awq.yaml)
    assert catalog.weights_bytes(ck) / GIB == pytest.approx(5.29, rel=0.03)
    assert ck.weights_provenance == "estimated"


def test_models_yaml_stated_size_wins(tmp_path, monkeypatch):
    _write_models(tmp_path, monkeypatch, {
        "acme/sized": dict(QWEN25_7B, weights_bytes=12_345_678_901),
        "acme/counted": dict(QWEN25_7B, num_parameters=9_000_000_000)})
    sized = catalog.lookup("acme/sized", use_hf_cache=False)
    assert catalog.weights_bytes(sized) == 12_345_678_901 and sized.weights_provenance == "stated"
    counted = catalog.lookup("acme/counted", use_hf_cache=False)
    assert catalog.weights_bytes(counted) == pytest.approx(9e9 * 2, rel=0.001)
    assert counted.weights_provenance == "stated"


def test_models_yaml_bad_size_names_file_field_and_fix(tmp_path, monkeypatch):
    _write_models(tmp_path, monkeypatch, {"acme/bad": dict(QWEN25_7B, weights_bytes="lots")})
    with pytest.raises(ProfileError) as err:
        catalog.lookup("acme/bad", use_hf_cache=False)
    assert "models.yaml" in str(err.value) and "weights_bytes" in str(err.value) and "'lots'" in str(err.value)


def test_gptq_storage_per_weight():
    """GPTQ (and its AutoRound export, `inc` in vLLM) stores an fp16 scale and a zero packed at the weight's width per
    group of input rows, at 4 and at 8 bits; FP8 and compressed-tensors INT8 scale per channel. Per-column GPTQ
    (group_size -1) has one group per input dimension, so its groups cost nothing, not 2.5 bytes a weight."""
    assert memory.weight_bytes_per_param("gptq", 4, 128) == pytest.approx(0.5 + 2.5 / 128)
    assert memory.weight_bytes_per_param("auto-round", 4, 128) == pytest.approx(0.5 + 2.5 / 128)
    assert memory.weight_bytes_per_param("gptq", 8, 128) == pytest.approx(1 + 3 / 128)  # Qwen GPTQ-Int8: +2.3 %
    assert memory.weight_bytes_per_param("fp8", 8, 128) == 1.0
    assert memory.weight_bytes_per_param("compressed-tensors", 8, 128) == 1.0
    assert memory.weight_bytes_per_param("gptq", 4, -1) == 0.5
    arch = catalog.arch_from_config(QWEN25_7B, "t")
    linear, other = memory.param_counts(arch)
    per_column = memory.estimated_weights_bytes(arch, "gptq", 4, -1)
    assert per_column == pytest.approx(linear * 0.5 + other * 2 + memory.rope_cache_bytes(arch), rel=1e-6)
    assert per_column < memory.estimated_weights_bytes(arch, "gptq", 4, 128) < 0.4 * memory.estimated_weights_bytes(
        arch, None, 16)


def test_models_yaml_pasted_gptq_per_column(tmp_path, monkeypatch):
    """A pasted GPTQ quantization_config with group_size -1 reaches the estimate as per-column groups."""
    _write_models(tmp_path, monkeypatch, {"acme/Qwen-7B-GPTQ": dict(QWEN25_7B, torch_dtype="float16",
                  quantization_config={"quant_method": "gptq", "bits": 4, "group_size": -1, "desc_act": False})})
    ck = catalog.lookup("acme/Qwen-7B-GPTQ", use_hf_cache=False)
    assert ck.quant_method == "gptq" and ck.group_size == -1
    linear, other = memory.param_counts(ck.arch)
    assert catalog.weights_bytes(ck) / GIB == pytest.approx((linear * 0.5 + other * 2) / GIB, rel=0.01)
