"""Pure: an engine's last log lines (and exit code) → what went wrong, the decisive lines, and a fix.

The patterns are vLLM 0.19's own wordings (see appliance/sim/messages.py for their sources) and 0.32's where they
differ (checked against a real vLLM by tests/real/test_failures.py), torch's CUDA OOM, huggingface_hub's gated-repo
error, uvicorn's address-in-use, and docker's image and GPU-driver errors.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from appliance.fit_fixes import UTIL_CEILING


@dataclass(frozen=True)
class Diagnosis:
    title: str  # one line: what happened
    fix: str  # what to do
    lines: tuple[str, ...] = field(default_factory=tuple)  # the decisive log lines
    kind: str = "unknown"
    estimated_max_model_len: int | None = None


@dataclass(frozen=True)
class _Rule:
    kind: str
    pattern: re.Pattern
    title: str
    fix: str


def _r(kind: str, pattern: str, title: str, fix: str) -> _Rule:
    return _Rule(kind, re.compile(pattern, re.I), title, fix)


RULES = (
    _r("kv_too_small",
       r"To serve at least one request with the models?'s max seq len \((\d+)\)(?:.*estimated maximum model "
       r"length is (\d+))?",
       "the KV cache cannot hold one request of max_model_len {0}",
       "set max_model_len to {1} or less, or kv_cache_dtype: fp8, or give the KV cache more memory "
       "(gpu_memory_utilization, or kv_cache_memory_bytes when the profile sets it)"),
    _r("max_model_len_too_long", r"User-specified max_model_len \((\d+)\) is greater than the derived max_model_len "
       r"\(max_position_embeddings=(\d+)",
       "max_model_len {0} is longer than the model supports ({1} tokens, its max_position_embeddings)",
       "set max_model_len to {1} or less (VLLM_ALLOW_LONG_MAX_MODEL_LEN=1 in the engine's env overrides the check, "
       "at the risk of wrong output)"),
    _r("kv_too_small", r"The model's max seq len \((\d+)\) is larger than the maximum number of tokens that can be "
       r"stored in KV cache \((\d+)\)",
       "the KV cache cannot hold one request of max_model_len {0}",
       "set max_model_len to {1} or less, or kv_cache_dtype: fp8, or raise gpu_memory_utilization"),
    _r("no_kv_memory", r"No available memory for the cache blocks",
       "no GPU memory is left for the KV cache after loading the weights",
       "raise gpu_memory_utilization (up to 0.95), lower max_num_batched_tokens, use a quantized checkpoint or "
       "more GPUs (tensor_parallel_size) — `appliance check PROFILE` shows the numbers"),
    _r("free_memory", r"Free memory on device .* is less than desired GPU memory utilization",
       "another process holds GPU memory that vLLM needs",
       "stop what else runs on the GPU (`nvidia-smi` lists it) or lower gpu_memory_utilization"),
    _r("load_oom", r"Failed to load model - not enough GPU memory",
       "the weights do not fit in GPU memory",
       "use a quantized checkpoint (AWQ/FP8), more GPUs (tensor_parallel_size) or a smaller model"),
    _r("cuda_oom", r"CUDA out of memory|torch\.OutOfMemoryError|OutOfMemoryError",
       "CUDA ran out of memory",
       "lower gpu_memory_utilization or max_num_seqs; if it happened during CUDA-graph capture, set "
       "enforce_eager: true or a smaller max_cudagraph_capture_size"),
    _r("gated", r"Cannot access gated repo|Access to model .* is restricted|401 Client Error",
       "the model is gated on Hugging Face and no valid token was given",
       "accept the model's license on huggingface.co, then `appliance keys set huggingface` (stores HF_TOKEN)"),
    _r("unknown_flag", r"unrecognized arguments: (.+)$",
       "vLLM rejected the flag(s) {0}",
       "remove them from the profile (or extra_args); the pinned vLLM 0.19.0 does not know them"),
    _r("tool_parser", r"--enable-auto-tool-choice requires --tool-call-parser",
       "enable_auto_tool_choice is set without a tool_call_parser", "add tool_call_parser to the engine"),
    _r("address_in_use", r"\[Errno 98\].*address already in use|address already in use",
       "the engine's port is already in use", "stop what listens there (`ss -ltnp`) or change the engine's port"),
    _r("world_size", r"World size \((\d+)\) is larger than the number of available GPUs \((\d+)\)",
       "tensor_parallel_size {0} needs more GPUs than the {1} the engine can see",
       "lower tensor_parallel_size or give the engine more gpus"),
    _r("engine_timeout", r"Timed out waiting for engine core processes to start",
       "the engine took longer to load than VLLM_ENGINE_READY_TIMEOUT_S",
       "raise VLLM_ENGINE_READY_TIMEOUT_S in the engine's env (slow disk or a very large model)"),
    _r("image_missing", r"pull access denied|manifest unknown|No such image|repository does not exist|"
       r"not found: manifest|failed to resolve reference",
       "the engine's image is not available", "`docker pull IMAGE` (check the tag in the profile) and retry"),
    _r("no_nvidia_runtime", r'could not select device driver "nvidia"|nvidia-container-cli|unknown or invalid '
       r"runtime name: nvidia",
       "docker cannot give the container a GPU", "install the NVIDIA Container Toolkit and restart docker"),
    _r("quant_mismatch", r"Quantization method specified in the model config \((\w+)\) does not match",
       "the profile's quantization does not match the checkpoint ({0})", "set quantization: {0} or remove it"),
)


# At or above UTIL_CEILING (the fit check's own), raising gpu_memory_utilization is no fix: the CUDA graphs, the CUDA
# context and the desktop live above the budget.
_UTIL_IN_LOG = re.compile(r"'gpu_memory_utilization': ([0-9.]+)|gpu_memory_utilization=([0-9.]+)|"
                          r"desired GPU memory utilization \(([0-9.]+)")
_AT_CEILING_FIX = {
    "no_kv_memory": "gpu_memory_utilization is already {u} — raising it further only moves the out-of-memory to "
                    "CUDA-graph capture. Lower max_num_batched_tokens and max_num_seqs (they set the profiling "
                    "peak), use a quantized checkpoint (AWQ/GPTQ 4-bit, FP8) or more GPUs (tensor_parallel_size) — "
                    "`appliance check PROFILE` shows the numbers",
    "kv_too_small": "set max_model_len to {1} or less, or kv_cache_dtype: fp8, or spread it over more GPUs "
                    "(tensor_parallel_size); gpu_memory_utilization is already {u}, raising it is no fix",
}


def _utilization(lines: list[str], given: float | None) -> float | None:
    """The engine's gpu_memory_utilization: the caller's value, else what vLLM logged (non-default args, the
    engine config, or the "desired GPU memory utilization" of its free-memory check)."""
    if given is not None:
        return given
    for line in lines:
        m = _UTIL_IN_LOG.search(line)
        if m:
            return float(next(g for g in m.groups() if g))
    return None


def diagnose(log_lines: list[str], exit_code: int | None = None,
             gpu_memory_utilization: float | None = None) -> Diagnosis:
    """Find the decisive lines in an engine's log (most specific rule wins, first match in RULES order).

    `gpu_memory_utilization` is the engine's setting when the caller knows it (the log's first lines, where vLLM
    prints it, may have scrolled away); at 0.95 or more the fixes for a too-small KV cache leave it out."""
    text_lines = [ln.rstrip("\n") for ln in log_lines if ln.strip()]
    util = _utilization(text_lines, gpu_memory_utilization)
    for rule in RULES:
        for i, line in enumerate(text_lines):
            m = rule.pattern.search(line)
            if not m:
                continue
            groups = [g or "?" for g in m.groups()]
            est = None
            if rule.kind == "kv_too_small" and len(m.groups()) > 1 and m.group(2):
                est = int(m.group(2))
            title = rule.title.format(*groups) if groups else rule.title
            fix = rule.fix.format(*groups) if groups else rule.fix
            at_ceiling = util is not None and util >= UTIL_CEILING and rule.kind in _AT_CEILING_FIX
            if at_ceiling:
                fix = _AT_CEILING_FIX[rule.kind].format(*(groups + ["?", "?"]), u=util)
            if "{1}" in rule.fix and (len(groups) < 2 or groups[1] == "?"):
                fix = "lower max_model_len, or kv_cache_dtype: fp8, or " + (
                    "more GPUs (tensor_parallel_size)" if at_ceiling else "raise gpu_memory_utilization")
            return Diagnosis(title, fix, tuple(_context(text_lines, i)), rule.kind, est)
    errors = [ln for ln in text_lines if re.search(r"\b(ERROR|CRITICAL|Error|Exception)\b", ln)]
    decisive = tuple((errors or text_lines)[-5:])
    code = f" (exit code {exit_code})" if exit_code is not None else ""
    return Diagnosis(f"the engine stopped{code}", "read the log lines above; `appliance logs ENGINE` has the rest",
                     decisive, "unknown")


def _context(lines: list[str], i: int) -> list[str]:
    """The matching line plus the error line just before it, if any (tracebacks end with the exception)."""
    out = [lines[i]]
    if i > 0 and re.search(r"ERROR|Error|Exception|Traceback", lines[i - 1]) and lines[i - 1] != lines[i]:
        out.insert(0, lines[i - 1])
    return out
