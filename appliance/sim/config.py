"""The stand-in engine's configuration: parsed flags, faults, visible GPUs, and vLLM-shaped startup errors.

Shared by every module of the stand-in (appliance.sim.engine is the entry point). Stdlib only.
"""

from __future__ import annotations

import os
import re
import threading

from appliance import vllm_spec
from appliance.sim import messages as M

FAULTS = {"oom_at_start", "kv_too_small", "cuda_oom", "hf_token_missing", "hang", "crash_mid_stream", "http500",
          "slow_load"}
RUNTIME_FAULTS = {"none", "http500", "hang", "crash_mid_stream", "dead"}
TICK_S = 0.1
DEFAULT_OUTPUT_TOKENS = 128
def sim_version() -> str:
    """The vLLM version this stand-in plays: $APPLIANCE_SIM_VLLM_VERSION (the engine image's tag), else the
    default 0.19.0. It parses argv with that version's spec (the nearest older known one for an unknown tag)."""
    return os.environ.get("APPLIANCE_SIM_VLLM_VERSION") or vllm_spec.DEFAULT_VERSION


def sim_spec() -> "vllm_spec.Spec":
    try:
        return vllm_spec.spec_for(vllm_spec.nearest_known(sim_version()))
    except ValueError:  # not a version at all: play the default
        return vllm_spec.spec_for()


WORDS = ("the", " quick", " brown", " fox", " jumps", " over", " the", " lazy", " dog", ".", " A", " simulated",
         " engine", " streams", " tokens", " at", " the", " rate", " its", " GPUs", " allow", ",")
TOKEN_RE = re.compile(r"\w+|[^\w\s]")
SHUTDOWN = threading.Event()  # set from the SIGTERM handler (Event.set only; the main loop polls)


def count_tokens(text: str) -> int:
    return len(TOKEN_RE.findall(text))


def content_text(content) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(p.get("text", "") for p in content if isinstance(p, dict) and isinstance(p.get("text"), str))
    return ""


def chat_prompt_tokens(messages: list) -> int:
    """The sim's deterministic tokenizer: `\\w+|[^\\w\\s]` matches over message contents + 3 per message."""
    return sum(count_tokens(content_text(m.get("content"))) + 3 for m in messages if isinstance(m, dict))


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
        self.kv_cache_memory_bytes = int(ns.kv_cache_memory_bytes) if ns.kv_cache_memory_bytes else None
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


def faults_from_env() -> set[str]:
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


def env_float(name: str) -> float | None:
    raw = os.environ.get(name)
    try:
        return float(raw) if raw else None
    except ValueError:
        return None


# ================================================================================================ startup


def traceback_text(frames: list[tuple[str, int, str, str]], exc: str) -> str:
    lines = ["Traceback (most recent call last):"]
    for path, line, func, code in frames:
        lines.append(f'  File "/usr/local/lib/python3.12/dist-packages/vllm/{path}", line {line}, in {func}')
        lines.append(f"    {code}")
    lines.append(exc)
    return "\n".join(lines)


CORE_FRAMES = [
    ("v1/engine/core.py", 1082, "run_engine_core", "engine_core = EngineCoreProc(*args, engine_index=dp_rank, **kwargs)"),
    ("v1/engine/core.py", 848, "__init__", "super().__init__("),
    ("v1/engine/core.py", 124, "__init__", "kv_cache_config = self._initialize_kv_caches(vllm_config)"),
]
KV_FRAMES = CORE_FRAMES + [
    ("v1/engine/core.py", 258, "_initialize_kv_caches", "kv_cache_configs = get_kv_cache_configs("),
    ("v1/core/kv_cache_utils.py", 1579, "get_kv_cache_configs", "_check_enough_kv_cache_memory("),
    ("v1/core/kv_cache_utils.py", 644, "_check_enough_kv_cache_memory", "raise ValueError("),
]
API_FRAMES = [
    ("entrypoints/openai/api_server.py", 686, "run_server_worker",
     "async with build_async_engine_client("),
    ("v1/engine/utils.py", 1057, "wait_for_engine_startup", "raise RuntimeError("),
]


def core_failure(log: M.Log, exc_line: str, frames) -> StartupError:
    tb = traceback_text(frames, exc_line)
    log.core(M.ENGINE_FAILED, level="ERROR")
    log.raw("EngineCore_DP0", tb)
    log.raw("EngineCore_DP0", "Process EngineCore_DP0:\n" + tb)
    return StartupError(traceback_text(API_FRAMES, "RuntimeError: " + M.CORE_INIT_FAILED.format(
        procs="{'EngineCore_DP0': 1}")))


def validate(cfg: Config) -> None:
    """vLLM's checks that run before the engine is built (api_server.validate_api_server_args, ModelConfig)."""
    if cfg.enable_auto_tool_choice and cfg.tool_call_parser not in sim_spec().tool_call_parsers:
        raise StartupError(traceback_text(
            [("entrypoints/openai/api_server.py", 528, "setup_server", "validate_api_server_args(args)"),
             ("entrypoints/openai/api_server.py", 510, "validate_api_server_args", "raise KeyError(")],
            "KeyError: '" + M.INVALID_TOOL_PARSER.format(name=cfg.tool_call_parser,
                                                         choices=",".join(sim_spec().tool_call_parsers)) + "'"))
    if cfg.reasoning_parser and cfg.reasoning_parser not in sim_spec().reasoning_parsers:
        raise StartupError(traceback_text(
            [("entrypoints/openai/api_server.py", 528, "setup_server", "validate_api_server_args(args)"),
             ("entrypoints/openai/api_server.py", 519, "validate_api_server_args", "raise KeyError(")],
            "KeyError: '" + M.INVALID_REASONING_PARSER.format(name=cfg.reasoning_parser,
                                                              choices=",".join(sim_spec().reasoning_parsers)) + "'"))


def validate_model(cfg: Config) -> None:
    if cfg.quantization is not None and cfg.quantization not in sim_spec().quantization_methods:
        raise StartupError(traceback_text(
            [("config/model.py", 998, "_verify_quantization", "raise ValueError(")],
            "pydantic_core._pydantic_core.ValidationError: 1 validation error for ModelConfig\n  Value error, "
            + M.UNKNOWN_QUANTIZATION.format(name=cfg.quantization, choices=list(sim_spec().quantization_methods))))


