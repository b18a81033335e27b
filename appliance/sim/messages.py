"""vLLM 0.19.0's own wordings, as the simulated engine prints and returns them. Stdlib only.

Every string below was read from the vLLM 0.19.0 wheel; the comment names the file (and the line of the
logging call, which vLLM prints as `[file.py:line]`). Placeholders keep vLLM's %-format.
"""

from __future__ import annotations

import os
import sys
import threading
import time

# ---------------------------------------------------------------------------------------------- log lines
# (file:line of the logging call, format)
VERSION = ("utils.py", 299, "vLLM server version %s, serving model %s")  # entrypoints/utils.py (logo off)
NON_DEFAULT = ("utils.py", 233, "non-default args: %s")  # entrypoints/utils.py log_non_default_args
MODEL_FLAG = (
    "argparse_utils.py",
    191,
    "With `vllm serve`, you should provide the model as a positional argument or in a config file instead of "
    "via the `--model` option. The `--model` option will be removed in v0.13.",
)  # utils/argparse_utils.py
MTP_DEPRECATED = ("speculative.py", 368, "method `%s` is deprecated and replaced with mtp.")  # config/speculative.py
START_LOAD = ("gpu_model_runner.py", 4735, "Starting to load model %s...")  # v1/worker/gpu_model_runner.py
WEIGHTS_TOOK = ("default_loader.py", 384, "Loading weights took %.2f seconds")  # model_loader/default_loader.py
MODEL_LOADING_TOOK = ("gpu_model_runner.py", 4820, "Model loading took %s GiB memory and %.6f seconds")
KV_AVAILABLE = ("gpu_worker.py", 436, "Available KV cache memory: %s GiB")  # v1/worker/gpu_worker.py
KV_SIZE = ("kv_cache_utils.py", 1319, "GPU KV cache size: %s tokens")  # v1/core/kv_cache_utils.py
MAX_CONCURRENCY = ("kv_cache_utils.py", 1324, "Maximum concurrency for %s tokens per request: %.2fx")
GRAPHS_DONE = ("gpu_model_runner.py", 6046, "Graph capturing finished in %.0f secs, took %.2f GiB")
GRAPHS_BAR = "Capturing CUDA graphs ({}, {})"  # tqdm description, v1/worker/gpu_model_runner.py
INIT_ENGINE = ("core.py", 283, "init engine (profile, create kv cache, warmup model) took %.2f seconds")
SUPPORTED_TASKS = ("api_server.py", 590, "Supported tasks: %s")  # entrypoints/openai/api_server.py
STARTING_SERVER = ("api_server.py", 594, "Starting vLLM server on %s")
ENGINE_FAILED = ("core.py", 1108, "EngineCore failed to start.")  # v1/engine/core.py
STATS = (
    "loggers.py",
    217,
    "Engine 000: Avg prompt throughput: %.1f tokens/s, Avg generation throughput: %.1f tokens/s, "
    "Running: %d reqs, Waiting: %d reqs, GPU KV cache usage: %.1f%%, Prefix cache hit rate: %.1f%%",
)  # v1/metrics/loggers.py LoggingStatLogger
LOAD_FAILED_OOM = (
    "gpu_model_runner.py",
    4818,
    "Failed to load model - not enough GPU memory. Try lowering --gpu-memory-utilization to free memory for "
    "weights, increasing --tensor-parallel-size, or using --quantization. See "
    "https://docs.vllm.ai/en/latest/configuration/conserving_memory/ for more tips. (original error: %s)",
)

# ---------------------------------------------------------------------------------------------- exceptions
# vllm/entrypoints/openai/cli_args.py validate_parsed_serve_args
AUTO_TOOL_NEEDS_PARSER = "Error: --enable-auto-tool-choice requires --tool-call-parser"
LOG_OUTPUTS_NEEDS_REQUESTS = "Error: --enable-log-outputs requires --enable-log-requests"
# vllm/entrypoints/openai/api_server.py validate_api_server_args (KeyError)
INVALID_TOOL_PARSER = "invalid tool call parser: {name} (chose from {{ {choices} }})"
INVALID_REASONING_PARSER = "invalid reasoning parser: {name} (chose from {{ {choices} }})"
# vllm/config/model.py
UNKNOWN_QUANTIZATION = "Unknown quantization method: {name}. Must be one of {choices}."
# vllm/config/parallel.py
WORLD_SIZE = (
    "World size ({world}) is larger than the number of available GPUs ({gpus}) in this node. If this is "
    "intentional and you are using:\n- ray, set '--distributed-executor-backend ray'.\n"
    "- multiprocessing, set '--nnodes' appropriately."
)
# vllm/v1/core/kv_cache_utils.py _check_enough_kv_cache_memory
NO_KV_MEMORY = (
    "No available memory for the cache blocks. Try increasing `gpu_memory_utilization` when initializing the "
    "engine. See https://docs.vllm.ai/en/latest/configuration/conserving_memory/ for more details."
)
KV_TOO_SMALL = (
    "To serve at least one request with the models's max seq len ({max_len}), ({needed} GiB KV cache is "
    "needed, which is larger than the available KV cache memory ({available} GiB). {estimated}Try increasing "
    "`gpu_memory_utilization` or decreasing `max_model_len` when initializing the engine. See "
    "https://docs.vllm.ai/en/latest/configuration/conserving_memory/ for more details."
)
KV_ESTIMATED = "Based on the available memory, the estimated maximum model length is {estimated}. "
# vllm/v1/engine/utils.py wait_for_engine_startup
CORE_INIT_FAILED = "Engine core initialization failed. See root cause above. Failed core proc(s): {procs}"
# vllm/v1/engine/exceptions.py
ENGINE_DEAD = "EngineCore encountered an issue. See stack trace (above) for the root cause."
# torch (c10 CUDACachingAllocator), as printed by torch 2.x
CUDA_OOM = (
    "CUDA out of memory. Tried to allocate {alloc:.2f} GiB. GPU {gpu} has a total capacity of {total:.2f} GiB "
    "of which {free:.2f} MiB is free. Including non-PyTorch memory, this process has {used:.2f} GiB memory in "
    "use. Of the allocated memory {alloc_torch:.2f} GiB is allocated by PyTorch, and {reserved:.2f} MiB is "
    "reserved by PyTorch but unallocated. If reserved but unallocated memory is large try setting "
    "PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True to avoid fragmentation.  See documentation for Memory "
    "Management  (https://pytorch.org/docs/stable/notes/cuda.html#environment-variables)"
)
# huggingface_hub 1.x utils/_http.py hf_raise_for_status (GatedRepo) + the Hub's server message
GATED_REPO = (
    "401 Client Error. (Request ID: Root=1-{rid})\n\nCannot access gated repo for url "
    "https://huggingface.co/{model}/resolve/main/config.json.\nAccess to model {model} is restricted. You must "
    "have access to it and be authenticated to access it. Please log in."
)
ADDRESS_IN_USE = "[Errno 98] Address already in use"
# A request that arrives during a drain (asyncio's executor after shutdown; measured on 0.32: HTTP 500)
SHUTDOWN_NEW_REQUEST = "cannot schedule new futures after shutdown"
# 0.32's shutdown log lines (entrypoints/launcher.py, v1/engine/core.py; measured)
SHUTDOWN_TRIGGERED = ("launcher.py", 254, "[shutdown] API server: shutdown triggered")
SHUTDOWN_MODE = ("launcher.py", 270, "[shutdown] API server: stopping engine client mode=%s timeout=%ds")
SHUTDOWN_DRAINING = ("core.py", 1655, "[shutdown] EngineCore: draining in-flight requests count=%d timeout=%ds")
SHUTDOWN_DONE = ("core.py", 1666, "[shutdown] EngineCore: request processing complete; starting resource teardown")

# ---------------------------------------------------------------------------------------------- HTTP errors
# vllm/renderers/params.py TokenizeParams._token_len_check (+ VLLMValidationError.__str__ suffix)
CONTEXT_LENGTH = (
    "This model's maximum context length is {max_len} tokens. However, you requested {out} output tokens and "
    "your prompt contains {q}{prompt} input tokens, for a total of {q}{total} tokens. Please reduce the length "
    "of the input prompt or the number of requested output tokens. (parameter=input_tokens, value={prompt})"
)
# max_tokens > max_model_len (renderers/params.py TokenizeParams.__post_init__; the missing space is vLLM's)
OUTPUT_TOO_LONG = (
    "{param}={out}cannot be greater than max_model_len=max_total_tokens={max_len}. Please request fewer output "
    "tokens. (parameter={param}, value={out})"
)
MODEL_NOT_FOUND = "The model `{model}` does not exist."  # entrypoints/openai/engine/serving.py _check_model
AUTO_TOOL_CHOICE = '"auto" tool choice requires --enable-auto-tool-choice and --tool-call-parser to be set'
TOOL_CHOICE_NEEDS_PARSER = 'tool_choice="{choice}" requires --tool-call-parser to be set'
TOOL_CHOICE_NEEDS_TOOLS = "When using `tool_choice`, `tools` must be set."
INTERNAL = "Internal server error"

# ---------------------------------------------------------------------------------------------- logging

_write_lock = threading.Lock()


class Log:
    """vLLM-style log lines on stdout: `(APIServer pid=N) INFO 11-22 10:00:00 [file.py:123] message`."""

    def __init__(self, stream=None):
        self.stream = stream or sys.stdout
        self.pid = os.getpid()

    def emit(self, proc: str, level: str, where: tuple | None, msg: str, *args) -> None:
        text = msg % args if args else msg
        stamp = time.strftime("%m-%d %H:%M:%S")
        loc = f"[{where[0]}:{where[1]}] " if where else ""
        line = f"({proc} pid={self.pid}) {level} {stamp} {loc}{text}\n"
        with _write_lock:
            try:
                self.stream.write(line)
                self.stream.flush()
            except (OSError, ValueError):
                pass

    def api(self, spec: tuple, *args, level: str = "INFO") -> None:
        self.emit("APIServer", level, spec[:2], spec[2], *args)

    def core(self, spec: tuple, *args, level: str = "INFO") -> None:
        self.emit("EngineCore_DP0", level, spec[:2], spec[2], *args)

    def plain(self, text: str) -> None:
        """A line as uvicorn writes it: no process prefix."""
        with _write_lock:
            try:
                self.stream.write(text + "\n")
                self.stream.flush()
            except (OSError, ValueError):
                pass

    def raw(self, proc: str, text: str) -> None:
        with _write_lock:
            try:
                for line in text.splitlines():
                    self.stream.write(f"({proc} pid={self.pid}) {line}\n")
                self.stream.flush()
            except (OSError, ValueError):
                pass


def format_gib(n_bytes: float) -> str:
    """vllm/utils/mem_utils.py format_gib: str(round(bytes / GiB, 2))."""
    return f"{round(n_bytes / (1 << 30), 2)}"
