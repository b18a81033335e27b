"""The stand-in engine's core: requests, scheduling by max_num_seqs, counters and histograms, the sim state file
(power, energy, memory per GPU) and the periodic stats log line. Stdlib only."""

from __future__ import annotations

import hashlib
import os
import random
import sys
import threading
import time
import uuid
from pathlib import Path

from appliance.cards import CARDS
from appliance.sim import messages as M
from appliance.sim import physics, promtext, state
from appliance.sim.config import FIXED_STREAM_TOK_S, TICK_S, TOKEN_RE, Config, env_float

class Request:
    __slots__ = ("id", "prompt_tokens", "output_tokens", "emitted", "arrival", "scheduled", "first_token",
                 "last_token")

    def __init__(self, prompt_tokens: int, output_tokens: int):
        self.id = uuid.uuid4().hex
        self.prompt_tokens = prompt_tokens
        self.output_tokens = output_tokens
        self.emitted = 0
        self.arrival = time.monotonic()
        self.scheduled = None
        self.first_token = None
        self.last_token = None


class Engine:
    def __init__(self, cfg: Config, sim_dir: Path, faults: set[str], log: M.Log):
        self.cfg = cfg
        self.sim_dir = sim_dir
        self.faults = set(faults)
        # "hang" in the environment hangs the load phase; at run time (POST /_sim/fault) it hangs requests
        self.runtime_fault = next((f for f in ("crash_mid_stream", "http500") if f in faults), "none")
        self.log = log
        self.lock = threading.Lock()
        self.cond = threading.Condition(self.lock)
        self.state = "loading"
        self.created_wall = time.time()
        self.file = sim_dir / f"engine-{cfg.port}-{os.getpid()}-{random.getrandbits(32):08x}.json"
        rig = state.read_gpus(sim_dir)
        self.rows = {r["index"]: r for r in rig["gpus"]}
        self.gpus: list[int] = []
        self.size = physics.model_size(cfg.model, cfg.quantization, env_float("APPLIANCE_SIM_PARAMS_B"))
        self.spec = physics.spec_decode(cfg.speculative_config)
        self.plan: physics.MemoryPlan | None = None
        self.max_model_len = physics.DEFAULT_MAX_MODEL_LEN
        self.max_num_seqs = cfg.max_num_seqs or 256
        self.limits: dict[int, float] = {}
        self.r1 = 0.0
        self.prefill = 1.0
        self.memory: dict[int, int] = {}
        self.running: set[Request] = set()
        self.waiting = 0
        self.in_flight = 0  # HTTP requests being handled
        # None while serving; after SIGTERM "drain" (--shutdown-timeout > 0: finish what runs, refuse new requests),
        # "expired" (the drain window ran out) or "abort" (no window: cut every request short)
        self.stopping: str | None = None
        # counters
        self.prompt_tokens = 0
        self.generation_tokens = 0
        self.success = {r: 0 for r in ("stop", "length", "abort", "error", "repetition")}
        self.prefix_queries = 0
        self.prefix_hits = 0
        self.prefix_blocks: set[str] = set()
        self.spec_drafts = 0.0
        self.spec_accepted_pos = [0.0] * (self.spec.k if self.spec else 0)
        mml = physics.DEFAULT_MAX_MODEL_LEN
        self.h = {
            "ttft": promtext.Histogram(promtext.TTFT_BUCKETS),
            "itl": promtext.Histogram(promtext.ITL_BUCKETS),
            "tpot": promtext.Histogram(promtext.ITL_BUCKETS),
            "e2e": promtext.Histogram(promtext.REQUEST_LATENCY_BUCKETS),
            "queue": promtext.Histogram(promtext.REQUEST_LATENCY_BUCKETS),
            "inference": promtext.Histogram(promtext.REQUEST_LATENCY_BUCKETS),
            "prefill": promtext.Histogram(promtext.REQUEST_LATENCY_BUCKETS),
            "decode": promtext.Histogram(promtext.REQUEST_LATENCY_BUCKETS),
            "prompt": promtext.Histogram(promtext.buckets_1_2_5(mml)),
            "generation": promtext.Histogram(promtext.buckets_1_2_5(mml)),
            "max_tokens": promtext.Histogram(promtext.buckets_1_2_5(mml)),
            "n": promtext.Histogram(promtext.PARAMS_N_BUCKETS),
            "iteration": promtext.Histogram((1, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384)),
            "preemptions": promtext.Histogram((1, 2, 3, 4, 5, 10, 20)),
            "prefill_kv": promtext.Histogram(promtext.buckets_1_2_5(mml)),
        }
        # energy: sample-and-hold of the power written in the previous state file (README.md)
        self.energy_j: dict[int, float] = {}
        self.written_extra_w: dict[int, float] = {}
        self.written_t: float | None = None
        self.file_lock = threading.Lock()
        self.stats_window = [time.monotonic(), 0, 0]
        self.ready_event = threading.Event()

    # ------------------------------------------------------------------------------------------ physics

    def refresh_limits(self) -> None:
        limits = {i: state.read_limit_w(self.sim_dir, i, self.rows[i]["power_default_w"]) for i in self.gpus}
        rates = []
        for i in self.gpus:
            card = CARDS[self.rows[i]["card"]]
            rates.append(physics.decode_rate_1(card, limits[i], self.cfg.tp, self.size, self.spec))
        self.limits = limits
        if rates:
            self.r1 = min(rates)
            self.prefill = physics.PREFILL_X * self.r1 / (self.spec.factor if self.spec else 1.0)

    def per_request_rate(self) -> float:
        if FIXED_STREAM_TOK_S:  # benchmarks: every stream at a fixed pace, whatever the concurrency
            return FIXED_STREAM_TOK_S
        c = max(1, len(self.running))
        return self.r1 * physics.concurrency_scale(c) / c

    def extra_power(self) -> dict[int, float]:
        b = physics.busy(len(self.running)) if self.state == "ready" else 0.0
        return {i: max(0.0, (self.limits.get(i, 0.0) - self.rows[i]["idle_w"]) * b) for i in self.gpus}

    # ------------------------------------------------------------------------------------------ state file

    def write_state(self, final_state: str | None = None) -> None:
        with self.file_lock:
            now = time.time()
            if self.written_t is not None:
                for i in self.gpus:
                    self.energy_j[i] = self.energy_j.get(i, 0.0) + self.written_extra_w.get(i, 0.0) * (now - self.written_t)
            if final_state:
                self.state = final_state
            extra = self.extra_power() if not final_state else {i: 0.0 for i in self.gpus}
            b = physics.busy(len(self.running)) if self.state == "ready" else 0.0
            per_gpu = {}
            for i in self.gpus:
                idle = self.rows[i]["idle_w"]
                per_gpu[str(i)] = {
                    "power_w": round(idle + extra[i], 3),
                    "extra_power_w": extra[i],
                    "extra_energy_j": self.energy_j.get(i, 0.0),
                    "memory_used_bytes": 0 if final_state else self.memory.get(i, 0),
                    "utilization_pct": 0.0 if final_state else round(100 * b, 1),
                    "power_limit_w": self.limits.get(i),
                }
            c = len(self.running)
            data = {
                "pid": os.getpid(),
                "port": self.cfg.port,
                "host": self.cfg.host,
                "gpus": list(self.gpus),
                "model": self.cfg.model,
                "served_model_names": self.cfg.served_names,
                "state": self.state,
                "t": now,
                "started": self.created_wall,
                "active_requests": c + self.waiting,
                "running_requests": c,
                "waiting_requests": self.waiting,
                "counters": {
                    "prompt_tokens": self.prompt_tokens,
                    "generation_tokens": self.generation_tokens,
                    "requests_finished": sum(self.success.values()),
                    "request_success": dict(self.success),
                },
                "rates": {
                    "single_stream_tok_s": self.r1,
                    "per_request_tok_s": self.per_request_rate() if c else 0.0,
                    "aggregate_tok_s": self.per_request_rate() * c if c else 0.0,
                    "prefill_tok_s": self.prefill,
                },
                "per_gpu": per_gpu,
            }
            try:
                state.write_json_atomic(self.file, data)
            except OSError:
                pass
            self.written_t = now
            self.written_extra_w = extra

    def ticker(self) -> None:
        next_stats = time.monotonic() + 10.0
        while self.state in ("loading", "ready"):
            try:
                if self.gpus:
                    self.refresh_limits()
                self.write_state()
            except Exception as e:  # keep ticking; a broken sim dir shows up in the file's age
                self.log.api(("engine.py", 0, "sim state write failed: %s"), e, level="WARNING")
            if self.cfg.log_stats and self.state == "ready" and time.monotonic() >= next_stats:
                self.log_stats()
                next_stats = time.monotonic() + 10.0
            time.sleep(TICK_S)

    def log_stats(self) -> None:
        now = time.monotonic()
        t0, p0, g0 = self.stats_window
        dt = max(now - t0, 1e-6)
        dp, dg = self.prompt_tokens - p0, self.generation_tokens - g0
        self.stats_window = [now, self.prompt_tokens, self.generation_tokens]
        if dp == 0 and dg == 0 and not self.running and not self.waiting:
            return
        hit = self.prefix_hits / self.prefix_queries if self.prefix_queries else 0.0
        self.log.api(M.STATS, dp / dt, dg / dt, len(self.running), self.waiting, 100 * self.kv_usage(), 100 * hit)

    def kv_usage(self) -> float:
        if not self.plan or not self.plan.kv_tokens:
            return 0.0
        used = sum(r.prompt_tokens + r.emitted for r in list(self.running))
        return min(1.0, used / self.plan.kv_tokens)

    # ------------------------------------------------------------------------------------------ requests

    def admit(self, req: Request) -> bool:
        with self.cond:
            self.waiting += 1
            try:
                while len(self.running) >= self.max_num_seqs:
                    if self.stopping in ("abort", "expired"):
                        return False
                    self.cond.wait(0.1)
                self.running.add(req)
                req.scheduled = time.monotonic()
            finally:
                self.waiting -= 1
        return True

    def busy(self) -> bool:
        return bool(self.running) or self.waiting > 0

    def prefix_cache(self, text: str, prompt_tokens: int) -> None:
        if not self.cfg.prefix_caching:
            return
        toks = TOKEN_RE.findall(text)
        h = hashlib.sha1()
        hits, leading = 0, True
        with self.lock:
            for start in range(0, len(toks) - physics.BLOCK_SIZE + 1, physics.BLOCK_SIZE):
                h.update("\x00".join(toks[start:start + physics.BLOCK_SIZE]).encode())
                key = h.hexdigest()
                if leading and key in self.prefix_blocks:
                    hits += physics.BLOCK_SIZE
                else:
                    leading = False
                    if len(self.prefix_blocks) > 200_000:
                        self.prefix_blocks.clear()
                    self.prefix_blocks.add(key)
            self.prefix_queries += prompt_tokens
            self.prefix_hits += min(hits, prompt_tokens)

    def finish(self, req: Request, reason: str, max_tokens_param: int | None) -> None:
        now = time.monotonic()
        with self.cond:
            self.running.discard(req)
            self.cond.notify_all()
            self.success[reason] = self.success.get(reason, 0) + 1
            h = self.h
            if req.first_token is not None:
                h["e2e"].observe(now - req.arrival)
                h["inference"].observe(now - (req.scheduled or req.arrival))
                h["decode"].observe(now - req.first_token)
                if req.emitted > 1:
                    h["tpot"].observe((req.last_token - req.first_token) / (req.emitted - 1))
            h["prompt"].observe(req.prompt_tokens)
            h["generation"].observe(req.emitted)
            h["max_tokens"].observe(max_tokens_param if max_tokens_param is not None else req.output_tokens)
            h["n"].observe(1)
            h["preemptions"].observe(0)
            h["prefill_kv"].observe(req.prompt_tokens)

    def emitted(self, req: Request, k: int, now: float) -> None:
        with self.lock:
            if req.first_token is None:
                req.first_token = now
                self.h["ttft"].observe(now - req.arrival)
            elif req.last_token is not None and k > 0:
                gap = (now - req.last_token) / k
                for _ in range(min(k, 64)):
                    self.h["itl"].observe(gap)
            req.last_token = now
            req.emitted += k
            self.generation_tokens += k
            self.h["iteration"].observe(k)
            if self.spec:
                drafts = k / self.spec.tokens_per_step
                self.spec_drafts += drafts
                p = self.spec.acceptance
                for pos in range(self.spec.k):
                    self.spec_accepted_pos[pos] += drafts * p ** (pos + 1)

    # ------------------------------------------------------------------------------------------ metrics

    def metrics_text(self) -> str:
        from appliance.sim.metrics_page import render

        return render(self)


def crash(eng: Engine) -> None:
    eng.log.core(("core.py", 1110, "EngineCore encountered a fatal error."), level="ERROR")
    eng.log.raw("EngineCore_DP0", "RuntimeError: CUDA error: an illegal memory access was encountered\n"
                "CUDA kernel errors might be asynchronously reported at some other API call, so the stacktrace "
                "below might be incorrect.")
    eng.log.api(("async_llm.py", 0, "AsyncLLM output_handler failed."), level="ERROR")
    try:
        eng.write_state("crashed")
    finally:
        sys.stdout.flush()
        os._exit(1)


