"""The simulated vLLM 0.19.0 engine: `python -m appliance.sim.engine serve MODEL [flags]` (or `main()`).

A real program, not a mock: it parses argv with vLLM 0.19.0's exact option set (appliance.vllm_spec), binds its
TCP socket before a load phase during which connections are accepted but never answered (like vLLM), then
speaks the OpenAI API over HTTP/1.1 (keep-alive, chunked SSE streaming, TCP_NODELAY) with token rates from
appliance.sim.physics, exposes vLLM V1 `/metrics`, and reports its GPU use through the shared sim state
directory ($APPLIANCE_SIM_DIR, see README.md). Stdlib only: it runs in a bare python image and may import only
appliance.vllm_spec, appliance.cards and appliance.sim.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import random
import re
import signal
import socket
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from socketserver import ThreadingMixIn

from appliance import vllm_spec
from appliance.cards import CARDS, GIB
from appliance.sim import messages as M
from appliance.sim import physics, promtext, state

def _version() -> str:
    """The vLLM version this stand-in plays: $APPLIANCE_SIM_VLLM_VERSION (the engine image's tag), else the
    default 0.19.0. It parses argv with that version's spec (the nearest older known one for an unknown tag)."""
    return os.environ.get("APPLIANCE_SIM_VLLM_VERSION") or vllm_spec.DEFAULT_VERSION


def _spec() -> vllm_spec.Spec:
    try:
        return vllm_spec.spec_for(vllm_spec.nearest_known(_version()))
    except ValueError:  # not a version at all: play the default
        return vllm_spec.spec_for()


FAULTS = {"oom_at_start", "kv_too_small", "cuda_oom", "hf_token_missing", "hang", "crash_mid_stream", "http500",
          "slow_load"}
RUNTIME_FAULTS = {"none", "http500", "hang", "crash_mid_stream", "dead"}
TICK_S = 0.1
DEFAULT_OUTPUT_TOKENS = 128
WORDS = ("the", " quick", " brown", " fox", " jumps", " over", " the", " lazy", " dog", ".", " A", " simulated",
         " engine", " streams", " tokens", " at", " the", " rate", " its", " GPUs", " allow", ",")
_TOKEN_RE = re.compile(r"\w+|[^\w\s]")
_SHUTDOWN = threading.Event()  # set from the SIGTERM handler (Event.set only; the main loop polls)


def count_tokens(text: str) -> int:
    return len(_TOKEN_RE.findall(text))


def _content_text(content) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(p.get("text", "") for p in content if isinstance(p, dict) and isinstance(p.get("text"), str))
    return ""


def chat_prompt_tokens(messages: list) -> int:
    """The sim's deterministic tokenizer: `\\w+|[^\\w\\s]` matches over message contents + 3 per message."""
    return sum(count_tokens(_content_text(m.get("content"))) + 3 for m in messages if isinstance(m, dict))


class StartupError(Exception):
    """Printed as vLLM would (traceback-ish text), exit 1."""

    def __init__(self, text: str):
        super().__init__(text)
        self.text = text


# ================================================================================================ configuration


class Config:
    def __init__(self, ns, parser):
        self.ns = ns
        self.model = ns.model
        names = ns.served_model_name or [self.model]
        self.served_names = [str(n) for n in names]
        self.name = self.served_names[0]
        self.host = ns.host
        self.port = int(ns.port)
        self.tp = int(ns.tensor_parallel_size or 1)
        self.max_model_len_arg = ns.max_model_len
        self.max_num_seqs = ns.max_num_seqs
        self.gpu_memory_utilization = float(ns.gpu_memory_utilization)
        self.kv_cache_dtype = ns.kv_cache_dtype or "auto"
        self.quantization = ns.quantization
        self.speculative_config = ns.speculative_config
        self.enable_auto_tool_choice = bool(ns.enable_auto_tool_choice)
        self.tool_call_parser = ns.tool_call_parser
        self.reasoning_parser = ns.reasoning_parser or ""
        self.enforce_eager = bool(ns.enforce_eager)
        self.generation_config = ns.generation_config
        self.api_keys = list(ns.api_key or []) or ([os.environ["VLLM_API_KEY"]] if os.environ.get("VLLM_API_KEY") else [])
        self.shutdown_timeout = float(ns.shutdown_timeout or 0)
        self.log_stats = not ns.disable_log_stats
        self.access_log = not ns.disable_uvicorn_access_log
        self.quiet_paths = {p.strip() for p in (ns.disable_access_log_for_endpoints or "").split(",") if p.strip()}
        self.prefix_caching = ns.enable_prefix_caching is not False
        defaults = vars(parser.parse_args([]))
        self.non_default = {k: v for k, v in vars(ns).items() if k in defaults and defaults[k] != v}


FIXED_STREAM_TOK_S = float(os.environ.get("APPLIANCE_SIM_STREAM_TOK_S", "0") or 0)


def _faults_from_env() -> set[str]:
    raw = os.environ.get("APPLIANCE_SIM_FAULT", "")
    return {f.strip() for f in raw.split(",") if f.strip()}


def visible_gpus(rows: list[dict], environ=None) -> list[int]:
    """Physical GPU indices this process sees: NVIDIA_VISIBLE_DEVICES (container runtime) then CUDA_VISIBLE_DEVICES."""
    env = os.environ if environ is None else environ
    by_uuid = {r["uuid"]: r["index"] for r in rows}
    phys = [r["index"] for r in rows]

    def resolve(tok: str, pool: list[int], numeric_is_position: bool) -> int | None:
        tok = tok.strip()
        if tok.isdigit():
            i = int(tok)
            if numeric_is_position:
                return pool[i] if i < len(pool) else None
            return i if i in pool else None
        idx = by_uuid.get(tok)
        return idx if idx in pool else None

    nv = env.get("NVIDIA_VISIBLE_DEVICES")
    if nv is not None and nv.strip().lower() != "all":
        if nv.strip().lower() in ("", "none", "void"):
            phys = []
        else:
            phys = [i for i in (resolve(t, phys, False) for t in nv.split(",")) if i is not None]
    cuda = env.get("CUDA_VISIBLE_DEVICES")
    if cuda is not None:
        out = []
        for tok in cuda.split(","):
            if not tok.strip():
                continue
            i = resolve(tok, phys, True)
            if i is None:  # CUDA stops at the first invalid entry
                break
            out.append(i)
        phys = out
    return phys


# ================================================================================================ the engine


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
        self.size = physics.model_size(cfg.model, cfg.quantization, _env_float("APPLIANCE_SIM_PARAMS_B"))
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
        self.in_flight = 0  # HTTP requests being handled (for graceful shutdown)
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
                    if _SHUTDOWN.is_set():
                        return False
                    self.cond.wait(0.1)
                self.running.add(req)
                req.scheduled = time.monotonic()
            finally:
                self.waiting -= 1
        return True

    def prefix_cache(self, text: str, prompt_tokens: int) -> None:
        if not self.cfg.prefix_caching:
            return
        toks = _TOKEN_RE.findall(text)
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
            if self.spec:
                drafts = k / self.spec.tokens_per_step
                self.spec_drafts += drafts
                p = self.spec.acceptance
                for pos in range(self.spec.k):
                    self.spec_accepted_pos[pos] += drafts * p ** (pos + 1)

    # ------------------------------------------------------------------------------------------ metrics

    def metrics_text(self) -> str:
        cfg = self.cfg
        w = promtext.Writer([("model_name", cfg.name), ("engine", "0")], self.created_wall)
        with self.lock:
            w.gauge("vllm:num_requests_running", "Number of requests in model execution batches.",
                    [([], len(self.running))])
            w.gauge("vllm:num_requests_waiting", "Number of requests waiting to be processed.", [([], self.waiting)])
            w.gauge(
                "vllm:engine_sleep_state",
                "Engine sleep state; awake = 0 means engine is sleeping; awake = 1 means engine is awake; "
                "weights_offloaded = 1 means sleep level 1; discard_all = 1 means sleep level 2.",
                [([("sleep_state", "awake")], 1), ([("sleep_state", "weights_offloaded")], 0),
                 ([("sleep_state", "discard_all")], 0)],
            )
            w.gauge("vllm:kv_cache_usage_perc", "KV-cache usage. 1 means 100 percent usage.", [([], self.kv_usage())])
            w.counter("vllm:prefix_cache_queries",
                      "Prefix cache queries, in terms of number of queried tokens.", [([], self.prefix_queries)])
            w.counter("vllm:prefix_cache_hits",
                      "Prefix cache hits, in terms of number of cached tokens.", [([], self.prefix_hits)])
            w.counter("vllm:num_preemptions", "Cumulative number of preemption from the engine.", [([], 0)])
            w.counter("vllm:prompt_tokens", "Number of prefill tokens processed.", [([], self.prompt_tokens)])
            w.counter("vllm:prompt_tokens_cached", "Number of cached prompt tokens (local + external).",
                      [([], self.prefix_hits)])
            w.counter("vllm:generation_tokens", "Number of generation tokens processed.",
                      [([], self.generation_tokens)])
            w.counter("vllm:request_success", "Count of successfully processed requests.",
                      [([("finished_reason", r)], n) for r, n in self.success.items()])
            h = self.h
            w.histogram("vllm:request_prompt_tokens", "Number of prefill tokens processed.", h["prompt"])
            w.histogram("vllm:request_generation_tokens", "Number of generation tokens processed.", h["generation"])
            w.histogram("vllm:request_max_num_generation_tokens",
                        "Histogram of maximum number of requested generation tokens.", h["max_tokens"])
            w.histogram("vllm:request_params_n", "Histogram of the n request parameter.", h["n"])
            w.histogram("vllm:request_params_max_tokens", "Histogram of the max_tokens request parameter.",
                        h["max_tokens"])
            w.histogram("vllm:time_to_first_token_seconds", "Histogram of time to first token in seconds.", h["ttft"])
            w.histogram("vllm:inter_token_latency_seconds", "Histogram of inter-token latency in seconds.", h["itl"])
            w.histogram("vllm:request_time_per_output_token_seconds",
                        "Histogram of time_per_output_token_seconds per request.", h["tpot"])
            w.histogram("vllm:e2e_request_latency_seconds", "Histogram of e2e request latency in seconds.", h["e2e"])
            w.histogram("vllm:request_queue_time_seconds",
                        "Histogram of time spent in WAITING phase for request.", h["queue"])
            w.histogram("vllm:request_inference_time_seconds",
                        "Histogram of time spent in RUNNING phase for request.", h["inference"])
            w.histogram("vllm:request_prefill_time_seconds",
                        "Histogram of time spent in PREFILL phase for request.", h["prefill"])
            w.histogram("vllm:request_decode_time_seconds",
                        "Histogram of time spent in DECODE phase for request.", h["decode"])
            if self.spec:
                drafts = int(self.spec_drafts)
                accepted = [int(a) for a in self.spec_accepted_pos]
                w.counter("vllm:spec_decode_num_drafts", "Number of spec decoding drafts.", [([], drafts)])
                w.counter("vllm:spec_decode_num_draft_tokens", "Number of draft tokens.",
                          [([], drafts * self.spec.k)])
                w.counter("vllm:spec_decode_num_accepted_tokens", "Number of accepted tokens.",
                          [([], sum(accepted))])
                w.counter("vllm:spec_decode_num_accepted_tokens_per_pos", "Accepted tokens per draft position.",
                          [([("position", str(i))], a) for i, a in enumerate(accepted)])
        plan = self.plan
        info = {
            "block_size": str(physics.BLOCK_SIZE),
            "user_specified_block_size": "False",
            "gpu_memory_utilization": str(cfg.gpu_memory_utilization),
            "cache_dtype": cfg.kv_cache_dtype,
            "is_attention_free": "False",
            "num_gpu_blocks_override": "None",
            "sliding_window": "None",
            "enable_prefix_caching": str(cfg.prefix_caching),
            "prefix_caching_hash_algo": "sha256",
            "calculate_kv_scales": "False",
            "kv_cache_dtype_skip_layers": "[]",
            "cpu_kvcache_space_bytes": "None",
            "mamba_page_size_padded": "None",
            "mamba_block_size": "None",
            "mamba_cache_dtype": "auto",
            "mamba_ssm_cache_dtype": "auto",
            "mamba_cache_mode": "none",
            "num_gpu_blocks": str(plan.kv_tokens // physics.BLOCK_SIZE) if plan else "None",
            "num_cpu_blocks": "None",
            "kv_sharing_fast_prefill": "False",
            "kv_cache_memory_bytes": "None",
            "kv_offloading_size": "None",
            "kv_offloading_backend": "native",
            "engine": "0",
        }
        w.info_gauge("vllm:cache_config_info", "Information of the LLMEngine CacheConfig", list(info.items()))
        return w.text()


def _env_float(name: str) -> float | None:
    raw = os.environ.get(name)
    try:
        return float(raw) if raw else None
    except ValueError:
        return None


# ================================================================================================ HTTP


class Server(ThreadingMixIn, HTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 1024

    def handle_error(self, request, client_address) -> None:
        """A client that hangs up (a health check timing out, an agent cancelling) is not an error worth a
        traceback — uvicorn does not print one either."""
        exc = sys.exc_info()[1]
        if isinstance(exc, (ConnectionResetError, BrokenPipeError, ConnectionAbortedError, TimeoutError)):
            return
        super().handle_error(request, client_address)


def _agent_api(handler, api: str) -> None:
    from appliance.sim import agent_apis

    agent_apis.serve(handler, api)


def _now_s() -> int:
    return int(time.time())


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # SSE through a proxy stalls ~40 ms per chunk without TCP_NODELAY
    server_version = "uvicorn"

    def version_string(self) -> str:
        return "uvicorn"
    engine: Engine  # set on the subclass built in serve()

    # ------------------------------------------------------------------------------------------ plumbing

    def log_message(self, fmt, *args):  # uvicorn access log
        pass

    def _access(self, status: int) -> None:
        if self.engine.cfg.access_log and self.path.split("?")[0] not in self.engine.cfg.quiet_paths:
            phrase = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 404: "Not Found", 405: "Method Not Allowed",
                      500: "Internal Server Error", 503: "Service Unavailable"}.get(status, "")
            self.engine.log.raw(
                "APIServer",
                f'INFO:     {self.client_address[0]}:{self.client_address[1]} - "{self.command} {self.path} '
                f'{self.request_version}" {status} {phrase}',
            )

    def _send(self, status: int, body: bytes, ctype: str = "application/json", extra: dict | None = None) -> None:
        self.send_response(status)
        self.send_header("content-type", ctype)
        self.send_header("content-length", str(len(body)))
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if body and self.command != "HEAD":
            self.wfile.write(body)
        self._access(status)

    def _json(self, status: int, obj) -> None:
        self._send(status, json.dumps(obj, separators=(",", ":")).encode())

    def _error(self, status: int, message: str, err_type: str, param: str | None = None) -> None:
        self._json(status, {"error": {"message": message, "type": err_type, "param": param, "code": status}})

    def _body(self):
        length = self.headers.get("content-length")
        if self.headers.get("transfer-encoding", "").lower() == "chunked":
            data = b""
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    self.rfile.readline()
                    break
                data += self.rfile.read(size)
                self.rfile.readline()
        else:
            data = self.rfile.read(int(length)) if length else b""
        return data

    def _hang(self) -> None:
        """Accept and never answer (a hung engine): hold the connection until shutdown."""
        while not _SHUTDOWN.is_set():
            time.sleep(0.1)
        self.close_connection = True

    def _authorized(self) -> bool:
        keys = self.engine.cfg.api_keys
        if not keys or not self.path.startswith("/v1"):
            return True
        auth = self.headers.get("authorization", "")
        return any(auth == f"Bearer {k}" for k in keys)

    # ------------------------------------------------------------------------------------------ routes

    def do_GET(self):
        self._route("GET")

    def do_POST(self):
        self._route("POST")

    def do_HEAD(self):
        self._route("GET")

    def _route(self, method: str) -> None:
        eng = self.engine
        path = self.path.split("?", 1)[0]
        with eng.lock:
            eng.in_flight += 1
        try:
            if path.startswith("/_sim/"):
                return self._sim(method, path)
            if eng.runtime_fault == "hang":
                return self._hang()
            if not self._authorized():
                return self._json(401, {"error": "Unauthorized"})
            routes = {
                ("GET", "/health"): self._health,
                ("GET", "/ping"): self._health,
                ("POST", "/ping"): self._health,
                ("GET", "/version"): lambda: self._json(200, {"version": _version()}),
                ("GET", "/v1/models"): self._models,
                ("GET", "/metrics"): self._metrics,
                ("GET", "/load"): lambda: self._json(200, {"server_load": len(eng.running) + eng.waiting}),
                ("POST", "/v1/chat/completions"): lambda: self._completion(chat=True),
                ("POST", "/v1/completions"): lambda: self._completion(chat=False),
                # Anthropic Messages, count_tokens and the Responses API (vLLM >= 0.19 serves them): agent_apis.py
                ("POST", "/v1/messages"): lambda: _agent_api(self, "messages"),
                ("POST", "/v1/messages/count_tokens"): lambda: _agent_api(self, "count_tokens"),
                ("POST", "/v1/responses"): lambda: _agent_api(self, "responses"),
            }
            handler = routes.get((method, path))
            if handler is None:
                if any(p == path for _, p in routes):
                    return self._json(405, {"detail": "Method Not Allowed"})
                return self._json(404, {"detail": "Not Found"})
            handler()
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        finally:
            with eng.lock:
                eng.in_flight -= 1

    def _health(self) -> None:
        if self.engine.runtime_fault == "dead":
            return self._send(503, b"")
        self._send(200, b"")

    def _models(self) -> None:
        eng = self.engine
        created = _now_s()
        data = [
            {
                "id": name,
                "object": "model",
                "created": created,
                "owned_by": "vllm",
                "root": eng.cfg.model,
                "parent": None,
                "max_model_len": eng.max_model_len,
                "permission": [
                    {
                        "id": f"modelperm-{uuid.uuid4().hex}",
                        "object": "model_permission",
                        "created": created,
                        "allow_create_engine": False,
                        "allow_sampling": True,
                        "allow_logprobs": True,
                        "allow_search_indices": False,
                        "allow_view": True,
                        "allow_fine_tuning": False,
                        "organization": "*",
                        "group": None,
                        "is_blocking": False,
                    }
                ],
            }
            for name in eng.cfg.served_names
        ]
        self._json(200, {"object": "list", "data": data})

    def _metrics(self) -> None:
        if not self.engine.cfg.log_stats:  # --disable-log-stats: no vllm:* metrics at all (techref §1.2)
            return self._send(200, b"", "text/plain; version=0.0.4; charset=utf-8")
        self._send(200, self.engine.metrics_text().encode(), "text/plain; version=0.0.4; charset=utf-8")

    def _sim(self, method: str, path: str) -> None:
        eng = self.engine
        if method == "POST" and path == "/_sim/fault":
            try:
                fault = json.loads(self._body() or b"{}").get("fault", "none")
            except (ValueError, AttributeError):
                fault = None
            if fault not in RUNTIME_FAULTS:
                return self._json(400, {"error": f"fault must be one of {sorted(RUNTIME_FAULTS)}"})
            eng.runtime_fault = fault
            return self._json(200, {"fault": fault})
        if method == "GET" and path == "/_sim/state":
            return self._json(200, {"state": eng.state, "fault": eng.runtime_fault, "r1": eng.r1,
                                    "running": len(eng.running), "waiting": eng.waiting})
        self._json(404, {"detail": "Not Found"})

    # ------------------------------------------------------------------------------------------ completions

    def _completion(self, chat: bool) -> None:
        eng = self.engine
        cfg = eng.cfg
        raw = self._body()
        try:
            body = json.loads(raw or b"")
            if not isinstance(body, dict):
                raise ValueError("body is not a JSON object")
        except ValueError as e:
            return self._error(400, f"JSON decode error: {e}", "BadRequestError")
        model = body.get("model")
        if model and model not in cfg.served_names:
            return self._error(404, M.MODEL_NOT_FOUND.format(model=model), "NotFoundError", "model")
        if chat:
            messages = body.get("messages")
            if not isinstance(messages, list):
                return self._error(400, "Field required: messages", "BadRequestError")
            prompt_text = " ".join(_content_text(m.get("content")) for m in messages if isinstance(m, dict))
            prompt_tokens = chat_prompt_tokens(messages)
        else:
            prompt = body.get("prompt", "")
            prompt_text = prompt if isinstance(prompt, str) else " ".join(map(str, prompt))
            prompt_tokens = count_tokens(prompt_text) if isinstance(prompt, str) else len(prompt)
            messages = []

        tools = body.get("tools") if chat else None
        tool_choice = body.get("tool_choice", "auto" if tools else "none") if chat else "none"
        if chat and tool_choice not in (None, "none"):
            if not tools:
                return self._error(400, M.TOOL_CHOICE_NEEDS_TOOLS, "BadRequestError")
            if tool_choice == "auto" and not (cfg.enable_auto_tool_choice and cfg.tool_call_parser):
                return self._error(400, M.AUTO_TOOL_CHOICE, "BadRequestError")
            if tool_choice != "auto" and not cfg.tool_call_parser:
                choice = tool_choice if isinstance(tool_choice, str) else json.dumps(tool_choice)
                return self._error(400, M.TOOL_CHOICE_NEEDS_PARSER.format(choice=choice), "BadRequestError")

        param = "max_completion_tokens" if chat and body.get("max_completion_tokens") is not None else "max_tokens"
        explicit = body.get(param)
        max_len = eng.max_model_len
        if explicit is not None:
            explicit = int(explicit)
            if explicit > max_len:
                return self._error(400, M.OUTPUT_TOO_LONG.format(param=param, out=explicit, max_len=max_len),
                                   "BadRequestError", param)
        out = explicit or 0
        max_input = max_len - out
        if prompt_tokens > max_input:
            # the tokenizer truncates at max_input + 1, hence vLLM's "at least"
            shown = max_input + 1
            msg = M.CONTEXT_LENGTH.format(max_len=max_len, out=out, q="at least ", prompt=shown, total=shown + out)
            return self._error(400, msg, "BadRequestError", "input_tokens")
        if eng.runtime_fault in ("http500", "dead"):
            text = M.INTERNAL if eng.runtime_fault == "http500" else M.ENGINE_DEAD
            return self._error(500, text, "InternalServerError")

        output_tokens = explicit if explicit is not None else min(DEFAULT_OUTPUT_TOKENS, max_len - prompt_tokens)
        finish = "length" if (explicit is not None or body.get("ignore_eos")) else "stop"
        stream = bool(body.get("stream"))
        include_usage = bool((body.get("stream_options") or {}).get("include_usage")) and stream

        tool_call = None
        if chat and tools and tool_choice not in (None, "none"):
            last_role = messages[-1].get("role") if messages and isinstance(messages[-1], dict) else None
            if tool_choice != "auto" or last_role != "tool":
                tool_call = _make_tool_call(tools, tool_choice)
        if tool_call is not None:
            output_tokens = max(1, min(output_tokens, count_tokens(tool_call["function"]["arguments"]) + 4))
            finish = "tool_calls"

        req = Request(prompt_tokens, output_tokens)
        eng.prefix_cache(prompt_text, prompt_tokens)
        if not eng.admit(req):
            return self._error(503, M.ENGINE_DEAD, "ServiceUnavailableError")
        reason = "abort"
        try:
            queued = time.monotonic() - req.arrival
            with eng.lock:
                eng.h["queue"].observe(queued)
                eng.prompt_tokens += prompt_tokens
            prefill_s = prompt_tokens / max(eng.prefill, 1e-9) + physics.TTFT_OVERHEAD_S
            time.sleep(prefill_s)
            with eng.lock:
                eng.h["prefill"].observe(prefill_s)
            rid = ("chatcmpl-" if chat else "cmpl-") + uuid.uuid4().hex
            created = _now_s()
            if stream:
                self._stream(req, rid, created, chat, tool_call, finish, include_usage)
            else:
                self._decode(req, None)
                self._json(200, _full_response(rid, created, cfg, chat, req, tool_call, finish))
            reason = "stop" if finish in ("stop", "tool_calls") else "length"
        finally:
            eng.finish(req, reason, explicit)

    def _decode(self, req: Request, on_tokens) -> None:
        """Advance `req` at the physics rate; call on_tokens(start, k) for each batch of k new tokens."""
        eng = self.engine
        crash_after = int(os.environ.get("APPLIANCE_SIM_CRASH_AFTER_TOKENS", "20") or 20)
        last = time.monotonic()
        rate = eng.per_request_rate()
        credit = 0.0
        while req.emitted < req.output_tokens:
            now = time.monotonic()
            credit += (now - last) * rate
            last = now
            rate = eng.per_request_rate()
            k = min(int(credit), req.output_tokens - req.emitted)
            if req.emitted == 0 and k == 0:
                k, credit = 1, credit + 1  # the first token comes with the prefill
            if k:
                if eng.runtime_fault == "crash_mid_stream" and req.emitted + k > crash_after:
                    k = max(0, crash_after - req.emitted)
                    if k and on_tokens:
                        on_tokens(req.emitted, k)
                    _crash(eng)
                start = req.emitted
                credit -= k
                eng.emitted(req, k, now)
                if on_tokens:
                    on_tokens(start, k)
                continue
            wait = (1.0 - credit) / rate if rate > 0 else 0.05
            time.sleep(min(max(wait, 0.0005), 0.05))

    def _stream(self, req, rid, created, chat, tool_call, finish, include_usage) -> None:
        eng = self.engine
        cfg = eng.cfg
        self.send_response(200)
        self.send_header("content-type", "text/event-stream; charset=utf-8")
        self.send_header("transfer-encoding", "chunked")
        self.end_headers()
        self._access(200)
        obj = "chat.completion.chunk" if chat else "text_completion"

        def chunk(choice: dict, usage=None) -> bytes:
            data = {"id": rid, "object": obj, "created": created, "model": cfg.name, "choices": [choice]}
            if usage is not None:
                data["usage"] = usage
            return b"data: " + json.dumps(data, separators=(",", ":")).encode() + b"\n\n"

        def send(payload: bytes) -> None:
            self.wfile.write(b"%x\r\n%s\r\n" % (len(payload), payload))

        reasoning_n = min(16, req.output_tokens // 4) if cfg.reasoning_parser and not tool_call else 0
        args = tool_call["function"]["arguments"] if tool_call else ""
        pieces = _split(args, req.output_tokens) if tool_call else []
        if chat:
            first = {"role": "assistant", "content": ""}
            send(chunk({"index": 0, "delta": first, "logprobs": None, "finish_reason": None}))

        def on_tokens(start: int, k: int) -> None:
            out = []
            for i in range(start, start + k):
                last = i == req.output_tokens - 1
                fin = finish if last else None
                if chat:
                    if tool_call:
                        tc = {"index": 0, "function": {"arguments": pieces[i]}}
                        if i == 0:
                            tc = {"index": 0, "id": tool_call["id"], "type": "function",
                                  "function": {"name": tool_call["function"]["name"], "arguments": pieces[i]}}
                        delta = {"tool_calls": [tc]}
                    elif i < reasoning_n:
                        delta = {"reasoning": WORDS[i % len(WORDS)]}
                    else:
                        delta = {"content": WORDS[i % len(WORDS)]}
                    choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": fin}
                else:
                    choice = {"index": 0, "text": WORDS[i % len(WORDS)], "logprobs": None, "finish_reason": fin,
                              "stop_reason": None}
                if fin:
                    choice["stop_reason"] = None
                out.append(chunk(choice))
            send(b"".join(out))

        self._decode(req, on_tokens)
        tail = b""
        if include_usage:
            usage = _usage(req)
            data = {"id": rid, "object": obj, "created": created, "model": cfg.name, "choices": [], "usage": usage}
            tail += b"data: " + json.dumps(data, separators=(",", ":")).encode() + b"\n\n"
        tail += b"data: [DONE]\n\n"
        send(tail)
        self.wfile.write(b"0\r\n\r\n")


def _usage(req: Request) -> dict:
    return {"prompt_tokens": req.prompt_tokens, "total_tokens": req.prompt_tokens + req.emitted,
            "completion_tokens": req.emitted, "prompt_tokens_details": None}


def _text(n: int, start: int = 0) -> str:
    return "".join(WORDS[i % len(WORDS)] for i in range(start, n))


def _full_response(rid, created, cfg, chat, req, tool_call, finish) -> dict:
    if chat:
        reasoning_n = min(16, req.output_tokens // 4) if cfg.reasoning_parser and not tool_call else 0
        message = {
            "role": "assistant",
            "content": None if tool_call else _text(req.emitted, reasoning_n),
            "refusal": None,
            "annotations": None,
            "audio": None,
            "function_call": None,
            "tool_calls": [tool_call] if tool_call else [],
            "reasoning": _text(reasoning_n) if reasoning_n else None,
        }
        choice = {"index": 0, "message": message, "logprobs": None, "finish_reason": finish, "stop_reason": None,
                  "token_ids": None}
        return {"id": rid, "object": "chat.completion", "created": created, "model": cfg.name, "choices": [choice],
                "service_tier": None, "system_fingerprint": None, "usage": _usage(req), "prompt_logprobs": None,
                "prompt_token_ids": None, "kv_transfer_params": None}
    choice = {"index": 0, "text": _text(req.emitted), "logprobs": None, "finish_reason": finish, "stop_reason": None,
              "token_ids": None, "prompt_logprobs": None, "prompt_token_ids": None}
    return {"id": rid, "object": "text_completion", "created": created, "model": cfg.name, "choices": [choice],
            "service_tier": None, "system_fingerprint": None, "usage": _usage(req), "kv_transfer_params": None}


def _example(schema: dict):
    if not isinstance(schema, dict):
        return "example"
    if "enum" in schema and schema["enum"]:
        return schema["enum"][0]
    t = schema.get("type")
    if isinstance(t, list):
        t = next((x for x in t if x != "null"), "string")
    if t == "integer":
        return 1
    if t == "number":
        return 1.0
    if t == "boolean":
        return True
    if t == "array":
        return [_example(schema.get("items", {}))] if schema.get("items") else []
    if t == "object":
        return _arguments(schema)
    return "example"


def _arguments(schema: dict) -> dict:
    props = schema.get("properties") or {}
    return {name: _example(props.get(name, {})) for name in schema.get("required") or []}


def _make_tool_call(tools: list, tool_choice) -> dict | None:
    funcs = [t.get("function") for t in tools if isinstance(t, dict) and isinstance(t.get("function"), dict)]
    if not funcs:
        return None
    fn = funcs[0]
    if isinstance(tool_choice, dict):
        wanted = (tool_choice.get("function") or {}).get("name")
        fn = next((f for f in funcs if f.get("name") == wanted), fn)
    args = json.dumps(_arguments(fn.get("parameters") or {}))
    return {"id": f"chatcmpl-tool-{uuid.uuid4().hex}", "type": "function",
            "function": {"name": fn.get("name", "tool"), "arguments": args}}


def _split(text: str, n: int) -> list[str]:
    """text in n consecutive pieces (some may be empty when n > len(text))."""
    n = max(1, n)
    step = len(text) / n
    return [text[round(i * step):round((i + 1) * step)] for i in range(n)]


def _crash(eng: Engine) -> None:
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


# ================================================================================================ startup


def _traceback(frames: list[tuple[str, int, str, str]], exc: str) -> str:
    lines = ["Traceback (most recent call last):"]
    for path, line, func, code in frames:
        lines.append(f'  File "/usr/local/lib/python3.12/dist-packages/vllm/{path}", line {line}, in {func}')
        lines.append(f"    {code}")
    lines.append(exc)
    return "\n".join(lines)


_CORE_FRAMES = [
    ("v1/engine/core.py", 1082, "run_engine_core", "engine_core = EngineCoreProc(*args, engine_index=dp_rank, **kwargs)"),
    ("v1/engine/core.py", 848, "__init__", "super().__init__("),
    ("v1/engine/core.py", 124, "__init__", "kv_cache_config = self._initialize_kv_caches(vllm_config)"),
]
_KV_FRAMES = _CORE_FRAMES + [
    ("v1/engine/core.py", 258, "_initialize_kv_caches", "kv_cache_configs = get_kv_cache_configs("),
    ("v1/core/kv_cache_utils.py", 1579, "get_kv_cache_configs", "_check_enough_kv_cache_memory("),
    ("v1/core/kv_cache_utils.py", 644, "_check_enough_kv_cache_memory", "raise ValueError("),
]
_API_FRAMES = [
    ("entrypoints/openai/api_server.py", 686, "run_server_worker",
     "async with build_async_engine_client("),
    ("v1/engine/utils.py", 1057, "wait_for_engine_startup", "raise RuntimeError("),
]


def _core_failure(log: M.Log, exc_line: str, frames) -> StartupError:
    tb = _traceback(frames, exc_line)
    log.core(M.ENGINE_FAILED, level="ERROR")
    log.raw("EngineCore_DP0", tb)
    log.raw("EngineCore_DP0", "Process EngineCore_DP0:\n" + tb)
    return StartupError(_traceback(_API_FRAMES, "RuntimeError: " + M.CORE_INIT_FAILED.format(
        procs="{'EngineCore_DP0': 1}")))


def _bind(cfg: Config) -> socket.socket:
    host = cfg.host if cfg.host is not None else ""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    # vLLM also sets SO_REUSEPORT; the sim does not, so a port clash fails loudly (README.md)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, cfg.port))
    except OSError as e:
        sock.close()
        if e.errno == errno.EADDRINUSE:
            raise StartupError(_traceback(
                [("entrypoints/openai/api_server.py", 535, "setup_server", "sock = create_server_socket(sock_addr)"),
                 ("entrypoints/openai/api_server.py", 496, "create_server_socket", "sock.bind(addr)")],
                f"OSError: {M.ADDRESS_IN_USE}")) from None
        raise StartupError(f"OSError: {e}") from None
    sock.listen(1024)
    return sock


def _sleep(seconds: float) -> None:
    end = time.monotonic() + seconds
    while not _SHUTDOWN.is_set():
        left = end - time.monotonic()
        if left <= 0:
            return
        time.sleep(min(left, 0.05))
    raise _Stop()


class _Stop(Exception):
    pass


def _validate(cfg: Config) -> None:
    """vLLM's checks that run before the engine is built (api_server.validate_api_server_args, ModelConfig)."""
    if cfg.enable_auto_tool_choice and cfg.tool_call_parser not in _spec().tool_call_parsers:
        raise StartupError(_traceback(
            [("entrypoints/openai/api_server.py", 528, "setup_server", "validate_api_server_args(args)"),
             ("entrypoints/openai/api_server.py", 510, "validate_api_server_args", "raise KeyError(")],
            "KeyError: '" + M.INVALID_TOOL_PARSER.format(name=cfg.tool_call_parser,
                                                         choices=",".join(_spec().tool_call_parsers)) + "'"))
    if cfg.reasoning_parser and cfg.reasoning_parser not in _spec().reasoning_parsers:
        raise StartupError(_traceback(
            [("entrypoints/openai/api_server.py", 528, "setup_server", "validate_api_server_args(args)"),
             ("entrypoints/openai/api_server.py", 519, "validate_api_server_args", "raise KeyError(")],
            "KeyError: '" + M.INVALID_REASONING_PARSER.format(name=cfg.reasoning_parser,
                                                              choices=",".join(_spec().reasoning_parsers)) + "'"))


def _validate_model(cfg: Config) -> None:
    if cfg.quantization is not None and cfg.quantization not in _spec().quantization_methods:
        raise StartupError(_traceback(
            [("config/model.py", 998, "_verify_quantization", "raise ValueError(")],
            "pydantic_core._pydantic_core.ValidationError: 1 validation error for ModelConfig\n  Value error, "
            + M.UNKNOWN_QUANTIZATION.format(name=cfg.quantization, choices=list(_spec().quantization_methods))))


class Runner:
    """The whole life of one engine process."""

    def __init__(self, argv: list[str]):
        self.argv = argv
        self.log = M.Log()

    def run(self) -> int:
        parser = vllm_spec.build_serve_parser("vllm serve", version=_spec().version)
        try:
            ns = parser.parse_args(self.argv)
        except ValueError as e:  # --served-model-name without a positional model
            print(_traceback([("utils/argparse_utils.py", 217, "parse_args", "raise ValueError(")],
                             f"ValueError: {e}"), file=sys.stderr)
            return 1
        if ns.model is None:
            ns.model = _spec().flags["model"].default
        cfg = Config(ns, parser)
        for w in parser.warnings:
            self.log.api(M.MODEL_FLAG, level="WARNING")
        if cfg.enable_auto_tool_choice and not cfg.tool_call_parser:
            print(_traceback([("entrypoints/cli/main.py", 73, "main", "args.dispatch_function(args)"),
                              ("entrypoints/cli/serve.py", 125, "validate", "validate_parsed_serve_args(args)"),
                              ("entrypoints/openai/cli_args.py", 364, "validate_parsed_serve_args",
                               'raise TypeError("Error: --enable-auto-tool-choice requires --tool-call-parser")')],
                             f"TypeError: {M.AUTO_TOOL_NEEDS_PARSER}"), file=sys.stderr)
            return 1
        if ns.enable_log_outputs and not ns.enable_log_requests:
            print(f"TypeError: {M.LOG_OUTPUTS_NEEDS_REQUESTS}", file=sys.stderr)
            return 1
        try:
            sim_dir = state.sim_dir_from_env()
            state.read_gpus(sim_dir)
        except state.SimDirError as e:
            print(f"appliance-sim: {e}", file=sys.stderr)
            return 1
        faults = _faults_from_env()
        unknown = faults - FAULTS
        if unknown:
            print(f"appliance-sim: unknown APPLIANCE_SIM_FAULT {sorted(unknown)}; known: {sorted(FAULTS)}",
                  file=sys.stderr)
            return 1
        try:
            return self._run(cfg, sim_dir, faults)
        except StartupError as e:
            self.log.raw("APIServer", e.text)
            return 1

    def _run(self, cfg: Config, sim_dir: Path, faults: set[str]) -> int:
        log = self.log
        log.api(M.VERSION, _version(), cfg.model)
        log.api(M.NON_DEFAULT, cfg.non_default)
        _validate(cfg)
        sock = _bind(cfg)
        eng = Engine(cfg, sim_dir, faults, log)
        self.eng = eng
        try:
            return self._load_and_serve(cfg, eng, sock, faults)
        except _Stop:
            eng.write_state("stopped")
            sock.close()
            return 0
        except StartupError:
            eng.write_state("crashed")
            sock.close()
            raise

    def _load_and_serve(self, cfg: Config, eng: Engine, sock: socket.socket, faults: set[str]) -> int:
        log = self.log
        if cfg.speculative_config and str(cfg.speculative_config.get("method", "")).endswith("_mtp"):
            log.core(M.MTP_DEPRECATED, cfg.speculative_config["method"], level="WARNING")
        eng.write_state()  # "loading", no GPUs yet
        threading.Thread(target=eng.ticker, name="sim-ticker", daemon=True).start()
        if "hf_token_missing" in faults:
            rid = uuid.uuid4().hex[:24]
            raise StartupError(_traceback(
                [("engine/arg_utils.py", 1380, "create_model_config", "return ModelConfig("),
                 ("transformers_utils/config.py", 586, "get_config", "config_dict, _ = PretrainedConfig.get_config_dict(")],
                "huggingface_hub.errors.GatedRepoError: " + M.GATED_REPO.format(model=cfg.model, rid=rid)))
        _validate_model(cfg)
        visible = visible_gpus(list(eng.rows.values()))
        if len(visible) < cfg.tp:
            raise StartupError(_traceback(
                [("config/parallel.py", 718, "__post_init__", "raise ValueError(")],
                "ValueError: " + M.WORLD_SIZE.format(world=cfg.tp, gpus=len(visible))))
        eng.gpus = visible[: cfg.tp]
        eng.refresh_limits()
        card = min((CARDS[eng.rows[i]["card"]] for i in eng.gpus), key=lambda c: c.memory_bytes)
        sc = cfg.speculative_config or {}
        spec_mtp = str(sc.get("method", "")) == "mtp" or str(sc.get("method", "")).endswith("_mtp")
        plan = physics.memory_plan(card, cfg.tp, eng.size, cfg.gpu_memory_utilization, cfg.kv_cache_dtype,
                                   cfg.max_model_len_arg, cfg.enforce_eager, cfg.max_num_seqs,
                                   cfg.ns.max_num_batched_tokens, spec_mtp)
        eng.plan = plan
        eng.max_model_len = plan.max_model_len
        eng.max_num_seqs = cfg.max_num_seqs or (1024 if card.memory_gib >= 70 and "A100" not in card.name else 256)

        # APPLIANCE_SIM_MEMORY_CHECK=0: no natural OOM/KV failures (stand-ins for hosted models with huge contexts)
        strict = os.environ.get("APPLIANCE_SIM_MEMORY_CHECK", "1") != "0"
        load_s = float(os.environ.get("APPLIANCE_SIM_LOAD_S", "3.0") or 3.0)
        if "slow_load" in faults:
            load_s *= 10
        shares = (0.6, 0.4, 0.0) if cfg.enforce_eager else (0.5, 0.2, 0.3)
        t_start = time.monotonic()

        # ---- weights
        log.core(M.START_LOAD, cfg.model)
        if "hang" in faults:
            while True:
                _sleep(3600)
        context = int(0.5 * GIB)
        weights_s = load_s * shares[0]
        steps = 10
        for k in range(1, steps + 1):
            _sleep(weights_s / steps)
            for i in eng.gpus:
                eng.memory[i] = context + plan.weight_bytes * k // steps
            too_big = strict and plan.weight_bytes + context > plan.total_bytes
            if "cuda_oom" in faults or too_big:
                if k >= steps // 2 or too_big:
                    free_mib = 20 + random.random() * 100
                    err = M.CUDA_OOM.format(alloc=0.5, gpu=0, total=plan.total_bytes / GIB, free=free_mib,
                                            used=plan.total_bytes / GIB - free_mib / 1024,
                                            alloc_torch=min(plan.weight_bytes, plan.total_bytes) / GIB * 0.98,
                                            reserved=40.0)
                    log.core(M.LOAD_FAILED_OOM, err, level="ERROR")
                    raise _core_failure(log, "torch.OutOfMemoryError: " + err, _CORE_FRAMES + [
                        ("v1/worker/gpu_model_runner.py", 4780, "load_model",
                         "self.model = model_loader.load_model(")])
        log.core(M.WEIGHTS_TOOK, weights_s * 0.9)
        log.core(M.MODEL_LOADING_TOOK, M.format_gib(plan.weight_bytes), weights_s)

        # ---- profile + KV cache
        _sleep(load_s * shares[1] / 2)
        for i in eng.gpus:
            eng.memory[i] = context + plan.weight_bytes + plan.activation_bytes
        available = plan.kv_available_bytes
        if "oom_at_start" in faults or (strict and available <= 0):
            raise _core_failure(log, "ValueError: " + M.NO_KV_MEMORY, _KV_FRAMES)
        needed = plan.kv_needed_bytes
        if "kv_too_small" in faults and needed <= available:
            available = int(needed * 0.6)
        if needed > available and (strict or "kv_too_small" in faults):
            est = max(0, available) // plan.kv_bytes_per_token // physics.BLOCK_SIZE * physics.BLOCK_SIZE
            estimated = M.KV_ESTIMATED.format(estimated=est) if est > 0 else ""
            raise _core_failure(log, "ValueError: " + M.KV_TOO_SMALL.format(
                max_len=plan.max_model_len, needed=M.format_gib(needed), available=M.format_gib(available),
                estimated=estimated), _KV_FRAMES)
        log.core(M.KV_AVAILABLE, M.format_gib(available))
        log.core(M.KV_SIZE, f"{plan.kv_tokens:,}")
        log.core(M.MAX_CONCURRENCY, f"{plan.max_model_len:,}", plan.max_concurrency)
        _sleep(load_s * shares[1] / 2)
        for i in eng.gpus:
            eng.memory[i] = min(plan.total_bytes, plan.requested_bytes)

        # ---- CUDA graphs
        if not cfg.enforce_eager:
            graphs_s = load_s * shares[2]
            for mode, n in (("mixed prefill-decode", "PIECEWISE"), ("decode", "FULL")):
                _sleep(graphs_s / 2)
                count = 51 if mode.startswith("mixed") else 35
                log.raw("EngineCore_DP0", f"{M.GRAPHS_BAR.format(mode, n)}: 100%|██████████| {count}/{count} "
                        f"[00:{int(graphs_s / 2):02d}<00:00, {count / max(graphs_s / 2, 0.01):.2f}it/s]")
            for i in eng.gpus:
                eng.memory[i] = min(plan.total_bytes, plan.requested_bytes + plan.cuda_graph_bytes)
            log.core(M.GRAPHS_DONE, graphs_s, plan.cuda_graph_bytes / GIB)
        log.core(M.INIT_ENGINE, time.monotonic() - t_start)

        # ---- serve
        return self._serve(cfg, eng, sock)

    def _serve(self, cfg: Config, eng: Engine, sock: socket.socket) -> int:
        log = self.log
        log.api(M.SUPPORTED_TASKS, ["generate"])
        addr = sock.getsockname()
        host = addr[0] or "0.0.0.0"
        host = f"[{host}]" if ":" in host else host
        log.api(M.STARTING_SERVER, f"http://{host}:{addr[1]}")
        handler = type("BoundHandler", (Handler,), {"engine": eng})
        server = Server(addr[:2], handler, bind_and_activate=False)
        server.socket.close()
        server.socket = sock
        server.server_address = sock.getsockname()
        pid = os.getpid()
        log.raw("APIServer", f"INFO:     Started server process [{pid}]")
        log.raw("APIServer", "INFO:     Waiting for application startup.")
        log.raw("APIServer", "INFO:     Application startup complete.")
        eng.state = "ready"
        eng.write_state()
        thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        thread.start()
        while not _SHUTDOWN.is_set():
            time.sleep(0.05)
        # graceful stop: stop accepting, let in-flight requests finish for up to --shutdown-timeout seconds
        log.raw("APIServer", "INFO:     Shutting down")
        server.shutdown()
        try:
            sock.close()
        except OSError:
            pass
        deadline = time.monotonic() + cfg.shutdown_timeout
        while eng.in_flight > 0 and time.monotonic() < deadline:
            time.sleep(0.02)
        log.raw("APIServer", "INFO:     Waiting for application shutdown.")
        log.raw("APIServer", "INFO:     Application shutdown complete.")
        log.raw("APIServer", f"INFO:     Finished server process [{pid}]")
        eng.write_state("stopped")
        return 0


def _on_sigterm(signum, frame):
    _SHUTDOWN.set()


def main(argv: list[str] | None = None) -> None:
    """`vllm` entry point: `vllm serve MODEL [flags]`, `vllm --version`."""
    args = list(sys.argv[1:] if argv is None else argv)
    signal.signal(signal.SIGTERM, _on_sigterm)
    signal.signal(signal.SIGINT, _on_sigterm)
    if args and args[0] in ("-v", "--version"):
        print(_version())
        sys.exit(0)
    if not args or args[0] != "serve":
        choice = f"invalid choice: '{args[0]}' " if args else "the following arguments are required: subparser"
        print("usage: vllm [-h] [-v] {chat,complete,serve,bench,collect-env,run-batch} ...", file=sys.stderr)
        if args:
            print(f"vllm: error: argument subparser: {choice}(choose from chat, complete, serve, bench, "
                  "collect-env, run-batch)", file=sys.stderr)
        else:
            print(f"vllm: error: {choice}", file=sys.stderr)
        sys.exit(2)
    code = Runner(args[1:]).run()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)  # handler threads may still hold connections; they are daemons of a finished process


if __name__ == "__main__":
    main()
