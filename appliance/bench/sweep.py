"""`appliance bench`: concurrency × power-limit sweeps, tokens per joule, and a recommendation.

For each power limit (set on the engine's GPUs through the Stack, restored afterwards — also on Ctrl-C) and
each concurrency, a closed loop of streaming requests runs (after a warm-up). The measurement window starts
once every stream is running: aggregate generation and prompt tokens/s come from the engine's own counters
(`vllm:generation_tokens_total`, `vllm:prompt_tokens_total`) over the window (the least-squares slope of one
scrape a second), energy from the GPUs' energy counters over the same window, per-request numbers (TTFT,
inter-token latency, tokens/s) from the client.
Results are kept in the state dir as JSON and CSV.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from appliance import load, metrics
from appliance.bench.recommendation import recommend
from appliance.bench.results import BenchRun, Cell, save
from appliance.errors import ApplianceError, StackError


@dataclass
class BenchSettings:
    concurrency: list[int] = field(default_factory=lambda: [1, 2, 4, 8])
    power_w: list[float | None] = field(default_factory=lambda: [None])  # None: leave the limit as it is
    duration_s: float | None = 30.0
    requests: int | None = None  # instead of a duration: stop each cell after N finished requests
    prompt_tokens: int = 256
    max_tokens: int = 256
    target: str = "proxy"  # proxy | engine
    engine: str | None = None
    dataset: str | None = None  # JSONL of real prompts ({"prompt": …} or {"messages": …})
    seed: int = 1
    warmup: int = 2  # requests per stream before the window
    settle_s: float = 2.0  # after a power-limit change
    at_concurrency: int | None = None  # the concurrency the owner cares about (recommendation)
    keep_within: float = 0.9  # per-request tok/s must stay within this share of the best


def _pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    s = sorted(values)
    k = (len(s) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


def load_dataset(path: str) -> list[str]:
    prompts = []
    try:
        lines = Path(path).read_text().splitlines()
    except OSError as exc:
        raise ApplianceError(f"--dataset {path}: {exc.strerror}", "give a JSONL file of prompts") from None
    for i, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except ValueError:
            raise ApplianceError(f"{path}:{i}: not a JSON line", 'each line: {"prompt": "…"} or {"messages": […]}') \
                from None
        if isinstance(obj, dict) and isinstance(obj.get("prompt"), str):
            prompts.append(obj["prompt"])
        elif isinstance(obj, dict) and isinstance(obj.get("messages"), list):
            prompts.append("\n".join(str(m.get("content", "")) for m in obj["messages"] if isinstance(m, dict)))
        else:
            raise ApplianceError(f"{path}:{i}: no `prompt` or `messages`", 'each line: {"prompt": "…"}')
    if not prompts:
        raise ApplianceError(f"{path}: no prompts", "add JSON lines with a prompt each")
    return prompts


class Bench:
    def __init__(self, stack, settings: BenchSettings, on_progress: Callable[[dict], None] | None = None,
                 should_stop: Callable[[], bool] | None = None):
        self.stack = stack
        self.s = settings
        self.on_progress = on_progress or (lambda d: None)
        self.should_stop = should_stop or (lambda: False)
        profile = stack.active_profile()
        if profile is None:
            raise StackError("no profile is running", "start one: `appliance up PROFILE` (or give PROFILE to bench)")
        self.profile = profile
        self.engine = profile.engine(settings.engine) if settings.engine else profile.engines[0]
        from appliance.profile.placement import engine_gpu_indices

        self.gpus = engine_gpu_indices(profile, self.engine, stack.rig.gpus().count())
        self.prompts = load_dataset(settings.dataset) if settings.dataset else None

    # -- endpoints --------------------------------------------------------------------------------
    def _target(self) -> tuple[str, str | None, str]:
        alias = self.engine.aliases[0] if self.engine.aliases else self.engine.served_names[0]
        from appliance import secrets

        if self.s.target == "engine":  # engines take only their own key (agents never see it)
            return f"http://127.0.0.1:{self.engine.port}/v1", secrets.engine_key(), alias

        proxy = self.stack.rig.state.load().proxy
        if not proxy:
            raise StackError("the proxy is not running", "use --target engine, or `appliance up` first")
        return f"http://127.0.0.1:{proxy.port}/v1", secrets.master_key(), alias

    def _scrape(self) -> metrics.Scrape | None:
        from appliance import http

        sent = time.time()
        with http.client(timeout_s=3.0) as c:
            p = http.get(c, f"http://127.0.0.1:{self.engine.port}/metrics")
        if not p.ok or not p.body:
            return None
        try:  # the counters were read somewhere between asking and answer: the midpoint errs least
            return metrics.parse(p.body, (sent + time.time()) / 2)
        except ValueError:
            return None

    def _energy(self) -> tuple[float, dict[int, float | None]]:
        readings = {g: self.stack.rig.gpus().read(g) for g in self.gpus}
        return time.time(), {g: r.energy_j for g, r in readings.items()}

    def _prompt(self, worker: int, n: int) -> str:
        if self.prompts:
            return self.prompts[(self.s.seed * 7919 + worker * 104729 + n) % len(self.prompts)]
        return load.synthetic_prompt(self.s.prompt_tokens, seed=self.s.seed * 1_000_003 + worker * 10_007 + n)

    # -- one cell ---------------------------------------------------------------------------------
    async def _cell(self, limit_w: float | None, c: int, index: int, total: int) -> Cell:
        from appliance import http

        base, key, model = self._target()
        results: list[load.RequestResult] = []
        window = {"t0": None, "t1": None}
        stop = asyncio.Event()
        done_count = {"n": 0}
        warm = {"n": 0}

        async with http.async_client(timeout_s=600) as client:
            async def worker(i: int):
                for w in range(self.s.warmup):  # warm-up: not measured
                    await load.stream_chat(client, base, key, model, self._prompt(i, -1 - w), 16)
                warm["n"] += 1
                n = 0
                while not stop.is_set():
                    n += 1
                    res = await load.stream_chat(client, base, key, model, self._prompt(i, n), self.s.max_tokens)
                    if window["t0"] is not None and res.t_start >= window["t0"] and \
                            (window["t1"] is None or res.t_end <= window["t1"] + 0.5):
                        results.append(res)
                        done_count["n"] += 1
                    if not res.ok and not stop.is_set():
                        await asyncio.sleep(0.5)

            tasks = [asyncio.create_task(worker(i)) for i in range(c)]
            # the window opens once every stream is past its warm-up and running
            deadline = time.time() + 120
            while time.time() < deadline:
                if warm["n"] < c:
                    await asyncio.sleep(0.1)
                    continue
                s = await asyncio.to_thread(self._scrape)
                running = s.get("vllm:num_requests_running") if s else None
                if running is not None and running + (s.get("vllm:num_requests_waiting") or 0) >= c:
                    break
                if s is None and time.time() > deadline - 110:
                    break
                await asyncio.sleep(0.2)
            scrape0 = await asyncio.to_thread(self._scrape)
            t0, e0 = await asyncio.to_thread(self._energy)
            window["t0"] = t0
            kv_max = None
            last_scrape = scrape0
            scrapes = [scrape0] if scrape0 is not None else []
            end_at = t0 + (self.s.duration_s or 1e9)
            while True:
                await asyncio.sleep(1.0)
                now = time.time()
                if self.should_stop():
                    stop.set()
                    for t in tasks:
                        t.cancel()
                    await asyncio.gather(*tasks, return_exceptions=True)
                    raise KeyboardInterrupt
                cur = await asyncio.to_thread(self._scrape)
                live_tps = metrics.rate(last_scrape, cur, "vllm:generation_tokens_total") if cur else None
                if cur is not None:
                    kv = cur.get("vllm:kv_cache_usage_perc")
                    kv_max = kv if kv_max is None or (kv is not None and kv > kv_max) else kv_max
                    last_scrape = cur
                    scrapes.append(cur)
                watts = sum(r.power_w or 0 for r in (self.stack.rig.gpus().read(g) for g in self.gpus))
                self.on_progress({"cell": index, "cells": total, "power_limit_w": limit_w, "concurrency": c,
                                  "live_tps": live_tps, "watts": watts, "elapsed_s": now - t0,
                                  "remaining_s": max(0.0, end_at - now) if self.s.duration_s else None,
                                  "requests": done_count["n"]})
                if self.s.duration_s and now >= end_at:
                    break
                if self.s.requests and done_count["n"] >= self.s.requests:
                    break
            scrape1 = await asyncio.to_thread(self._scrape)
            t1, e1 = await asyncio.to_thread(self._energy)
            window["t1"] = t1
            if scrape1 is not None:
                scrapes.append(scrape1)
            stop.set()
            # streams still running are cut: they are outside the window
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        dt = t1 - t0
        ok = [r for r in results if r.ok]
        failed = [r for r in results if not r.ok]
        if scrape0 is not None and scrape1 is not None:
            # the slope over every scrape of the window (one a second), not the two ends: see fitted_rate
            gen = metrics.fitted_rate(scrapes, "vllm:generation_tokens_total") or 0.0
            prompt = metrics.fitted_rate(scrapes, "vllm:prompt_tokens_total") or 0.0
            stats = metrics.engine_stats(scrape0, scrape1)
            acceptance, source = stats.spec_acceptance, "counters"
        else:
            gen = sum(r.output_tokens for r in ok) / dt if dt > 0 else 0.0
            prompt = sum(r.prompt_tokens for r in ok) / dt if dt > 0 else 0.0
            acceptance, source = None, "client"
        per_gpu = {}
        energy = 0.0
        for g in self.gpus:
            if e0.get(g) is not None and e1.get(g) is not None and dt > 0:
                d = metrics.energy_delta(e0[g], e1[g]) or 0.0
                energy += d
                per_gpu[str(g)] = d / dt
        power = energy / dt if dt > 0 else 0.0
        tps = [r.tokens_per_s for r in ok if r.tokens_per_s]
        ttft = [r.ttft_s for r in ok if r.ttft_s is not None]
        itl = [x for r in ok for x in r.itl_s]
        return Cell(
            power_limit_w=power_limit_applied(self.stack, self.gpus),
            concurrency=c, window_s=round(dt, 3), requests_ok=len(ok), requests_failed=len(failed),
            gen_tps=gen, prompt_tps=prompt, per_request_tps_p50=_pct(tps, 0.5), per_request_tps_p95=_pct(tps, 0.95),
            ttft_p50_s=_pct(ttft, 0.5), ttft_p95_s=_pct(ttft, 0.95), itl_p50_s=_pct(itl, 0.5),
            power_w_per_gpu=per_gpu, power_w=power, energy_j=energy,
            tokens_per_joule=(gen * dt / energy) if energy > 0 else None, spec_acceptance=acceptance,
            kv_usage_max=kv_max, source=source)

    # -- the sweep --------------------------------------------------------------------------------
    def run(self) -> BenchRun:
        before = {g: self.stack.rig.gpus().read(g).power_limit_w for g in self.gpus}
        cells: list[Cell] = []
        total = len(self.s.power_w) * len(self.s.concurrency)
        interrupted = False
        run = self._new_run(cells)
        try:
            index = 0
            for watts in self.s.power_w:
                if watts is not None:
                    self.stack.set_power(watts, self.gpus)
                    time.sleep(self.s.settle_s)
                for c in self.s.concurrency:
                    index += 1
                    cell = asyncio.run(self._cell(watts, c, index, total))
                    cells.append(cell)
                    self.on_progress({"cell_done": cell, "cell": index, "cells": total})
                    save(run)
        except KeyboardInterrupt:
            interrupted = True
        finally:
            for g, w in before.items():
                now = self.stack.rig.gpus().read(g).power_limit_w
                if w is not None and (now is None or abs(now - w) > 0.5):
                    self.stack.set_power(w, [g])
        run.interrupted = interrupted
        run.recommendation = recommend(run, self.s.at_concurrency, self.s.keep_within)
        save(run)
        return run

    def _new_run(self, cells: list[Cell]) -> BenchRun:
        from appliance import __version__, vllm_spec

        created = time.time()
        hw = [self.stack.rig.gpus().read(g).name for g in self.gpus]
        return BenchRun(
            run_id=time.strftime("%Y%m%d-%H%M%S", time.localtime(created)) + f"-{self.profile.name}",
            created=created, profile=self.profile.name, engine=self.engine.label, model=self.engine.model,
            hardware=hw, versions={"appliance": __version__, "vllm_pinned": vllm_spec.VLLM_VERSION,
                                   "rig": self.stack.rig.gpus().kind, "image": self.engine.image},
            settings=asdict(self.s), cells=cells)


def power_limit_applied(stack, gpus: list[int]) -> float | None:
    limits = [stack.rig.gpus().read(g).power_limit_w for g in gpus]
    limits = [x for x in limits if x is not None]
    return round(sum(limits) / len(limits), 1) if limits else None
