"""Profile loading and validation: shipped profiles load; every kind of bad input gets file:line, the field, the
bad value and a fix — as a ProfileError, never a traceback."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from appliance import profile as prof
from appliance.errors import ProfileError

from conftest import REPO

GOOD = textwrap.dedent("""\
    name: t
    gpus: [0, 1]
    power_limit_w: 250
    engines:
      - model: Qwen/Qwen2.5-14B-Instruct-AWQ
        aliases: [local]
        tensor_parallel_size: 2
        kv_cache_dtype: fp8
        max_model_len: 16384
    proxy:
      hosted:
        - {name: mini, provider: openai, model: gpt-4o-mini, api_key_env: OPENAI_API_KEY, max_input_tokens: 128000}
      fallbacks: {local: [mini]}
    """)


def write(tmp_path, text: str, name: str = "t.yaml"):
    path = tmp_path / name
    path.write_text(text)
    return path


def error_for(tmp_path, text: str) -> str:
    path = write(tmp_path, text)
    with pytest.raises(ProfileError) as exc:
        prof.load_profile(path)
    return str(exc.value)


def edit(old: str, new: str) -> str:
    assert old in GOOD, old
    return GOOD.replace(old, new)


def test_shipped_profiles_load():
    files = sorted((REPO / "profiles").glob("*.yaml"))
    assert len(files) >= 5
    for f in files:
        p = prof.load_profile(f)
        assert p.name == f.stem, "a profile's name matches its file name"
        assert p.engines and all(e.aliases for e in p.engines)
        assert p.card


def test_good_profile(tmp_path):
    p = prof.load_profile(write(tmp_path, GOOD))
    e = p.engines[0]
    assert e.kv_cache_dtype == "fp8" and e.tensor_parallel_size == 2
    assert e.served_names == ("Qwen/Qwen2.5-14B-Instruct-AWQ", "local")
    assert p.power_limits([0, 1]) == {0: 250, 1: 250}


@pytest.mark.parametrize("old,new,expect", [
    ("kv_cache_dtype: fp8", "kv_cache_dtyp: fp8", ["t.yaml:8", "kv_cache_dtyp", "did you mean `kv_cache_dtype`"]),
    ("kv_cache_dtype: fp8", "kv_cache_dtype: fp9", ["t.yaml:8", "fp9", "fp8_e4m3", "did you mean `fp8`"]),
    ("max_model_len: 16384", "max_model_len: lots", ["t.yaml:9", "max_model_len", "lots"]),
    ("max_model_len: 16384", "max_model_len: -5", ["t.yaml:9", "-5", "out of range"]),
    ("power_limit_w: 250", "power_limit_w: 0", ["t.yaml:3", "power_limit_w: 0", "between 50 and 1000"]),
    ("power_limit_w: 250", "power_limit_w: 5000", ["t.yaml:3", "5000", "between 50 and 1000"]),
    ("tensor_parallel_size: 2", "tensor_parallel_size: 3", ["t.yaml:", "tensor_parallel_size 3", "2 GPUs"]),
    ("gpus: [0, 1]", "gpus: [0, 1, 2, 3]",
     ["tensor_parallel_size 2 uses 2 of the profile's 4 GPUs", "tensor_parallel_size: 4"]),
    ("api_key_env: OPENAI_API_KEY", "api_key_env: sk-abc123",
     ["t.yaml:12", "NAME of an environment variable", "looks like a key itself"]),
    ("fallbacks: {local: [mini]}", "fallbacks: {local: [maxi]}", ["t.yaml:13", "maxi", "did you mean `mini`"]),
    ("    kv_cache_dtype: fp8\n", "    kv_cache_dtype: fp8\n    disable_log_stats: true\n",
     ["t.yaml:9", "disable_log_stats", "/metrics"]),
    ("    kv_cache_dtype: fp8\n", "    kv_cache_dtype: fp8\n    swap_space: 4\n",
     ["t.yaml:9", "swap_space", "rejected by vLLM 0.19.0"]),
    ("    kv_cache_dtype: fp8\n", "    kv_cache_dtype: fp8\n    enable_auto_tool_choice: true\n",
     ["t.yaml:9", "tool_call_parser", "hermes"]),
    ("    kv_cache_dtype: fp8\n", "    kv_cache_dtype: fp8\n    tool_call_parser: hermez\n",
     ["hermez", "did you mean `hermes`"]),
    ("    kv_cache_dtype: fp8\n", "    kv_cache_dtype: fp8\n    quantization: fp8\n",
     ["awq checkpoint", "quantization: awq"]),
    ("max_model_len: 16384", "max_model_len: 131072", ["32768 tokens", "lower it to 32768"]),
    ("    kv_cache_dtype: fp8\n", "    kv_cache_dtype: fp8\n    max-num-seqs: 4\n",
     ["written with dashes", "max_num_seqs"]),
    ("    kv_cache_dtype: fp8\n", "    kv_cache_dtype: fp8\n    extra_args: [--frobnicate]\n",
     ["extra_args", "--frobnicate", "unrecognized"]),
    ("    kv_cache_dtype: fp8\n", "    kv_cache_dtype: fp8\n    enforce_eager: yes please\n",
     ["enforce_eager", "true or false"]),
    ("    kv_cache_dtype: fp8\n", "    kv_cache_dtype: fp8\n    speculative_config: {method: mtpp, "
     "num_speculative_tokens: 2}\n", ["mtpp", "did you mean `mtp`"]),
    ("    kv_cache_dtype: fp8\n", "    kv_cache_dtype: fp8\n    host: 0.0.0.0\n",
     ["`host` cannot be set", "127.0.0.1"]),
    ("    kv_cache_dtype: fp8\n", "    kv_cache_dtype: fp8\n    image: vllm/vllm-openai:latest\n",
     ["not pinned", "v0.19.0"]),
    ("name: t", "name: T t", ["name: T t", "lowercase"]),
    ("name: t\n", "name: t\ncard: 4091\n", ["card: 4091", "did you mean `4090`"]),
])
def test_bad_input_names_file_line_field_and_fix(tmp_path, old, new, expect):
    message = error_for(tmp_path, edit(old, new))
    for part in expect:
        assert part in message, f"{part!r} not in:\n{message}"
    assert "Traceback" not in message


def test_duplicate_alias_and_port(tmp_path):
    text = textwrap.dedent("""\
        name: two
        gpus: [0]
        engines:
          - {model: Qwen/Qwen2.5-0.5B-Instruct, aliases: [local], port: 8000, gpu_memory_utilization: 0.4, gpus: [0]}
          - {model: Qwen/Qwen2.5-0.5B-Instruct, aliases: [local], port: 8000, gpu_memory_utilization: 0.4, gpus: [0],
             name: other}
        """)
    message = error_for(tmp_path, text)
    assert "two.yaml" not in message  # the file is t.yaml
    assert "t.yaml:5" in message
    assert "both use port 8000" in message
    assert "alias `local` is used by engines[0] too" in message


def test_shared_gpu_memory_must_add_up(tmp_path):
    text = textwrap.dedent("""\
        name: two
        gpus: [0]
        engines:
          - {model: Qwen/Qwen2.5-0.5B-Instruct, aliases: [a], port: 8000, gpu_memory_utilization: 0.6, gpus: [0]}
          - {model: Qwen/Qwen2.5-0.5B-Instruct, aliases: [b], port: 8001, gpu_memory_utilization: 0.6, gpus: [0],
             name: other}
        """)
    assert "gpu_memory_utilization 1.20 in all" in error_for(tmp_path, text)


def test_context_fallback_must_be_larger(tmp_path):
    text = GOOD.replace("max_input_tokens: 128000", "max_input_tokens: 8000") + \
        "  context_window_fallbacks: {local: [mini]}\n"
    message = error_for(tmp_path, text)
    assert "8000 tokens" in message and "not larger" in message


@pytest.mark.parametrize("text,expect", [
    ("name: [unclosed\n", ["t.yaml:2", "not valid YAML"]),
    ("name: a\nname: b\n", ["t.yaml:2", "given twice"]),
    ("", ["empty"]),
    ("- just\n- a list\n", ["t.yaml:1", "a profile is a mapping"]),
    ("name: x\n", ["engines", "required"]),
    ("name: x\nengines: []\n", ["engines", "must not be empty"]),
    ("name: x\nengines:\n  - {aliases: [a]}\n", ["t.yaml:3", "engines[0].model", "required"]),
    ("name: x\n\tengines: 1\n", ["not valid YAML"]),
    ("name: x\nengines:\n  - model: m\n    aliases: [a]\n    port: 99999\n", ["t.yaml:5", "99999", "out of range"]),
    ("name: x\nengines:\n  - model: m\n    aliases: [a]\n    max_num_seqs: 2.5\n", ["t.yaml:5", "whole number"]),
])
def test_malformed_files(tmp_path, text, expect):
    message = error_for(tmp_path, text)
    for part in expect:
        assert part in message, f"{part!r} not in:\n{message}"


def test_missing_profile_suggests_a_name():
    with pytest.raises(ProfileError) as exc:
        prof.load_profile("rtx4090-qwen25-14b-agnt")
    assert "did you mean `rtx4090-qwen25-14b-agent`" in str(exc.value)


def test_cli_bad_profile_exits_2_without_traceback(tmp_path):
    path = write(tmp_path, edit("kv_cache_dtype: fp8", "kv_cache_dtype: fp9"))
    out = subprocess.run([sys.executable, "-m", "appliance", "check", str(path), "--gpu", "4090"],
                         capture_output=True, text=True, cwd=REPO)
    assert out.returncode == 2
    assert out.stderr.startswith("error: ") and "t.yaml:8" in out.stderr and "fix:" in out.stderr
    assert "Traceback" not in out.stderr


def test_the_image_tag_picks_the_vllm_that_validates(tmp_path):
    """A profile is checked against the vLLM that will run it: calculate_kv_scales is an option of 0.19.0 and gone
    from 0.33.0; the same engine with a 0.33.0 image is refused, with 0.19.0 it loads."""
    old = edit("    max_model_len: 16384\n", "    max_model_len: 16384\n    calculate_kv_scales: true\n")
    assert prof.load_profile(write(tmp_path, old)).engines[0].vllm_options["calculate_kv_scales"] is True
    new = old.replace("    max_model_len: 16384\n", "    max_model_len: 16384\n"
                      "    image: vllm/vllm-openai:v0.33.0\n")
    msg = error_for(tmp_path, new)
    assert "calculate_kv_scales" in msg and "t.yaml" in msg
    # a parser only 0.19 knows, named with the version that refuses it
    gone = edit("    max_model_len: 16384\n", "    max_model_len: 16384\n    image: vllm/vllm-openai:v0.33.0\n"
                "    enable_auto_tool_choice: true\n    tool_call_parser: minimax\n")
    assert "0.33.0" in error_for(tmp_path, gone)


def test_a_bad_engine_field_is_reported_alone(tmp_path):
    """Found by a new-user trial: a wrong type inside the only engine also printed "`engines` must not be empty"
    with the fix "add at least one entry"."""
    msg = error_for(tmp_path, edit("max_model_len: 16384", "max_model_len: abc"))
    assert "whole number" in msg and "must not be empty" not in msg and "add at least one entry" not in msg
