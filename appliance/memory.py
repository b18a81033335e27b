"""Pure, stdlib only: how vLLM V1 (0.10 and later) sizes its KV cache, shared by the fit check and the simulated
engine so that what `appliance check` predicts is what the stand-in engine does.

Derivation (vLLM's `gpu_worker.determine_available_memory`, checked against published startup logs, see
tests/calibration/):

    budget      = gpu_memory_utilization × total, where total is what CUDA reports (cudaMemGetInfo), a little
                  under NVML's number (3090: 23.56 vs 24.00 GiB, A100-80: 79.25 vs 80.00, H100: 79.18 vs 79.65);
                  the CUDA context of the process is taken *before* the baseline snapshot, so it is outside.
    KV memory   = budget − weights − peak activation − non-torch increase (− a CUDA-graph estimate, see below)
    KV tokens   = ⌊KV memory / bytes per token / 16⌋ × 16      (16-token blocks, every attention layer)

A model mixing sliding-window and full-attention layers (Gemma 2/3, EXAONE 4, gpt-oss) goes through vLLM's hybrid
allocator: layers of each kind are cut into groups of G (G = the smaller kind's count), the larger kind is padded
to whole groups, and every slot costs a page per block; the logged "GPU KV cache size" is blocks ÷ groups × 16, i.e.
KV memory / (slots × bytes per layer). Gemma 3 1B: 22 sliding + 4 full → 24 + 4 = 28 slots ("Add 2 padding
layers"), logged 950,864 tokens for 25.39 GiB = 28 × 1 KiB per token. (A sliding layer only ever holds its window,
so long requests fit better than these tokens say: the count is conservative.)

Weights: the loaded tensors plus each rotary embedding's cos/sin table (max positions × head dim in the model
dtype, one per distinct rope): 10 MiB for Qwen3 0.6B, 1 % of its 1.12 GiB, which the logs show.

Peak activation is the torch allocator's peak during `profile_run`: one dummy forward pass of
max_num_batched_tokens tokens, then the sampler's dummy pass over min(max_num_seqs, tokens) rows of the
vocabulary while the forward's hidden states are still alive. Whichever is larger sets the peak:

    forward = N × (2·hidden + 3·intermediate/tp) × dtype bytes      (residual + hidden + gate_up + act of a layer)
    sampler = N × hidden × dtype bytes + S × vocab × 38.4 bytes     (PyTorch top-k/top-p: fp32 logits, sort values
                                                                      and int64 indices, softmax, cumsum, scatter)

38.4 bytes per (sequence × vocabulary entry) is what the H100 logs of vLLM 0.11 show for four vocabularies
(Llama 128,256 → 4.76 GiB, Qwen3 151,936 → 5.56/5.64 GiB, at 1,024 sequences); the FlashInfer sampler, when a
build uses it ("Using FlashInfer for top-p & top-k sampling"), peaks near 14.5 bytes. Before 0.11 vLLM used
FlashInfer's sampler whenever FlashInfer was installed (the vllm/vllm-openai images ship it); from 0.11 the
PyTorch sampler is the default (every 0.11+ log above), so `default_sampler` goes by the version. With vLLM serve's defaults
(256 sequences / 2,048 tokens on cards under 70 GiB and on A100, 1,024 / 8,192 on bigger cards) the sampler
dominates for every dense model: the overhead depends on the vocabulary, not on the model's size.

Non-torch memory (NCCL buffers, custom all-reduce, cuBLAS workspaces allocated after the baseline) is
~0.13 GiB on one GPU; with tensor parallelism ~0.55 GiB per GPU over NVLink (H100 SXM: 0.54–0.55, NCCL's
NVLink buffers) and ~0.2 GiB over PCIe (4 × L40S: 0.21). CUDA graphs are captured after the KV cache
is sized and come out of the headroom above the budget. vLLM 0.21 added a profiler estimate of them
(VLLM_MEMORY_PROFILER_ESTIMATE_CUDAGRAPHS), but in every published 0.2x log with the full breakdown (0.26 on an
RTX 4080, hybrids on 3090/5090/H200) KV = budget − (weights + non-torch) − activation exactly, so the estimate is
only subtracted when a start says it was (`cudagraph_profiled=True`, e.g. from a measurement of this rig).

Limits: linear-attention / mamba hybrids (fixed per-sequence state, larger blocks), versions that report the
tokens of sliding-window models from the window (newer Gemma 4 starts), MoE (activations of the fused-MoE
workspace are approximated),
multimodal encoders (the encoder's profiling pass is not modelled). The rig's own measurements
(appliance.measured) replace the estimated overhead once an engine has started on the card.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

GIB = 1024**3
BLOCK = 16  # vLLM's KV block size in tokens
NON_TORCH_TP1 = int(0.13 * GIB)
NON_TORCH_TP = int(0.55 * GIB)  # per GPU, tensor parallel over NVLink
NON_TORCH_TP_PCIE = int(0.2 * GIB)  # per GPU, tensor parallel over PCIe
CUDA_GRAPH_ESTIMATE = int(0.25 * GIB)  # the ≥ 0.21 profiler's estimate, when used (0.13–0.6 GiB in the logs)
CUDA_GRAPH_BYTES = CUDA_GRAPH_ESTIMATE  # kept for callers of the old name
SAMPLER_BYTES = {"torch": 38.4, "flashinfer": 14.5}  # per (sequence × vocabulary entry) during the dummy pass
VISIBLE_RESERVE = int(0.5 * GIB)  # NVML total − CUDA total on cards without a measured value
DEFAULT_VLLM = "0.19.0"
CUDAGRAPH_PROFILING_SINCE = (0, 21)

KV_DTYPE_BYTES = {
    "auto": None, "float16": 2, "bfloat16": 2, "fp8": 1, "fp8_e4m3": 1, "fp8_e5m2": 1, "fp8_inc": 1,
    "fp8_ds_mla": 1,
}


def version_tuple(version: str | None) -> tuple[int, ...]:
    """'0.11.0rc2.dev420+gc5c8f5ea5' → (0, 11, 0); unknown → the pinned engine's version."""
    parts = []
    for piece in (version or DEFAULT_VLLM).lstrip("v").split("."):
        digits = "".join(ch for ch in piece if ch.isdigit()) if piece[:1].isdigit() else ""
        if not digits:
            break
        parts.append(int(digits[:3]))
        if not piece.isdigit():
            break
    return tuple(parts) or version_tuple(DEFAULT_VLLM)


def default_sampler(vllm_version: str | None) -> str:
    """The top-k/top-p sampler an official vllm/vllm-openai image of this version uses by default."""
    return "flashinfer" if version_tuple(vllm_version) < (0, 11) else "torch"


def dtype_bytes(dtype: str | None) -> int:
    return 4 if dtype in ("float32", "float") else 2


def kv_dtype_bytes(kv_cache_dtype: str | None, model_dtype: str = "bfloat16") -> int:
    size = KV_DTYPE_BYTES.get(kv_cache_dtype or "auto")
    return dtype_bytes(model_dtype) if size is None else size


def kv_bytes_per_token(arch, tp: int, kv_cache_dtype: str | None, pp: int = 1, spec_mtp: bool = False) -> int:
    """2 × KV layers × KV heads per TP rank × head dim × bytes, for one GPU (pipeline stages split the layers;
    KV heads are replicated when tensor parallelism exceeds them; MLA stores one latent, not K and V)."""
    layers = (getattr(arch, "kv_layer_slots", 0) or arch.kv_layers) + (arch.mtp_layers if spec_mtp else 0)
    layers_per_stage = math.ceil(layers / pp)
    heads_per_rank = max(1, math.ceil(arch.kv_heads / tp))
    factor = 1 if arch.mla else 2
    return factor * layers_per_stage * heads_per_rank * arch.head_dim * kv_dtype_bytes(kv_cache_dtype, arch.dtype)


def padded_kv_slots(layers_per_kind: list[int]) -> int:
    """KV layer slots of a model mixing sliding-window and full-attention layers (same page size), as vLLM's
    hybrid allocator lays them out: groups of G layers share G memory pools, G = the smallest kind's count (or the
    largest when it is under 1.25 × the smallest); each kind is padded up to whole groups ("Add N padding layers,
    may waste at most X% KV cache memory"). Every slot costs a full page per block of 16 tokens."""
    counts = [n for n in layers_per_kind if n > 0]
    if len(counts) < 2:
        return sum(counts)
    group = min(counts) if max(counts) >= 1.25 * min(counts) else max(counts)
    return sum(math.ceil(n / group) * group for n in counts)


def rope_cache_bytes(arch) -> int:
    """vLLM keeps each rotary embedding's cos/sin table on the GPU in the model dtype: max positions × head dim,
    one per distinct rope (Gemma 3 has a local and a global one). Loaded with the weights, so in "Model loading"."""
    return getattr(arch, "rope_caches", 1) * arch.max_position * arch.head_dim * dtype_bytes(arch.dtype)


def visible_bytes(nvml_bytes: int, measured: int | None = None) -> int:
    """What CUDA can allocate on a card whose NVML total is `nvml_bytes` (cards.Card.visible_bytes when known)."""
    return measured if measured else max(0, nvml_bytes - VISIBLE_RESERVE)


def param_counts(arch) -> tuple[int, int]:
    """(parameters in quantizable linear layers, parameters kept in 16 bit) from the shape, GQA-aware:
    q/o are heads × head_dim wide, k/v kv_heads × head_dim; MoE layers hold every expert; embeddings and
    lm_head (once when tied), norms, routers and any vision tower (`extra_params`) stay unquantized."""
    h, hd = arch.hidden, arch.head_dim
    attn = 2 * h * arch.heads * hd + 2 * h * arch.kv_heads * hd
    if getattr(arch, "experts", 0) and getattr(arch, "moe_intermediate", 0):
        ffn = arch.experts * 3 * h * arch.moe_intermediate + 3 * h * arch.shared_intermediate
        router = arch.experts * h
    else:
        ffn, router = 3 * h * arch.intermediate, 0
    linear = arch.layers * (attn + ffn)
    embed = arch.vocab * h * (1 if arch.tied_embeddings else 2)
    small = arch.layers * (2 * h + router + (arch.heads + 2 * arch.kv_heads) * hd * int(arch.qkv_bias)) + h
    return linear, embed + small + arch.extra_params


# Integer formats that store a scale and a zero per group whatever the width (GPTQ, its AutoRound export that vLLM
# loads as `inc`): their 8-bit variant keeps the groups too. FP8 and compressed-tensors INT8 scale per channel.
GROUPED_8BIT = {"gptq", "gptq_marlin", "auto-round", "auto_round", "autoround", "inc"}


def weight_bytes_per_param(method: str | None, bits: float, group_size: int = 128) -> float:
    """Bytes per quantized weight, as vLLM's GPTQ/AWQ Marlin layers hold them: the packed `bits`-bit weight plus,
    per group of `group_size` input rows, an fp16 scale and a zero packed at the same width (GPTQ keeps its qzeros
    tensor even when symmetric; Marlin's repack keeps the sizes). 4-bit always comes in groups (AWQ, GPTQ); 8-bit
    only for the GPTQ family (Qwen's GPTQ-Int8: +3 bytes per 128 weights, 2.3 %), FP8/INT8 otherwise scale per
    channel (negligible). group_size -1 (GPTQ "per column") is one group per input dimension: negligible too.
    The act-order index (g_idx, one int32 per input row of each layer) is under 0.5 % and left out."""
    if not method or bits >= 16:
        return 2.0
    per = bits / 8
    grouped = bits <= 4.5 or str(method).lower() in GROUPED_8BIT
    if grouped and group_size > 0:
        per += (2 + bits / 8) / group_size
    return per


def estimated_weights_bytes(arch, method: str | None, bits: float, group_size: int = 128) -> int:
    """All ranks together, from the shape alone (the safetensors index is exact and wins when it exists)."""
    if getattr(arch, "num_parameters", None):  # stated by the owner: the linear share follows the shape
        linear, other = param_counts(arch)
        scale = arch.num_parameters / max(1, linear + other)
        linear, other = int(linear * scale), int(other * scale)
    else:
        linear, other = param_counts(arch)
    width = dtype_bytes(arch.dtype)
    return int(other * width + linear * (width if not method or bits >= 16 else
                                         weight_bytes_per_param(method, bits, group_size))) + rope_cache_bytes(arch)


def _ffn_width(arch, tp: int) -> float:
    """Intermediate activations per token and TP rank: dense gate_up + act, or the fused-MoE workspace."""
    if getattr(arch, "experts", 0) and getattr(arch, "moe_intermediate", 0):
        topk = max(1, arch.experts_per_tok)
        return topk * (3 * arch.moe_intermediate / tp + arch.hidden) + 3 * arch.shared_intermediate / tp
    return 3 * arch.intermediate / tp


def activation_bytes(arch, tp: int, max_num_seqs: int, max_num_batched_tokens: int, sampler: str = "torch") -> int:
    """Peak of the profiling pass (see the module docstring)."""
    n = max_num_batched_tokens
    width = dtype_bytes(arch.dtype)
    forward = n * (2 * arch.hidden + _ffn_width(arch, tp)) * width
    rows = min(max_num_seqs, n)
    sample = n * arch.hidden * width + rows * arch.vocab * SAMPLER_BYTES.get(sampler, SAMPLER_BYTES["torch"])
    return int(max(forward, sample))


def non_torch_bytes(tp: int, pp: int = 1, nvlink: bool = True) -> int:
    if tp * pp == 1:
        return NON_TORCH_TP1
    return NON_TORCH_TP if nvlink else NON_TORCH_TP_PCIE


def cudagraph_bytes(enforce_eager: bool, vllm_version: str | None = None, profiled: bool = False) -> int:
    """The CUDA-graph estimate the profiler subtracts: only 0.21 and later, only when that start profiled the
    graphs (see the module docstring), never with enforce_eager."""
    if not profiled or enforce_eager or version_tuple(vllm_version) < CUDAGRAPH_PROFILING_SINCE:
        return 0
    return CUDA_GRAPH_ESTIMATE


def overhead_bytes(arch, tp: int, pp: int, max_num_seqs: int, max_num_batched_tokens: int,
                   enforce_eager: bool = False, *, vllm_version: str | None = None, sampler: str = "torch",
                   cudagraph_profiled: bool = False, nvlink: bool = True) -> int:
    """Per GPU, what vLLM takes out of the budget besides weights: activation peak, non-torch memory, the CUDA
    graph estimate where that version counts it, and the fixed per-sequence state of linear-attention layers."""
    state = arch.state_bytes_per_seq * max_num_seqs // tp
    return (activation_bytes(arch, tp, max_num_seqs, max_num_batched_tokens, sampler) + non_torch_bytes(tp, pp, nvlink)
            + cudagraph_bytes(enforce_eager, vllm_version, cudagraph_profiled) + state)


def default_batch_limits(card_memory_bytes: int, gpu_name: str) -> tuple[int, int]:
    """`vllm serve` defaults (max_num_seqs, max_num_batched_tokens): 1024/8192 on cards of 70 GiB and more
    (A100 excepted), 256/2048 otherwise."""
    if card_memory_bytes >= 70 * GIB and "A100" not in gpu_name:
        return 1024, 8192
    return 256, 2048


@dataclass(frozen=True)
class Plan:
    """One GPU's budget as vLLM computes it. Bytes."""

    visible: int
    budget: int
    weights: int
    activation: int
    non_torch: int
    cudagraphs: int
    state: int
    kv: int  # may be negative: vLLM refuses to start ("No available memory for the cache blocks")
    kv_bytes_per_token: int
    kv_tokens: int

    @property
    def overhead(self) -> int:
        return self.activation + self.non_torch + self.cudagraphs + self.state


def plan(arch, weights_per_gpu: int, visible: int, *, util: float, tp: int = 1, pp: int = 1,
         max_num_seqs: int = 256, max_num_batched_tokens: int = 2048, kv_cache_dtype: str | None = None,
         enforce_eager: bool = False, vllm_version: str | None = None, sampler: str = "torch",
         spec_mtp: bool = False, overhead: int | None = None, cudagraph_profiled: bool = False,
         nvlink: bool = True) -> Plan:
    """The KV cache vLLM will allocate. `overhead` (bytes, e.g. measured on this rig) replaces the estimate."""
    budget = int(visible * util)
    act = activation_bytes(arch, tp, max_num_seqs, max_num_batched_tokens, sampler)
    nt = non_torch_bytes(tp, pp, nvlink)
    graphs = cudagraph_bytes(enforce_eager, vllm_version, cudagraph_profiled)
    state = arch.state_bytes_per_seq * max_num_seqs // tp
    if overhead is not None:  # measured on this rig: the activation takes whatever the other terms leave
        act = overhead - nt - graphs - state
    per_token = kv_bytes_per_token(arch, tp, kv_cache_dtype, pp, spec_mtp)
    kv = budget - weights_per_gpu - act - nt - graphs - state
    tokens = max(0, kv) // per_token // BLOCK * BLOCK
    return Plan(visible, budget, weights_per_gpu, act, nt, graphs, state, kv, per_token, tokens)
