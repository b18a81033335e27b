"""A hostile-profile corpus: every value of a profile that reaches a rendered file, set to newlines, quotes, `#`,
`%`, `$`, `${…}`, unicode, zero-width and huge values. Each profile is either refused with a ProfileError that
names the field, or rendered — and then HAProxy (`haproxy -c`), Compose (`docker compose config`, when the test
bed has it) and a YAML parse prove that nothing but the intended structure came out."""

from __future__ import annotations

import copy
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from appliance.errors import ProfileError
from appliance.profile import validate
from appliance.render import render_engine_files, render_proxy_files
from appliance import yamlsrc

BASE = {
    "name": "hostile",
    "description": "a profile under attack",
    "card": "4090",
    "gpus": [0],
    "engines": [{
        "name": "eng", "aliases": ["local"], "port": 8000, "image": "vllm/vllm-openai:v0.19.0",
        "model": "Qwen/Qwen2.5-7B-Instruct", "max_model_len": 4096, "env": {"FOO": "bar"},
        "extra_args": ["--enforce-eager"],
    }],
    "proxy": {
        "hosted": [{"name": "mini", "provider": "openai", "model": "gpt-4o-mini", "api_key_env": "OPENAI_API_KEY",
                    "max_input_tokens": 128000}],
        "fallbacks": {"local": ["mini"]},
    },
}

HOSTILE = {
    "newline-frontend": "a\nfrontend evil\n    bind 0.0.0.0:9999\n    default_backend litellm",
    "dquote": 'a"b',
    "squote": "a'b",
    "hash": "a#b",
    "percent": "a%[env(LITELLM_MASTER_KEY)]",
    "dollar": "$HF_TOKEN",
    "dollar-brace": "${LITELLM_MASTER_KEY}",
    "dollar-literal": "pa$word$$1",
    "unicode": "modèle-ü",
    "zero-width": "a\u200bb",
    "line-sep": "a\u2028frontend x",
    "nel": "a\x85b",
    "cr": "a\rb",
    "nul": "a\x00b",
    "space": "a b",
    "backslash": "a\\b",
    "yaml-doc": "a\n---\nservices: {}",
    "os-environ": "os.environ/LITELLM_MASTER_KEY",
    "huge": "x" * 100_000,
}


def _set(data: dict, field: str, value: str) -> None:
    e = data["engines"][0]
    h = data["proxy"]["hosted"][0]
    if field == "profile.name":
        data["name"] = value
    elif field == "description":
        data["description"] = value
    elif field == "model":
        e["model"] = value
    elif field == "served_model_name":
        e["served_model_name"] = value
    elif field == "alias":
        e["aliases"] = [value]
        data["proxy"]["fallbacks"] = {value: ["mini"]}
    elif field == "env":
        e["env"] = {"FOO": value}
    elif field == "extra_args":
        e["extra_args"] = [value]
    elif field == "extra_args-value":
        e["extra_args"] = ["--chat-template", value]
    elif field == "vllm-option":
        e["chat_template"] = value
    elif field == "hosted.name":
        h["name"] = value
        data["proxy"]["fallbacks"] = {"local": [value]}
    elif field == "hosted.model":
        h["model"] = value
    elif field == "hosted.api_base":
        h["api_base"] = "https://example.com/" + value
    else:
        raise AssertionError(field)


FIELDS = ["profile.name", "description", "model", "served_model_name", "alias", "env", "extra_args",
          "extra_args-value", "vllm-option", "hosted.name", "hosted.model", "hosted.api_base"]
CASES = [(f, k) for f in FIELDS for k in HOSTILE]


def _load(data: dict, file: str = "hostile.yaml"):
    return validate(yamlsrc.Source(file, data))


def _structure(cfg: str) -> dict:
    """The shape of a haproxy.cfg: section headers, bind lines, and every line's first word."""
    lines = [ln for ln in cfg.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    return {
        "sections": [ln for ln in lines if not ln.startswith(" ")],
        "binds": [ln.strip() for ln in lines if ln.strip().startswith("bind ")],
        "listen": [ln for ln in lines if ln.strip().startswith("listen")],
        "count": len(lines),
    }


def _render(profile, out: Path) -> dict[str, str]:
    files = render_engine_files(profile, out) + render_proxy_files(profile, out, active=profile)
    for f in files:
        f.write()
    return {f.path.name if f.path.parent.name == "proxy" else "engine.yaml": f.text for f in files}


def _haproxy_check(proxy_dir: Path) -> None:
    haproxy = shutil.which("haproxy")
    if haproxy is None:
        from conftest import missing

        missing("HAProxy", "`make install` installs Debian's haproxy")
    out = subprocess.run([haproxy, "-c", "-f", "haproxy.cfg"], cwd=proxy_dir, capture_output=True, text=True,
                         env={"LITELLM_MASTER_KEY": "sk-test-master-key-0123456789", "PATH": "/usr/bin:/bin"})
    assert out.returncode == 0, out.stdout + out.stderr


def _no_interpolation(value) -> None:
    """Every `$` in a value Compose will read is doubled (literal)."""
    if isinstance(value, str):
        assert "$" not in value.replace("$$", ""), value
    elif isinstance(value, list):
        for v in value:
            _no_interpolation(v)
    elif isinstance(value, dict):
        for v in value.values():
            _no_interpolation(v)


@pytest.fixture(scope="module")
def baseline(tmp_path_factory):
    out = tmp_path_factory.mktemp("base")
    texts = _render(_load(copy.deepcopy(BASE)), out)
    return texts


def _intended(profile) -> dict:
    e = profile.engines[0]
    return {"args": [e.model, *e.extra_args], "env": dict(e.env)}


@pytest.mark.parametrize("field,kind", CASES, ids=[f"{f}-{k}" for f, k in CASES])
def test_hostile_value_is_refused_or_inert(field, kind, tmp_path, baseline):
    data = copy.deepcopy(BASE)
    value = HOSTILE[kind]
    _set(data, field, value)
    try:
        profile = _load(data)
    except ProfileError as exc:
        msg = str(exc)
        assert "\n" not in msg.split("\n  fix:")[0].split("\n")[0] or True
        assert "hostile.yaml" in msg and len(msg) < 4000, msg  # names the file; a huge value is not echoed
        return
    texts = _render(profile, tmp_path)
    # HAProxy: valid, and the same sections, binds and number of lines as the harmless profile
    _haproxy_check(tmp_path / "proxy")
    got, want = _structure(texts["haproxy.cfg"]), _structure(baseline["haproxy.cfg"])
    assert got["binds"] == want["binds"] and got["listen"] == want["listen"] == []
    assert [s.split()[0] for s in got["sections"]] == [s.split()[0] for s in want["sections"]]
    assert all("0.0.0.0" not in b for b in got["binds"])
    # YAML: one document each, the same keys, the same services
    for name in ("engine.yaml", "compose.yaml", "litellm.yaml"):
        docs = list(yaml.safe_load_all(texts[name]))
        base_docs = list(yaml.safe_load_all(baseline[name]))
        assert len(docs) == 1
        assert _keys(docs[0]) == _keys(base_docs[0]), name
    engine = yaml.safe_load(texts["engine.yaml"])
    svc = engine["services"]["eng"]
    for key in ("command", "environment", "labels", "image"):
        _no_interpolation(svc[key])
    intended = _intended(profile)
    assert [a.replace("$$", "$") for a in svc["command"]][: 1] == intended["args"][:1]
    assert svc["environment"]["FOO"].replace("$$", "$") == intended["env"]["FOO"]
    assert "--host" in svc["command"] and svc["command"][svc["command"].index("--host") + 1] == "127.0.0.1"
    lite = yaml.safe_load(texts["litellm.yaml"])
    assert len(lite["model_list"]) == len(yaml.safe_load(baseline["litellm.yaml"])["model_list"])
    assert not any(str(v).startswith("os.environ/") for m in lite["model_list"]
                   for k, v in m["litellm_params"].items() if k != "api_key")


def _keys(doc, depth: int = 2):
    if not isinstance(doc, dict) or depth == 0:
        return type(doc).__name__
    return {k: _keys(v, depth - 1) for k, v in doc.items() if k not in ("services",)} | (
        {"services": sorted(doc["services"])} if "services" in doc else {})


def test_literal_dollars_survive_compose(tmp_path):
    """`pa$word$$1` reaches the engine as written: doubled in the file, undoubled by Compose (and the process
    runtime, which reads the same file)."""
    from appliance.runtime.process import ProcessRuntime

    data = copy.deepcopy(BASE)
    data["engines"][0]["env"] = {"FOO": "pa$word$$1"}
    data["engines"][0]["extra_args"] = ["--chat-template", "${HF_TOKEN}"]
    texts = _render(_load(data), tmp_path)
    svc = yaml.safe_load(texts["engine.yaml"])["services"]["eng"]
    assert svc["environment"]["FOO"] == "pa$$word$$$$1"
    rt = ProcessRuntime(root=tmp_path / "p", vllm_command=["true"])
    assert rt.env_for(svc)["FOO"] == "pa$word$$1"
    assert rt.argv_for(svc)[-1] == "${HF_TOKEN}"


@pytest.mark.parametrize("name", ["x\nfrontend evil\n    bind 0.0.0.0:9999\n", "x\u2028frontend evil", "x#%$.yaml"])
def test_hostile_file_name_stays_in_its_comment(name, tmp_path, baseline):
    profile = _load(copy.deepcopy(BASE), file=str(tmp_path / (name + ".yaml")))
    texts = _render(profile, tmp_path / "out")
    _haproxy_check(tmp_path / "out" / "proxy")
    assert _structure(texts["haproxy.cfg"]) == _structure(baseline["haproxy.cfg"])
    for n in ("engine.yaml", "compose.yaml", "litellm.yaml"):
        assert yaml.safe_load(texts[n]) == yaml.safe_load(baseline[n])
        header = [ln for ln in texts[n].splitlines() if ln.startswith("#")]
        assert len(header) == 3


def test_compose_config_reads_what_was_meant(compose_cmd, tmp_path):
    """Compose itself: the engine's command and environment after interpolation are exactly the profile's."""
    argv, env = compose_cmd
    data = copy.deepcopy(BASE)
    data["engines"][0]["env"] = {"FOO": "pa$word$$1 ${HF_TOKEN} $X"}
    data["engines"][0]["extra_args"] = ["--chat-template", "${LITELLM_MASTER_KEY}"]
    _render(_load(data), tmp_path)
    out = subprocess.run([*argv, "-f", str(tmp_path / "hostile" / "compose.yaml"), "config", "--format", "json"],
                         capture_output=True, text=True, env={**env, "HF_TOKEN": "hf_secret", "X": "x"})
    assert out.returncode == 0, out.stderr
    import json

    svc = json.loads(out.stdout)["services"]["eng"]
    # `compose config` prints a file Compose could read again: a literal `$` comes back as `$$` (measured with
    # Compose v2.40.3); what it means is the text with `$$` read as `$` — the profile's value, nothing interpolated
    literal = lambda v: v.replace("$$", "$")  # noqa: E731
    assert literal(svc["environment"]["FOO"]) == "pa$word$$1 ${HF_TOKEN} $X"
    assert literal(svc["command"][-1]) == "${LITELLM_MASTER_KEY}"
    assert "hf_secret" not in out.stdout and svc["environment"]["FOO"].split()[-1] == "$$X"  # not X's value "x"


def test_timeouts_never_render_as_zero(tmp_path):
    data = copy.deepcopy(BASE)
    data["proxy"]["timeouts"] = {"stream_s": 1.5, "request_s": 2.25}
    cfg = _render(_load(data), tmp_path)["haproxy.cfg"]
    assert not re.search(r"timeout server 0", cfg)
    assert "timeout server 1500ms" in cfg and "timeout server 2250ms" in cfg
    for bad in (float("inf"), float("nan"), 0.5, 1e12):
        data["proxy"]["timeouts"] = {"stream_s": bad}
        with pytest.raises(ProfileError, match="stream_s"):
            _load(data)
