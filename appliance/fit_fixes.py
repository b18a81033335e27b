"""Pure: what to change when an engine does not fit, each suggestion checked with the same memory model.

A suggestion is only worth giving if it helps: raising gpu_memory_utilization from 0.94 to 0.95 buys 1 % of the
card, and at 0.95 or more it is not a fix at all (the desktop, the CUDA context and the CUDA graphs live above the
budget). So every candidate is re-planned (`replan`, appliance.memory.plan with one setting changed) and named
with what it gives: the KV tokens of fp8 KV cache, of a higher gpu_memory_utilization, of twice the tensor
parallelism. Shorter max_model_len and fewer max_num_seqs are exact by construction (they only change the demand).
"""

from __future__ import annotations

from collections.abc import Callable

from appliance.memory import BLOCK, KV_DTYPE_BYTES, Plan

UTIL_CEILING = 0.95  # above it the headroom vLLM does not count (CUDA graphs, the desktop) runs out


def round_len(tokens: int) -> int:
    """A max_model_len suggestion: a multiple of 1024 when large, of 16 otherwise."""
    if tokens >= 4096:
        return tokens // 1024 * 1024
    return max(BLOCK, tokens // BLOCK * BLOCK)


def _holds(plan: Plan, need: int) -> str:
    return "" if plan.kv_tokens >= need else f" (holds {plan.kv_tokens} tokens)"


def kv_fixes(engine, kv_tokens: int, max_len: int, seqs: int, util: float, tp: int, kv_heads: int,
             replan: Callable[..., Plan], gpus_free: int) -> list[str]:
    """The KV cache holds `kv_tokens`, fewer than `seqs` requests of `max_len` need. `gpus_free`: the GPUs the
    engine could spread over (its own plus those no other engine uses): more tensor parallelism only within them."""
    need = max_len * seqs
    fixes = []
    target_len = round_len(kv_tokens // seqs)
    if target_len >= BLOCK:
        fixes.append(f"lower max_model_len to {target_len}")
    if seqs > 1 and kv_tokens // max_len >= 1:
        fixes.append(f"or max_num_seqs to {kv_tokens // max_len}")
    if KV_DTYPE_BYTES.get(engine.kv_cache_dtype or "auto") in (None, 2):
        fixes.append("or use kv_cache_dtype fp8" + _holds(replan(kv_cache_dtype="fp8"), need))
    if util < UTIL_CEILING:
        higher = replan(util=UTIL_CEILING)
        if higher.kv_tokens >= min(need, int(kv_tokens * 1.1)):  # worth it: fits, or 10 % more cache
            fixes.append(f"or raise gpu_memory_utilization to {UTIL_CEILING}" + _holds(higher, need))
    more = replan(tp=tp * 2) if tp * 2 * engine.pipeline_parallel_size <= gpus_free else None
    if more and more.kv_tokens > kv_tokens and kv_heads >= tp * 2:  # KV heads split: each GPU holds less per token
        fixes.append(f"or spread it over {tp * 2 * engine.pipeline_parallel_size} GPUs (tensor_parallel_size "
                     f"{tp * 2})" + _holds(more, need))
    return fixes


def weight_fixes(engine, weight_bits: float, weights_gpu: int, overhead: int, visible: int, util: float,
                 gpus_free: int) -> list[str]:
    """Weights and overhead exceed the budget: no KV cache at all. More GPUs only within `gpus_free`."""
    fixes = []
    util_needed = (weights_gpu + overhead) / visible
    target = min(0.97, util_needed + 0.04)
    if util_needed < 0.97 and target > util:
        fixes.append(f"raise gpu_memory_utilization to {target:.2f}")
    if weight_bits >= 16:
        fixes.append("use a quantized checkpoint (AWQ 4-bit weighs about a third) or quantization: fp8")
    tp = engine.tensor_parallel_size
    if tp * 2 * engine.pipeline_parallel_size <= gpus_free:
        fixes.append(f"or spread it over {tp * 2 * engine.pipeline_parallel_size} GPUs (tensor_parallel_size "
                     f"{tp * 2})")
    if engine.max_num_batched_tokens and engine.max_num_batched_tokens > 2048:
        fixes.append("or lower max_num_batched_tokens to 2048 (smaller activations)")
    return fixes
