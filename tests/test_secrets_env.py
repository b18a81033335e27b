"""Each process of a running rig holds only the secrets it needs, read from /proc/PID/environ: engines (which may
run a model's own code) the Hugging Face token only; HAProxy the master key; LiteLLM the master key and the hosted
keys. Secrets exported in the shell that started the rig do not leak into engines or HAProxy either."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from rigutil import running_rig

pytestmark = [pytest.mark.shared_rig]
MASTER = "sk-appliance-test-master-0123456789abcdef"
OPENAI = "sk-test-openai-do-not-leak-0123456789"
HF = "hf_test_token_do_not_leak_0123456789"
SHELL_SECRET = "shell-secret-do-not-leak-0123456789"


def environ(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    return dict(kv.decode(errors="replace").split("=", 1) for kv in raw if b"=" in kv)


@pytest.fixture(scope="module")
def rig(tmp_path_factory, litellm_bin):
    tmp = tmp_path_factory.mktemp("secrets-rig")
    sf = tmp / "secrets.env"
    sf.write_text(f"LITELLM_MASTER_KEY={MASTER}\nHF_TOKEN={HF}\n")
    os.chmod(sf, 0o600)
    env = {"APPLIANCE_SECRETS_FILE": str(sf), "OPENAI_API_KEY": OPENAI, "MY_SERVICE_TOKEN": SHELL_SECRET}
    with running_rig(tmp, extra_env=env) as stack:
        yield stack


def _pids(runtime, project: str) -> dict[str, list[int]]:
    """service → [its program's pid, its supervisor's pid]"""
    return {s.service: [s.pid, int(s.ident)] for s in runtime.states(project) if s.alive}


def _values(env: dict[str, str]) -> set[str]:
    return set(env.values())


def test_engine_gets_only_the_hf_token(rig):
    from appliance.render.compose import project_name

    pids = _pids(rig.rig.runtime, project_name(rig.active_profile()))
    assert pids
    for service, ps in pids.items():
        for pid in ps:
            env = environ(pid)
            assert env.get("HF_TOKEN") == HF, service
            assert env.get("VLLM_API_KEY", "").startswith("sk-engine-")  # its own key, generated
            assert "APPLIANCE_ENGINE_KEY" not in env
            assert MASTER not in _values(env) and OPENAI not in _values(env) and SHELL_SECRET not in _values(env)
            assert "LITELLM_MASTER_KEY" not in env and "OPENAI_API_KEY" not in env and "MY_SERVICE_TOKEN" not in env


def test_haproxy_gets_the_master_key_only(rig):
    from appliance.render.litellm import PROXY_PROJECT

    pids = _pids(rig.rig.proxy_runtime, PROXY_PROJECT)
    for pid in pids["frontdoor"]:
        env = environ(pid)
        assert env.get("LITELLM_MASTER_KEY") == MASTER
        assert env.get("APPLIANCE_ENGINE_KEY", "").startswith("sk-engine-")
        assert HF not in _values(env) and OPENAI not in _values(env) and SHELL_SECRET not in _values(env)


def test_litellm_gets_master_and_hosted_keys_not_hf(rig):
    from appliance.render.litellm import PROXY_PROJECT

    pids = _pids(rig.rig.proxy_runtime, PROXY_PROJECT)
    (name,) = [n for n in pids if n.startswith("litellm")]
    for pid in pids[name]:
        env = environ(pid)
        assert env.get("LITELLM_MASTER_KEY") == MASTER and env.get("OPENAI_API_KEY") == OPENAI
        assert HF not in _values(env)


def test_rendered_files_hold_no_secret(rig):
    for f in rig.rig.rendered.rglob("*"):
        if f.is_file():
            text = f.read_text(errors="replace")
            for secret in (MASTER, OPENAI, HF):
                assert secret not in text, f


def test_role_files_are_private(rig):
    from appliance import secrets

    for role in secrets.ROLES:
        f = secrets.role_file(role)
        assert f.stat().st_mode & 0o077 == 0
    assert HF not in secrets.role_file("litellm").read_text()
    assert MASTER not in secrets.role_file("engine").read_text()


def test_engines_require_their_own_key(rig):
    """A local user on the engine port gets 401 with no key or with the master key; /health and /metrics stay
    open (probes, telemetry); agents are served through the front door, hot path and LiteLLM alike."""
    import httpx

    from appliance import secrets
    from rigutil import ENGINE_PORT, chat

    body = {"model": "local", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}
    url = f"http://127.0.0.1:{ENGINE_PORT}"
    assert httpx.post(f"{url}/v1/chat/completions", json=body).status_code == 401
    assert httpx.post(f"{url}/v1/chat/completions", json=body,
                      headers={"Authorization": f"Bearer {MASTER}"}).status_code == 401
    assert httpx.get(f"{url}/v1/models").status_code == 401
    assert httpx.get(f"{url}/health").status_code == 200 and httpx.get(f"{url}/metrics").status_code == 200
    ok = httpx.post(f"{url}/v1/chat/completions", json=body,
                    headers={"Authorization": f"Bearer {secrets.engine_key()}"})
    assert ok.status_code == 200
    code, model_id, _ = chat(MASTER)
    assert code == 200 and model_id.startswith("local:")


def test_litellm_reaches_engines_with_the_engine_key(rig):
    """LiteLLM's way to a local engine (HAProxy's internal listener) carries the engine key LiteLLM was given."""
    import httpx

    from rigutil import PROXY_PORT

    body = {"model": "local", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}
    proxy = rig.rig.state.load().proxy
    r = httpx.post(f"http://127.0.0.1:{proxy.litellm_port}/v1/chat/completions", json=body,
                   headers={"Authorization": f"Bearer {MASTER}"}, timeout=60)
    assert r.status_code == 200, r.text
    assert r.headers.get("x-litellm-model-id", "").startswith("local:")
    assert proxy.port == PROXY_PORT
