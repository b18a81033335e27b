"""Back-to-back switches (the next one starts ~2 s after the previous one finished) while agents stream, a quarter
of them through LiteLLM (long contexts: the front door hands them to LiteLLM, which relays them to the local engine
through HAProxy's internal listener), and requests fall back to the hosted model while an engine restarts.

Why this test: HAProxy's seamless reload leaves the previous worker serving the connections it has. A keep-alive
connection whose streamed response had started before a reload carried ONE more request in that old worker, under
the old config, where the engine being drained is still enabled (the runtime API reaches only the current worker,
and an old worker refuses changes: "Proxy is disabled"). That request reached the draining engine (HTTP 500
`cannot schedule new futures after shutdown`). On the hot path such a 500 marks the engine down in that worker, and
`on-marked-down shutdown-sessions` then cuts the streams LiteLLM relays through it (`Connection closed`).

The bar: 0 failed requests, and no engine is sent a new request after its drain began (counted in the engines' own
logs: the sharp signal; failures need the unlucky timing on top)."""

from __future__ import annotations

import asyncio
import random
import threading
import time

import pytest

import rigutil
import switchutil
from rigutil import apply_env

pytestmark = [pytest.mark.proxy]


def _late_requests(rig_dir) -> list[str]:
    """Completion requests an engine refused because it was draining (the stand-in answers them like vLLM: 500)."""
    out = []
    for log in sorted((rig_dir / "processes").glob("appliance-*/*.log*")):
        if log.parent.name == "appliance-proxy":
            continue
        out += [f"{log.parent.name}: {ln.strip()}" for ln in log.read_text(errors="replace").splitlines()
                if "POST /v1/" in ln and '" 500' in ln]
    return out


def test_back_to_back_switches_send_nothing_new_to_a_draining_engine(tmp_path, monkeypatch, litellm_bin):
    from appliance import http, load, secrets
    from appliance.profile import load_profile
    from appliance.rig import simulated_rig
    from appliance.stack import Stack

    # two profiles whose LiteLLM configs are the same: a switch between them reloads HAProxy at once (no second
    # LiteLLM to start first), so the streams LiteLLM relays are still running in the worker the reload retires
    names = ["rtx4090-qwen25-14b-agent", "rtx4060ti16-qwen25-7b"]
    switchutil.write_shipped(tmp_path / "profiles", names)
    apply_env(monkeypatch, switchutil.env_for(tmp_path))
    stack = Stack(simulated_rig(runtime="process", cards=["4090"]), drain_s=60)
    results: list = []
    stop = threading.Event()
    switched: list = []
    try:
        assert stack.up(load_profile(names[0])).ok
        key = secrets.master_key()
        base = f"http://127.0.0.1:{rigutil.PROXY_PORT}/v1"

        async def agents():
            # keep-alive connections (one pooled client), streams of 20–80 tokens, no pause: many connections have
            # a stream running at every reload, and the next request takes the connection as soon as it ends
            async with http.async_client(timeout_s=120) as client:
                async def agent(i):
                    rng = random.Random(i)
                    n = 0
                    while not stop.is_set():
                        n += 1
                        # every 4th agent sends a long context (> 16 KB: more than the context guard of these 16k
                        # engines lets through): the front door hands it to LiteLLM, which relays it to the engine
                        words = 3000 if i % 4 == 0 else rng.randint(20, 200)
                        results.append(await load.stream_chat(
                            client, base, key, "local", load.synthetic_prompt(words, i * 7919 + n),
                            rng.randint(20, 80)))
                await asyncio.gather(*(agent(i) for i in range(16)))

        runner = threading.Thread(target=lambda: asyncio.run(agents()), daemon=True)
        runner.start()
        time.sleep(3)
        for target in (names[1], names[0], names[1], names[0]):
            r = stack.switch(load_profile(target))
            switched.append((target, r.ok))
            time.sleep(2)  # the next switch starts while the last one's reload left old workers serving streams
        stop.set()
        runner.join(timeout=240)
    finally:
        stop.set()
        stack.down(all_=True)
    failed = [r for r in results if not r.ok]
    relayed = [r for r in results if r.ok and (r.model_id or "").startswith("hosted:")]
    print(f"\n{len(results)} requests, {len(failed)} failed, {len(relayed)} served by the fallback; {switched}")
    assert all(ok for _, ok in switched), switched
    assert relayed, "no request took the fallback path: the test did not exercise LiteLLM"
    late = _late_requests(stack.rig.dir)
    assert not late, f"{len(late)} new requests reached an engine after its drain began: {late[:5]}"
    assert not failed, [r.error for r in failed][:5]
