"""Pure: Profile + GPUs → FitReport. Will it fit in VRAM, how much KV cache is left, and what to change if not.

The model of memory is appliance.memory (vLLM V1's own arithmetic, calibrated on published startup logs):
  budget per GPU   = gpu_memory_utilization × the memory CUDA reports (a little under NVML's total)
  KV available     = budget − weights on this GPU − overhead (peak activation of the profiling pass,
                     non-torch memory, CUDA graphs from vLLM 0.21, per-sequence state of linear-attention layers)
  KV bytes / token = 2 × KV layers × KV heads per TP rank × head dim × bytes of the KV dtype   (per GPU)
vLLM starts when one request of max_model_len fits in the KV cache; it runs max_num_seqs requests of full
length at once only if max_model_len × max_num_seqs fits too. Both are reported; the first decides `fits`.

Every report says which inputs were exact and which estimated (`inputs`, `confidence`). With a store of
measurements (appliance.measured) the check also shows what vLLM measured on this rig, and a start of the
same model on the same card corrects the estimated overhead and weights of the next prediction.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from appliance import cards, catalog, catalog_user, fit_fixes, fit_limits, memory, vllm_spec
from appliance import measured as measured_mod
from appliance.cards import GIB, Card
from appliance.memory import kv_bytes_per_token  # noqa: F401  (re-exported: callers size KV with it)
from appliance.profile import Engine, Profile
from appliance.profile.placement import engine_gpu_choice, engine_gpu_indices  # noqa: F401 (re-exported)


@dataclass(frozen=True)
class GPU:
    """What the fit check needs to know about one GPU."""

    index: int
    name: str
    memory_bytes: int
    used_bytes: int = 0  # memory held by other processes right now (from NVML), 0 when unknown
    visible_bytes: int | None = None  # what CUDA reports as total, when known (else from the card table)

    @classmethod
    def from_card(cls, index: int, card: Card) -> "GPU":
        return cls(index, card.name, card.memory_bytes, visible_bytes=card.visible_bytes)

    def visible(self) -> tuple[int, str]:
        """(CUDA total, cards.PUBLISHED | 'estimated'). visible_bytes only ever comes from the card table
        (GPU.from_card), so it is labelled as published, never as measured on this rig."""
        if self.visible_bytes:
            return self.visible_bytes, cards.PUBLISHED
        return cards.visible_bytes(self.name, self.memory_bytes)


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
    available_kv_bytes: int  # per GPU (the smallest GPU decides): budget − weights − overhead, before whole blocks
    kv_bytes_per_token: int  # per GPU (with tensor parallelism each GPU holds its share of the KV heads)
    kv_dtype: str
    max_model_len: int
    max_num_seqs: int
    kv_cache_needed_bytes: int  # per GPU: what max_num_seqs requests of max_model_len need (the requirement)
    kv_tokens: int  # tokens of KV that fit
    max_concurrency_at_max_len: float  # requests of max_model_len at once, rounded DOWN to one decimal
    fits: bool  # vLLM starts and serves at least one request of max_model_len
    full_concurrency_fits: bool  # max_num_seqs requests of max_model_len fit at once
    verdict: str
    fixes: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    vllm_version: str = ""
    visible_bytes_per_gpu: int = 0  # what CUDA reports as total on the smallest GPU
    activation_bytes_per_gpu: int = 0
    non_torch_bytes_per_gpu: int = 0
    cudagraph_bytes_per_gpu: int = 0
    # how each input is known: config, weights, card_memory, overhead → "exact" | "stated" | "measured on this
    # rig" | "estimated" | "built-in catalog"
    inputs: dict = field(default_factory=dict)
    confidence: str = ""  # one line: "exact inputs" or what was estimated
    measured: dict | None = None  # last measured on this rig for the same model, card, vLLM and settings
    gpu_name: str = ""  # the smallest of the engine's GPUs, as NVML names it (the store's card key)
    settings: dict = field(default_factory=dict)  # resolved settings (appliance.measured.SETTING_KEYS)
    kv_cache_allocated_bytes: int = 0  # per GPU: the cache vLLM allocates (available_kv_bytes cut to whole blocks)


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
    measurements_problem: str | None = None  # the store of measurements was unreadable and was ignored
    unknown_models: list[str] = field(default_factory=list)  # models nothing is known about: the fit is unchecked

    @property
    def verdict(self) -> str:
        """'fits', 'does not fit', or 'unknown model' when nothing else fails but a model could not be checked
        (not a "does not fit": the owner's fix is to describe the model, not to change the profile)."""
        if self.fits:
            return "fits"
        known_problems = len(self.problems) > len(self.unknown_models)
        if self.unknown_models and not known_problems and all(e.fits for e in self.engines):
            return "unknown model"
        return "does not fit"

    @property
    def headline(self) -> str:
        """The last line of a printed check."""
        return {"fits": "FITS", "unknown model": "UNKNOWN MODEL: not checked"}.get(self.verdict, "DOES NOT FIT")

    def to_dict(self) -> dict:
        return dict(asdict(self), verdict=self.verdict)


class UnknownModel(Exception):
    def __init__(self, model: str):
        super().__init__(model)
        self.model = model


def _engine_gpus(profile: Profile, engine: Engine, gpus: list[GPU]) -> list[GPU]:
    by_index = {g.index: g for g in gpus}
    return [by_index[i] for i in engine_gpu_choice(profile, engine, list(by_index))]


def _spec_is_mtp(engine: Engine) -> bool:
    sc = engine.speculative_config or {}
    method = str(sc.get("method", ""))
    return method == "mtp" or method.endswith("_mtp")


def fit_engine(profile: Profile, engine: Engine, gpus: list[GPU], *, use_hf_cache: bool = True,
               store=None) -> EngineFit:
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
    smallest = min(egpus, key=lambda g: g.visible()[0] - g.used_bytes)
    visible, visible_how = smallest.visible()
    version = _engine_vllm_version(engine)
    defaults = _serve_defaults(version, smallest)  # what this vLLM uses for what the profile leaves out
    util = engine.gpu_memory_utilization or defaults["gpu_memory_utilization"]
    weights = catalog.weights_bytes(ckpt)
    weights_gpu = int(weights / (tp * pp))
    d_seqs, d_batched = defaults["max_num_seqs"], defaults["max_num_batched_tokens"]
    max_seqs = engine.max_num_seqs or d_seqs
    batched = engine.max_num_batched_tokens or d_batched
    max_len = engine.max_model_len or arch.max_position
    eager = bool(engine.option("enforce_eager"))
    spec_mtp = _spec_is_mtp(engine) and bool(arch.mtp_layers)
    nvlink = cards.nvlink(smallest.name)
    knobs = dict(util=util, tp=tp, pp=pp, max_num_seqs=max_seqs, max_num_batched_tokens=batched,
                 kv_cache_dtype=engine.kv_cache_dtype, enforce_eager=eager, vllm_version=version, spec_mtp=spec_mtp,
                 nvlink=nvlink, sampler=memory.default_sampler(version))
    inputs = _inputs(ckpt, visible_how)
    measured_overhead = None
    last = None
    settings = measured_mod.settings_of(engine, max_len, max_seqs, batched, util)
    if store is not None:
        last = store.latest(engine.model, smallest.name, vllm_version=version, settings=settings)
        learned = measured_mod.learned(store, engine.model, smallest.name, tp=tp, pp=pp, vllm_version=version)
        if learned is not None:
            weights_gpu, residual = _learn(learned, arch, visible, weights_gpu, nvlink)
            if residual is not None:
                measured_overhead = residual + memory.overhead_bytes(
                    arch, tp, pp, max_seqs, batched, eager, vllm_version=version, nvlink=nvlink,
                    sampler=memory.default_sampler(version))
                inputs["overhead"] = "measured on this rig"
            if learned.weights_bytes:
                inputs["weights"] = "measured on this rig"
    p = memory.plan(arch, weights_gpu, visible, overhead=measured_overhead, **knobs)
    budget, overhead, available, per_token = p.budget, p.overhead, p.kv, p.kv_bytes_per_token
    if arch.state_bytes_per_seq:
        notes.append(f"hybrid model: {arch.kv_layers} of {arch.layers} layers keep a growing KV cache; the others "
                     f"hold a fixed state of {arch.state_bytes_per_seq / 2**20:.0f} MiB per sequence")
    if spec_mtp:
        notes.append(f"MTP speculative decoding adds {arch.mtp_layers} KV layer(s)")
    limits = fit_limits.known_limits(arch)
    notes += limits
    kv_dtype = engine.kv_cache_dtype or "auto"
    others = smallest.used_bytes
    if others and visible - others < budget:
        notes.append(f"GPU {smallest.index} has {others / GIB:.1f} GiB in use by other processes; vLLM needs "
                     f"{budget / GIB:.1f} GiB free at start")
    kv_tokens = p.kv_tokens
    demand = max_len * max_seqs * per_token
    # a capacity claim rounds down, to one decimal, once: every place that prints it (:.1f) then agrees, and
    # "holds 1.9 requests" never sits next to "max_num_seqs to 1" as "2.0" did
    conc = kv_tokens * 10 // max_len / 10 if max_len else 0.0
    fits = available > 0 and kv_tokens >= max_len and (not others or visible - others >= budget)
    full = fits and kv_tokens >= max_len * max_seqs
    gib = lambda b: f"{b / GIB:.1f} GiB"  # noqa: E731
    spare = _gpus_for_tp(profile, engine, gpus)
    def replan(**change) -> memory.Plan:  # the same model with one setting changed, for the suggested fixes
        t = change.get("tp", tp)
        return memory.plan(arch, int(weights / (t * pp)), visible, **{**knobs, **change})

    if available <= 0:
        verdict = (f"does not fit: weights {gib(weights_gpu)} + overhead {gib(overhead)} per GPU exceed the "
                   f"{gib(budget)} budget (gpu_memory_utilization {util} × {gib(visible)} CUDA can use); "
                   "vLLM stops with \"No available memory for the cache blocks\"")
        fixes += fit_fixes.weight_fixes(engine, ckpt.weight_bits, weights_gpu, overhead, visible, util, spare)
    elif kv_tokens < max_len:
        verdict = (f"does not fit: one request of max_model_len {max_len} needs {gib(max_len * per_token)} of KV "
                   f"cache, {gib(available)} is left; vLLM refuses to start (estimated maximum model length "
                   f"{kv_tokens})")
        fixes += fit_fixes.kv_fixes(engine, kv_tokens, max_len, 1, util, tp, arch.kv_heads, replan, spare)
    elif not full:
        verdict = (f"fits, KV-limited: {kv_tokens} tokens of KV cache hold {conc:.1f} requests of max_model_len "
                   f"{max_len}, fewer than max_num_seqs {max_seqs}; longer requests queue when many run at once")
        fixes += fit_fixes.kv_fixes(engine, kv_tokens, max_len, max_seqs, util, tp, arch.kv_heads, replan, spare)
    else:
        verdict = (f"fits: {kv_tokens} tokens of KV cache, {conc:.1f} requests of max_model_len {max_len} at once "
                   f"(max_num_seqs {max_seqs})")
    if others and visible - others < budget:
        fits = full = False
        verdict = (f"does not fit right now: GPU {smallest.index} has {gib(visible - others)} free, "
                   f"the engine asks for {gib(budget)}")
        fixes.insert(0, f"stop what else runs on GPU {smallest.index}, or lower gpu_memory_utilization to "
                        f"{max(0.05, (visible - others) / visible - 0.01):.2f}")
    return EngineFit(
        engine=engine.label, model=engine.model, model_source=ckpt.source, gpus=[g.index for g in egpus],
        tensor_parallel_size=tp, weights_bytes=weights, weights_bytes_per_gpu=weights_gpu,
        overhead_bytes_per_gpu=overhead, budget_bytes_per_gpu=budget, available_kv_bytes=max(0, available),
        kv_bytes_per_token=per_token, kv_dtype=kv_dtype, max_model_len=max_len, max_num_seqs=max_seqs,
        kv_cache_needed_bytes=demand, kv_tokens=kv_tokens, max_concurrency_at_max_len=conc, fits=fits,
        full_concurrency_fits=full, verdict=verdict, fixes=fixes, notes=notes, vllm_version=version,
        visible_bytes_per_gpu=visible, activation_bytes_per_gpu=p.activation, non_torch_bytes_per_gpu=p.non_torch,
        cudagraph_bytes_per_gpu=p.cudagraphs, inputs=inputs, confidence=_confidence(inputs, limits),
        measured=_measured_view(last, kv_tokens, max(0, available)) if last else None, gpu_name=smallest.name,
        settings=settings, kv_cache_allocated_bytes=kv_tokens * per_token)


def _gpus_for_tp(profile: Profile, engine: Engine, gpus: list[GPU]) -> int:
    """How many GPUs the engine could spread over: the rig's (or --gpu's) that no other engine of the profile
    uses. A tensor-parallel fix beyond that would point at GPUs that are not there or belong to another engine."""
    taken = {g.index for e in profile.engines if e is not engine for g in _engine_gpus(profile, e, gpus)}
    return len({g.index for g in gpus} - taken)


def _serve_defaults(version: str, gpu) -> dict:
    """gpu_memory_utilization, max_num_seqs, max_num_batched_tokens of that vLLM version for this card (its spec
    data), falling back to 0.19's where a spec says nothing (shared with the simulated engine)."""
    from appliance import vllm_versions

    return vllm_versions.effective_serve_defaults(version, gpu.memory_bytes, gpu.name)


def _engine_vllm_version(engine: Engine) -> str:
    """The engine image's tag when it names a version (vllm/vllm-openai:v0.19.0 → 0.19.0), else the pinned one."""
    tag = engine.image.rsplit(":", 1)[-1] if ":" in engine.image.split("/")[-1] else ""
    tag = tag.lstrip("v")
    return tag if tag[:1].isdigit() else vllm_spec.VLLM_VERSION


def _inputs(ckpt, visible_how: str) -> dict:
    src = ckpt.source
    config = ("built-in catalog" if src == "catalog" else "stated in models.yaml" if src.endswith("models.yaml")
              else "exact (config.json in the Hugging Face cache)")
    return {"config": config, "weights": ckpt.weights_provenance, "card_memory": visible_how,
            "overhead": "estimated"}


def _confidence(inputs: dict, limits: list[str] = ()) -> str:
    """One line: what was estimated, then the known limits of the model that apply (appliance.fit_limits)."""
    guessed = [k.replace("_", " ") for k, v in inputs.items() if v == "estimated"]
    if inputs["config"] == "built-in catalog":
        guessed.insert(0, "config (built-in catalog)")
    line = "exact inputs" if not guessed else "estimated: " + ", ".join(guessed)
    if limits:
        line += "; known limits: " + ", ".join(fit_limits.label(x) for x in limits) + " (see the notes)"
    return line


def _learn(m, arch, visible: int, weights_gpu: int, nvlink: bool) -> tuple[int, int]:
    """(weights per GPU, what the overhead estimate missed) from a start of this model on this card: the next
    prediction uses the measured weights and the estimate for its own settings plus that residual."""
    s = m.settings
    est_then = memory.overhead_bytes(arch, int(s.get("tensor_parallel_size", 1)),
                                     int(s.get("pipeline_parallel_size", 1)), int(s["max_num_seqs"]),
                                     int(s["max_num_batched_tokens"]), bool(s.get("enforce_eager")),
                                     vllm_version=m.vllm_version, nvlink=nvlink,
                                     sampler=m.sampler or memory.default_sampler(m.vllm_version))
    measured_then = m.overhead_bytes(visible)
    return (m.weights_bytes or weights_gpu), (None if measured_then is None else measured_then - est_then)


def _measured_view(m, predicted_tokens: int, predicted_kv: int) -> dict:
    """'predicted / last measured on this rig' for the report."""
    return {"kv_cache_tokens": m.kv_cache_tokens, "kv_cache_bytes": m.kv_cache_bytes,
            "weights_bytes_per_gpu": m.weights_bytes, "vllm_version": m.vllm_version, "measured_at": m.measured_at,
            "predicted_kv_cache_tokens": predicted_tokens, "predicted_kv_cache_bytes": predicted_kv,
            "error": (round((predicted_tokens - m.kv_cache_tokens) / m.kv_cache_tokens, 4)
                      if m.kv_cache_tokens else None)}


def _impossible(engine: Engine, ckpt, egpus, msg: str, fixes: list[str]) -> EngineFit:
    return EngineFit(engine.label, engine.model, ckpt.source, [g.index for g in egpus], engine.tensor_parallel_size,
                     catalog.weights_bytes(ckpt), 0, 0, 0, 0, 0, engine.kv_cache_dtype or "auto",
                     engine.max_model_len or ckpt.arch.max_position, engine.max_num_seqs or 0, 0, 0, 0.0, False,
                     False, "does not fit: " + msg, fixes)


def fit_profile(profile: Profile, gpus: list[GPU], *, use_hf_cache: bool = True, store=None,
                gpus_from: str = "this machine") -> FitReport:
    """`store`: an appliance.measured.Store; None keeps the check pure (predictions only). `gpus_from` names
    where the GPUs come from in messages ("this machine", "--gpu 2x3090"): a rig given on the command line is
    not this machine."""
    engines: list[EngineFit] = []
    problems: list[str] = []
    unknown: list[str] = []
    for engine in profile.engines:
        try:
            engines.append(fit_engine(profile, engine, gpus, use_hf_cache=use_hf_cache, store=store))
        except UnknownModel as exc:
            unknown.append(exc.model)
            problems.append(f"engine {engine.label}: nothing is known about model {exc.model}: download it (its "
                            "config.json is then read from the Hugging Face cache) or describe it in "
                            f"{catalog_user.models_path()}")
    wanted = sorted({i for e in engines for i in e.gpus})
    if profile.gpus != "all":
        missing = [i for i in profile.gpus if i not in {g.index for g in gpus}]
        if missing:
            has = "has" if gpus_from == "this machine" else "gives"
            problems.append(f"the profile uses GPU {', '.join(map(str, missing))}; {gpus_from} {has} "
                            f"{len(gpus)} GPU(s) ({'0' if len(gpus) == 1 else f'0–{len(gpus) - 1}'})")
    uses = []
    for g in gpus:
        on = [e for e in engines if g.index in e.gpus]
        if not on and g.index not in wanted:
            continue
        w = sum(e.weights_bytes_per_gpu for e in on)
        o = sum(e.overhead_bytes_per_gpu for e in on)
        b = sum(e.budget_bytes_per_gpu for e in on)
        kv = sum(e.available_kv_bytes for e in on)
        free = g.visible()[0] - g.used_bytes
        uses.append(GPUUse(g.index, g.name, g.memory_bytes, g.used_bytes, [e.engine for e in on], w, o, kv, b,
                           free - b))
        if b > free:
            problems.append(f"GPU {g.index}: engines ask for {b / GIB:.1f} GiB, {free / GIB:.1f} GiB is free")
    fits = bool(engines) and not problems and all(e.fits for e in engines)
    return FitReport(profile.name, fits, engines, uses, problems,
                     measurements_problem=getattr(store, "problem", None) if store is not None else None,
                     unknown_models=unknown)
