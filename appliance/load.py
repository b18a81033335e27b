"""The load generator: streaming chat requests with per-request TTFT, inter-token latency, output tokens (from
the final usage chunk) and tokens/s. Used by `appliance bench`, the demo's background traffic and the
benchmarks. Loopback only; every loop is bounded in count or time.
"""

from __future__ import annotations

import asyncio
import json
import random
import threading
import time
from dataclasses import dataclass, field

WORDS = ("the appliance serves local agents with tokens per joule and watts per token while the owner tunes "
         "power limits concurrency context length and speculative decoding on quiet homelab GPUs").split()


def synthetic_prompt(tokens: int, seed: int) -> str:
    """About `tokens` prompt tokens (one word ≈ one token for the simulated engine's tokenizer)."""
    rng = random.Random(seed)
    return " ".join(rng.choice(WORDS) for _ in range(max(1, tokens)))


@dataclass
class RequestResult:
    ok: bool
    t_start: float
    t_end: float
    ttft_s: float | None = None
    output_tokens: int = 0
    prompt_tokens: int = 0
    itl_s: list[float] = field(default_factory=list)
    error: str | None = None
    model_id: str | None = None  # x-litellm-model-id when through the proxy
    held_ms: int = 0  # how long the front door held it waiting for an engine (x-appliance-held-ms)

    @property
    def tokens_per_s(self) -> float | None:
        """Per-request decode speed: output tokens after the first over the time after the first."""
        if self.ttft_s is None or self.output_tokens < 2:
            return None
        decode = self.t_end - self.t_start - self.ttft_s
        return (self.output_tokens - 1) / decode if decode > 0 else None


async def stream_chat(client, base_url: str, api_key: str | None, model: str, prompt: str, max_tokens: int,
                      extra: dict | None = None) -> RequestResult:
    """One streaming chat completion; never raises for HTTP or network trouble (the result says what failed)."""
    import httpx

    body = {"model": model, "messages": [{"role": "user", "content": prompt}], "max_tokens": max_tokens,
            "stream": True, "stream_options": {"include_usage": True}, "ignore_eos": True, "temperature": 0}
    body.update(extra or {})
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    t0 = time.perf_counter()
    wall0 = time.time()
    res = RequestResult(False, wall0, wall0)
    last = None
    chunks = 0
    try:
        async with client.stream("POST", f"{base_url}/chat/completions", json=body, headers=headers) as r:
            res.model_id = r.headers.get("x-litellm-model-id")
            res.held_ms = int(r.headers.get("x-appliance-held-ms") or 0)
            if r.status_code != 200:
                text = (await r.aread()).decode("utf-8", "replace")
                res.error = f"HTTP {r.status_code}: {text[:200]}"
                res.t_end = time.time()
                return res
            async for line in r.aiter_lines():
                if not line.startswith("data:"):
                    continue
                data = line[5:].strip()
                if data == "[DONE]":
                    res.ok = res.error is None
                    break
                try:
                    obj = json.loads(data)
                except ValueError:
                    continue
                if "error" in obj:
                    res.error = str(obj["error"])[:200]
                    continue
                now = time.perf_counter()
                choices = obj.get("choices") or []
                if choices and (choices[0].get("delta") or {}).get("content"):
                    chunks += 1
                    if res.ttft_s is None:
                        res.ttft_s = now - t0
                    elif last is not None:
                        res.itl_s.append(now - last)
                    last = now
                usage = obj.get("usage")
                if usage:
                    res.output_tokens = int(usage.get("completion_tokens") or 0)
                    res.prompt_tokens = int(usage.get("prompt_tokens") or 0)
    except httpx.HTTPError as exc:
        res.error = f"{type(exc).__name__}: {exc}"[:200]
    res.t_end = wall0 + (time.perf_counter() - t0)
    if res.ok and not res.output_tokens:
        res.output_tokens = chunks
    return res


class BackgroundTraffic:
    """A few agent-like streams through the proxy so the demo's numbers move. Stops on `stop()`."""

    def __init__(self, base_url: str, api_key: str, model: str = "local", concurrency: int = 2,
                 max_tokens: tuple[int, int] = (64, 256), prompt_tokens: tuple[int, int] = (50, 800)):
        self.base_url, self.api_key, self.model = base_url, api_key, model
        self.concurrency, self.max_tokens, self.prompt_tokens = concurrency, max_tokens, prompt_tokens
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="demo-traffic", daemon=True)
        self.done = 0
        self.failed = 0

    def start(self) -> "BackgroundTraffic":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        asyncio.run(self._main())

    async def _main(self) -> None:
        from appliance import http

        async with http.async_client(timeout_s=120) as client:
            await asyncio.gather(*(self._agent(client, i) for i in range(self.concurrency)))

    async def _agent(self, client, i: int) -> None:
        rng = random.Random(i)
        n = 0
        while not self._stop.is_set():
            n += 1
            prompt = synthetic_prompt(rng.randint(*self.prompt_tokens), seed=i * 100003 + n)
            res = await stream_chat(client, self.base_url, self.api_key, self.model, prompt,
                                    rng.randint(*self.max_tokens))
            if res.ok:
                self.done += 1
            else:
                self.failed += 1
                await asyncio.sleep(1.0)
            await asyncio.sleep(rng.uniform(0.1, 1.0))
