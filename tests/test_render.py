"""Rendered files: exactly what vLLM 0.19, Compose v2 and LiteLLM 1.106.2 accept, committed and kept in sync."""

from __future__ import annotations

import json
import subprocess

import pytest
import yaml

from appliance import render, vllm_spec
from appliance.profile import load_profile
from appliance.render.compose import RenderSettings, render_engine_project, vllm_argv
from appliance.render.litellm import render_litellm_config

from conftest import REPO

PROFILES = [load_profile(f) for f in sorted((REPO / "profiles").glob("*.yaml"))]


def all_rendered(out, settings=RenderSettings()):
    files = []
    for p in PROFILES:
        files += render.render_engine_files(p, out, settings)
        files += render.render_proxy_files(p, out / p.name, active=p)
    return files


def test_committed_compose_files_are_current():
    stale = [str(f.path.relative_to(REPO)) for f in all_rendered(REPO / "compose") if not f.is_current()]
    assert not stale, f"stale rendered files (run `make render`): {stale}"


@pytest.mark.parametrize("p", PROFILES, ids=lambda p: p.name)
def test_engine_command_is_what_vllm_019_accepts(p):
    data = render_engine_project(p)
    for svc in data["services"].values():
        assert svc["entrypoint"] == ["vllm", "serve"]
        cmd = svc["command"]
        assert not cmd[0].startswith("-"), "the model is the first positional argument"
        assert cmd[0] != "serve"
        ns = vllm_spec.parse_serve_args(cmd)  # exits 2 (SystemExit) on anything vLLM would reject
        assert ns.host == "127.0.0.1"
        assert "--disable-log-stats" not in cmd
        assert not vllm_spec.unknown_options(cmd)
        assert svc["network_mode"] == "host" and svc["ipc"] == "host"
        assert svc["healthcheck"]["test"][:2] == ["CMD", "python3"]
        assert svc["deploy"]["resources"]["reservations"]["devices"][0]["capabilities"] == ["gpu"]
        assert svc["restart"] == "unless-stopped"
        for value in svc["environment"].values():
            assert isinstance(value, str)


def test_seed_3090_command_matches_the_seed_option_for_option():
    p = load_profile("rtx3090x4-qwen35-27b")
    ns = vllm_spec.parse_serve_args(vllm_argv(p.engines[0]))
    assert ns.model == "cyankiwi/Qwen3.5-27B-AWQ-BF16-INT8"
    assert ns.tensor_parallel_size == 4 and ns.max_model_len == 262144 and ns.max_num_seqs == 12
    assert ns.max_num_batched_tokens == 8192 and ns.kv_cache_dtype == "fp8" and ns.enable_prefix_caching
    assert ns.tool_call_parser == "qwen3_coder" and ns.reasoning_parser == "qwen3"
    assert ns.speculative_config == {"method": "mtp", "num_speculative_tokens": 2}
    assert ns.compilation_config == {"cudagraph_capture_sizes": [1, 2, 4, 8, 12]}
    assert ns.limit_mm_per_prompt == {"image": 10, "video": 2}
    assert ns.disable_custom_all_reduce and ns.trust_remote_code and ns.use_tqdm_on_load is False
    assert ns.quantization == "compressed-tensors" and ns.attention_backend == "FLASHINFER"
    assert str(ns.optimization_level) == "3" and ns.gpu_memory_utilization == 0.9
    assert ns.override_generation_config["presence_penalty"] == 1.5
    assert ns.served_model_name == ["cyankiwi/Qwen3.5-27B-AWQ-BF16-INT8", "local", "coder"]


def test_sim_render_has_no_reservation_and_mounts_the_sim_dir(tmp_path):
    from appliance.rig import simulated_rig

    p = load_profile("rtx3090x4-two-tier")
    rig = simulated_rig(runtime="docker", root=tmp_path / "simx")
    data = render_engine_project(p, rig.render_base)
    simx = str(tmp_path / "simx" / "gpus")
    fast, smart = data["services"]["fast"], data["services"]["smart"]
    assert "deploy" not in fast and fast["image"] == "appliance-sim-vllm:local"
    assert fast["environment"]["NVIDIA_VISIBLE_DEVICES"] == "0,1"
    assert smart["environment"]["NVIDIA_VISIBLE_DEVICES"] == "2,3"
    assert f"{simx}:{simx}" in fast["volumes"] and fast["environment"]["APPLIANCE_SIM_DIR"] == simx


def test_files_say_they_are_generated(tmp_path):
    for f in all_rendered(tmp_path):
        comment = "-- " if f.path.suffix == ".lua" else "# "  # each file in its own language's comments
        assert f.text.startswith(comment) and "Edit the profile, not this file" in f.text
        assert "profiles/" in f.text.splitlines()[1]


def test_litellm_config_shape():
    from appliance.render.plan import plan

    cfg = render_litellm_config(plan(load_profile("rtx3090x4-two-tier")))
    groups = {m["model_name"]: m for m in cfg["model_list"]}
    local = groups["local-fast"]
    # LiteLLM reaches the engine through HAProxy's listener (proxy port + 3: + 1 and + 2 are the two LiteLLMs of a
    # config swap), whose health check decides
    assert local["litellm_params"]["api_base"] == "http://127.0.0.1:4003/v1"
    assert local["litellm_params"]["model"] == "hosted_vllm/local-fast"
    assert local["model_info"]["id"] == "local:local-fast@8001"
    # no first-token timeout toward a local engine: a long prefill is not a dead engine
    assert local["litellm_params"]["stream_timeout"] == local["litellm_params"]["timeout"] == 600
    assert groups["claude"]["litellm_params"]["api_key"] == "os.environ/ANTHROPIC_API_KEY"
    rs = cfg["router_settings"]
    assert "stream_timeout" not in rs
    assert rs["cooldown_time"] > 0 and rs["allowed_fails_policy"]["TimeoutErrorAllowedFails"] == 0
    assert "APIConnectionErrorAllowedFails" not in rs["allowed_fails_policy"]  # not a field: LiteLLM drops it
    assert {"local-fast": ["local-smart", "claude"]} in rs["fallbacks"]
    assert {"local-smart": ["claude"]} in rs["context_window_fallbacks"]
    assert cfg["general_settings"]["master_key"] == "os.environ/LITELLM_MASTER_KEY"


def test_no_secret_in_rendered_files(tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-live-do-not-leak-1234567890")
    monkeypatch.setenv("LITELLM_MASTER_KEY", "sk-master-do-not-leak-0987654321")
    for f in all_rendered(tmp_path):
        assert "do-not-leak" not in f.text


def test_allowed_fails_policy_names_only_fields_of_litellm(litellm_bin):
    """Every key of the rendered policies is a field of LiteLLM 1.106.2's AllowedFailsPolicy (read from its source:
    an unknown key is silently dropped)."""
    import re

    from appliance.render.litellm import ALLOWED_FAILS_POLICY, LOCAL_ALLOWED_FAILS_POLICY

    src = next((litellm_bin.resolve().parent.parent / "lib").glob("python*/site-packages/litellm/types/router.py"))
    body = src.read_text().split("class AllowedFailsPolicy", 1)[1].split("\nclass ", 1)[0]
    fields = set(re.findall(r"^    (\w+AllowedFails):", body, re.M))
    assert fields and set(ALLOWED_FAILS_POLICY) <= fields and set(LOCAL_ALLOWED_FAILS_POLICY) <= fields


def _compose_config(compose_cmd, path, extra_env=None):
    argv, env = compose_cmd
    env = dict(env)
    env.update(extra_env or {})
    return subprocess.run(argv + ["-f", str(path), "config", "--format", "json"], capture_output=True, text=True,
                          env=env)


@pytest.mark.testbed
@pytest.mark.parametrize("sim", [False, True], ids=["real", "sim"])
def test_every_rendered_compose_file_passes_docker_compose_config(compose_cmd, tmp_path, sim):
    import testbed

    from appliance.rig import simulated_rig

    settings = simulated_rig(runtime="docker", root=tmp_path / "sim").render_base if sim else RenderSettings()
    files = [f for f in all_rendered(tmp_path, settings) if f.path.name == "compose.yaml"]
    assert len(files) == 2 * len(PROFILES)  # an engine project and a proxy project per profile
    for suffix in ("", ".engine", ".frontdoor", ".litellm"):  # the proxy requires its roles' env files
        (tmp_path / f"secrets.env{suffix}").write_text("LITELLM_MASTER_KEY=sk-test\n")
    for f in files:
        f.write()
        out = _compose_config(compose_cmd, f.path, {"APPLIANCE_SIM_DIR": str(tmp_path / "sim"),
                                                    "APPLIANCE_SECRETS_FILE": str(tmp_path / "secrets.env")})
        assert out.returncode == 0, f"{f.path}: {out.stderr}"
        data = json.loads(out.stdout)
        testbed.assert_host_network_only(data)
        for svc in data["services"].values():
            assert svc["network_mode"] == "host"


@pytest.mark.testbed
def test_docker_compose_config_rejects_a_broken_file(compose_cmd, tmp_path):
    bad = tmp_path / "compose.yaml"
    bad.write_text("services:\n  x:\n    image: a\n    network_mode: host\n    restrat: always\n")
    assert _compose_config(compose_cmd, bad).returncode != 0


@pytest.mark.proxy
def test_rendered_litellm_config_loads_in_the_real_litellm(litellm_bin, tmp_path):
    from appliance.proxyenv import proxy_environment

    files = render.render_proxy_files(load_profile("rtx3090x4-two-tier"), tmp_path)
    cfg = [f for f in files if f.path.name == "litellm.yaml"][0]
    cfg.write()
    env = proxy_environment({"LITELLM_MASTER_KEY": "sk-appliance-test-0123456789abcdef",
                             "OPENAI_API_KEY": "unused", "ANTHROPIC_API_KEY": "unused"})
    out = subprocess.run([str(litellm_bin), "--config", str(cfg.path), "--validate_config"], capture_output=True,
                         text=True, env=env, timeout=180)
    text = out.stdout + out.stderr
    assert out.returncode == 0, text
    n = len(yaml.safe_load(cfg.path.read_text())["model_list"])
    assert f"config OK ({n} models)" in text
    assert "is not a valid argument" not in text, "a router_settings key LiteLLM ignores"
    assert "NOT a valid" not in text


@pytest.mark.parametrize("active", [None] + PROFILES, ids=lambda p: p.name if p else "none")
def test_frontdoor_config_is_valid_haproxy(active, tmp_path):
    import shutil

    from appliance.render.frontdoor import FrontDoorSettings, render_haproxy

    haproxy = shutil.which("haproxy")
    if haproxy is None:
        from conftest import missing

        missing("HAProxy", "`make install` installs Debian's haproxy")
    fd = FrontDoorSettings(socket_path=str(tmp_path / "h.sock"))
    cfg = tmp_path / "haproxy.cfg"
    from appliance.render.frontdoor import HOLD_LUA
    from appliance.render.plan import plan

    cfg.write_text(render_haproxy(plan(active), active, fd))
    (tmp_path / "hold.lua").write_text(HOLD_LUA)  # `lua-load hold.lua`: HAProxy runs in the proxy directory
    out = subprocess.run([haproxy, "-c", "-f", str(cfg)], capture_output=True, text=True, cwd=tmp_path,
                         env={"LITELLM_MASTER_KEY": "sk-test", "PATH": "/usr/bin:/bin"})
    assert out.returncode == 0, out.stdout + out.stderr
    text = cfg.read_text()
    assert "sk-test" not in text and "${LITELLM_MASTER_KEY}" in text

    def alias_servers(cfg: str) -> list[str]:  # the agents' way (LiteLLM's listeners only track them)
        return [ln.strip() for ln in cfg.splitlines()
                if ln.strip().startswith("server local ") and "on-marked-down" not in ln]

    servers = alias_servers(text)
    if active is None:  # a profile served but none routed yet: its servers start disabled (enabled when healthy)
        unrouted = render_haproxy(plan(PROFILES[0]), None, fd)
        assert alias_servers(unrouted) and all(ln.endswith(" disabled") for ln in alias_servers(unrouted))
    if active is not None:
        for e in active.engines:
            assert f"server local 127.0.0.1:{e.port} check" in text
            # the routed profile's servers are enabled in the file: a restarted HAProxy serves them again
            mine = [ln for ln in servers if ln.startswith(f"server local 127.0.0.1:{e.port} ")]
            assert mine and not [ln for ln in mine if ln.endswith(" disabled")]
            assert f"fits_alias_{e.aliases[0].replace('-', '_')} var(txn.need) -m int le {e.max_model_len}" in text
