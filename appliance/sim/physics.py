"""The simulated rig's physics: pure functions, stdlib only, used by the engine and by tests as ground truth.

Decode is memory-bandwidth bound, so one stream's rate is how often a GPU can read its share of the weights:

    r1 = EFF × bandwidth / active_weight_bytes_per_gpu × tp_efficiency(tp) × power_factor(P) × spec_factor

- tp_efficiency(tp) = 1 / (1 + TP_PENALTY × (tp − 1)): all-reduce traffic between the shards.
- power_factor(P) = (1 − exp(−(P − P_floor)/τ)) / (1 − exp(−(P_default − P_floor)/τ)), P_floor = 0.3×default,
  τ = 0.3×default: 1 at the card's default limit, rising with the limit and saturating; ~0.66 at 200 W on a 3090.
- spec_factor: with k speculative tokens and acceptance p per token, a step emits E = (1 − p^(k+1))/(1 − p)
  tokens and costs 1 + draft_cost × k target steps (draft_cost 0.1 for MTP/EAGLE heads, 0.3 for a draft model,
  0.02 for n-gram/suffix lookup, whose acceptance is lower).

Concurrency c shares the GPU: aggregate(c) = r1 × c / (1 + A × (c − 1)) (A = 0.55, so per-request speed falls
fast beyond 2–3 streams, like the user's 4×3090 tables); at most max_num_seqs run, the rest wait.
Prefill (prompt tok/s) = PREFILL_X × r1 without speculation; TTFT = queue wait + prompt/prefill + 10 ms.
Board power under load per GPU = idle + (limit − idle) × busy(c), busy = 0.75 at c = 1 rising to 1 at c ≥ 4.

Weights: the parameter count comes from the model name ("14B", "Qwen3.5-27B", "0.5B", "8x7B"; for MoE names
like "30B-A3B" the active 3B drive decode) or env APPLIANCE_SIM_PARAMS_B; bytes per parameter from
--quantization or name hints (awq/gptq/int4/4bit → 0.55, fp8/int8 → 1.05, else 2).

Memory at start is not modelled here: memory_plan calls appliance.memory.plan, the fit check's model (budget of
what CUDA sees, activation peak, non-torch memory, KV bytes per token from the shape), so the simulated engine's
"Available KV cache memory" and "GPU KV cache size" are what `appliance check` predicts for the same profile.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from appliance.cards import GIB, Card

EFF = 0.85  # fraction of peak memory bandwidth a decode step achieves
TP_PENALTY = 0.12
POWER_FLOOR_FRAC = 0.30
POWER_TAU_FRAC = 0.30
CONCURRENCY_A = 0.55
PREFILL_X = 20.0
TTFT_OVERHEAD_S = 0.010
BUSY_AT_1 = 0.75
ACCEPTANCE = 0.70
DEFAULT_PARAMS_B = 8.0
DEFAULT_MAX_MODEL_LEN = 32768  # the "native" context length when --max-model-len is not given
KV_BYTES_PER_TOKEN_PER_B = 16 * 1024  # bf16 KV bytes per token per billion parameters (8B → 128 KiB)
ACTIVATION_PEAK_BYTES = int(1.5 * GIB)  # overhead of a model outside the catalog (no shape to count from)
CUDA_GRAPH_BYTES = int(0.4 * GIB)  # captured after the KV cache is sized, above the budget
BLOCK_SIZE = 16

_FOUR_BIT_QUANT = {"awq", "awq_marlin", "gptq", "gptq_marlin", "gguf", "bitsandbytes", "moe_wna16", "cpu_awq",
                   "mxfp4", "modelopt_fp4", "petit_nvfp4", "fp_quant"}
_EIGHT_BIT_QUANT = {"fp8", "fbgemm_fp8", "modelopt", "modelopt_mxfp8", "experts_int8", "mxfp8", "inc", "quark",
                    "torchao", "modelopt_mixed"}
_FOUR_BIT_HINTS = ("awq", "gptq", "int4", "4bit", "w4a16", "nvfp4", "mxfp4", "q4", "bnb")
_EIGHT_BIT_HINTS = ("fp8", "int8", "w8a8", "8bit", "q8")


# ------------------------------------------------------------------------------------------------ the model


@dataclass(frozen=True)
class ModelSize:
    params_b: float  # total parameters, billions (memory)
    active_params_b: float  # parameters read per decoded token, billions (MoE: the active experts)
    bytes_per_param: float
    arch: object = None  # appliance.catalog.Arch when the model is in the built-in catalog
    weights_exact: int | None = None  # catalog weight bytes (embeddings 16-bit, group scales)

    @property
    def weight_bytes(self) -> int:
        if self.weights_exact:
            return self.weights_exact
        return int(self.params_b * 1e9 * self.bytes_per_param)

    @property
    def active_weight_bytes(self) -> int:
        return int(self.active_params_b * 1e9 * self.bytes_per_param)


_SIZE = re.compile(r"(?<![\w.])(?:(\d+)x)?(\d+(?:\.\d+)?)b(?![a-z])", re.I)
_ACTIVE = re.compile(r"(?<![a-z0-9])a(\d+(?:\.\d+)?)b(?![a-z])", re.I)


def parse_params_b(model: str) -> float | None:
    """Billions of parameters named in a model id: 'Qwen/Qwen3.5-27B-AWQ' → 27, 'Mixtral-8x7B' → 56, '0.5B' → 0.5."""
    name = model.rstrip("/").split("/")[-1]
    for m in _SIZE.finditer(name.replace("_", "-")):
        start = m.start()
        if start > 0 and name[start - 1] in "aA":  # the "A3B" of "30B-A3B" is the active count
            continue
        experts, size = m.group(1), float(m.group(2))
        return size * int(experts) if experts else size
    return None


def parse_active_params_b(model: str) -> float | None:
    m = _ACTIVE.search(model.rstrip("/").split("/")[-1].replace("_", "-"))
    return float(m.group(1)) if m else None


def bytes_per_param(quantization: str | None, model: str) -> float:
    low = model.lower()
    if quantization in _FOUR_BIT_QUANT:
        return 0.55
    if quantization in _EIGHT_BIT_QUANT:
        return 1.05
    if any(h in low for h in _EIGHT_BIT_HINTS):  # "…-AWQ-BF16-INT8": AWQ-calibrated, stored in 8 bit
        return 1.05
    if any(h in low for h in _FOUR_BIT_HINTS):
        return 0.55
    return 2.0


def model_size(model: str, quantization: str | None = None, params_b_override: float | None = None) -> ModelSize:
    """From the built-in catalog when the model is known (the same facts `appliance check` uses), else from
    the name."""
    if not params_b_override:
        from appliance import catalog

        ck = catalog.lookup_builtin(model)
        if ck is not None:
            ck = catalog.with_quantization(ck, quantization)
            weights = catalog.weights_bytes(ck)
            return ModelSize(ck.arch.params_b, ck.arch.params_b, weights / (ck.arch.params_b * 1e9), ck.arch, weights)
    total = params_b_override if params_b_override else parse_params_b(model) or DEFAULT_PARAMS_B
    active = parse_active_params_b(model) if not params_b_override else None
    return ModelSize(total, min(active or total, total), bytes_per_param(quantization, model))


def kv_bytes_per_token(size: ModelSize, kv_cache_dtype: str | None, tp: int) -> int:
    """KV bytes per token on one GPU: ~16 KiB per billion parameters in bf16, halved for fp8, split over tp."""
    dtype_factor = 0.5 if kv_cache_dtype and kv_cache_dtype.startswith("fp8") else 1.0
    return max(1, int(KV_BYTES_PER_TOKEN_PER_B * size.params_b * dtype_factor / max(1, tp)))


# ------------------------------------------------------------------------------------------------ speculation


@dataclass(frozen=True)
class SpecDecode:
    method: str
    k: int
    acceptance: float
    draft_cost: float

    @property
    def tokens_per_step(self) -> float:
        p, k = self.acceptance, self.k
        return (1 - p ** (k + 1)) / (1 - p) if p < 1 else k + 1.0

    @property
    def factor(self) -> float:
        return self.tokens_per_step / (1 + self.draft_cost * self.k)


def spec_decode(config: dict | None) -> SpecDecode | None:
    """SpecDecode for a --speculative-config JSON object (None when not set). MTP aliases count as mtp."""
    if not config:
        return None
    method = str(config.get("method") or ("ngram" if config.get("model") in ("ngram", "[ngram]") else "draft_model"))
    if method.endswith("_mtp"):
        method = "mtp"
    k = int(config.get("num_speculative_tokens") or 1)
    if method in ("ngram", "ngram_gpu", "suffix"):
        return SpecDecode(method, k, 0.45, 0.02)
    if method == "draft_model":
        return SpecDecode(method, k, ACCEPTANCE, 0.30)
    return SpecDecode(method, k, ACCEPTANCE, 0.10)


# ------------------------------------------------------------------------------------------------ rates, power


def power_factor(card: Card, limit_w: float) -> float:
    floor = POWER_FLOOR_FRAC * card.power_default_w
    tau = POWER_TAU_FRAC * card.power_default_w
    norm = 1 - math.exp(-(card.power_default_w - floor) / tau)
    value = 1 - math.exp(-max(limit_w - floor, 0.0) / tau)
    return max(value / norm, 0.02)


def tp_efficiency(tp: int) -> float:
    return 1.0 / (1.0 + TP_PENALTY * (max(1, tp) - 1))


def concurrency_scale(c: int) -> float:
    """aggregate(c) / r1."""
    return c / (1 + CONCURRENCY_A * (c - 1)) if c > 0 else 0.0


def busy(c: int) -> float:
    if c <= 0:
        return 0.0
    return min(1.0, BUSY_AT_1 + (1 - BUSY_AT_1) * (c - 1) / 3)


@dataclass(frozen=True)
class Rates:
    single_stream_tok_s: float  # r1: one request alone, speculation included
    aggregate_tok_s: float  # all running requests together
    per_request_tok_s: float
    prefill_tok_s: float  # prompt tokens per second for one request
    running: int  # requests actually running (≤ max_num_seqs)
    waiting: int
    power_w: float  # board power of each GPU of the engine (idle included)
    extra_power_w: float  # power above idle, per GPU
    busy: float


def decode_rate_1(card: Card, limit_w: float, tp: int, size: ModelSize, spec: SpecDecode | None) -> float:
    per_gpu = size.active_weight_bytes / max(1, tp)
    base = EFF * card.bandwidth_gbps * 1e9 / per_gpu
    return base * tp_efficiency(tp) * power_factor(card, limit_w) * (spec.factor if spec else 1.0)


def rates(
    card: Card,
    power_limit_w: float,
    tp: int,
    model: str,
    quantization: str | None = None,
    speculative_config: dict | None = None,
    concurrency: int = 1,
    max_num_seqs: int | None = None,
    params_b: float | None = None,
) -> Rates:
    """Ground truth for tests: aggregate and per-request tok/s, prefill tok/s and per-GPU power for `concurrency`
    simultaneous requests on `tp` identical `card`s capped at `power_limit_w`."""
    size = model_size(model, quantization, params_b)
    spec = spec_decode(speculative_config)
    r1 = decode_rate_1(card, power_limit_w, tp, size, spec)
    running = concurrency if max_num_seqs is None else min(concurrency, max_num_seqs)
    agg = r1 * concurrency_scale(running)
    b = busy(running)
    extra = (power_limit_w - card.idle_w) * b
    prefill = PREFILL_X * r1 / (spec.factor if spec else 1.0)
    return Rates(
        single_stream_tok_s=r1,
        aggregate_tok_s=agg,
        per_request_tok_s=agg / running if running else 0.0,
        prefill_tok_s=prefill,
        running=running,
        waiting=concurrency - running,
        power_w=card.idle_w + extra,
        extra_power_w=extra,
        busy=b,
    )


def ttft_s(prompt_tokens: int, prefill_tok_s: float, queue_s: float = 0.0) -> float:
    return queue_s + prompt_tokens / prefill_tok_s + TTFT_OVERHEAD_S


# ------------------------------------------------------------------------------------------------ memory


@dataclass(frozen=True)
class MemoryPlan:
    """vLLM's startup memory arithmetic, per GPU: appliance.memory.plan, the fit check's own model, so the KV cache
    the simulated engine logs is the one `appliance check` predicts for the same profile and card."""

    total_bytes: int  # NVML's total (what nvidia-smi shows)
    requested_bytes: int  # the budget: gpu_memory_utilization × visible_bytes
    weight_bytes: int
    activation_bytes: int  # everything vLLM subtracts besides weights: activation peak, non-torch, graph estimate
    cuda_graph_bytes: int  # graphs captured after the KV cache is sized (out of the headroom above the budget)
    kv_available_bytes: int  # may be ≤ 0
    kv_bytes_per_token: int
    max_model_len: int
    kv_needed_bytes: int  # for one request of max_model_len
    visible_bytes: int = 0  # what CUDA reports as total (cudaMemGetInfo), a little under NVML's

    @property
    def kv_tokens(self) -> int:
        tokens = max(0, self.kv_available_bytes) // self.kv_bytes_per_token
        return tokens // BLOCK_SIZE * BLOCK_SIZE

    @property
    def max_concurrency(self) -> float:
        return self.kv_tokens / self.max_model_len if self.max_model_len else 0.0

    @property
    def estimated_max_model_len(self) -> int:
        return self.kv_tokens

    @property
    def used_bytes(self) -> int:
        """What nvidia-smi shows for the engine once loaded: the whole requested budget."""
        return self.requested_bytes


def memory_plan(
    card: Card,
    tp: int,
    size: ModelSize,
    gpu_memory_utilization: float | None = None,
    kv_cache_dtype: str | None = None,
    max_model_len: int | None = None,
    enforce_eager: bool = False,
    max_num_seqs: int | None = None,
    max_num_batched_tokens: int | None = None,
    spec_mtp: bool = False,
    vllm_version: str | None = None,
) -> MemoryPlan:
    """The budget is gpu_memory_utilization × what CUDA sees (cards.visible_bytes); settings left out take that
    vLLM version's defaults for the card (vllm_versions.effective_serve_defaults), the sampler is the version's.
    A model outside the catalog has no shape: its KV bytes per token and overhead are rough (see the module doc)."""
    from appliance import cards, memory, vllm_versions

    visible, _ = cards.visible_bytes(card.name, card.memory_bytes)
    d = vllm_versions.effective_serve_defaults(vllm_version, card.memory_bytes, card.name)
    util = gpu_memory_utilization or float(d["gpu_memory_utilization"])
    seqs, batched = max_num_seqs or int(d["max_num_seqs"]), max_num_batched_tokens or int(d["max_num_batched_tokens"])
    weights = size.weight_bytes // max(1, tp)
    graphs = 0 if enforce_eager else CUDA_GRAPH_BYTES
    if size.arch is not None:
        p = memory.plan(size.arch, weights, visible, util=util, tp=tp, max_num_seqs=seqs,
                        max_num_batched_tokens=batched, kv_cache_dtype=kv_cache_dtype, enforce_eager=enforce_eager,
                        vllm_version=vllm_version, sampler=memory.default_sampler(vllm_version),
                        spec_mtp=spec_mtp and bool(size.arch.mtp_layers), nvlink=cards.nvlink(card.name))
        budget, overhead, available, per_token = p.budget, p.overhead, p.kv, p.kv_bytes_per_token
        if not max_model_len or max_model_len < 0:
            max_model_len = size.arch.max_position if max_model_len != -1 else max_model_len
    else:
        budget = int(visible * util)
        overhead = ACTIVATION_PEAK_BYTES
        per_token = kv_bytes_per_token(size, kv_cache_dtype, tp)
        available = budget - weights - overhead
    if not max_model_len or max_model_len < 0:  # not given, or -1/auto: the native length if it fits
        fit = max(0, available) // per_token // BLOCK_SIZE * BLOCK_SIZE
        max_model_len = min(DEFAULT_MAX_MODEL_LEN, fit) if max_model_len == -1 else DEFAULT_MAX_MODEL_LEN
        max_model_len = max(max_model_len, 1)
    return MemoryPlan(card.memory_bytes, budget, weights, overhead, graphs, available, per_token,
                      max_model_len, per_token * max_model_len, visible)
