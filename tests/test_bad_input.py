"""Bad input anywhere gets a clear error, never a traceback or a hang: YAML bombs and deep nesting, garbage
models.yaml, non-finite numbers, and a hypothesis fuzz over profiles (through the renderers), models.yaml and
state files."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from appliance import yamlsrc
from appliance.errors import ApplianceError, ProfileError
from appliance.stack.state import StateError, StateStore

BOMB = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{c}: &{c} [*{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}]\n"
    for p, c in zip("abcdefgh", "bcdefghi")) + "name: *i\n"


def test_billion_laughs_is_refused():
    with pytest.raises(ProfileError, match="more than"):
        yamlsrc.load(BOMB, "bomb.yaml")


def test_deep_yaml_is_refused():
    with pytest.raises(ProfileError, match="bomb.yaml"):
        yamlsrc.load("[" * 50000 + "]" * 50000, "bomb.yaml")
    with pytest.raises(ProfileError, match="bomb.yaml"):
        yamlsrc.load("a:\n" + "".join(" " * i + "- \n" for i in range(1, 3000)), "bomb.yaml")


def _cli(args, home: Path, profiles: Path | None = None, timeout=300):
    env = {k: v for k, v in os.environ.items() if not k.startswith("APPLIANCE_")}
    env.update(APPLIANCE_HOME=str(home), LITELLM_LOCAL_MODEL_COST_MAP="True")
    if profiles:
        env.update(APPLIANCE_PROFILES=str(profiles))
    return subprocess.run([sys.executable, "-m", "appliance", *args], capture_output=True, text=True, env=env,
                          timeout=timeout, stdin=subprocess.DEVNULL)


def test_profiles_survives_a_bomb_in_the_profile_dir(tmp_path):
    d = tmp_path / "profiles"
    d.mkdir()
    (d / "bomb.yaml").write_text(BOMB)
    (d / "huge.yaml").write_text("name: x\n" + "# pad\n" * 400_000)
    out = _cli(["profiles"], tmp_path / "home", d)  # a hang fails by the subprocess timeout
    assert "Traceback" not in out.stderr, out.stderr
    assert out.returncode in (0, 2)


def test_up_with_a_bomb_changes_no_power(tmp_path):
    d = tmp_path / "profiles"
    d.mkdir()
    (d / "bomb.yaml").write_text(BOMB)
    out = _cli(["up", "bomb", "--sim", "--runtime", "process"], tmp_path / "home", d)
    assert out.returncode == 2 and "Traceback" not in out.stderr and "more than" in out.stderr
    assert not (tmp_path / "home" / "state" / "sim" / "power-originals.json").exists()


@pytest.mark.parametrize("text", [
    "- just a list\n",
    "org/model: a string entry\n",
    "42: {num_hidden_layers: 2}\n",
    "org/model: {num_hidden_layers: 2, num_attention_heads: 0, hidden_size: 64, vocab_size: 10}\n",
    "org/model: {num_hidden_layers: 2, num_attention_heads: 2, hidden_size: 64, vocab_size: 10, bits: abc}\n",
    "org/model: {num_hidden_layers: x, num_attention_heads: 2, hidden_size: 64, vocab_size: 10}\n",
    "org/model: {num_hidden_layers: .inf, num_attention_heads: 2, hidden_size: 64, vocab_size: 10}\n",
    "org/model: {num_attention_heads: 2, hidden_size: 64, vocab_size: 10}\n",
    "org/model: {num_hidden_layers: 2, num_attention_heads: 8, hidden_size: 4, vocab_size: 10}\n",
    BOMB,
    "[" * 50000,
])
def test_garbage_models_yaml_is_a_clear_error(text, tmp_path, monkeypatch):
    from appliance import catalog, paths

    f = paths.config_dir() / "models.yaml"
    f.parent.mkdir(parents=True, exist_ok=True)
    f.write_text(text)
    with pytest.raises(ProfileError) as exc:
        catalog.lookup("org/model", use_hf_cache=False)
    assert "models.yaml" in exc.value.message


def test_non_utf8_models_yaml(tmp_path):
    from appliance import catalog, paths

    f = paths.config_dir() / "models.yaml"
    f.parent.mkdir(parents=True, exist_ok=True)
    f.write_bytes(b"org/model: {num_hidden_layers: \xff}\n")
    with pytest.raises(ProfileError, match="UTF-8"):
        catalog.lookup("org/model", use_hf_cache=False)


def test_status_json_is_json_with_nan():
    from appliance.telemetry import ProxySnap, Snapshot

    snap = Snapshot(t=1.0, rig="r", profile=None, gpus=(), engines=(), proxy=ProxySnap("u", "up", True,
                    fallbacks=math.nan), power_w=math.inf, generation_tps=math.nan)
    text = json.dumps(snap.to_dict(), allow_nan=False)
    assert json.loads(text)["power_w"] is None


@pytest.mark.parametrize("args", [["status", "--window", "inf"], ["status", "--window", "nan"],
                                  ["status", "--window", "-1"], ["check", "/dev/zero"], ["check", "a" * 5000],
                                  ["check", "/"], ["up", "x" * 300, "--sim", "--runtime", "process"]])
def test_cli_inputs(args, tmp_path):
    out = _cli(args, tmp_path / "home", timeout=120)
    assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr[-2000:]


# -- fuzz ---------------------------------------------------------------------------------------------------
texts = st.one_of(st.text(max_size=20), st.sampled_from(["\n", "${HF_TOKEN}", "$$", "%[", '"', "#", "\u2028",
                                                         "\u200b", "a" * 3000, "--host=0.0.0.0", "os.environ/X"]))
scalars = st.one_of(st.none(), st.booleans(), st.integers(-10**12, 10**12), st.floats(allow_nan=True), texts)


@st.composite
def profiles(draw):
    eng = {"model": draw(st.one_of(texts, st.just("Qwen/Qwen2.5-7B-Instruct"))),
           "aliases": draw(st.lists(texts, max_size=2)) or ["local"],
           "max_model_len": draw(st.one_of(st.just(4096), scalars)),
           "env": draw(st.dictionaries(st.sampled_from(["FOO", "BAR", "HF_TOKEN"]), scalars, max_size=2)),
           "extra_args": draw(st.lists(texts, max_size=3))}
    if draw(st.booleans()):
        eng["served_model_name"] = draw(texts)
    data = {"name": draw(st.one_of(st.just("fuzz"), texts)), "card": "4090", "gpus": [0], "engines": [eng],
            "proxy": {"hosted": [{"name": draw(st.one_of(st.just("mini"), texts)), "provider": "openai",
                                  "model": draw(st.one_of(st.just("gpt-4o-mini"), texts)),
                                  "api_key_env": "OPENAI_API_KEY"}],
                      "timeouts": {"stream_s": draw(st.one_of(st.just(10.0), scalars))}}}
    return data


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(profiles())
def test_fuzz_profiles_render_or_refuse(data):
    from appliance.profile import validate
    from appliance.render import compose as compose_mod
    from appliance.render import render_proxy_files

    text = yaml.safe_dump(data, allow_unicode=True)
    try:
        p = validate(yamlsrc.load(text, "fuzz.yaml"))
    except ApplianceError as exc:
        assert "fuzz.yaml" in exc.message
        return
    compose_mod.render_engine_project(p)
    for f in render_proxy_files(p, Path("/nonexistent"), active=p):
        if f.path.suffix == ".yaml":
            assert len(list(yaml.safe_load_all(f.text))) == 1


models_entries = st.one_of(scalars, st.dictionaries(
    st.sampled_from(["num_hidden_layers", "num_attention_heads", "num_key_value_heads", "hidden_size",
                     "vocab_size", "intermediate_size", "bits", "group_size", "quant_method", "weights_bytes",
                     "head_dim", "text_config", "num_parameters"]), scalars, max_size=10))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                   HealthCheck.function_scoped_fixture])
@given(st.dictionaries(st.one_of(st.just("org/model"), st.integers(), texts), models_entries, max_size=3))
def test_fuzz_models_yaml(tmp_path, data):
    from appliance import catalog, paths

    f = paths.config_dir() / "models.yaml"
    f.parent.mkdir(parents=True, exist_ok=True)
    f.write_text(yaml.safe_dump(data, allow_unicode=True))
    try:
        catalog.lookup("org/model", use_hf_cache=False)
    except ProfileError as exc:
        assert "models.yaml" in exc.message


json_values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                            st.dictionaries(texts, inner, max_size=4)), max_leaves=12)
state_keys = ["active", "active_file", "last_good", "routed", "starting", "previous", "lan", "power_saved", "proxy"]


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                   HealthCheck.function_scoped_fixture])
@given(st.one_of(st.binary(max_size=200),
                 st.dictionaries(st.sampled_from(state_keys), json_values, max_size=6).map(
                     lambda d: json.dumps(d).encode())))
def test_fuzz_state_file(tmp_path, raw):
    store = StateStore(tmp_path / "state.json")
    store.path.write_bytes(raw)
    try:
        st_ = store.load()
    except StateError as exc:
        assert "appliance doctor" in exc.hint
        return
    store.save(st_)  # what was read can be written back
    assert store.load() == st_
