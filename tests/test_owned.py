"""The options the appliance owns cannot be set by a profile: not as a key, not through extra_args in any spelling
vLLM's parser accepts, not through the environment. The error names what to use instead."""

from __future__ import annotations

import copy

import pytest

from appliance import yamlsrc
from appliance.errors import ProfileError
from appliance.profile import validate

BASE = {"name": "owned", "card": "4090", "gpus": [0],
        "engines": [{"aliases": ["local"], "port": 8000, "model": "Qwen/Qwen2.5-7B-Instruct", "max_model_len": 4096}]}


def _load(engine_extra: dict):
    data = copy.deepcopy(BASE)
    data["engines"][0].update(engine_extra)
    return validate(yamlsrc.Source("owned.yaml", data))


@pytest.mark.parametrize("args,flag,instead", [
    (["--host=0.0.0.0"], "--host", "127.0.0.1"),
    (["--host", "0.0.0.0"], "--host", "127.0.0.1"),
    (["--hos", "0.0.0.0"], "--host", "127.0.0.1"),  # argparse abbreviation
    (["--host_=0.0.0.0"], None, None),  # not an option vLLM knows: rejected as unknown
    (["--port", "8000"], "--port", "`port:`"),
    (["--port=9"], "--port", "`port:`"),
    (["--served-model-name", "x"], "--served-model-name", "`aliases:`"),
    (["--served_model_name=x"], "--served-model-name", "`aliases:`"),
    (["--disable-log-stats"], "--disable-log-stats", "metric"),
    (["--api-key", "k"], "--api-key", "key of its own"),
    (["--api-k=k"], "--api-key", "key of its own"),
    (["--enforce-eager", "--uds", "/tmp/s"], "--uds", "TCP"),
    (["--model", "other/model"], "--model", "`model:`"),
    (["--middleware", "evil.mod"], "--middleware", "key check"),
])
def test_extra_args_cannot_set_owned_options(args, flag, instead):
    with pytest.raises(ProfileError) as exc:
        _load({"extra_args": args})
    text = str(exc.value)
    assert "owned.yaml" in text and "extra_args" in text
    if flag:
        assert f"`{flag}`" in text and instead in text, text


def test_harmless_extra_args_pass():
    assert _load({"extra_args": ["--enforce-eager", "--max-num-seqs", "4"]}).engines[0].extra_args


@pytest.mark.parametrize("key", ["host", "api_key", "disable_log_stats", "uds", "middleware"])
def test_owned_top_level_keys_refused(key):
    with pytest.raises(ProfileError, match=f"`{key}` cannot be set in a profile"):
        _load({key: "x" if key != "disable_log_stats" else True})


@pytest.mark.parametrize("name", ["VLLM_API_KEY", "HF_TOKEN", "CUDA_VISIBLE_DEVICES", "LITELLM_MASTER_KEY"])
def test_owned_env_refused(name):
    with pytest.raises(ProfileError, match=f"env: {name}` cannot be set"):
        _load({"env": {name: "x"}})


@pytest.mark.parametrize("where,key,instead", [((), "host", "proxy.lan"), (("proxy",), "host", "proxy.lan"),
                                               (("proxy",), "master_key", "appliance keys set"),
                                               ((), "api_key", "secrets file")])
def test_owned_keys_elsewhere_name_the_setting(where, key, instead):
    data = copy.deepcopy(BASE)
    node = data
    for part in where:
        node = node.setdefault(part, {})
    node[key] = "0.0.0.0"
    with pytest.raises(ProfileError) as exc:
        validate(yamlsrc.Source("owned.yaml", data))
    assert instead in str(exc.value) and "the appliance sets it" in str(exc.value)
