"""appliance.vllm_spec: the `vllm serve` 0.19.0 surface extracted from the wheel."""

from __future__ import annotations

import shlex

import pytest

from appliance import vllm_spec as spec

# The user's seeds (shared/seeds): the 4x3090 compose `command:` (Qwen3.5-27B, v0.19.0 image) and the two
# RTX 4090 launch commands (written for `python -m vllm.entrypoints.openai.api_server`, same flags).
SEED_4X3090 = """
--model cyankiwi/Qwen3.5-27B-AWQ-BF16-INT8
--served-model-name cyankiwi/Qwen3.5-27B-AWQ-BF16-INT8
--quantization compressed-tensors --port 8000 --host 0.0.0.0 --tensor-parallel-size 4 -O3
--max-model-len 262144 --gpu-memory-utilization 0.9 --dtype auto
--enable-auto-tool-choice --tool-call-parser qwen3_coder --reasoning-parser qwen3
--limit-mm-per-prompt '{"image":10,"video":2}' --enable-prefix-caching --disable-custom-all-reduce
--kv-cache-dtype fp8 --max-num-seqs 12 --max-num-batched-tokens 8192
--compilation-config '{"cudagraph_capture_sizes":[1,2,4,8,12]}' --trust-remote-code --no-use-tqdm-on-load
--generation-config auto --attention-backend FLASHINFER
--speculative-config '{"method":"qwen3_next_mtp","num_speculative_tokens":2}'
--override-generation-config '{"temperature":1.0,"top_p":0.95,"top_k":20,"min_p":0.0,"presence_penalty":1.5,"repetition_penalty":1.0}'
"""
SEED_4090_AGENT = """
--model Qwen/Qwen2.5-14B-Instruct-AWQ --quantization awq --kv-cache-dtype fp8
--max-model-len 16384 --max-num-seqs 32 --enable-chunked-prefill --enable-prefix-caching
--enable-auto-tool-choice --tool-call-parser hermes --gpu-memory-utilization 0.92
"""
SEED_4090_CHAT = """
--model meta-llama/Llama-3.1-8B-Instruct --quantization fp8 --kv-cache-dtype fp8
--max-model-len 65536 --max-num-seqs 32 --enable-chunked-prefill --enable-prefix-caching
--gpu-memory-utilization 0.92 --max-num-batched-tokens 4096
"""
SEED_4090_FALLBACK = """
--model Qwen/Qwen2.5-14B-Instruct-AWQ --quantization awq_marlin --kv-cache-dtype fp8
--max-model-len 32768 --max-num-seqs 16 --enable-chunked-prefill --enable-prefix-caching
--gpu-memory-utilization 0.93
"""


def parse(text: str):
    return spec.parse_serve_args(shlex.split(text))


def test_4x3090_compose_command_parses():
    ns = parse(SEED_4X3090)
    assert ns.model == "cyankiwi/Qwen3.5-27B-AWQ-BF16-INT8"
    assert ns.served_model_name == ["cyankiwi/Qwen3.5-27B-AWQ-BF16-INT8"]
    assert ns.tensor_parallel_size == 4
    assert ns.optimization_level == "3"
    assert ns.max_model_len == 262144
    assert ns.kv_cache_dtype == "fp8"
    assert ns.enable_prefix_caching is True and ns.use_tqdm_on_load is False
    assert ns.speculative_config == {"method": "qwen3_next_mtp", "num_speculative_tokens": 2}
    assert ns.compilation_config == {"cudagraph_capture_sizes": [1, 2, 4, 8, 12]}
    assert ns.limit_mm_per_prompt == {"image": 10, "video": 2}
    assert ns.override_generation_config["top_k"] == 20


@pytest.mark.parametrize("text", [SEED_4090_AGENT, SEED_4090_CHAT, SEED_4090_FALLBACK])
def test_4090_commands_parse(text):
    ns = parse(text)
    assert ns.kv_cache_dtype == "fp8"
    assert ns.enable_chunked_prefill is True
    assert ns.quantization in spec.QUANTIZATION_METHODS


def test_seed_with_disable_log_requests_exits_2(capsys):
    with pytest.raises(SystemExit) as exc:
        parse(SEED_4090_CHAT + " --disable-log-requests")
    assert exc.value.code == 2
    assert "unrecognized arguments: --disable-log-requests" in capsys.readouterr().err


@pytest.mark.parametrize("dest", sorted(spec.REMOVED))
def test_removed_flags_are_rejected(dest, capsys):
    assert dest not in spec.FLAGS
    option = "--" + dest.replace("_", "-")
    with pytest.raises(SystemExit) as exc:
        spec.parse_serve_args(["some/model", option, "1"])
    assert exc.value.code == 2
    assert "unrecognized arguments" in capsys.readouterr().err
    assert "0.19.0" in spec.REMOVED[dest]


def test_facts_match_techref():
    assert spec.VLLM_VERSION == "0.19.0"
    assert set(spec.KV_CACHE_DTYPES) == {
        "auto", "float16", "bfloat16", "fp8", "fp8_e4m3", "fp8_e5m2", "fp8_inc", "fp8_ds_mla",
    }
    assert len(spec.TOOL_CALL_PARSERS) == 34 and {"hermes", "qwen3_coder", "minimax"} <= set(spec.TOOL_CALL_PARSERS)
    assert len(spec.REASONING_PARSERS) == 19 and "qwen3" in spec.REASONING_PARSERS
    assert {"awq", "awq_marlin", "gptq", "fp8", "compressed-tensors", "gguf", "bitsandbytes"} <= set(
        spec.QUANTIZATION_METHODS
    )
    assert set(spec.DEPRECATED_QUANTIZATION) == {"tpu_int8", "fbgemm_fp8", "fp_quant", "experts_int8", "petit_nvfp4"}
    assert set(spec.DTYPES) == {"auto", "half", "float16", "bfloat16", "float", "float32"}
    assert "mtp" in spec.SPECULATIVE_METHODS and "qwen3_next_mtp" in spec.MTP_ALIASES and "mtp" not in spec.MTP_ALIASES
    assert {"method", "num_speculative_tokens", "model"} <= set(spec.SPECULATIVE_CONFIG_KEYS)
    assert {"mode", "cudagraph_mode", "cudagraph_capture_sizes"} <= set(spec.COMPILATION_CONFIG_KEYS)
    assert "enable_log_requests" in spec.FLAGS and spec.FLAGS["enable_log_requests"].kind == "bool"
    assert "disable_log_requests" not in spec.FLAGS
    assert spec.FLAGS["disable_log_stats"].kind == "store_true" and "disable_log_stats" in spec.HARMFUL
    assert spec.FLAGS["tensor_parallel_size"].aliases == ("-tp",)
    assert spec.FLAGS["speculative_config"].aliases == ("-sc",)
    assert spec.FLAGS["quantization"].aliases == ("-q",)
    assert spec.FLAGS["gpu_memory_utilization"].default == 0.9
    assert spec.FLAGS["max_model_len"].type == "human_int_or_auto"


@pytest.mark.parametrize("form", [["-O3"], ["-O", "3"], ["-O=3"], ["--optimization-level", "3"]])
def test_optimization_level_forms(form):
    assert spec.parse_serve_args(["m", *form]).optimization_level == "3"


def test_flexible_spelling_and_values():
    ns = spec.parse_serve_args(
        ["m", "--max_model_len", "1K", "--max-num-batched-tokens=25.6k", "--compilation-config.mode", "3",
         "--compilation-config.cudagraph_capture_sizes+", "1,2", "--hf-token", "--quantization", "None"]
    )
    assert ns.max_model_len == 1024 and ns.max_num_batched_tokens == 25600
    assert ns.compilation_config == {"mode": 3, "cudagraph_capture_sizes": ["1", "2"]}
    assert ns.hf_token is True and ns.quantization is None
    assert spec.parse_serve_args(["m", "--max-model-len", "auto"]).max_model_len == -1
    assert spec.parse_serve_args(["m", "--max-model-len", "-1"]).max_model_len == -1


def test_model_flag_moved_and_served_name_needs_positional():
    parser = spec.build_serve_parser()
    ns = parser.parse_args(["-tp", "2", "--model", "a/b", "--port", "9000"])
    assert ns.model == "a/b" and ns.tensor_parallel_size == 2 and parser.warnings
    with pytest.raises(ValueError, match="first positional argument"):
        spec.parse_serve_args(["--served-model-name", "x"])


def test_bad_choice_exits_2(capsys):
    with pytest.raises(SystemExit) as exc:
        spec.parse_serve_args(["m", "--kv-cache-dtype", "int4"])
    assert exc.value.code == 2
    assert "invalid choice: 'int4'" in capsys.readouterr().err


def test_to_cli_args_round_trip():
    options = {
        "model": "Qwen/Qwen3-8B",
        "served_model_name": ["local", "qwen3-8b"],
        "tensor_parallel_size": 2,
        "max_model_len": 32768,
        "gpu_memory_utilization": 0.9,
        "enable_prefix_caching": False,
        "enforce_eager": True,
        "enable_auto_tool_choice": True,
        "tool_call_parser": "hermes",
        "speculative_config": {"method": "mtp", "num_speculative_tokens": 1},
        "compilation_config": {"cudagraph_capture_sizes": [1, 2, 4]},
        "disable_log_stats": False,
        "middleware": ["a.b", "c.d"],
        "kv_cache_dtype": "fp8",
        "max_num_batched_tokens": 8192,
        "reasoning_parser": None,
    }
    argv = spec.to_cli_args(options)
    assert argv[0] == "Qwen/Qwen3-8B"
    assert "--no-enable-prefix-caching" in argv and "--disable-log-stats" not in argv
    assert argv[argv.index("--speculative-config") + 1] == '{"method":"mtp","num_speculative_tokens":1}'
    assert argv.count("--middleware") == 2
    ns = spec.parse_serve_args(argv)
    for dest, value in options.items():
        if value is None:
            continue
        assert getattr(ns, dest) == value, dest
    assert spec.to_cli_args(options) == argv  # stable


def test_to_cli_args_unknown_dest():
    with pytest.raises(KeyError, match="deprecated in 0.10.2"):
        spec.to_cli_args({"disable_log_requests": True})
    with pytest.raises(KeyError):
        spec.to_cli_args({"no_such_flag": 1})


def test_lookup_option():
    assert spec.lookup_option("--max_model_len").dest == "max_model_len"
    assert spec.lookup_option("-tp").dest == "tensor_parallel_size"
    assert spec.lookup_option("--no-enable-prefix-caching").dest == "enable_prefix_caching"
    assert spec.lookup_option("--compilation-config.mode").dest == "compilation_config"
    assert spec.lookup_option("--disable-log-requests") is None
    assert spec.unknown_options(["m", "-O3", "--swap-space", "4", "--max-model-len", "-1"]) == ["--swap-space"]
