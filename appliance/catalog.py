"""Model architecture facts for the fit check.

Two sources, in this order:
1. `config.json` (and `model.safetensors.index.json` for the exact weight bytes) of the model in the local
   Hugging Face cache, when it has been downloaded;
2. the built-in table below, which covers every model the seed articles name, and the user's own
   `<config dir>/models.yaml` for anything else.

A model id is matched exactly (case-insensitive), then by its base name with quantization suffixes stripped
(`Qwen2.5-14B-Instruct-AWQ` → `qwen2.5-14b-instruct`), so community quantizations of a known base resolve.
Stdlib + pyyaml only.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, replace
from pathlib import Path

from appliance import memory
from appliance.errors import ProfileError


@dataclass(frozen=True)
class Arch:
    """Transformer shape. `kv_layers` are the layers whose KV cache grows with every token (all of them for a
    plain decoder; only the full-attention layers of a hybrid like Qwen3.5/Qwen3-Next)."""

    family: str
    params_b: float  # total parameters, billions (incl. embeddings, vision tower if any)
    layers: int
    kv_layers: int
    hidden: int
    intermediate: int
    heads: int
    kv_heads: int
    head_dim: int
    vocab: int
    tied_embeddings: bool
    max_position: int
    dtype: str = "bfloat16"
    # fixed per-sequence state of linear-attention / mamba layers, bytes (all ranks together); 0 for plain decoders
    state_bytes_per_seq: int = 0
    mla: bool = False
    mtp_layers: int = 0  # native multi-token-prediction layers (each holds a KV cache when MTP is on)
    experts: int = 0  # MoE: experts per layer (all of them must be resident)
    source: str = "catalog"
    moe_intermediate: int = 0  # MoE: intermediate size of one expert
    experts_per_tok: int = 0  # MoE: experts each token is routed to
    shared_intermediate: int = 0  # MoE: intermediate size of the shared expert(s), 0 when none
    extra_params: int = 0  # parameters outside the decoder stack (vision tower, projector), kept 16-bit
    qkv_bias: bool = False
    num_parameters: int | None = None  # stated (models.yaml) or known (hybrids); else counted from the shape
    kv_layer_slots: int = 0  # KV layers as vLLM's hybrid allocator pads them (sliding + full); 0 = kv_layers
    rope_caches: int = 1  # distinct rotary embeddings (Gemma 3: local and global), each a cos/sin buffer
    sliding_layers: int = 0  # layers with sliding-window attention (they keep only the window per request)
    multimodal: bool = False  # a vision/audio tower vLLM profiles at start (appliance.fit_limits)

    @property
    def embedding_params(self) -> int:
        per = self.vocab * self.hidden
        return per if self.tied_embeddings else 2 * per


@dataclass(frozen=True)
class Checkpoint:
    """A concrete repository: an architecture plus how its weights are stored."""

    model_id: str
    arch: Arch
    quant_method: str | None  # None = unquantized (dtype), else vLLM's quantization name
    weight_bits: float  # bits per quantized weight (16 for unquantized)
    weights_bytes_exact: int | None = None  # from the safetensors index when read from the HF cache
    group_size: int = 128  # 4-bit quantization group
    weights_stated: bool = False  # weights_bytes_exact came from models.yaml, not from the safetensors index

    @property
    def source(self) -> str:
        return self.arch.source

    @property
    def weights_provenance(self) -> str:
        """'exact' (safetensors index), 'stated' (models.yaml weights_bytes or num_parameters) or 'estimated'."""
        if self.weights_bytes_exact:
            return "stated" if self.weights_stated else "exact"
        return "stated" if self.arch.num_parameters and self.arch.source != "catalog" else "estimated"


def _a(family, params_b, layers, hidden, intermediate, heads, kv_heads, head_dim, vocab, tied, max_pos, **kw) -> Arch:
    kv_layers = kw.pop("kv_layers", layers)
    kw.setdefault("qkv_bias", family == "qwen2")
    if kv_layers < layers:  # hybrid: the linear-attention layers are not counted from the shape
        kw.setdefault("num_parameters", int(params_b * 1e9))
    return Arch(family, params_b, layers, kv_layers, hidden, intermediate, heads, kv_heads, head_dim, vocab, tied,
                max_pos, **kw)


# Base architectures (from each model's config.json).
ARCHS: dict[str, Arch] = {
    "qwen2.5-0.5b-instruct": _a("qwen2", 0.49, 24, 896, 4864, 14, 2, 64, 151936, True, 32768),
    "qwen2.5-1.5b-instruct": _a("qwen2", 1.54, 28, 1536, 8960, 12, 2, 128, 151936, True, 32768),
    "qwen2.5-3b-instruct": _a("qwen2", 3.09, 36, 2048, 11008, 16, 2, 128, 151936, True, 32768),
    "qwen2.5-7b-instruct": _a("qwen2", 7.62, 28, 3584, 18944, 28, 4, 128, 152064, False, 32768),
    "qwen2.5-14b-instruct": _a("qwen2", 14.77, 48, 5120, 13824, 40, 8, 128, 152064, False, 32768),
    "qwen2.5-32b-instruct": _a("qwen2", 32.76, 64, 5120, 27648, 40, 8, 128, 152064, False, 32768),
    "qwen2.5-72b-instruct": _a("qwen2", 72.71, 80, 8192, 29568, 64, 8, 128, 152064, False, 32768),
    "qwen2.5-coder-7b-instruct": _a("qwen2", 7.62, 28, 3584, 18944, 28, 4, 128, 152064, False, 32768),
    "qwen2.5-coder-32b-instruct": _a("qwen2", 32.76, 64, 5120, 27648, 40, 8, 128, 152064, False, 32768),
    "qwen3-8b": _a("qwen3", 8.19, 36, 4096, 12288, 32, 8, 128, 151936, False, 40960),
    "qwen3-14b": _a("qwen3", 14.77, 40, 5120, 17408, 40, 8, 128, 151936, False, 40960),
    "qwen3-32b": _a("qwen3", 32.8, 64, 5120, 25600, 64, 8, 128, 151936, False, 40960),
    # Qwen3.5-27B: hybrid Gated DeltaNet (linear attention, fixed state) + gated full attention every 4th layer,
    # one native MTP layer; 262144 context; vision tower included in the parameter count.
    "qwen3.5-27b": _a("qwen3_5", 27.8, 64, 5120, 17408, 24, 4, 256, 248320, False, 262144, kv_layers=16,
                      state_bytes_per_seq=48 * (48 * 128 * 128 * 2 + 4 * 10240 * 2), mtp_layers=1, multimodal=True),
    "llama-3.1-8b-instruct": _a("llama", 8.03, 32, 4096, 14336, 32, 8, 128, 128256, False, 131072),
    "llama-3.1-70b-instruct": _a("llama", 70.55, 80, 8192, 28672, 64, 8, 128, 128256, False, 131072),
    "llama-3.2-1b-instruct": _a("llama", 1.24, 16, 2048, 8192, 32, 8, 64, 128256, True, 131072),
    "llama-3.2-3b-instruct": _a("llama", 3.21, 28, 3072, 8192, 24, 8, 128, 128256, True, 131072),
    "mistral-7b-instruct-v0.3": _a("mistral", 7.25, 32, 4096, 14336, 32, 8, 128, 32768, False, 32768),
    "mistral-nemo-instruct-2407": _a("mistral", 12.25, 40, 5120, 14336, 32, 8, 128, 131072, False, 131072),
    "phi-3-mini-4k-instruct": _a("phi3", 3.82, 32, 3072, 8192, 32, 32, 96, 32064, False, 4096),
    "mixtral-8x7b-instruct-v0.1": _a("mixtral", 46.7, 32, 4096, 14336, 32, 8, 128, 32000, False, 32768, experts=8,
                                     moe_intermediate=14336, experts_per_tok=2),
    "deepseek-r1-distill-qwen-14b": _a("qwen2", 14.77, 48, 5120, 13824, 40, 8, 128, 152064, False, 131072),
    "deepseek-r1-distill-qwen-32b": _a("qwen2", 32.76, 64, 5120, 27648, 40, 8, 128, 152064, False, 131072),
    "deepseek-r1-distill-llama-70b": _a("llama", 70.55, 80, 8192, 28672, 64, 8, 128, 128256, False, 131072),
    "gemma-2-9b-it": _a("gemma2", 9.24, 42, 3584, 14336, 16, 8, 256, 256000, True, 8192),
}

# Exact repositories the seeds (and the shipped profiles) name, with their storage format.
_CHECKPOINTS: dict[str, tuple[str, str | None, float]] = {
    "qwen/qwen2.5-14b-instruct-awq": ("qwen2.5-14b-instruct", "awq", 4),
    "qwen/qwen2.5-32b-instruct-awq": ("qwen2.5-32b-instruct", "awq", 4),
    "qwen/qwen2.5-72b-instruct-awq": ("qwen2.5-72b-instruct", "awq", 4),
    "qwen/qwen2.5-7b-instruct-awq": ("qwen2.5-7b-instruct", "awq", 4),
    "qwen/qwen2.5-3b-instruct-awq": ("qwen2.5-3b-instruct", "awq", 4),
    "cyankiwi/qwen3.5-27b-awq-bf16-int8": ("qwen3.5-27b", "compressed-tensors", 8),
    "hugging-quants/meta-llama-3.1-70b-instruct-awq-int4": ("llama-3.1-70b-instruct", "awq", 4),
    "neuralmagic/meta-llama-3.1-8b-instruct-fp8": ("llama-3.1-8b-instruct", "fp8", 8),
    "redhatai/meta-llama-3.1-8b-instruct-fp8": ("llama-3.1-8b-instruct", "fp8", 8),
}

_ALIASES = {
    "meta-llama-3.1-8b-instruct": "llama-3.1-8b-instruct",
    "meta-llama-3.1-70b-instruct": "llama-3.1-70b-instruct",
    "llama-3-8b-instruct": "llama-3.1-8b-instruct",
    "meta-llama-3-8b-instruct": "llama-3.1-8b-instruct",
    "qwen3.5-27b-instruct": "qwen3.5-27b",
}

# vLLM quantization method → bits per quantized weight (embeddings and lm_head stay in 16 bit).
QUANT_BITS: dict[str, float] = {
    "awq": 4, "awq_marlin": 4, "gptq": 4, "gptq_marlin": 4, "moe_wna16": 4, "mxfp4": 4, "modelopt_fp4": 4,
    "bitsandbytes": 4, "gguf": 4.5,
    "fp8": 8, "fbgemm_fp8": 8, "modelopt": 8, "modelopt_mxfp8": 8, "mxfp8": 8, "experts_int8": 8, "fp_quant": 4,
    "compressed-tensors": 8, "quark": 8, "torchao": 8, "inc": 8,
}

_QUANT_SUFFIX = re.compile(
    r"(-(awq|gptq|fp8|int4|int8|w4a16|w8a8|w8a16|bf16|fp16|dynamic|marlin|bnb|4bit|8bit|gguf|q4_k_m|q8_0)"
    r"(-int4|-int8)?)+$", re.I)


def _norm(model_id: str) -> str:
    return model_id.strip().lower()


def _base_name(model_id: str) -> str:
    name = _norm(model_id).split("/")[-1]
    name = _QUANT_SUFFIX.sub("", name)
    return _ALIASES.get(name, name)


def bits_from_name(model_id: str) -> tuple[str | None, float] | None:
    """Quantization hinted by a repository name, for checkpoints not in the table."""
    name = _norm(model_id)
    if re.search(r"awq|w4a16|int4|gptq|4bit", name):
        method = "gptq" if "gptq" in name else "awq"
        if re.search(r"w4a16|int4", name) and "awq" not in name and "gptq" not in name:
            method = "compressed-tensors"
        return method, 4
    if "fp8" in name:
        return "fp8", 8
    if re.search(r"int8|w8a8|w8a16|8bit", name):
        return "compressed-tensors", 8
    return None


def hf_cache_dirs() -> list[Path]:
    dirs = []
    if os.environ.get("HF_HUB_CACHE"):
        dirs.append(Path(os.environ["HF_HUB_CACHE"]))
    if os.environ.get("HF_HOME"):
        dirs.append(Path(os.environ["HF_HOME"]) / "hub")
    dirs.append(Path.home() / ".cache" / "huggingface" / "hub")
    return dirs


def _find_in_hf_cache(model_id: str) -> Path | None:
    if os.path.isdir(model_id) and os.path.isfile(os.path.join(model_id, "config.json")):
        return Path(model_id)
    if "/" not in model_id:
        return None
    folder = "models--" + model_id.replace("/", "--")
    for cache in hf_cache_dirs():
        snaps = cache / folder / "snapshots"
        if snaps.is_dir():
            for snap in sorted(snaps.iterdir(), key=lambda p: p.stat().st_mtime, reverse=True):
                if (snap / "config.json").is_file():
                    return snap
    return None


def _vision_params(config: dict) -> int:
    """Parameters of a vision tower described in `vision_config` (ViT: attention 4·h², MLP 2·h·i per layer),
    plus its projector into the language model; kept in 16 bit by every quantization vLLM loads."""
    vc = config.get("vision_config")
    if not isinstance(vc, dict):
        return 0
    h = int(vc.get("hidden_size") or vc.get("embed_dim") or 0)
    i = int(vc.get("intermediate_size") or 4 * h)
    n = int(vc.get("num_hidden_layers") or vc.get("depth") or 0)
    text = config.get("text_config") or {}
    out = int(text.get("hidden_size") or config.get("hidden_size") or h)
    return n * (4 * h * h + 2 * h * i) + h * out + out * out


def arch_from_config(config: dict, source: str) -> Arch:
    """An Arch from a Hugging Face config.json (text config of multimodal models included). `num_parameters`
    may be stated (models.yaml) when the shape does not tell the whole story."""
    text = config.get("text_config") or config.get("llm_config") or config
    get = lambda k, d=None: text.get(k, config.get(k, d))  # noqa: E731
    layers = int(get("num_hidden_layers"))
    heads = int(get("num_attention_heads"))
    kv_heads = int(get("num_key_value_heads") or heads)
    hidden = int(get("hidden_size"))
    head_dim = int(get("head_dim") or hidden // heads)
    kv_layers = layers
    layer_types = get("layer_types")
    kind = str(get("model_type", ""))
    if not (isinstance(layer_types, list) and layer_types) and kind.startswith(("gemma2", "gemma3")):
        every = 2 if kind.startswith("gemma2") else int(get("sliding_window_pattern") or 6)  # last of each is full
        layer_types = ["full_attention" if (i + 1) % every == 0 else "sliding_attention" for i in range(layers)]
    slots = sliding = 0
    if isinstance(layer_types, list) and layer_types:
        kv_layers = sum(1 for t in layer_types if "linear" not in str(t) and "mamba" not in str(t))
        sliding = sum(1 for t in layer_types if "sliding" in str(t))
        if sliding and get("sliding_window"):
            slots = memory.padded_kv_slots([sliding, kv_layers - sliding])
    elif get("full_attention_interval"):
        kv_layers = layers // int(get("full_attention_interval"))
    vocab = int(get("vocab_size"))
    inter = int(get("intermediate_size") or 4 * hidden)
    tied = bool(get("tie_word_embeddings", False))
    experts = int(get("num_local_experts") or get("num_experts") or get("n_routed_experts") or 0)
    moe_inter = int(get("moe_intermediate_size") or (inter if experts else 0))
    stated = get("num_parameters")
    arch = Arch(
        family=str(get("model_type", "unknown")), params_b=0.0, layers=layers, kv_layers=kv_layers,
        hidden=hidden, intermediate=inter, heads=heads, kv_heads=kv_heads, head_dim=head_dim, vocab=vocab,
        tied_embeddings=tied, max_position=int(get("max_position_embeddings") or 4096),
        dtype=str(get("torch_dtype") or get("dtype") or "bfloat16"), mla=bool(get("kv_lora_rank")),
        mtp_layers=int(get("num_nextn_predict_layers") or get("mtp_num_hidden_layers") or 0), experts=experts,
        source=source, moe_intermediate=moe_inter if experts else 0,
        experts_per_tok=int(get("num_experts_per_tok") or get("moe_topk") or (2 if experts else 0)),
        shared_intermediate=int(get("shared_expert_intermediate_size") or 0) * (1 if experts else 0),
        extra_params=_vision_params(config), qkv_bias=bool(get("attention_bias", get("model_type") == "qwen2")),
        num_parameters=int(stated) if stated else None, kv_layer_slots=slots,
        rope_caches=2 if get("rope_local_base_freq") else 1, sliding_layers=sliding if get("sliding_window") else 0,
        multimodal=any(isinstance(config.get(k), dict) for k in ("vision_config", "audio_config")))
    linear, other = memory.param_counts(arch)
    return replace(arch, params_b=round((arch.num_parameters or linear + other) / 1e9, 2))


def _quant_from_config(config: dict) -> tuple[str | None, float, int]:
    """(vLLM quantization method, bits per quantized weight, group size) from config.json."""
    qc = config.get("quantization_config") or config.get("compression_config") or {}
    method = qc.get("quant_method")
    group = int(qc.get("group_size") or qc.get("q_group_size") or 128)
    bits = qc.get("bits") or qc.get("w_bit")
    if bits is None and method == "compressed-tensors":
        groups = qc.get("config_groups") or {}
        for g in groups.values():
            w = (g or {}).get("weights") or {}
            if w.get("num_bits"):
                bits, group = w["num_bits"], int(w.get("group_size") or group)
                break
    if bits is None:
        bits = 8 if method and "fp8" in str(method) else 16 if not method else 4
    return method, float(bits), group


def _from_hf_cache(model_id: str) -> Checkpoint | None:
    snap = _find_in_hf_cache(model_id)
    if not snap:
        return None
    try:
        config = json.loads((snap / "config.json").read_text())
        arch = arch_from_config(config, source=f"{snap / 'config.json'}")
    except (OSError, ValueError, TypeError, KeyError) as exc:
        raise ProfileError(f"{snap / 'config.json'}: cannot read the model's config ({exc})",
                           "re-download the model or remove the broken snapshot from the Hugging Face cache") from exc
    method, bits, group = _quant_from_config(config)
    exact = None
    index = snap / "model.safetensors.index.json"
    if index.is_file():
        try:
            exact = int(json.loads(index.read_text())["metadata"]["total_size"])
        except (OSError, ValueError, KeyError, TypeError):
            exact = None
    return Checkpoint(model_id, arch, method, bits, exact, group)


def lookup(model_id: str, *, use_hf_cache: bool = True) -> Checkpoint | None:
    """Architecture and storage of `model_id`, or None when nothing is known about it."""
    if use_hf_cache:
        found = _from_hf_cache(model_id)
        if found:
            return found
    from appliance.catalog_user import from_user

    user = from_user(model_id)
    if user:
        return user
    return lookup_builtin(model_id)


def lookup_builtin(model_id: str) -> Checkpoint | None:
    """Only the built-in table (no HF cache, no user file): what the simulated engine may use."""
    key = _norm(model_id)
    if key in _CHECKPOINTS:
        base, method, bits = _CHECKPOINTS[key]
        return Checkpoint(model_id, ARCHS[base], method, bits)
    base = _base_name(model_id)
    if base in ARCHS:
        hinted = bits_from_name(model_id)
        method, bits = hinted if hinted else (None, 16)
        return Checkpoint(model_id, ARCHS[base], method, bits)
    return None


def known_models() -> list[str]:
    return sorted(set(ARCHS) | set(_CHECKPOINTS))


def with_quantization(ckpt: Checkpoint, quantization: str | None) -> Checkpoint:
    """Apply the profile's `quantization`: online quantization (fp8 of a 16-bit checkpoint) shrinks the weights;
    naming the checkpoint's own method (or its marlin kernel) changes nothing."""
    if not quantization:
        return ckpt
    if ckpt.quant_method is None and quantization in QUANT_BITS:
        return replace(ckpt, quant_method=quantization, weight_bits=QUANT_BITS[quantization], weights_bytes_exact=None)
    return ckpt


def weights_bytes(ckpt: Checkpoint) -> int:
    """Bytes of weights on the GPUs (all ranks together): the safetensors index (or the owner's
    `weights_bytes`) when known, else counted from the shape (appliance.memory.estimated_weights_bytes)."""
    if ckpt.weights_bytes_exact:
        return ckpt.weights_bytes_exact
    return memory.estimated_weights_bytes(ckpt.arch, ckpt.quant_method, ckpt.weight_bits, ckpt.group_size)
