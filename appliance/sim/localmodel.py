"""A model given as a local directory: the facts vLLM reads from its config.json. Stdlib only.

Why: the conformance suite runs the stand-in with the real engine's command line (the tiny model's directory). A
real vLLM derives the longest context from `max_position_embeddings` and sizes its KV cache per token from the
layer and head counts; with those facts the stand-in refuses the same `--max-model-len`, reports the same KV size
in tokens for a given `--kv-cache-memory-bytes`, and fails the same way when that is too small for one request.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

DTYPE_BYTES = {"bfloat16": 2, "float16": 2, "float32": 4, "fp8": 1, "fp8_e4m3": 1, "fp8_e5m2": 1}


@dataclass(frozen=True)
class LocalModel:
    max_position: int
    kv_bytes_per_token: int  # K and V of every layer, in the KV cache's dtype


def read(model: str, kv_cache_dtype: str | None = None) -> LocalModel | None:
    """None unless `model` is a directory with a readable config.json (a hub name, for instance)."""
    path = Path(model) / "config.json"
    try:
        cfg = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    text = cfg.get("text_config") if isinstance(cfg.get("text_config"), dict) else cfg
    try:
        layers = int(text["num_hidden_layers"])
        heads = int(text["num_attention_heads"])
        kv_heads = int(text.get("num_key_value_heads") or heads)
        head_dim = int(text.get("head_dim") or int(text["hidden_size"]) // heads)
        max_position = int(text.get("max_position_embeddings") or 2048)
    except (KeyError, TypeError, ValueError, ZeroDivisionError):
        return None
    dtype = kv_cache_dtype if kv_cache_dtype and kv_cache_dtype != "auto" else str(
        text.get("dtype") or text.get("torch_dtype") or "bfloat16")
    per_token = 2 * layers * kv_heads * head_dim * DTYPE_BYTES.get(dtype, 2)
    return LocalModel(max_position, per_token)


# vllm/config/model.py (0.32, measured): raised while the API server builds the model config, before any engine
# process starts.
TOO_LONG = ("User-specified max_model_len ({mml}) is greater than the derived max_model_len "
            "(max_position_embeddings={pos:.1f} or model_max_length=None in model's config.json). To allow "
            "overriding this maximum, set the env var VLLM_ALLOW_LONG_MAX_MODEL_LEN=1. VLLM_ALLOW_LONG_MAX_MODEL_LEN "
            "must be used with extreme caution. If the model uses relative position encoding (RoPE), positions "
            "exceeding derived_max_model_len lead to nan. If the model uses absolute position encoding, positions "
            "exceeding derived_max_model_len will cause a CUDA array out-of-bounds error.")
