"""The owner's models.yaml: architectures of models the built-in table and the HF cache do not know.

Read with the profile loader's limits (size, alias expansion, depth, UTF-8: yamlsrc) and every entry checked
before the memory model sees it: a string entry, an integer key, `num_attention_heads: 0` or `bits: abc` would
otherwise fail deep inside the fit check as a traceback. Every mistake is a ProfileError naming the file, the
model, the field and the value.
"""

from __future__ import annotations

import math

from appliance.catalog import Checkpoint, _norm, _quant_from_config, arch_from_config
from appliance.errors import ProfileError

_POSITIVE = ("num_hidden_layers", "num_attention_heads", "hidden_size", "vocab_size")
_OPTIONAL_POSITIVE = ("num_key_value_heads", "head_dim", "intermediate_size", "max_position_embeddings",
                      "num_parameters", "weights_bytes", "group_size", "full_attention_interval")
_FIX = ("give num_hidden_layers, num_attention_heads, num_key_value_heads, hidden_size, intermediate_size, "
        "vocab_size (as in the model's config.json), each a whole number above 0")


def models_path():
    """The owner's models.yaml (in the config dir): named with its real path in every message."""
    from appliance.paths import config_dir

    return config_dir() / "models.yaml"


EXAMPLE = """\
{model}:  # the Hugging Face id, as the profile writes it
  num_hidden_layers: 32        # these from the model's config.json
  num_attention_heads: 32
  num_key_value_heads: 8
  hidden_size: 4096
  intermediate_size: 14336
  vocab_size: 128256
  max_position_embeddings: 32768
  num_parameters: 8030000000   # optional: or weights_bytes (the checkpoint's size); quant_method + bits if quantized
"""


def _user_models() -> dict[str, dict]:
    """models.yaml: model id → architecture, read with the profile loader's limits (size, aliases, depth,
    UTF-8); every entry checked before use (_check_user_entry)."""
    from appliance import yamlsrc

    path = models_path()
    if not path.is_file():
        return {}
    data = yamlsrc.load_file(path, "models.yaml").data if path.stat().st_size else {}
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ProfileError(f"{path}: expected a mapping of model id → architecture, not a {type(data).__name__}",
                           "see README, 'Unknown models'")
    out = {}
    for k, v in data.items():
        if not isinstance(k, str):
            raise ProfileError(f"{path}: `{k!r}` is not a model id", "write the Hugging Face id, e.g. org/name:")
        _check_user_entry(path, k, v)
        out[_norm(k)] = v
    return out


def _check_user_entry(path, model_id: str, entry) -> None:
    """Each field a number of the right kind: a string entry, `num_attention_heads: 0` or `bits: abc` would
    otherwise fail deep inside the memory model (ZeroDivisionError, TypeError) as a traceback."""
    where = f"{path}: {model_id}"
    if not isinstance(entry, dict):
        raise ProfileError(f"{where}: the entry is a {type(entry).__name__}, not a mapping of fields", _FIX)
    shape = entry.get("text_config") if isinstance(entry.get("text_config"), dict) else entry
    for key in _POSITIVE + _OPTIONAL_POSITIVE:
        v = shape.get(key, entry.get(key))
        if v is None:
            if key in _POSITIVE:
                raise ProfileError(f"{where}: `{key}` is missing", _FIX)
            continue
        if key == "weights_bytes" and isinstance(v, float) and math.isfinite(v) and v > 0:
            continue
        if isinstance(v, bool) or not isinstance(v, int) or v <= 0 or v > 10**15:
            raise ProfileError(f"{where}: `{key}: {v!r}` must be a whole number above 0", _FIX)
    heads = shape.get("num_attention_heads", entry.get("num_attention_heads"))
    if not shape.get("head_dim") and shape.get("hidden_size", entry.get("hidden_size")) < heads:
        raise ProfileError(f"{where}: hidden_size is smaller than num_attention_heads", "give head_dim too")
    bits = entry.get("bits")
    if bits is not None and (isinstance(bits, bool) or not isinstance(bits, (int, float)) or not 1 <= bits <= 32):
        raise ProfileError(f"{where}: `bits: {bits!r}` must be a number from 1 to 32", "e.g. bits: 4 for AWQ/GPTQ")
    for key in ("quant_method", "torch_dtype", "model_type"):
        if entry.get(key) is not None and not isinstance(entry.get(key), str):
            raise ProfileError(f"{where}: `{key}: {entry.get(key)!r}` must be text", None)


def from_user(model_id: str) -> Checkpoint | None:
    entry = _user_models().get(_norm(model_id))
    if entry is None:
        return None
    path = models_path()
    try:
        arch = arch_from_config(entry, source=str(path))
        quant = entry.get("quant_method")
        bits, group = float(entry.get("bits", 16 if not quant else 4)), int(entry.get("group_size", 128))
        if not quant and isinstance(entry.get("quantization_config"), dict):  # pasted from config.json
            quant, bits, group = _quant_from_config(entry)
    except (KeyError, TypeError, ValueError, AttributeError, ZeroDivisionError, OverflowError) as exc:
        raise ProfileError(f"{path}: {model_id}: missing or bad field ({type(exc).__name__}: {exc})", _FIX) from None
    stated = entry.get("weights_bytes")
    stated = int(stated) if stated is not None else None
    return Checkpoint(model_id, arch, quant, bits, stated, group, weights_stated=bool(stated))
