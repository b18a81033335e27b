"""Pure: Profile + GPUs → FitReport. Will it fit in VRAM, how much KV cache is left, and what to change if not.

The model of memory follows vLLM V1 (techref §1.7):
  budget per GPU   = gpu_memory_utilization × total memory
  KV available     = budget − weights on this GPU − overhead (CUDA context, activations at
                     max_num_batched_tokens, CUDA graphs, per-sequence state of linear-attention layers)
  KV bytes / token = 2 × KV layers × KV heads per TP rank × head dim × bytes of the KV dtype   (per GPU)
vLLM starts when one request of max_model_len fits in the KV cache; it runs max_num_seqs requests of full
length at once only if max_model_len × max_num_seqs fits too. Both are reported; the first decides `fits`.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

from appliance import catalog
from appliance.cards import GIB, Card
from appliance.profile import Engine, Profile

from appliance.memory import BLOCK, KV_DTYPE_BYTES, default_batch_limits, kv_bytes_per_token, overhead_bytes

@dataclass(frozen=True)
class GPU:
    """What the fit check needs to know about one GPU."""

    index: int
    name: str
    memory_bytes: int
    used_bytes: int = 0  # memory held by other processes right now (from NVML), 0 when unknown

    @classmethod
    def from_card(cls, index: int, card: Card) -> "GPU":
        return cls(index, card.name, card.memory_bytes)


@dataclass
class EngineFit:
    engine: str
    model: str
    model_source: str
    gpus: list[int]
    tensor_parallel_size: int
    weights_bytes: int  # all ranks
    weights_bytes_per_gpu: int
    overhead_bytes_per_gpu: int
    budget_bytes_per_gpu: int
    available_kv_bytes: int  # per GPU (the smallest GPU decides)
    kv_bytes_per_token: int  # per GPU
    kv_dtype: str
    max_model_len: int
    max_num_seqs: int
    kv_cache_bytes: int  # per GPU, for max_model_len × max_num_seqs
    kv_tokens: int  # tokens of KV that fit
    max_concurrency_at_max_len: float
    fits: bool  # vLLM starts and serves at least one request of max_model_len
    full_concurrency_fits: bool  # max_num_seqs requests of max_model_len fit at once
    verdict: str
    fixes: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


@dataclass
class GPUUse:
    index: int
    name: str
    memory_bytes: int
    used_by_others_bytes: int
    engines: list[str]
    weights_bytes: int
    overhead_bytes: int
    kv_bytes: int  # KV pool vLLM will allocate (whole budget left after weights)
    budget_bytes: int
    free_after_bytes: int


@dataclass
class FitReport:
    profile: str
    fits: bool
    engines: list[EngineFit]
    gpus: list[GPUUse]
    problems: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


class UnknownModel(Exception):
    def __init__(self, model: str):
        super().__init__(model)
        self.model = model


def _engine_gpus(profile: Profile, engine: Engine, gpus: list[GPU]) -> list[GPU]:
    by_index = {g.index: g for g in gpus}
    if engine.gpus is not None:
        wanted = list(engine.gpus)
    else:
        pool = sorted(by_index) if profile.gpus == "all" else list(profile.gpus)
        # engines without explicit gpus take the next free ones in order
        taken = [g for e in profile.engines if e is not engine and e.gpus for g in e.gpus]
        pool = [g for g in pool if g not in taken]
        earlier = [e for e in profile.engines[: profile.engines.index(engine)] if e.gpus is None]
        start = sum(e.gpu_count for e in earlier)
        wanted = pool[start: start + engine.gpu_count]
    return [by_index[i] for i in wanted if i in by_index]


def engine_gpu_indices(profile: Profile, engine: Engine, gpu_count: int) -> list[int]:
    """The GPU indices an engine runs on, given how many GPUs the machine has."""
    fake = [GPU(i, "", 0) for i in range(gpu_count)]
    return [g.index for g in _engine_gpus(profile, engine, fake)]


def _spec_is_mtp(engine: Engine) -> bool:
    sc = engine.speculative_config or {}
    method = str(sc.get("method", ""))
    return method == "mtp" or method.endswith("_mtp")


def fit_engine(profile: Profile, engine: Engine, gpus: list[GPU], *, use_hf_cache: bool = True) -> EngineFit:
    ckpt = catalog.lookup(engine.model, use_hf_cache=use_hf_cache)
    if ckpt is None:
        raise UnknownModel(engine.model)
    ckpt = catalog.with_quantization(ckpt, engine.quantization)
    arch = ckpt.arch
    egpus = _engine_gpus(profile, engine, gpus)
    tp, pp = engine.tensor_parallel_size, engine.pipeline_parallel_size
    notes: list[str] = []
    fixes: list[str] = []
    if len(egpus) < engine.gpu_count:
        have = ", ".join(str(g.index) for g in egpus) or "none"
        raise_msg = (f"engine {engine.label} needs {engine.gpu_count} GPUs (tensor_parallel_size {tp} × "
                     f"pipeline_parallel_size {pp}); GPUs available to it: {have}")
        return _impossible(engine, ckpt, egpus, raise_msg,
                           [f"run on a machine with {engine.gpu_count} GPUs or lower tensor_parallel_size"])
    smallest = min(egpus, key=lambda g: g.memory_bytes - g.used_bytes)
    util = engine.gpu_memory_utilization or 0.9
    budget = int(math.ceil(smallest.memory_bytes * util))
    weights = catalog.weights_bytes(ckpt)
    weights_gpu = int(weights / (tp * pp))
    d_seqs, d_batched = default_batch_limits(smallest.memory_bytes, smallest.name)
    max_seqs = engine.max_num_seqs or d_seqs
    batched = engine.max_num_batched_tokens or d_batched
    max_len = engine.max_model_len or arch.max_position
    overhead = overhead_bytes(arch, tp, pp, max_seqs, batched, bool(engine.option("enforce_eager")))
    if arch.state_bytes_per_seq:
        notes.append(f"hybrid model: {arch.kv_layers} of {arch.layers} layers keep a growing KV cache; the others "
                     f"hold a fixed state of {arch.state_bytes_per_seq / 2**20:.0f} MiB per sequence")
    spec_mtp = _spec_is_mtp(engine)
    if spec_mtp and arch.mtp_layers:
        notes.append(f"MTP speculative decoding adds {arch.mtp_layers} KV layer(s)")
    per_token = kv_bytes_per_token(arch, tp, engine.kv_cache_dtype, pp, spec_mtp and bool(arch.mtp_layers))
    kv_dtype = engine.kv_cache_dtype or "auto"
    available = budget - weights_gpu - overhead
    others = smallest.used_bytes
    if others and smallest.memory_bytes - others < budget:
        notes.append(f"GPU {smallest.index} has {others / GIB:.1f} GiB in use by other processes; vLLM needs "
                     f"{budget / GIB:.1f} GiB free at start")
    kv_tokens = max(0, available // per_token // BLOCK * BLOCK) if available > 0 else 0
    demand = max_len * max_seqs * per_token
    conc = kv_tokens / max_len if max_len else 0.0
    fits = available > 0 and kv_tokens >= max_len and (not others or smallest.memory_bytes - others >= budget)
    full = fits and kv_tokens >= max_len * max_seqs
    gib = lambda b: f"{b / GIB:.1f} GiB"  # noqa: E731
    if available <= 0:
        verdict = (f"does not fit: weights {gib(weights_gpu)} + overhead {gib(overhead)} per GPU exceed the "
                   f"{gib(budget)} budget (gpu_memory_utilization {util} × {gib(smallest.memory_bytes)}); "
                   "vLLM stops with \"No available memory for the cache blocks\"")
        fixes += _weight_fixes(engine, ckpt, weights_gpu, overhead, budget, smallest, egpus)
    elif kv_tokens < max_len:
        est = kv_tokens // 1024 * 1024 if kv_tokens >= 1024 else kv_tokens
        verdict = (f"does not fit: one request of max_model_len {max_len} needs {gib(max_len * per_token)} of KV "
                   f"cache, {gib(available)} is left; vLLM refuses to start (estimated maximum model length "
                   f"{kv_tokens})")
        fixes += _kv_fixes(engine, kv_tokens, per_token, max_len, 1, available, arch, tp, pp, spec_mtp, est_only=est)
    elif not full:
        verdict = (f"fits, KV-limited: {kv_tokens} tokens of KV cache hold {conc:.1f} requests of max_model_len "
                   f"{max_len}, fewer than max_num_seqs {max_seqs}; longer requests queue when many run at once")
        fixes += _kv_fixes(engine, kv_tokens, per_token, max_len, max_seqs, available, arch, tp, pp, spec_mtp)
    else:
        verdict = (f"fits: {kv_tokens} tokens of KV cache, {conc:.1f} requests of max_model_len {max_len} at once "
                   f"(max_num_seqs {max_seqs})")
    if others and smallest.memory_bytes - others < budget:
        fits = full = False
        verdict = (f"does not fit right now: GPU {smallest.index} has {gib(smallest.memory_bytes - others)} free, "
                   f"the engine asks for {gib(budget)}")
        fixes.insert(0, f"stop what else runs on GPU {smallest.index}, or lower gpu_memory_utilization to "
                        f"{max(0.05, (smallest.memory_bytes - others) / smallest.memory_bytes - 0.01):.2f}")
    return EngineFit(
        engine=engine.label, model=engine.model, model_source=ckpt.source, gpus=[g.index for g in egpus],
        tensor_parallel_size=tp, weights_bytes=weights, weights_bytes_per_gpu=weights_gpu,
        overhead_bytes_per_gpu=overhead, budget_bytes_per_gpu=budget, available_kv_bytes=max(0, available),
        kv_bytes_per_token=per_token, kv_dtype=kv_dtype, max_model_len=max_len, max_num_seqs=max_seqs,
        kv_cache_bytes=demand, kv_tokens=kv_tokens, max_concurrency_at_max_len=round(conc, 2), fits=fits,
        full_concurrency_fits=full, verdict=verdict, fixes=fixes, notes=notes)


def _impossible(engine: Engine, ckpt, egpus, msg: str, fixes: list[str]) -> EngineFit:
    return EngineFit(engine.label, engine.model, ckpt.source, [g.index for g in egpus], engine.tensor_parallel_size,
                     catalog.weights_bytes(ckpt), 0, 0, 0, 0, 0, engine.kv_cache_dtype or "auto",
                     engine.max_model_len or ckpt.arch.max_position, engine.max_num_seqs or 0, 0, 0, 0.0, False,
                     False, "does not fit: " + msg, fixes)


def _round_len(tokens: int) -> int:
    """A max_model_len suggestion: a multiple of 1024 when large, of 16 otherwise."""
    if tokens >= 4096:
        return tokens // 1024 * 1024
    return max(BLOCK, tokens // BLOCK * BLOCK)


def _kv_fixes(engine: Engine, kv_tokens: int, per_token: int, max_len: int, seqs: int, available: int, arch, tp,
              pp, spec_mtp, est_only: int | None = None) -> list[str]:
    fixes = []
    target_len = _round_len(kv_tokens // seqs)
    if target_len >= BLOCK:
        fixes.append(f"lower max_model_len to {target_len}")
    if seqs > 1 and kv_tokens // max_len >= 1:
        fixes.append(f"or max_num_seqs to {kv_tokens // max_len}")
    dtype = engine.kv_cache_dtype or "auto"
    if KV_DTYPE_BYTES.get(dtype) in (None, 2):
        fp8_per_token = kv_bytes_per_token(arch, tp, "fp8", pp, spec_mtp and bool(arch.mtp_layers))
        fp8_tokens = available // fp8_per_token // BLOCK * BLOCK
        if fp8_tokens >= max_len * seqs:
            fixes.append("or use kv_cache_dtype fp8")
        else:
            fixes.append(f"or use kv_cache_dtype fp8 (holds {fp8_tokens} tokens)")
    util = engine.gpu_memory_utilization or 0.9
    if util < 0.95:
        fixes.append("or raise gpu_memory_utilization (0.95 at most leaves room for the desktop and CUDA)")
    return fixes


def _weight_fixes(engine: Engine, ckpt, weights_gpu, overhead, budget, smallest: GPU, egpus) -> list[str]:
    fixes = []
    need = weights_gpu + overhead
    util_needed = need / smallest.memory_bytes
    if util_needed < 0.97:
        fixes.append(f"raise gpu_memory_utilization to {min(0.97, util_needed + 0.04):.2f}")
    if ckpt.weight_bits >= 16:
        fixes.append("use a quantized checkpoint (AWQ 4-bit weighs about a third) or quantization: fp8")
    tp = engine.tensor_parallel_size
    fixes.append(f"or spread it over more GPUs (tensor_parallel_size {tp * 2})")
    if engine.max_num_batched_tokens and engine.max_num_batched_tokens > 2048:
        fixes.append("or lower max_num_batched_tokens to 2048 (smaller activations)")
    return fixes


def fit_profile(profile: Profile, gpus: list[GPU], *, use_hf_cache: bool = True) -> FitReport:
    engines: list[EngineFit] = []
    problems: list[str] = []
    for engine in profile.engines:
        try:
            engines.append(fit_engine(profile, engine, gpus, use_hf_cache=use_hf_cache))
        except UnknownModel as exc:
            problems.append(f"engine {engine.label}: nothing is known about model {exc.model}: download it (its "
                            "config.json is then read from the Hugging Face cache) or describe it in "
                            "<config dir>/models.yaml")
    wanted = sorted({i for e in engines for i in e.gpus})
    if profile.gpus != "all":
        missing = [i for i in profile.gpus if i not in {g.index for g in gpus}]
        if missing:
            problems.append(f"the profile uses GPU {', '.join(map(str, missing))}, this machine has "
                            f"{len(gpus)} GPU(s) (0–{len(gpus) - 1})")
    uses = []
    for g in gpus:
        on = [e for e in engines if g.index in e.gpus]
        if not on and g.index not in wanted:
            continue
        w = sum(e.weights_bytes_per_gpu for e in on)
        o = sum(e.overhead_bytes_per_gpu for e in on)
        b = sum(e.budget_bytes_per_gpu for e in on)
        kv = sum(e.available_kv_bytes for e in on)
        uses.append(GPUUse(g.index, g.name, g.memory_bytes, g.used_bytes, [e.engine for e in on], w, o, kv, b,
                           g.memory_bytes - g.used_bytes - b))
        if b > g.memory_bytes - g.used_bytes:
            problems.append(f"GPU {g.index}: engines ask for {b / GIB:.1f} GiB, "
                            f"{(g.memory_bytes - g.used_bytes) / GIB:.1f} GiB is free")
    fits = bool(engines) and not problems and all(e.fits for e in engines)
    return FitReport(profile.name, fits, engines, uses, problems)
