"""Advice: what vLLM itself would warn about (or refuse) at start for a profile's engine, and how to fix it.

The profile check says what vLLM would REJECT on the command line; this says what a valid command line still
gets wrong, each rule mirroring a warning (or a start-up refusal) in vLLM's own source, cited in `source` with
the version it was read from. An Advice is a value, not an error: `appliance check` lists them, `up` prints them
once, `--strict` refuses to start with any of severity "warning" or "error" (lead: see the final report).

Pure: `advise(options, version, card=..., arch=...)` takes the engine's vLLM options (dest -> value, as
appliance.render.compose.vllm_options returns them), the vLLM version that will run it (appliance.vllm_versions),
the card (appliance.cards.Card) and the model's shape (appliance.catalog.Arch), each optional — a rule whose
input is missing stays silent.

Adding a rule: a function `_rule_x(ctx) -> Advice | None` registered in RULES, its source cited, a test in
tests/test_advice.py that makes it fire AND one that keeps it quiet, and its line in the README list.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from appliance.vllm_spec import spec_for, version_key
from appliance.vllm_versions import default_of, platform_key, resolve

SEVERITIES = ("info", "warning", "error")  # error: vLLM would refuse to start with this


@dataclass(frozen=True)
class Advice:
    rule: str
    severity: str
    message: str
    fix: str
    source: str  # the vLLM file / behaviour the rule mirrors, and the version it was read from


@dataclass(frozen=True)
class Context:
    options: Mapping[str, object]
    version: str  # a version with a spec file (vllm_versions.resolve)
    card: object | None = None  # appliance.cards.Card
    arch: object | None = None  # appliance.catalog.Arch
    agent: bool | None = None  # None: guessed from enable_auto_tool_choice

    def get(self, dest: str):
        """The option's value, or what vLLM uses when the profile leaves it out."""
        value = self.options.get(dest)
        if value is not None:
            return value
        return default_of(spec_for(self.version), dest, platform_key(self.card))

    @property
    def older_than_032(self) -> bool:
        return version_key(self.version) < version_key("0.32.0")

    @property
    def spec_tokens(self) -> int:
        sc = self.options.get("speculative_config")
        k = sc.get("num_speculative_tokens") if isinstance(sc, dict) else None
        return int(k) if isinstance(k, int) and k > 0 else 0

    @property
    def tp(self) -> int:
        return int(self.options.get("tensor_parallel_size") or 1)


def _round_up(x: int, m: int) -> int:
    return -(-x // m) * m


def captured_sizes(sizes: list[int], spec_tokens: int, max_size: int | None = None) -> list[int]:
    """The CUDA-graph sizes vLLM really captures: with k speculative tokens each decode step of one request is
    1+k tokens, so every size is rounded UP to a multiple of 1+k, sizes above the max are dropped, duplicates
    merged (vllm/config/compilation.py CompilationConfig.adjust_cudagraph_sizes_for_spec_decode)."""
    m = 1 + spec_tokens
    top = max_size if max_size is not None else max(sizes, default=0)
    if m <= 1:
        return sorted(set(sizes))
    out = sorted({_round_up(s, m) for s in sizes if _round_up(s, m) <= top})
    return out or ([m] if m <= top else [])


@dataclass(frozen=True)
class CapturePlan:
    """The CUDA-graph sizes of an engine whose profile sets them: given (the profile's list, [] when it gives only
    a max), max_given, before (what vLLM derives before speculative rounding), final (what it captures)."""

    given: list[int]
    max_given: int | None
    before: list[int]
    final: list[int]


def _default_sizes(top: int) -> list[int]:
    """vLLM's own size list up to a max: 1, 2, 4, then steps of 8 below 256, then steps of 16."""
    sizes = [i for i in (1, 2, 4) if i <= top] + list(range(8, min(top + 1, 256), 8))
    return sorted(set(sizes + (list(range(256, top + 1, 16)) if top >= 256 else [])))


def capture_plan(ctx: Context) -> CapturePlan | None:
    """None when vLLM picks the sizes itself (or runs eager); else what it will capture, following
    vllm/config/vllm.py VllmConfig._set_cudagraph_sizes (sizes above max_num_batched_tokens dropped, the max is
    the largest size left) and then adjust_cudagraph_sizes_for_spec_decode."""
    if ctx.options.get("enforce_eager"):
        return None
    cc = ctx.options.get("compilation_config")
    cc = cc if isinstance(cc, dict) else {}
    given = [int(s) for s in (cc.get("cudagraph_capture_sizes") or ctx.options.get("cudagraph_capture_sizes") or [])]
    top = cc.get("max_cudagraph_capture_size") or ctx.options.get("max_cudagraph_capture_size")
    if not given and top is None:
        return None
    batched = int(ctx.get("max_num_batched_tokens") or 2048)
    if given:
        before = sorted({s for s in given if s <= batched})
    else:
        before = _default_sizes(min(int(top), batched))
    final = captured_sizes(before, ctx.spec_tokens, before[-1] if before else 0)
    return CapturePlan(given, int(top) if top is not None else None, before, final)


# ---------------------------------------------------------------------------------------------------------------
# The rules


def _rule_awq_marlin(ctx: Context) -> Advice | None:
    if ctx.options.get("quantization") != "awq" or not ctx.older_than_032:
        return None
    return Advice(
        "awq-marlin", "warning",
        f"quantization: awq forces vLLM {ctx.version}'s slow AWQ kernel; vLLM logs \"Detected that the model can "
        "run with awq_marlin, however you specified quantization=awq explicitly, so forcing awq. Use "
        "quantization=awq_marlin for faster inference\"",
        "write quantization: awq_marlin (or leave quantization out: vLLM then picks awq_marlin itself)",
        "vllm/model_executor/layers/quantization/awq_marlin.py AWQMarlinConfig.override_quantization_method "
        "(0.19.0); from 0.32.0 awq and awq_marlin map to one AutoAWQConfig (quantization/__init__.py)")


def _rule_gptq_marlin(ctx: Context) -> Advice | None:
    if ctx.options.get("quantization") != "gptq" or not ctx.older_than_032:
        return None
    return Advice(
        "gptq-marlin", "warning",
        f"quantization: gptq forces vLLM {ctx.version}'s slow GPTQ kernel; vLLM logs \"Detected that the model "
        "can run with gptq_marlin, however you specified quantization=gptq explicitly, so forcing gptq. Use "
        "quantization=gptq_marlin for faster inference\"",
        "write quantization: gptq_marlin (or leave quantization out)",
        "vllm/model_executor/layers/quantization/gptq_marlin.py GPTQMarlinConfig.override_quantization_method "
        "(0.19.0); from 0.32.0 gptq and gptq_marlin map to one AutoGPTQConfig")


def _rule_capture_rounding(ctx: Context) -> Advice | None:
    plan = capture_plan(ctx)
    if plan is None or not ctx.spec_tokens or not plan.given or plan.final == plan.before:
        return None
    m, sizes = 1 + ctx.spec_tokens, plan.given
    src = "vllm/config/compilation.py CompilationConfig.adjust_cudagraph_sizes_for_spec_decode (0.19.0, 0.33.0)"
    example = [m * i for i in range(1, 5)]
    if not plan.final:
        return Advice(
            "capture-sizes-speculative", "error",
            f"with num_speculative_tokens {ctx.spec_tokens} every capture size must be a multiple of {m}, and "
            f"none of {sizes} rounds up to one within the largest size: vLLM refuses to start (\"No valid "
            "cudagraph sizes after rounding\")",
            f"write cudagraph_capture_sizes as multiples of {m} (e.g. {example})", src)
    return Advice(
        "capture-sizes-speculative", "warning",
        f"with num_speculative_tokens {ctx.spec_tokens} every decode step of a request is {m} tokens, so vLLM "
        f"rounds cudagraph_capture_sizes {sizes} up to multiples of {m} and drops those above the largest: it "
        f"captures {plan.final}, not what the profile says",
        f"write cudagraph_capture_sizes as multiples of {m} (e.g. {example} …) up to max_num_seqs × {m}", src)


def _rule_capture_vs_seqs(ctx: Context) -> Advice | None:
    plan = capture_plan(ctx)
    if plan is None or not plan.final:  # no size at all: capture-sizes-speculative says so
        return None
    m, largest = 1 + ctx.spec_tokens, plan.final[-1]
    seqs = int(ctx.get("max_num_seqs") or 0)
    if not seqs or largest >= seqs * m:
        return None
    covered = largest // m
    return Advice(
        "capture-sizes-max-num-seqs", "warning",
        f"the largest CUDA graph captures {largest} tokens = {covered} decoding request(s) of {m} token(s), but "
        f"max_num_seqs is {seqs}: with more than {covered} requests decoding at once every step runs without "
        "CUDA graphs (eager, much slower per token)",
        f"capture up to {seqs * m} tokens (sizes up to max_num_seqs × {m}, within max_num_batched_tokens), or "
        f"drop cudagraph_capture_sizes and let vLLM pick (it captures up to min(max_num_seqs × {m} × 2, 512))",
        "vllm/config/vllm.py VllmConfig._set_cudagraph_sizes (default max size max_num_seqs × (1+k) × 2, capped "
        "at 512) and vllm/v1/worker/gpu_model_runner.py (batches above the largest size run eager) (0.19.0)")


def _rule_capture_max_mismatch(ctx: Context) -> Advice | None:
    plan = capture_plan(ctx)
    if plan is None or not plan.given or plan.max_given is None:
        return None
    valid = plan.before[-1] if plan.before else 0
    if plan.max_given == valid:
        return None
    return Advice(
        "capture-sizes-max-mismatch", "error",
        f"max_cudagraph_capture_size {plan.max_given} and the largest of cudagraph_capture_sizes ({valid}, "
        "after dropping sizes above max_num_batched_tokens) disagree: with both given vLLM refuses to start "
        "(\"customized max_cudagraph_capture_size should be consistent with the max value of "
        "cudagraph_capture_sizes\")",
        "give only one of the two (the list, or the max and let vLLM fill in the sizes)",
        "vllm/config/vllm.py VllmConfig._set_cudagraph_sizes (0.19.0)")


def _rule_fp8_weights(ctx: Context) -> Advice | None:
    if ctx.options.get("quantization") != "fp8" or ctx.card is None or ctx.card.native_fp8:
        return None
    return Advice(
        "fp8-weights-no-native-fp8", "warning",
        f"{ctx.card.name} ({ctx.card.arch}) has no FP8 tensor cores; vLLM logs \"Your GPU does not have native "
        "support for FP8 computation but FP8 quantization is being used. Weight-only FP8 compression will be "
        "used leveraging the Marlin kernel. This may degrade performance for compute-heavy workloads.\"",
        "use an INT4 checkpoint with a Marlin kernel (AWQ → awq_marlin, GPTQ → gptq_marlin) or an INT8 W8A8 "
        "(compressed-tensors) one on this card; FP8 weights pay off on Ada/Hopper/Blackwell",
        "vllm/model_executor/layers/quantization/utils/marlin_utils_fp8.py prepare_fp8_layer_for_marlin "
        "(0.19.0, 0.33.0)")


def _rule_fp8_kv_flash_attn(ctx: Context) -> Advice | None:
    kv = str(ctx.options.get("kv_cache_dtype") or "")
    backend = str(ctx.options.get("attention_backend") or "").upper()
    if not kv.startswith("fp8") or backend != "FLASH_ATTN" or ctx.card is None:
        return None
    if ctx.card.arch == "hopper" or (ctx.card.arch == "blackwell" and not ctx.older_than_032):
        return None
    return Advice(
        "fp8-kv-flash-attn", "error",
        f"kv_cache_dtype {kv} with attention_backend FLASH_ATTN: FlashAttention stores an FP8 KV cache only on "
        f"Hopper (FA3), not on {ctx.card.name} ({ctx.card.arch}); vLLM refuses to start (\"Selected backend "
        "FLASH_ATTN is not valid for this configuration\" / \"FlashAttention does not support fp8 kv-cache on "
        "this device\")",
        "write attention_backend: FLASHINFER (or leave it out: vLLM then picks a backend that supports FP8 KV), "
        "or kv_cache_dtype: auto",
        "vllm/v1/attention/backends/fa_utils.py flash_attn_supports_fp8 / flash_attn_supports_kv_cache_dtype "
        "and vllm/platforms/cuda.py backend validation (0.19.0, 0.33.0)")


def _rule_prefix_caching(ctx: Context) -> Advice | None:
    agent = ctx.agent if ctx.agent is not None else bool(ctx.options.get("enable_auto_tool_choice"))
    if ctx.options.get("enable_prefix_caching") is not False or not agent:
        return None
    return Advice(
        "prefix-caching-agent", "warning",
        "prefix caching is turned off on an agent engine: every turn resends the system prompt, the tool "
        "registry and the conversation so far, and without the cache vLLM prefills all of it again each time "
        "(vLLM turns prefix caching on by default for generative models; the profile overrides that)",
        "write enable_prefix_caching: true (or leave it out)",
        "vllm/engine/arg_utils.py EngineArgs._set_default_chunked_prefill_and_prefix_caching_args (0.19.0)")


def _rule_batched_vs_model_len(ctx: Context) -> Advice | None:
    batched, model_len = ctx.get("max_num_batched_tokens"), ctx.options.get("max_model_len")
    if ctx.options.get("enable_chunked_prefill") is not False or not batched or not isinstance(model_len, int):
        return None
    if batched >= model_len:
        return None
    return Advice(
        "batched-tokens-model-len", "error",
        f"chunked prefill is off and max_num_batched_tokens ({batched}) is smaller than max_model_len "
        f"({model_len}): a prompt must then fit in one batch, and vLLM refuses to start (\"This effectively limits "
        "the maximum sequence length to max_num_batched_tokens\")",
        f"write enable_chunked_prefill: true (or leave it out), or max_num_batched_tokens: {model_len}",
        "vllm/config/scheduler.py SchedulerConfig.verify_max_model_len (0.19.0, 0.33.0)")


def _rule_batched_vs_seqs(ctx: Context) -> Advice | None:
    batched, seqs = ctx.options.get("max_num_batched_tokens"), ctx.get("max_num_seqs")
    model_len = ctx.options.get("max_model_len")
    if not isinstance(batched, int) or not seqs:
        return None
    if batched < seqs:
        return Advice(
            "batched-tokens-max-num-seqs", "error",
            f"max_num_batched_tokens ({batched}) is smaller than max_num_seqs ({seqs}): vLLM refuses to start "
            "(\"must be greater than or equal to max_num_seqs\")",
            f"write max_num_batched_tokens: {max(seqs, 2048)} or lower max_num_seqs to {batched}",
            "vllm/config/scheduler.py SchedulerConfig.verify_max_model_len (0.19.0, 0.33.0)")
    if isinstance(model_len, int) and batched > seqs * model_len:
        return Advice(
            "batched-tokens-max-num-seqs", "warning",
            f"max_num_batched_tokens ({batched}) exceeds max_num_seqs × max_model_len ({seqs * model_len}); vLLM "
            "logs \"This may lead to unexpected behavior\" and the extra budget can never be used",
            f"write max_num_batched_tokens: {seqs * model_len} or less",
            "vllm/config/scheduler.py SchedulerConfig.verify_max_model_len (0.19.0)")
    return None


def _rule_tp_attention_heads(ctx: Context) -> Advice | None:
    if ctx.arch is None or ctx.tp <= 1 or ctx.arch.heads % ctx.tp == 0:
        return None
    heads = ctx.arch.heads
    good = [t for t in range(1, max(ctx.tp, 8) + 1) if heads % t == 0]
    return Advice(
        "tp-attention-heads", "error",
        f"{heads} attention heads cannot be split over tensor_parallel_size {ctx.tp}: vLLM refuses to start "
        "(\"Total number of attention heads must be divisible by tensor parallel size\")",
        f"use a tensor_parallel_size in {good} (pipeline_parallel_size for the remaining GPUs)",
        "vllm/config/model.py ModelConfig.verify_with_parallel_config (0.19.0, 0.33.0)")


def _rule_tp_kv_heads(ctx: Context) -> Advice | None:
    if ctx.arch is None or not ctx.arch.kv_heads or ctx.tp <= ctx.arch.kv_heads or ctx.arch.heads % ctx.tp:
        return None
    kv = ctx.arch.kv_heads
    if ctx.tp % kv:
        return Advice(
            "tp-kv-heads", "error",
            f"{kv} KV heads cannot be replicated evenly over tensor_parallel_size {ctx.tp}: vLLM fails while "
            "building the attention layers (divide() in QKVParallelLinear)",
            f"use tensor_parallel_size {kv} or a divisor of it",
            "vllm/model_executor/layers/linear.py QKVParallelLinear.__init__ (0.19.0, 0.33.0)")
    return Advice(
        "tp-kv-heads", "info",
        f"the model has {kv} KV heads and tensor_parallel_size is {ctx.tp}: each KV head is replicated on "
        f"{ctx.tp // kv} GPUs, so the GPUs beyond {kv} add weight memory but no KV-cache capacity per token",
        f"consider tensor_parallel_size {kv} with pipeline_parallel_size {ctx.tp // kv}, or two engines",
        "vllm/model_executor/layers/linear.py QKVParallelLinear.__init__ num_kv_head_replicas (0.19.0, 0.33.0)")


def _rule_deprecated(ctx: Context) -> Advice | None:
    spec = spec_for(ctx.version)
    used = [d for d in ctx.options if d in spec.flags and spec.flags[d].deprecated]
    if not used:
        return None
    notes = "; ".join(spec.flags[d].deprecation or f"{d} is deprecated" for d in used)
    return Advice(
        "deprecated-option", "warning",
        f"vLLM {ctx.version} logs \"argument '{used[0]}' is deprecated\": {notes}",
        f"remove {', '.join(used)} before the next vLLM upgrade (it stops starting then)",
        "vllm/utils/argparse_utils.py FlexibleArgumentParser (deprecated arguments) and vllm/engine/arg_utils.py "
        f"(the deprecation texts) ({ctx.version})")


RULES: dict[str, Callable[[Context], Advice | None]] = {
    "awq-marlin": _rule_awq_marlin,
    "gptq-marlin": _rule_gptq_marlin,
    "capture-sizes-speculative": _rule_capture_rounding,
    "capture-sizes-max-num-seqs": _rule_capture_vs_seqs,
    "capture-sizes-max-mismatch": _rule_capture_max_mismatch,
    "fp8-weights-no-native-fp8": _rule_fp8_weights,
    "fp8-kv-flash-attn": _rule_fp8_kv_flash_attn,
    "prefix-caching-agent": _rule_prefix_caching,
    "batched-tokens-model-len": _rule_batched_vs_model_len,
    "batched-tokens-max-num-seqs": _rule_batched_vs_seqs,
    "tp-attention-heads": _rule_tp_attention_heads,
    "tp-kv-heads": _rule_tp_kv_heads,
    "deprecated-option": _rule_deprecated,
}


def advise(options: Mapping[str, object], version: str | None = None, *, card=None, arch=None,
           agent: bool | None = None) -> list[Advice]:
    """Every advice for one engine: its vLLM options, the vLLM version that runs it (an unknown version is
    judged by the nearest older spec), its card and the model's shape (each optional)."""
    ctx = Context(options, resolve(version).version if version else spec_for().version, card, arch, agent)
    return [a for rule in RULES.values() if (a := rule(ctx)) is not None]


def blocking(advice: list[Advice]) -> list[Advice]:
    """The advice `--strict` refuses on: severity warning or error."""
    return [a for a in advice if a.severity in ("warning", "error")]
