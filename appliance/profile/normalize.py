"""Raw YAML → the shape the models take, before pydantic sees it.

vLLM options that are not typed fields move into `vllm_options` (unknown, removed, reserved or dashed keys become
Problems with a suggestion), lists become tuples, and vLLM's human-readable ints (`32k`) become ints.
"""

from __future__ import annotations

import re

from appliance.profile.model import APPLIANCE_ENGINE_KEYS, RESERVED_VLLM, Engine, spec_of_image
from appliance.profile.problems import Problem, _closest


def _engine_field_names() -> set[str]:
    return set(Engine.model_fields) - {"vllm_options"}


def _split_engine_options(raw: dict, epath: tuple, problems: list[Problem]) -> dict:
    """Move valid vLLM options that are not typed fields into `vllm_options`; flag unknown and removed keys."""
    typed = _engine_field_names()
    spec = spec_of_image(raw.get("image"))
    out: dict = {}
    vopts: dict = {}
    for key, value in raw.items():
        path = epath + (key,)
        if not isinstance(key, str):
            problems.append(Problem(path, f"`{key}` is not a field", "engine keys are vLLM option names"))
            continue
        if key in RESERVED_VLLM:
            problems.append(Problem(path, f"`{key}` cannot be set in a profile: {RESERVED_VLLM[key]}",
                                    f"remove `{key}`"))
            continue
        if key in spec.removed:
            problems.append(Problem(path, f"`{key}` {spec.removed[key]}", f"remove `{key}`"))
            continue
        if key == "vllm_options":
            problems.append(Problem(path, "`vllm_options` is not a field", "write vLLM options directly on the engine"))
            continue
        if key in typed:
            out[key] = value
            continue
        dashed = key.replace("-", "_")
        if dashed != key and (dashed in typed or dashed in spec.flags):
            problems.append(Problem(path, f"`{key}` is written with dashes", f"write it as `{dashed}`"))
            continue
        if key in spec.flags:
            vopts[key] = value
            continue
        near = _closest(key, typed | set(spec.flags))
        hint = f"did you mean `{near}`?" if near else "engine keys are vLLM option names in snake_case, or " + \
            ", ".join(APPLIANCE_ENGINE_KEYS)
        problems.append(Problem(path, f"`{key}` is not a field", hint))
    if vopts:
        out["vllm_options"] = vopts
    return out


_HUMAN = re.compile(r"^(\d+(?:\.\d+)?)([kKmMgG]?)$")


def _human_int(value):
    """vLLM's human-readable ints: 1k=1000, 1K=1024 (also m/M, g/G)."""
    if isinstance(value, str):
        m = _HUMAN.match(value.strip())
        if m:
            num, suf = float(m.group(1)), m.group(2)
            mult = {"": 1, "k": 1000, "K": 1024, "m": 10**6, "M": 1024**2, "g": 10**9, "G": 1024**3}[suf]
            return int(num * mult)
    return value


def _pre_normalize_engine(raw: dict) -> dict:
    out = dict(raw)
    for key in ("max_model_len", "max_num_batched_tokens"):
        if key in out:
            out[key] = _human_int(out[key])
    for key in ("aliases", "extra_args", "gpus", "served_model_name"):
        if isinstance(out.get(key), list):
            out[key] = tuple(out[key])
    return out


def _pre_normalize(data: dict, problems: list[Problem]) -> dict:
    out = dict(data)
    if isinstance(out.get("card"), (int, float)) and not isinstance(out.get("card"), bool):
        out["card"] = str(out["card"])
    if isinstance(out.get("gpus"), list):
        out["gpus"] = tuple(out["gpus"])
    engines = out.get("engines")
    if isinstance(engines, list):
        new = []
        for i, eng in enumerate(engines):
            if isinstance(eng, dict):
                new.append(_pre_normalize_engine(_split_engine_options(eng, ("engines", i), problems)))
            else:
                new.append(eng)
        out["engines"] = tuple(new)
    proxy = out.get("proxy")
    if isinstance(proxy, dict):
        proxy = dict(proxy)
        if isinstance(proxy.get("hosted"), list):
            proxy["hosted"] = tuple(proxy["hosted"])
        for key in ("fallbacks", "context_window_fallbacks"):
            if isinstance(proxy.get(key), dict):
                proxy[key] = {k: tuple(v) if isinstance(v, list) else v for k, v in proxy[key].items()}
        out["proxy"] = proxy
    return out
