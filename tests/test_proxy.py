"""The front door (LiteLLM) against the stand-in engines and the real proxy: aliases, hosted fallback,
zero-failure switches, faults, context guard, secrets."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from appliance import load, secrets
from appliance.profile import load_profile

from conftest import REPO
from rigutil import ENGINE_PORT, PROXY_PORT, chat, running_rig, wait_local

pytestmark = [pytest.mark.proxy, pytest.mark.shared_rig]
FAKE_OPENAI = "sk-test-openai-do-not-leak-0123456789"
LOCAL = f"local:local@{ENGINE_PORT}"
HOSTED = "hosted:hosted-mini"


@pytest.fixture(scope="module")
def rig(tmp_path_factory, litellm_bin):
    with running_rig(tmp_path_factory.mktemp("proxy-rig"), extra_env={"OPENAI_API_KEY": FAKE_OPENAI}) as stack:
        yield stack


def engine_pid(stack) -> int:
    return [s for s in stack.rig.runtime.states("appliance-" + stack.active_profile().name)][0].pid


async def agents(key: str, n: int, stop: asyncio.Event, results: list, max_tokens=(20, 60)) -> None:
    from appliance import http

    async with http.async_client(timeout_s=60) as client:
        async def one(i):
            k = 0
            while not stop.is_set():
                k += 1
                res = await load.stream_chat(client, f"http://127.0.0.1:{PROXY_PORT}/v1", key, "local",
                                             load.synthetic_prompt(40, i * 1000 + k), 20 + (k * 7) % 40)
                results.append(res)
        await asyncio.gather(*(one(i) for i in range(n)))


def run_with_agents(key: str, n: int, action) -> list:
    """Stream continuously with n agents while `action()` runs in a thread, and on until the local engine
    answers again (at most 30 s); return every request's result."""
    results: list = []

    async def main():
        stop = asyncio.Event()
        task = asyncio.create_task(agents(key, n, stop, results))
        await asyncio.sleep(1.0)
        await asyncio.to_thread(action)
        done = time.time()
        deadline = done + 30
        while time.time() < deadline and not any(r.model_id == LOCAL and r.t_start > done for r in results):
            await asyncio.sleep(0.2)
        stop.set()
        await task

    asyncio.run(main())
    return results


def order_of(ids: list[str]) -> list[str]:
    out = []
    for i in ids:
        if not out or out[-1] != i:
            out.append(i)
    return out


def test_alias_served_locally_and_key_required(rig):
    key = secrets.master_key()
    assert chat(key)[:2] == (200, LOCAL)
    import httpx

    r = httpx.post(f"http://127.0.0.1:{PROXY_PORT}/v1/chat/completions", json={"model": "local", "messages": []})
    assert r.status_code == 401
    r = httpx.post(f"http://127.0.0.1:{PROXY_PORT}/v1/chat/completions", json={"model": "local", "messages": []},
                   headers={"Authorization": "Bearer sk-not-the-key"})
    assert 400 <= r.status_code < 500


def test_proxy_listens_on_loopback_only(rig):
    lines = open("/proc/net/tcp").read().splitlines()[1:]
    listen = [ln.split() for ln in lines if ln.split()[3] == "0A"]  # state LISTEN
    ours = [ln[1] for ln in listen if int(ln[1].split(":")[1], 16) == PROXY_PORT]
    assert ours == ["0100007F:%04X" % PROXY_PORT], ours  # 127.0.0.1 only, not 0.0.0.0


def test_no_secret_leaks(rig):
    key = secrets.master_key()
    mode = os.stat(secrets.secrets_file()).st_mode & 0o777
    assert mode == 0o600
    texts = [p.read_text(errors="replace") for p in rig.rig.rendered.rglob("*.yaml")]
    texts += [p.read_text(errors="replace") for p in (rig.rig.dir / "processes").rglob("*.log")]
    status = subprocess.run([sys.executable, "-m", "appliance", "status", "--sim", "--runtime", "process", "--json"],
                            capture_output=True, text=True, cwd=REPO, env=os.environ)
    assert status.returncode == 0, status.stderr
    texts.append(status.stdout)
    texts += list(rig.logs("proxy", tail=2000))
    for text in texts:
        assert key not in text and FAKE_OPENAI not in text


def test_context_window_fallback(rig):
    key = secrets.master_key()
    import httpx

    long_prompt = load.synthetic_prompt(9000, 1)  # > max_model_len 8192 of the local engine
    r = httpx.post(f"http://127.0.0.1:{PROXY_PORT}/v1/chat/completions", timeout=60,
                   json={"model": "local", "messages": [{"role": "user", "content": long_prompt}], "max_tokens": 8},
                   headers={"Authorization": f"Bearer {key}"})
    assert r.status_code == 200, r.text
    assert r.headers["x-litellm-model-id"] == HOSTED
    assert chat(key)[1] == LOCAL  # short prompts stay local (a context error does not cool the engine down)


def test_engine_returning_500_falls_back(rig):
    import httpx

    key = secrets.master_key()
    httpx.post(f"http://127.0.0.1:{ENGINE_PORT}/_sim/fault", json={"fault": "http500"})
    try:
        results = [chat(key) for _ in range(5)]
        assert all(code == 200 for code, _, _ in results)
        assert all(mid == HOSTED for _, mid, _ in results)
    finally:
        httpx.post(f"http://127.0.0.1:{ENGINE_PORT}/_sim/fault", json={"fault": "none"})
    wait_local(key)


def test_hung_engine_costs_one_slow_request_per_cooldown(rig):
    """SIGSTOP = accepts TCP (the kernel's backlog), never answers — like vLLM while it loads."""
    key = secrets.master_key()
    pid = engine_pid(rig)
    os.kill(pid, signal.SIGSTOP)
    try:
        slow, codes = 0, []
        t_end = time.time() + 12  # a little over two cooldown windows (5 s)
        while time.time() < t_end:
            t0 = time.time()
            code, mid, _ = chat(key, stream=True)
            codes.append((code, mid))
            if time.time() - t0 > 2.5:  # waited for the 3 s first-token timeout
                slow += 1
        assert all(c == 200 and m == HOSTED for c, m in codes), codes
        assert len(codes) >= 5
        assert 1 <= slow <= 3, f"{slow} slow requests in 12 s with a 5 s cooldown"
    finally:
        os.kill(pid, signal.SIGCONT)
    wait_local(key)


def test_killed_engine_keeps_serving(rig):
    key = secrets.master_key()
    pid = engine_pid(rig)
    killed = {}

    def kill():
        killed["t"] = time.time()
        os.kill(pid, signal.SIGKILL)  # the supervisor restarts it (restart: unless-stopped)

    results = run_with_agents(key, 3, kill)
    # the streams in flight at the moment of the kill are cut (no proxy can save them); every later one succeeds
    later = [r for r in results if r.t_start > killed["t"] + 0.05]
    assert later and all(r.ok for r in later), [r.error for r in later if not r.ok]
    assert len([r for r in results if not r.ok]) <= 3
    seq = order_of([r.model_id for r in sorted(later, key=lambda r: r.t_start)])
    assert seq[0] == HOSTED and seq[-1] == LOCAL, seq


def test_switch_under_streaming_load_loses_nothing(rig):
    key = secrets.master_key()
    results = run_with_agents(key, 4, lambda: rig.switch(load_profile("beta"), drain_s=10))
    assert rig.rig.state.load().active.name == "beta"
    failed = [r for r in results if not r.ok]
    assert not failed, [r.error for r in failed]
    seq = order_of([r.model_id for r in sorted(results, key=lambda r: r.t_start)])
    assert seq[0] == LOCAL and HOSTED in seq and seq[-1] == LOCAL, seq


def test_crash_at_start_keeps_serving_and_rolls_back(rig):
    key = secrets.master_key()
    outcome = {}

    def switch():
        outcome["r"] = rig.switch(load_profile("crashy"), drain_s=5)

    results = run_with_agents(key, 3, switch)
    assert not outcome["r"].ok and "rolled back" in outcome["r"].reason
    assert not [r for r in results if not r.ok]
    wait_local(key)


def test_endpoint_json(rig):
    out = subprocess.run([sys.executable, "-m", "appliance", "endpoint", "--json", "--sim", "--runtime", "process"],
                         capture_output=True, text=True, cwd=REPO, env=os.environ)
    data = json.loads(out.stdout)
    assert data["base_url"] == f"http://127.0.0.1:{PROXY_PORT}/v1" and data["api_key"] == secrets.master_key()
    assert data["aliases"]["local"]["local"]


def test_proxy_telemetry_counts_local_and_fallback(rig):
    from appliance.telemetry import Sampler

    s = Sampler(rig)
    snap = s.sample()
    s.close()
    assert snap.proxy.requests_local.get("local", 0) > 0
    assert snap.proxy.requests_fallback.get("local", 0) > 0
