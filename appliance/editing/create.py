"""`new`: a profile from a shipped (or the user's) profile, or from a model — written as a file a person can read.

From a model, the profile is sized for the card: the context is the model's own maximum (at most 32k to start
with), lowered until one request of it fits in the KV cache the fit check predicts, so a new profile starts in a
state that runs. The file explains itself in comments; the user edits it from there.
"""

from __future__ import annotations

from pathlib import Path

from appliance.editing import store
from appliance.errors import ProfileError

START_CONTEXT = 32768
DEFAULT_CARD = "4090"


def _slug(model: str) -> str:
    import re

    s = re.sub(r"[^a-z0-9_-]+", "-", model.split("/")[-1].lower()).strip("-_")
    return (s or "engine")[:40]


def _template(name: str, model: str, card_key: str, tp: int, quant: str | None, max_len: int, seqs: int) -> str:
    from appliance import vllm_spec

    gpus = ", ".join(str(i) for i in range(tp))
    quant_line = f"    quantization: {quant}\n" if quant else ""
    tp_line = f"    tensor_parallel_size: {tp}\n" if tp > 1 else ""
    return f"""\
# {name}: {model} on {tp} × {card_key} ({store._stamp()}).
# Engine keys are `vllm serve` options (vLLM {vllm_spec.VLLM_VERSION}) in snake_case; anything else vLLM takes can be
# added the same way. `appliance check {name}` shows the fit; `appliance set {name} key=value` changes a value
# and keeps these comments.
name: {name}
description: {model.split("/")[-1]} · {max(1, max_len // 1024)}k context
card: "{card_key}"
gpus: [{gpus}]
# power_limit_w: 300    # watts per GPU; `appliance bench` measures which limit gives the most tokens per joule
engines:
  - name: {_slug(model)}
    aliases: [local]    # the model names agents ask the proxy for
    port: 8000
    model: {model}
{quant_line}{tp_line}    max_model_len: {max_len}    # context per request, tokens
    max_num_seqs: {seqs}    # requests served at once
    gpu_memory_utilization: 0.9
    kv_cache_dtype: auto    # fp8 holds twice the tokens
    enable_prefix_caching: true
"""


def _fit(text: str, path: Path, card_key: str, tp: int):
    from appliance import cards
    from appliance.fit import GPU, fit_profile

    profile = store.validate_text(text, path)
    card = cards.lookup(card_key)
    return fit_profile(profile, [GPU.from_card(i, card) for i in range(tp)])


def from_model(name: str, model: str, card: str | None = None, gpu_count: int = 1) -> Path:
    """A new user profile serving `model` (catalog id, a model in the Hugging Face cache, a local folder with a
    config.json, or an id described in models.yaml) on `gpu_count` GPUs of `card`."""
    from appliance import cards, catalog, vllm_spec
    from appliance.paths import config_dir

    target = store._free_name(name)
    card_key = card or DEFAULT_CARD
    found = cards.lookup(card_key)
    if found is None:
        raise ProfileError(f"unknown card `{card_key}`", "one of " + ", ".join(cards.CARDS))
    card_key = found.key
    if "/" not in model and not Path(model).expanduser().is_dir():
        # a family name from the fit's table (`deepseek-r1-distill-qwen-32b`): vLLM would try to download a
        # repository of that name and fail at the start, so it is never written into a profile
        raise ProfileError(f"model `{model}` is not a Hugging Face id (org/name) or a local folder",
                           "give the model's repository, e.g. deepseek-ai/DeepSeek-R1-Distill-Qwen-32B or "
                           "Qwen/Qwen2.5-14B-Instruct-AWQ, or a folder with a config.json")
    ckpt = catalog.lookup(model)
    if ckpt is None:
        raise ProfileError(f"nothing is known about model `{model}`",
                           "download it (its config.json is then read from the Hugging Face cache), give a local "
                           f"folder with a config.json, or describe it in {config_dir() / 'models.yaml'}; the fit "
                           "knows these model families (any org/name ending in one): "
                           + ", ".join(catalog.known_models()[:8]) + ", …")
    quant = ckpt.quant_method if ckpt.quant_method in vllm_spec.QUANTIZATION_METHODS else None
    max_len = min(ckpt.arch.max_position, START_CONTEXT)
    seqs = 8
    text = _template(name, model, card_key, gpu_count, quant, max_len, seqs)
    report = _fit(text, target, card_key, gpu_count)
    eng = report.engines[0] if report.engines else None
    if eng is not None and eng.available_kv_bytes > 0 and not eng.fits and eng.kv_tokens >= 1024:
        max_len = eng.kv_tokens // 1024 * 1024  # one request of the whole context fits
        text = _template(name, model, card_key, gpu_count, quant, max_len, seqs)
    store.save_text(target, text)
    return target


def new_profile(name: str, from_profile: str | None = None, model: str | None = None, card: str | None = None,
                gpu_count: int = 1) -> Path:
    """`appliance new NAME [--from PROFILE | --model ID]`: the path of the new user profile."""
    if from_profile and model:
        raise ProfileError("give either --from PROFILE or --model ID, not both", None)
    if from_profile:
        return store.duplicate(from_profile, name)
    if model:
        return from_model(name, model, card, gpu_count)
    raise ProfileError(f"say what `{name}` starts from", "--from PROFILE (see `appliance profiles`) or --model ID")
