"""appliance.advice: what vLLM would warn about at start, one test that fires and one that stays quiet per rule."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from appliance import advice, cards, catalog
from appliance.profile import load_profile
from appliance.render.compose import vllm_options
from appliance.vllm_versions import version_from_image

REPO = Path(__file__).resolve().parents[1]
PROFILES = REPO / "profiles"
C3090, C4090, H100 = cards.lookup("3090"), cards.lookup("4090"), cards.lookup("h100")
QWEN14 = catalog.lookup("Qwen/Qwen2.5-14B-Instruct-AWQ", use_hf_cache=False).arch  # 40 heads, 8 KV heads


def rules(options, version="0.19.0", **kw) -> dict[str, advice.Advice]:
    return {a.rule: a for a in advice.advise(options, version, **kw)}


def shipped(name: str) -> dict[str, advice.Advice]:
    p = load_profile(PROFILES / f"{name}.yaml")
    e = p.engines[0]
    ck = catalog.lookup(e.model, use_hf_cache=False)
    return rules(vllm_options(e), version_from_image(e.image), card=cards.lookup(p.card),
                 arch=ck.arch if ck else None)


# ------------------------------------------------------------------------------------------- shipped profiles


def test_shipped_14b_agent_gets_awq_marlin():
    got = shipped("rtx4090-qwen25-14b-agent")
    a = got["awq-marlin"]
    assert a.severity == "warning" and "quantization: awq_marlin" in a.fix
    assert "awq_marlin.py" in a.source and "forcing awq" in a.message
    assert set(got) == {"awq-marlin"}  # nothing else to say about this profile


def test_shipped_4x3090_gets_capture_size_advice():
    got = shipped("rtx3090x4-qwen35-27b")
    rounding = got["capture-sizes-speculative"]
    assert "[1, 2, 4, 8, 12]" in rounding.message and "[3, 6, 9, 12]" in rounding.message
    assert "compilation.py" in rounding.source
    seqs = got["capture-sizes-max-num-seqs"]
    assert "4 decoding request(s)" in seqs.message and "max_num_seqs is 12" in seqs.message
    assert "36 tokens" in seqs.fix


@pytest.mark.parametrize("name", ["rtx3090x4-two-tier", "rtx4060ti16-qwen25-7b", "rtx4090-llama31-8b-chat"])
def test_other_shipped_profiles_are_clean(name):
    assert shipped(name) == {}


# ------------------------------------------------------------------------------------------- one rule at a time


def test_awq_marlin_depends_on_the_version():
    assert "awq-marlin" in rules({"quantization": "awq"}, "0.19.0")
    assert "awq-marlin" not in rules({"quantization": "awq"}, "0.33.0")  # one AutoAWQConfig for both names
    assert "awq-marlin" not in rules({"quantization": "awq"}, "0.32.0")
    assert "awq-marlin" in rules({"quantization": "awq"}, "0.25.0")  # unknown: judged as the older 0.19.0
    assert "awq-marlin" not in rules({"quantization": "awq_marlin"}, "0.19.0")


def test_gptq_marlin():
    a = rules({"quantization": "gptq"})["gptq-marlin"]
    assert "gptq_marlin" in a.fix and "gptq_marlin.py" in a.source
    assert "gptq-marlin" not in rules({"quantization": "gptq_marlin"})
    assert "gptq-marlin" not in rules({"quantization": "gptq"}, "0.33.0")


def test_capture_rounding_quiet_when_sizes_are_multiples():
    opts = {"speculative_config": {"method": "mtp", "num_speculative_tokens": 2}, "max_num_seqs": 4,
            "compilation_config": {"cudagraph_capture_sizes": [3, 6, 9, 12]}}
    assert not {"capture-sizes-speculative", "capture-sizes-max-num-seqs"} & set(rules(opts))
    opts["enforce_eager"] = True  # no graphs at all: nothing to round
    opts["compilation_config"] = {"cudagraph_capture_sizes": [1, 2]}
    assert "capture-sizes-speculative" not in rules(opts)


def test_captured_sizes_mirror_vllm_rounding():
    assert advice.captured_sizes([1, 2, 4, 8, 12], 2) == [3, 6, 9, 12]
    assert advice.captured_sizes([1, 2, 4, 8], 3, max_size=8) == [4, 8]  # 12 would exceed the max: dropped
    assert advice.captured_sizes([1, 2], 3) == []  # 4 > the largest given size 2: nothing left
    assert advice.captured_sizes([5, 1], 0) == [1, 5]


def test_capture_vs_max_num_seqs_without_speculation():
    got = rules({"max_num_seqs": 64, "compilation_config": {"cudagraph_capture_sizes": [1, 2, 4, 8, 16, 32]}})
    assert "32 tokens = 32 decoding request(s)" in got["capture-sizes-max-num-seqs"].message
    assert "capture-sizes-speculative" not in got
    # max_num_seqs left out: vLLM's serve default (256 on a 24 GB card) is what counts
    assert "max_num_seqs is 256" in rules({"max_cudagraph_capture_size": 128}, card=C4090)[
        "capture-sizes-max-num-seqs"].message
    assert "capture-sizes-max-num-seqs" not in rules({"max_num_seqs": 16, "max_cudagraph_capture_size": 16})


def test_fp8_weights_on_ampere_only():
    a = rules({"quantization": "fp8"}, card=C3090)["fp8-weights-no-native-fp8"]
    assert "Marlin" in a.message and "marlin_utils_fp8.py" in a.source
    assert "fp8-weights-no-native-fp8" not in rules({"quantization": "fp8"}, card=C4090)
    assert "fp8-weights-no-native-fp8" not in rules({"quantization": "fp8"})  # card unknown: silent


def test_fp8_kv_with_flash_attn_off_hopper():
    opts = {"kv_cache_dtype": "fp8", "attention_backend": "FLASH_ATTN"}
    a = rules(opts, card=C4090)["fp8-kv-flash-attn"]
    assert a.severity == "error" and "FLASHINFER" in a.fix
    assert "fp8-kv-flash-attn" not in rules(opts, card=H100)
    assert "fp8-kv-flash-attn" not in rules({**opts, "attention_backend": "FLASHINFER"}, card=C4090)
    assert "fp8-kv-flash-attn" not in rules({**opts, "kv_cache_dtype": "auto"}, card=C4090)


def test_prefix_caching_off_on_an_agent():
    opts = {"enable_auto_tool_choice": True, "tool_call_parser": "hermes", "enable_prefix_caching": False}
    assert "enable_prefix_caching: true" in rules(opts)["prefix-caching-agent"].fix
    assert "prefix-caching-agent" not in rules({**opts, "enable_prefix_caching": None})  # default: on
    assert "prefix-caching-agent" not in rules({"enable_prefix_caching": False})  # not an agent
    assert "prefix-caching-agent" in rules({"enable_prefix_caching": False}, agent=True)


def test_batched_tokens_vs_model_len_without_chunked_prefill():
    opts = {"enable_chunked_prefill": False, "max_model_len": 16384}
    a = rules(opts)["batched-tokens-model-len"]  # the serve default 2048 < 16384
    assert a.severity == "error" and "(2048)" in a.message and "max_num_batched_tokens: 16384" in a.fix
    assert "batched-tokens-model-len" not in rules({**opts, "max_num_batched_tokens": 16384})
    assert "batched-tokens-model-len" not in rules({**opts, "enable_chunked_prefill": True})


def test_batched_tokens_vs_max_num_seqs():
    a = rules({"max_num_batched_tokens": 16, "max_num_seqs": 32})["batched-tokens-max-num-seqs"]
    assert a.severity == "error" and "max_num_seqs (32)" in a.message
    w = rules({"max_num_batched_tokens": 65536, "max_num_seqs": 2, "max_model_len": 4096})
    assert w["batched-tokens-max-num-seqs"].severity == "warning" and "8192" in w["batched-tokens-max-num-seqs"].fix
    assert "batched-tokens-max-num-seqs" not in rules({"max_num_batched_tokens": 8192, "max_num_seqs": 32,
                                                       "max_model_len": 4096})


def test_tp_vs_attention_heads():
    a = rules({"tensor_parallel_size": 3}, arch=QWEN14)["tp-attention-heads"]
    assert a.severity == "error" and "40 attention heads" in a.message and "[1, 2, 4, 5, 8]" in a.fix
    assert "tp-attention-heads" not in rules({"tensor_parallel_size": 4}, arch=QWEN14)
    assert "tp-attention-heads" not in rules({"tensor_parallel_size": 3})  # model unknown: silent


def test_tp_vs_kv_heads():
    wide = dataclasses.replace(QWEN14, heads=64, kv_heads=4)
    info = rules({"tensor_parallel_size": 8}, arch=wide)["tp-kv-heads"]
    assert info.severity == "info" and "replicated on 2 GPUs" in info.message
    odd = dataclasses.replace(QWEN14, heads=48, kv_heads=4)
    assert rules({"tensor_parallel_size": 6}, arch=odd)["tp-kv-heads"].severity == "error"
    assert "tp-kv-heads" not in rules({"tensor_parallel_size": 4}, arch=wide)  # tp == kv heads


def test_no_valid_capture_size_is_an_error():
    opts = {"speculative_config": {"method": "ngram", "num_speculative_tokens": 3},
            "compilation_config": {"cudagraph_capture_sizes": [1, 2]}}
    a = rules(opts)["capture-sizes-speculative"]
    assert a.severity == "error" and "No valid cudagraph sizes" in a.message
    assert "capture-sizes-max-num-seqs" not in rules(opts)  # one advice for one mistake


def test_deprecated_option_is_version_dependent():
    a = rules({"disable_cascade_attn": True}, "0.33.0")["deprecated-option"]
    assert "no effect since cascade attention has been removed" in a.message
    assert "deprecated-option" not in rules({"disable_cascade_attn": True}, "0.19.0")


def test_every_rule_has_a_source_and_a_known_severity():
    assert len(advice.RULES) >= 8
    fired = {}
    for opts, kw in [({"quantization": "awq"}, {}), ({"quantization": "gptq"}, {}),
                     ({"quantization": "fp8", "kv_cache_dtype": "fp8", "attention_backend": "FLASH_ATTN"},
                      {"card": C3090})]:
        fired.update(rules(opts, **kw))
    for rule, a in fired.items():
        assert rule in advice.RULES
        assert a.severity in advice.SEVERITIES and a.source.startswith("vllm/") and a.fix
    assert advice.blocking([a for a in fired.values()]) == list(fired.values())


def test_capture_sizes_follow_max_num_batched_tokens_and_the_max():
    # sizes above max_num_batched_tokens are dropped before rounding: 64 and 128 never get captured
    opts = {"max_num_seqs": 32, "max_num_batched_tokens": 48,
            "compilation_config": {"cudagraph_capture_sizes": [8, 16, 32, 64, 128]}}
    plan = advice.capture_plan(advice.Context(opts, "0.19.0"))
    assert plan.before == [8, 16, 32] and plan.final == [8, 16, 32]
    assert "capture-sizes-max-num-seqs" not in rules(opts)  # 32 tokens cover 32 requests
    # only a max: vLLM fills in 1, 2, 4, 8, 16, … up to it, then rounds for speculation
    only_max = {"max_num_seqs": 16, "max_cudagraph_capture_size": 24,
                "speculative_config": {"method": "ngram", "num_speculative_tokens": 1}}
    assert advice.capture_plan(advice.Context(only_max, "0.19.0")).final == [2, 4, 8, 16, 24]
    assert "12 decoding request(s)" in rules(only_max)["capture-sizes-max-num-seqs"].message


def test_capture_max_and_list_must_agree():
    opts = {"compilation_config": {"cudagraph_capture_sizes": [1, 2, 4], "max_cudagraph_capture_size": 8}}
    a = rules(opts)["capture-sizes-max-mismatch"]
    assert a.severity == "error" and "should be consistent" in a.message
    opts["compilation_config"]["max_cudagraph_capture_size"] = 4
    assert "capture-sizes-max-mismatch" not in rules(opts)
