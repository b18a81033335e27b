"""Pure, stdlib only: vLLM V1's memory model, shared by the fit check and the simulated engine so that what
`appliance check` predicts is what the stand-in engine does (techref §1.7)."""

from __future__ import annotations

import math

GIB = 1024**3
BLOCK = 16  # vLLM's KV block size in tokens
CUDA_CONTEXT_BYTES = int(0.55 * GIB)  # torch/CUDA context + cuBLAS workspaces, per GPU
NCCL_BYTES = int(0.25 * GIB)  # per GPU when tensor/pipeline parallel (NCCL buffers, custom all-reduce)
CUDA_GRAPH_BYTES = int(0.35 * GIB)  # captured graphs (0 with enforce_eager)

KV_DTYPE_BYTES = {
    "auto": None, "float16": 2, "bfloat16": 2, "fp8": 1, "fp8_e4m3": 1, "fp8_e5m2": 1, "fp8_inc": 1,
    "fp8_ds_mla": 1,
}


def kv_dtype_bytes(kv_cache_dtype: str | None, model_dtype: str = "bfloat16") -> int:
    size = KV_DTYPE_BYTES.get(kv_cache_dtype or "auto")
    if size is None:
        return 4 if model_dtype in ("float32", "float") else 2
    return size


def kv_bytes_per_token(arch, tp: int, kv_cache_dtype: str | None, pp: int = 1, spec_mtp: bool = False) -> int:
    """2 × KV layers × KV heads per TP rank × head dim × bytes, for one GPU (pipeline stages split the layers;
    KV heads are replicated when tensor parallelism exceeds them; MLA stores one latent, not K and V)."""
    layers = arch.kv_layers + (arch.mtp_layers if spec_mtp else 0)
    layers_per_stage = math.ceil(layers / pp)
    heads_per_rank = max(1, math.ceil(arch.kv_heads / tp))
    factor = 1 if arch.mla else 2
    return factor * layers_per_stage * heads_per_rank * arch.head_dim * kv_dtype_bytes(kv_cache_dtype, arch.dtype)


def overhead_bytes(arch, tp: int, pp: int, max_num_seqs: int, max_num_batched_tokens: int,
                   enforce_eager: bool = False) -> int:
    """Per GPU, besides weights and KV: CUDA context, NCCL, the profiling pass's activations at
    max_num_batched_tokens, fp32 logits for up to max_num_seqs rows, CUDA graphs, and the fixed per-sequence
    state of linear-attention layers (hybrid models)."""
    activ = max_num_batched_tokens * (arch.hidden * 2 + 2 * arch.intermediate // tp) * 2 * 2
    activ += min(max_num_seqs, max_num_batched_tokens) * arch.vocab * 4 // tp
    graphs = 0 if enforce_eager else CUDA_GRAPH_BYTES
    state = arch.state_bytes_per_seq * max_num_seqs // tp
    return CUDA_CONTEXT_BYTES + (NCCL_BYTES if tp * pp > 1 else 0) + activ + graphs + state


def default_batch_limits(card_memory_bytes: int, gpu_name: str) -> tuple[int, int]:
    """vLLM 0.19's defaults for `vllm serve` (max_num_seqs, max_num_batched_tokens), techref §1.2."""
    if card_memory_bytes >= 70 * GIB and "A100" not in gpu_name:
        return 1024, 8192
    return 256, 2048
