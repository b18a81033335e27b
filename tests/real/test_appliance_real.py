"""The appliance itself on a REAL vLLM (the CPU build, tiny model) next to simulated GPUs: `up` follows the real
start phase by phase from its real log lines, the front door (HAProxy + LiteLLM) serves it streaming and not,
the sampler reads its real /metrics and the simulated GPUs' power follows its load, and a switch to another
profile under streaming load fails no request."""

from __future__ import annotations

import asyncio
import textwrap
import threading

import pytest

from appliance import http, load, secrets
from appliance.profile import load_profile
from appliance.rig import simulated_rig
from appliance.stack import Stack
from appliance.telemetry import Sampler

from rigutil import ENGINE_PORT, PROXY_PORT, apply_env, chat, rig_env, wait_local

from .conftest import require_real

pytestmark = [pytest.mark.proxy]


def _profile(d, name: str, max_num_seqs: int, watts: int) -> None:
    _, model = require_real()
    (d / f"{name}.yaml").write_text(textwrap.dedent(f"""\
        name: {name}
        card: "4090"
        gpus: [0]
        power_limit_w: {watts}
        engines:
          - name: tiny
            aliases: [local]
            port: {ENGINE_PORT}
            image: vllm/vllm-openai:v0.32.0
            model: {model}
            max_model_len: 2048
            max_num_seqs: {max_num_seqs}
            enforce_eager: true
            kv_cache_memory_bytes: 64M
        proxy:
          port: {PROXY_PORT}
          timeouts: {{request_s: 120, stream_s: 60, first_token_s: 60, hold_s: 300}}
        """))


@pytest.fixture
def real_rig(tmp_path, monkeypatch, litellm_bin):
    require_real()
    d = tmp_path / "profiles"
    d.mkdir()
    _profile(d, "tiny-a", 8, 300)
    _profile(d, "tiny-b", 4, 250)
    apply_env(monkeypatch, rig_env(tmp_path))
    events: list = []
    stack = Stack(simulated_rig(runtime="process", cards=["4090"], engine="vllm"), events.append, drain_s=30)
    stack.test_events = events
    try:
        yield stack
    finally:
        stack.down(all_=True)


@pytest.mark.timeout(1500)  # two real starts on a loaded 2-core machine
def test_up_serve_sample_switch_on_the_real_engine(real_rig):
    stack = real_rig
    result = stack.up(load_profile("tiny-a"), timeout_s=420)
    assert result.ok, result
    phases = [p["phase"] for p in result.timelines["tiny"]]
    assert phases[0] == "created" and phases[-1] == "ready" and "weights" in phases, phases  # from real lines
    key = secrets.master_key()
    wait_local(key, timeout=60)
    code, model_id, text = chat(key, max_tokens=40, stream=True, timeout=60)
    assert code == 200 and model_id == f"local:local@{ENGINE_PORT}" and "[DONE]" in text

    sampler = Sampler(stack)
    try:
        sampler.sample()
        stop = threading.Event()
        t = threading.Thread(target=lambda: [chat(key, max_tokens=300, stream=True, timeout=60)
                                             for _ in range(40) if not stop.is_set()])
        t.start()
        import time

        # sample once a second while the streams run, until the load shows (a loaded CI box can take seconds
        # before the first token): the engine busy, its tokens counted, the card drawing power
        deadline = time.time() + 90
        while True:
            time.sleep(1.0)
            snap = sampler.sample()
            eng, gpu = snap.engines[0], snap.gpus[0]
            if (eng.health == "healthy" and eng.stats.generation_tokens_total > 0 and (eng.stats.running or 0) > 0
                    and (gpu.power_w or 0) > 60) or time.time() > deadline:
                break
        stop.set()
        t.join(timeout=120)
    finally:
        sampler.close()
    assert eng.health == "healthy" and eng.stats.generation_tokens_total > 0
    assert gpu.power_w is not None and gpu.power_w > 60, gpu  # the real engine's load drives the simulated card

    # a switch under streaming load: the in-flight streams finish through the drain, none fails
    results: list = []

    async def agents(stop: asyncio.Event):
        # longer than the front door holds a request (hold_s 300): a real start on a loaded machine can take minutes,
        # and a held request gets no byte before it
        async with http.async_client(timeout_s=360) as c:
            async def one(i):
                n = 0
                while not stop.is_set():
                    n += 1
                    results.append(await load.stream_chat(c, f"http://127.0.0.1:{PROXY_PORT}/v1", key, "local",
                                                          load.synthetic_prompt(30, i * 100 + n), 60))
            await asyncio.gather(*(one(i) for i in range(3)))

    async def main():
        stop = asyncio.Event()
        task = asyncio.create_task(agents(stop))
        await asyncio.sleep(2)
        r = await asyncio.to_thread(stack.switch, load_profile("tiny-b"), timeout_s=420)
        await asyncio.sleep(2)
        stop.set()
        await task
        return r

    switched = asyncio.run(main())
    assert switched.ok, switched
    failed = [r for r in results if not r.ok]
    assert not failed, [r.error for r in failed]
    assert any(r.held_ms for r in results), "no fallback: requests waited for the new engine"
    assert stack.rig.gpus().read(0).power_limit_w == 250
    st = [s for s in stack.rig.runtime.states("appliance-tiny-b") if s.service == "tiny"][0]
    cmdline = open(f"/proc/{st.pid}/cmdline").read().split("\0")
    assert cmdline[cmdline.index("--max-num-seqs") + 1] == "4"
