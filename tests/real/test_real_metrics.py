"""The appliance's metric reading (appliance.metrics: the sampler's parse + engine_stats + cache_info) against a
real vLLM's /metrics under load, with ngram speculative decoding on (the shared engine's flags)."""

from __future__ import annotations

import threading
import time

import httpx

from appliance import metrics

from .client import TIMEOUT, chat_body

# ngram drafting proposes what already appeared: a repetitive prompt, and greedy decoding (a random tiny model
# then falls into loops), give it something to accept
PROMPT = "one two three four five six seven eight nine ten " * 8
TOKENS = 480  # per request: long enough that a scrape lands while they run (at 160 a CI run once missed them all)


def _scrape(eng, t: float) -> metrics.Scrape:
    return metrics.parse(httpx.get(eng.url + "/metrics", timeout=10).text, t, metrics.ENGINE_METRICS)


def test_sampler_math_on_a_real_engine(shared):
    eng = shared.get("real")
    usage: list[int] = []

    def one() -> None:
        r = httpx.post(eng.url + "/v1/chat/completions", timeout=TIMEOUT,
                       json=chat_body("local", content=PROMPT, max_tokens=TOKENS, ignore_eos=True, temperature=0))
        usage.append(r.json()["usage"]["completion_tokens"] if r.status_code == 200 else -1)

    first = prev = _scrape(eng, time.monotonic())
    threads = [threading.Thread(target=one) for _ in range(4)]
    for t in threads:
        t.start()
    seen = []
    # scrape often: the tiny model can finish 4 × 160 tokens within a second on an idle machine (CI once saw every
    # sample of a 0.5 s cadence land after the last request ended)
    while any(t.is_alive() for t in threads):
        time.sleep(0.05)
        cur = _scrape(eng, time.monotonic())
        seen.append(metrics.engine_stats(prev, cur))
        prev = cur
    for t in threads:
        t.join(TIMEOUT.read)
    last = _scrape(eng, time.monotonic())
    assert usage == [TOKENS] * 4, usage

    assert max(s.running or 0 for s in seen) >= 1, "never saw a running request"
    assert all(s.waiting is not None for s in seen)
    assert max(s.generation_tps or 0 for s in seen) > 0
    assert max(s.kv_usage or 0 for s in seen) > 0, "KV usage stayed 0 while 4 requests ran"
    # the counter the tok/s comes from counts exactly the tokens the clients received
    assert last.get("vllm:generation_tokens_total") - first.get("vllm:generation_tokens_total") == 4 * TOKENS

    total = metrics.engine_stats(first, last)
    assert total.ttft_p50_s is not None and 0 < total.ttft_p50_s <= total.ttft_p95_s
    assert total.spec_acceptance is not None and 0 < total.spec_acceptance <= 1, total
    assert total.spec_mean_accept_len is not None and 1 < total.spec_mean_accept_len <= 3, total  # k = 2
    assert total.running == 0 and total.waiting == 0

    info = metrics.cache_info(last)
    assert info["kv_cache_size_tokens"] == 131072, info  # 64 MiB / 512 B per token (2 layers, 2 KV heads × 32)
    assert info["kv_cache_memory_bytes"] == 64 << 20
    assert info["num_gpu_blocks"] * info["block_size"] == 131072
