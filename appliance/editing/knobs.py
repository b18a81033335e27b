"""The knobs of the profile editor: which fields, grouped how, and how a typed value becomes YAML (and back).

Kept apart from the TUI (no textual here) so the conversion rules are tested on their own and could drive
another front end. A knob reads and writes one path of the round-trip document; an empty value removes the key
(the field then takes its default), so the file only ever holds what the owner chose.
"""

from __future__ import annotations

from dataclasses import dataclass

from appliance.editing import roundtrip

TRI = (("default", ""), ("on", "on"), ("off", "off"))
SPEC_MODES = ("off", "mtp", "ngram", "draft")


@dataclass(frozen=True)
class Knob:
    id: str
    label: str
    group: str
    key: str  # field of the engine (scope "engine") or of the profile (scope "top")
    kind: str  # int | float | text | choice | tri | list | power | gpus | spec | spec_tokens | spec_model
    scope: str = "engine"
    choices: tuple[str, ...] = ()
    placeholder: str = ""

    def parts(self, eng: int) -> list:
        return [self.key] if self.scope == "top" else ["engines", eng, self.key]


def _knobs() -> list[Knob]:
    from appliance import cards, vllm_spec

    return [
        Knob("card", "card", "GPUs and power", "card", "choice", "top", tuple(cards.CARDS)),
        Knob("gpus", "GPUs", "GPUs and power", "gpus", "gpus", "top", placeholder="0,1 or all"),
        Knob("power", "power limit W", "GPUs and power", "power_limit_w", "power", "top",
             placeholder="300, or per GPU 0:250 1:300"),
        Knob("tp", "tensor parallel", "GPUs and power", "tensor_parallel_size", "int", placeholder="1"),
        Knob("model", "model", "Model", "model", "text", placeholder="org/name, or a local folder"),
        Knob("quantization", "quantization", "Model", "quantization", "choice",
             choices=vllm_spec.QUANTIZATION_METHODS),
        Knob("dtype", "dtype", "Model", "dtype", "choice", choices=vllm_spec.DTYPES),
        Knob("max_model_len", "context (max_model_len)", "Context and batching", "max_model_len", "int",
             placeholder="the model's maximum"),
        Knob("max_num_seqs", "max_num_seqs", "Context and batching", "max_num_seqs", "int", placeholder="vLLM default"),
        Knob("max_num_batched_tokens", "max_num_batched_tokens", "Context and batching", "max_num_batched_tokens",
             "int", placeholder="vLLM default"),
        Knob("gpu_memory_utilization", "gpu_memory_utilization", "Context and batching", "gpu_memory_utilization",
             "float", placeholder="0.9"),
        Knob("kv_cache_dtype", "KV cache dtype", "KV cache", "kv_cache_dtype", "choice",
             choices=vllm_spec.KV_CACHE_DTYPES),
        Knob("prefix", "prefix caching", "KV cache", "enable_prefix_caching", "tri"),
        Knob("spec", "speculative decoding", "Speculative decoding", "speculative_config", "spec", choices=SPEC_MODES),
        Knob("spec_tokens", "draft tokens", "Speculative decoding", "speculative_config", "spec_tokens",
             placeholder="off"),
        Knob("spec_model", "draft model", "Speculative decoding", "speculative_config", "spec_model",
             placeholder="only for draft"),
        Knob("tool_parser", "tool-call parser", "Parsers", "tool_call_parser", "choice",
             choices=vllm_spec.TOOL_CALL_PARSERS),
        Knob("auto_tool", "auto tool choice", "Parsers", "enable_auto_tool_choice", "tri"),
        Knob("reasoning_parser", "reasoning parser", "Parsers", "reasoning_parser", "choice",
             choices=vllm_spec.REASONING_PARSERS),
        Knob("aliases", "aliases", "Aliases and port", "aliases", "list", placeholder="local, coder"),
        Knob("port", "engine port", "Aliases and port", "port", "int", placeholder="8000"),
    ]


KNOBS: list[Knob] = _knobs()
BY_ID = {k.id: k for k in KNOBS}
SHOWN_ENGINE_KEYS = {k.key for k in KNOBS if k.scope == "engine"} | {"name", "image", "env", "gpus", "extra_args"}


def _spec(data, eng: int) -> dict:
    sc = roundtrip.get_path(data, ["engines", eng, "speculative_config"])
    return sc if isinstance(sc, dict) else {}


def spec_mode(sc: dict) -> str:
    method = str(sc.get("method") or "")
    if not sc:
        return "off"
    if method == "mtp" or method.endswith("_mtp"):
        return "mtp"
    if method == "ngram":
        return "ngram"
    return "draft"


def show(knob: Knob, data, eng: int) -> str:
    """The widget's text for a knob ('' when the key is absent)."""
    if knob.kind.startswith("spec"):
        sc = _spec(data, eng)
        if knob.kind == "spec":
            return spec_mode(sc)
        key = "num_speculative_tokens" if knob.kind == "spec_tokens" else "model"
        return "" if sc.get(key) is None else str(sc.get(key))
    value = roundtrip.get_path(data, knob.parts(eng))
    if value is None:
        return ""
    if knob.kind == "tri":
        return "on" if value is True else "off" if value is False else str(value)
    if knob.kind in ("list", "gpus") and isinstance(value, list):
        return ", ".join(str(v) for v in value)
    if knob.kind == "power" and isinstance(value, dict):
        return " ".join(f"{k}:{v}" for k, v in value.items())
    return str(value)


def parse(knob: Knob, raw: str):
    """Text typed into a knob → the YAML value (roundtrip.REMOVE when empty). ValueError says what is wrong."""
    raw = (raw or "").strip()
    if raw == "":
        return roundtrip.REMOVE
    if knob.kind in ("int", "spec_tokens"):
        import argparse

        from appliance.vllm_spec import parse_human_int

        try:  # vLLM's own reading: 16k = 16000, 16K = 16384
            return parse_human_int(raw.replace("_", "").replace(",", ""))
        except (ValueError, argparse.ArgumentTypeError):
            raise ValueError(f"`{raw}` is not a whole number (16384, 16K = 16384, 16k = 16000)") from None
    if knob.kind == "float":
        try:
            return float(raw)
        except ValueError:
            raise ValueError(f"`{raw}` is not a number (e.g. 0.9)") from None
    if knob.kind == "tri":
        return {"on": True, "off": False}[raw]
    if knob.kind == "list":
        return roundtrip.flow([x.strip() for x in raw.replace(",", " ").split() if x.strip()])
    if knob.kind == "gpus":
        if raw == "all":
            return "all"
        try:
            return roundtrip.flow([int(x) for x in raw.replace(",", " ").split()])
        except ValueError:
            raise ValueError(f"`{raw}` is not a list of GPU indices (e.g. 0,1)") from None
    if knob.kind == "power":
        try:
            if ":" not in raw:
                return int(float(raw))
            pairs = [p.split(":") for p in raw.replace(",", " ").split()]
            return roundtrip.flow({int(k): int(float(v)) for k, v in pairs})
        except ValueError:
            raise ValueError(f"`{raw}` is not watts (300) or watts per GPU (0:250 1:300)") from None
    return raw


def apply(knob: Knob, data, eng: int, raw: str) -> None:
    """Write a knob's typed value into the document (in place)."""
    value = parse(knob, raw)
    if not knob.kind.startswith("spec"):
        from appliance.editing.store import ENGINE_ORDER, TOP_LEVEL

        roundtrip.set_path(data, knob.parts(eng), value, TOP_LEVEL if knob.scope == "top" else ENGINE_ORDER)
        return
    from appliance.editing.store import ENGINE_ORDER

    sc = dict(_spec(data, eng))
    if knob.kind == "spec":
        tokens = sc.get("num_speculative_tokens") or 2
        if value is roundtrip.REMOVE or value == "off":
            roundtrip.set_path(data, ["engines", eng, "speculative_config"], roundtrip.REMOVE)
            return
        new = {"mtp": {"method": "mtp", "num_speculative_tokens": tokens},
               "ngram": {"method": "ngram", "num_speculative_tokens": tokens, "prompt_lookup_max": 4},
               "draft": {"model": sc.get("model") or "", "num_speculative_tokens": tokens}}[value]
        if spec_mode(sc) == value:
            return
        roundtrip.set_path(data, ["engines", eng, "speculative_config"], roundtrip.flow(new), ENGINE_ORDER)
        return
    if not sc:
        return  # tokens / draft model only mean something with a method
    key = "num_speculative_tokens" if knob.kind == "spec_tokens" else "model"
    roundtrip.set_path(data, ["engines", eng, "speculative_config", key], value)


def errors_by_knob(field_errors: dict[str, str], eng: int) -> tuple[dict[str, str], list[str]]:
    """Validation errors at their knob; the rest (fields without a knob) as lines."""
    at: dict[str, str] = {}
    rest: list[str] = []
    for path, msg in field_errors.items():
        parts = path.split(".") if path else []
        knob = None
        if parts[:1] == ["engines"] and len(parts) >= 3 and parts[1] == str(eng):
            knob = next((k for k in KNOBS if k.scope == "engine" and k.key == parts[2]), None)
            if knob and knob.kind.startswith("spec"):
                sub = parts[3] if len(parts) > 3 else ""
                knob = BY_ID["spec_tokens" if sub == "num_speculative_tokens" else
                             "spec_model" if sub == "model" else "spec"]
        elif parts and parts[0] != "engines":
            knob = next((k for k in KNOBS if k.scope == "top" and k.key == parts[0]), None)
        if knob is not None:
            at.setdefault(knob.id, msg)
        else:
            rest.append(f"{path or '(top level)'}: {msg}")
    return at, rest


def advanced_options(data, eng: int) -> dict:
    """The engine's options that have no knob of their own (shown and edited by name)."""
    e = roundtrip.get_path(data, ["engines", eng])
    return {k: v for k, v in e.items() if k not in SHOWN_ENGINE_KEYS} if isinstance(e, dict) else {}


def yaml_text(value) -> str:
    """A value as it reads in the file (true, [a, b], {k: v}), for showing options in one line."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {yaml_text(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(yaml_text(v) for v in value) + "]"
    return str(value)
