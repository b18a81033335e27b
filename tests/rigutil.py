"""Helpers for tests that run the whole rig: test profiles on their own ports, a chat request through the
proxy, and the environment that isolates a rig (state dir, profiles, ports)."""

from __future__ import annotations

import contextlib
import os
import textwrap
from pathlib import Path

# APPLIANCE_TEST_PORT_OFFSET moves every port (two test runs on one machine must not share ports)
_OFFSET = int(os.environ.get("APPLIANCE_TEST_PORT_OFFSET", "0"))
ENGINE_PORT = 18000 + _OFFSET
PROXY_PORT = 14000 + _OFFSET
HOSTED_BASE = 14100 + _OFFSET


def write_profiles(d: Path, max_num_seqs: int = 16, first_token_s: float = 3) -> None:
    """Three small profiles for a 1×4090 rig plus one that crashes at start with vLLM's OOM message.
    (Short timeouts by default, so failover tests run fast; the soak uses realistic ones.)"""
    d.mkdir(parents=True, exist_ok=True)
    common = textwrap.dedent(f"""\
        card: "4090"
        gpus: [0]
        proxy:
          port: {PROXY_PORT}
          cooldown_s: 5
          timeouts: {{request_s: 60, stream_s: {first_token_s}, first_token_s: {first_token_s}}}
          hosted:
            - {{name: hosted-mini, provider: openai, model: gpt-4o-mini, api_key_env: OPENAI_API_KEY,
               max_input_tokens: 128000}}
          fallbacks: {{local: [hosted-mini]}}
          context_window_fallbacks: {{local: [hosted-mini]}}
        """)
    engines = {
        "alpha": ("Qwen/Qwen2.5-7B-Instruct-AWQ", 300, ""),
        "beta": ("Qwen/Qwen2.5-14B-Instruct-AWQ", 350, ""),
        "crashy": ("Qwen/Qwen2.5-7B-Instruct-AWQ", 200, "    env: {APPLIANCE_SIM_FAULT: oom_at_start}\n"),
    }
    for name, (model, watts, extra) in engines.items():
        (d / f"{name}.yaml").write_text(
            f"name: {name}\npower_limit_w: {watts}\n" + common + textwrap.dedent(f"""\
            engines:
              - name: main
                aliases: [local]
                port: {ENGINE_PORT}
                model: {model}
                max_model_len: 8192
                max_num_seqs: {max_num_seqs}
                kv_cache_dtype: fp8
                gpu_memory_utilization: 0.9
            """) + extra)


def rig_env(tmp: Path) -> dict[str, str]:
    return {
        "APPLIANCE_HOME": str(tmp / "home"),
        "APPLIANCE_PROFILES": str(tmp / "profiles"),
        "APPLIANCE_PROFILES_ONLY": "1",
        "APPLIANCE_HOSTED_BASE_PORT": str(HOSTED_BASE),
        "APPLIANCE_SIM_LOAD_S": "1.0",
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",
    }


def chat(master_key: str, model: str = "local", max_tokens: int = 16, stream: bool = False, timeout: float = 30):
    """One chat request through the proxy; returns (status, deployment id, text)."""
    import httpx

    body = {"model": model, "messages": [{"role": "user", "content": "say hello to the test"}],
            "max_tokens": max_tokens, "stream": stream}
    with httpx.Client(timeout=timeout, trust_env=False) as c:
        if not stream:
            r = c.post(f"http://127.0.0.1:{PROXY_PORT}/v1/chat/completions", json=body,
                       headers={"Authorization": f"Bearer {master_key}"})
            return r.status_code, r.headers.get("x-litellm-model-id"), r.text
        with c.stream("POST", f"http://127.0.0.1:{PROXY_PORT}/v1/chat/completions", json=body,
                      headers={"Authorization": f"Bearer {master_key}"}) as r:
            text = "".join(r.iter_text())
            return r.status_code, r.headers.get("x-litellm-model-id"), text


def wait_local(key: str, timeout: float = 30) -> None:
    """Until the front door serves the alias `local` from the local engine again (after a switch, a fault)."""
    import time

    import httpx

    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            code, model_id, _ = chat(key)
        except httpx.HTTPError:  # the front door itself may be restarting
            code, model_id = None, None
        if code == 200 and model_id == f"local:local@{ENGINE_PORT}":
            return
        time.sleep(0.5)
    raise AssertionError("the local engine did not serve again")


def apply_env(monkeypatch, env: dict[str, str]) -> None:
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    os.environ.pop("APPLIANCE_SECRETS_FILE", None)


@contextlib.contextmanager
def running_rig(tmp: Path, profile: str = "alpha", extra_env: dict | None = None, **stack_kw):
    """A simulated rig (processes + the real front door) with the test profiles, started with `profile`;
    the environment is restored and everything stopped afterwards."""
    from appliance.profile import load_profile
    from appliance.rig import simulated_rig
    from appliance.stack import Stack

    write_profiles(tmp / "profiles")
    saved = dict(os.environ)
    os.environ.update(rig_env(tmp))
    os.environ.update(extra_env or {})
    stack = Stack(simulated_rig(runtime="process"), **stack_kw)
    try:
        assert stack.up(load_profile(profile)).ok
        yield stack
    finally:
        stack.down(all_=True)
        os.environ.clear()
        os.environ.update(saved)
