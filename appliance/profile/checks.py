"""Profiles: strict models for profiles/*.yaml and the loader that explains every mistake.

A profile names the GPUs it uses and their power limit, one or more vLLM engines, and what the proxy answers
for. Engine keys are vLLM's own option names in snake_case (anything `vllm serve` of the pinned version accepts),
plus a few appliance keys: name, image, aliases, port, gpus, env, extra_args.

Every error names file:line, the field, the bad value and what to do, and is a ProfileError (exit 2).
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from appliance import paths, vllm_spec, yamlsrc
from appliance.errors import ProfileError

PINNED_IMAGE = f"vllm/vllm-openai:v{vllm_spec.VLLM_VERSION}"
DEFAULT_PROXY_PORT = 4000
NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
ENV_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# Keys the appliance sets itself on every engine; a profile must not set them.
RESERVED_VLLM = {
    "host": "the appliance binds every engine to 127.0.0.1 (only the proxy reaches it)",
    "uds": "engines listen on TCP ports the proxy and the telemetry can reach",
    "disable_log_stats": "it switches off every vllm:* metric on /metrics, which the telemetry and the bench need",
    "config": "write the options into the profile itself",
    "headless": "the appliance runs API servers",
}
APPLIANCE_ENGINE_KEYS = ("name", "image", "aliases", "port", "gpus", "env", "extra_args")


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class Hosted(Strict):
    """A hosted model the proxy can fall back to. Keys are referenced by the *name* of an env var, never inline."""

    name: str = Field(description="name used in `fallbacks` (also callable as an alias of its own)")
    provider: Literal["openai", "anthropic", "openrouter", "openai_compatible"]
    model: str = Field(description="the provider's model id, e.g. gpt-4o-mini, claude-sonnet-4-6")
    api_key_env: str = Field(description="name of the env var (or secrets-file entry) that holds the key")
    api_base: str | None = Field(default=None, description="base URL, required for openai_compatible")
    max_input_tokens: int | None = Field(default=None, gt=0, description="context window, for context fallbacks")

    @property
    def litellm_model(self) -> str:
        prefix = {"openai": "openai", "anthropic": "anthropic", "openrouter": "openrouter",
                  "openai_compatible": "openai"}[self.provider]
        return self.model if self.model.startswith(prefix + "/") else f"{prefix}/{self.model}"


class Timeouts(Strict):
    request_s: float = Field(default=600, gt=0, description="whole non-streaming request")
    stream_s: float = Field(default=120, gt=0, description="streaming: silence allowed before/between chunks")
    connect_s: float = Field(default=2, gt=0, description="TCP connect to an engine")
    first_token_s: float = Field(default=30, gt=0,
                                 description="a local engine that has not answered by then counts as hung")


class Proxy(Strict):
    port: int = Field(default=DEFAULT_PROXY_PORT, ge=1024, le=65535)
    lan: bool = Field(default=False, description="bind 0.0.0.0 instead of 127.0.0.1 (reachable from the LAN)")
    hosted: tuple[Hosted, ...] = ()
    fallbacks: dict[str, tuple[str, ...]] = Field(default_factory=dict)
    context_window_fallbacks: dict[str, tuple[str, ...]] = Field(default_factory=dict)
    cooldown_s: float = Field(default=30, gt=0, le=3600)
    timeouts: Timeouts = Timeouts()


class Engine(BaseModel):
    """One vLLM server. Typed fields are the options the fit check and the proxy need; any other `vllm serve`
    option of the pinned version may be given too (kept in `vllm_options`, validated against vllm_spec)."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    # appliance keys
    name: str | None = None
    image: str = PINNED_IMAGE
    aliases: tuple[str, ...] = ()
    port: int = Field(default=8000, ge=1024, le=65535)
    gpus: tuple[int, ...] | None = None
    env: dict[str, str] = Field(default_factory=dict)
    extra_args: tuple[str, ...] = ()
    # vLLM options the appliance reasons about
    model: str
    served_model_name: str | tuple[str, ...] | None = None
    tensor_parallel_size: int = Field(default=1, ge=1, le=64)
    pipeline_parallel_size: int = Field(default=1, ge=1, le=64)
    max_model_len: int | None = Field(default=None, gt=0)
    max_num_seqs: int | None = Field(default=None, ge=1)
    max_num_batched_tokens: int | None = Field(default=None, ge=1)
    gpu_memory_utilization: float | None = Field(default=None, gt=0, le=1)
    kv_cache_dtype: str | None = None
    quantization: str | None = None
    dtype: str | None = None
    speculative_config: dict[str, Any] | None = None
    enable_auto_tool_choice: bool | None = None
    tool_call_parser: str | None = None
    reasoning_parser: str | None = None
    enable_prefix_caching: bool | None = None
    enable_chunked_prefill: bool | None = None
    trust_remote_code: bool | None = None
    generation_config: str | None = None
    override_generation_config: dict[str, Any] | None = None
    limit_mm_per_prompt: dict[str, Any] | None = None
    # everything else `vllm serve` accepts, by dest name
    vllm_options: dict[str, Any] = Field(default_factory=dict)

    @field_validator("gpu_memory_utilization", mode="before")
    @classmethod
    def _int_is_float(cls, v):
        return float(v) if isinstance(v, int) and not isinstance(v, bool) else v

    @property
    def served_names(self) -> tuple[str, ...]:
        """What vLLM answers to: the served name(s), then the aliases (so the proxy can ask for the alias)."""
        if isinstance(self.served_model_name, str):
            base: tuple[str, ...] = (self.served_model_name,)
        elif self.served_model_name:
            base = tuple(self.served_model_name)
        else:
            base = (self.model,)
        return base + tuple(a for a in self.aliases if a not in base)

    @property
    def label(self) -> str:
        """The engine's name: the compose service, `appliance logs NAME`, the metrics label in the TUI."""
        return self.name or _slug(self.aliases[0] if self.aliases else self.model.split("/")[-1])

    @property
    def gpu_count(self) -> int:
        return self.tensor_parallel_size * self.pipeline_parallel_size

    def option(self, dest: str, default=None):
        """A vLLM option from either the typed fields or vllm_options."""
        if dest in type(self).model_fields and dest not in APPLIANCE_ENGINE_KEYS and dest != "vllm_options":
            value = getattr(self, dest)
            return default if value is None else value
        return self.vllm_options.get(dest, default)


class Profile(Strict):
    name: str
    description: str = ""
    gpus: Literal["all"] | tuple[int, ...] = "all"
    card: str | None = Field(default=None, description="the GPU model the profile is written for (3090, 4090, …): "
                             "the fit check uses it when no GPU is visible, the simulated rig simulates it")
    power_limit_w: int | dict[int, int] | None = None
    engines: tuple[Engine, ...] = Field(min_length=1)
    proxy: Proxy = Proxy()

    # not from the file
    source_file: str = Field(default="", exclude=True)

    def power_limits(self, gpu_indices: list[int]) -> dict[int, int]:
        """Watts per GPU index (only the GPUs this profile sets)."""
        if self.power_limit_w is None:
            return {}
        if isinstance(self.power_limit_w, int):
            return {i: self.power_limit_w for i in gpu_indices}
        return {i: w for i, w in self.power_limit_w.items() if i in gpu_indices}

    def engine(self, label: str) -> Engine:
        for eng in self.engines:
            if eng.label == label:
                return eng
        raise ProfileError(f"profile {self.name} has no engine `{label}`",
                           "engines: " + ", ".join(e.label for e in self.engines))

    @property
    def aliases(self) -> dict[str, Engine]:
        return {a: e for e in self.engines for a in e.aliases}


def _slug(text: str) -> str:
    s = re.sub(r"[^a-z0-9_-]+", "-", text.lower()).strip("-_")
    return (s or "engine")[:40]


# --------------------------------------------------------------------------------------------- loading


@dataclass
class Problem:
    path: tuple
    message: str
    hint: str | None = None


def _closest(word: str, options) -> str | None:
    match = difflib.get_close_matches(str(word), list(options), n=1, cutoff=0.5)
    return match[0] if match else None


def _choices_text(choices, limit: int = 12) -> str:
    items = list(choices)
    head = ", ".join(items[:limit])
    return head + (f", … ({len(items)} in all)" if len(items) > limit else "")


def _engine_field_names() -> set[str]:
    return set(Engine.model_fields) - {"vllm_options"}


def _check_choice(problems: list, path: tuple, value, choices, what: str):
    if value is None:
        return
    if not isinstance(value, str) or value not in choices:
        near = _closest(value, choices) if isinstance(value, str) else None
        hint = f"did you mean `{near}`? " if near else ""
        problems.append(Problem(path, f"`{value}` is not a {what} vLLM {vllm_spec.VLLM_VERSION} knows",
                                f"{hint}one of: {_choices_text(choices)}"))


def _split_engine_options(raw: dict, epath: tuple, problems: list[Problem]) -> dict:
    """Move valid vLLM options that are not typed fields into `vllm_options`; flag unknown and removed keys."""
    typed = _engine_field_names()
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
        if key in vllm_spec.REMOVED:
            problems.append(Problem(path, f"`{key}` {vllm_spec.REMOVED[key]}", f"remove `{key}`"))
            continue
        if key == "vllm_options":
            problems.append(Problem(path, "`vllm_options` is not a field", "write vLLM options directly on the engine"))
            continue
        if key in typed:
            out[key] = value
            continue
        dashed = key.replace("-", "_")
        if dashed != key and (dashed in typed or dashed in vllm_spec.FLAGS):
            problems.append(Problem(path, f"`{key}` is written with dashes", f"write it as `{dashed}`"))
            continue
        if key in vllm_spec.FLAGS:
            vopts[key] = value
            continue
        near = _closest(key, typed | set(vllm_spec.FLAGS))
        hint = f"did you mean `{near}`?" if near else "engine keys are vLLM option names in snake_case, or " + \
            ", ".join(APPLIANCE_ENGINE_KEYS)
        problems.append(Problem(path, f"`{key}` is not a field", hint))
    if vopts:
        out["vllm_options"] = vopts
    return out


def _check_vllm_option(problems: list, path: tuple, dest: str, value):
    """YAML-level type first (a bool must be true/false, JSON options a mapping), then exactly what vLLM's own
    argument parser would say about the value."""
    import contextlib
    import io

    flag = vllm_spec.FLAGS[dest]
    if dest in vllm_spec.HARMFUL:
        problems.append(Problem(path, f"`{dest}` {vllm_spec.HARMFUL[dest]}", f"remove `{dest}`"))
        return
    if flag.kind in ("bool", "store_true") or flag.type == "optional_bool" and isinstance(value, bool):
        if not isinstance(value, bool):
            problems.append(Problem(path, f"`{dest}: {value!r}` must be true or false", None))
        return
    if flag.kind == "json" and flag.type == "json" and not isinstance(value, (dict, list)):
        problems.append(Problem(path, f"`{dest}` must be a mapping (vLLM takes it as JSON)", f"e.g. {dest}: {{k: v}}"))
        return
    if flag.kind not in ("multi", "append", "json") and isinstance(value, (dict, list)):
        problems.append(Problem(path, f"`{dest}` takes one value, not a {type(value).__name__}", None))
        return
    if value is None:
        problems.append(Problem(path, f"`{dest}` has no value", "give a value or remove the key"))
        return
    argv = ["model"] + vllm_spec.to_cli_args({dest: value})
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err):
            vllm_spec.build_serve_parser().parse_args(argv)
    except SystemExit:
        lines = [ln for ln in err.getvalue().strip().splitlines() if ln.strip()]
        why = lines[-1].split("error:", 1)[-1].strip() if lines else "rejected"
        if flag.choices:
            near = _closest(str(value), flag.choices)
            hint = (f"did you mean `{near}`? " if near else "") + "one of: " + _choices_text(flag.choices)
        else:
            hint = None
        problems.append(Problem(path, f"`{dest}: {value!r}` — vLLM {vllm_spec.VLLM_VERSION} rejects it: {why}", hint))


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


def _pydantic_problems(exc: ValidationError, data) -> list[Problem]:
    out = []
    for err in exc.errors():
        loc = tuple(err["loc"])
        # pydantic puts union member names in loc; keep only keys/indices that exist in the data
        clean: list = []
        node = data
        for part in loc:
            if isinstance(node, dict) and part in node:
                clean.append(part)
                node = node[part]
            elif isinstance(node, (list, tuple)) and isinstance(part, int) and part < len(node):
                clean.append(part)
                node = node[part]
            elif err["type"] in ("extra_forbidden", "missing") and part is loc[-1]:
                clean.append(part)
            else:
                continue
        path = tuple(clean)
        field = yamlsrc.format_path(path)
        value = err.get("input")
        etype = err["type"]
        if etype == "extra_forbidden":
            parent = _model_for(path[:-1])
            near = _closest(path[-1], parent.model_fields) if parent else None
            out.append(Problem(path, f"`{path[-1]}` is not a field of {yamlsrc.format_path(path[:-1])}",
                               f"did you mean `{near}`?" if near else
                               ("valid fields: " + ", ".join(parent.model_fields) if parent else None)))
        elif etype == "missing":
            out.append(Problem(path, f"`{field}` is required", f"add `{path[-1]}:`"))
        elif etype in ("literal_error", "enum"):
            expected = err.get("ctx", {}).get("expected", "")
            out.append(Problem(path, f"`{field}: {value!r}` is not allowed", f"use {expected}"))
        elif etype in ("greater_than", "greater_than_equal", "less_than", "less_than_equal"):
            ctx = err.get("ctx", {})
            bound = ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in ctx.items())
            out.append(Problem(path, f"`{field}: {value!r}` is out of range (must be {bound})", None))
        elif etype == "too_short":
            out.append(Problem(path, f"`{field}` must not be empty", "add at least one entry"))
        else:
            want = {"int_type": "a whole number", "float_type": "a number", "string_type": "text",
                    "bool_type": "true or false", "dict_type": "a mapping", "tuple_type": "a list",
                    "model_type": "a mapping", "int_from_float": "a whole number"}.get(etype, err["msg"].lower())
            out.append(Problem(path, f"`{field}: {value!r}` must be {want}", None))
    # one problem per path is enough (unions report each member)
    seen, uniq = set(), []
    for p in out:
        if p.path not in seen:
            seen.add(p.path)
            uniq.append(p)
    return uniq


def _model_for(path: tuple):
    model: Any = Profile
    for part in path:
        if isinstance(part, int):
            continue
        field = model.model_fields.get(part) if hasattr(model, "model_fields") else None
        if field is None:
            return None
        ann = field.annotation
        for cand in (Engine, Proxy, Hosted, Timeouts):
            if cand is ann or cand.__name__ in str(ann):
                model = cand
                break
        else:
            return None
    return model


def _semantic_problems(p: Profile) -> list[Problem]:
    """Checks across fields: what vLLM, Compose or LiteLLM would reject, caught before anything runs."""
    from appliance import catalog

    from appliance import cards

    out: list[Problem] = []
    if p.card is not None and cards.lookup(p.card) is None:
        near = _closest(p.card, cards.CARDS)
        out.append(Problem(("card",), f"`card: {p.card}` is not a card the appliance knows",
                           (f"did you mean `{near}`? " if near else "") + "one of: " + ", ".join(cards.CARDS)))
    if not NAME_RE.match(p.name):
        out.append(Problem(("name",), f"`name: {p.name}` must be lowercase letters, digits, - or _",
                           "it becomes the compose project name"))
    profile_gpus = None if p.gpus == "all" else list(p.gpus)
    if profile_gpus is not None:
        if not profile_gpus:
            out.append(Problem(("gpus",), "`gpus` is empty", "list GPU indices, or write `gpus: all`"))
        if len(set(profile_gpus)) != len(profile_gpus):
            out.append(Problem(("gpus",), f"`gpus: {list(profile_gpus)}` lists a GPU twice", "list each index once"))
        for i, g in enumerate(profile_gpus):
            if g < 0 or g > 63:
                out.append(Problem(("gpus", i), f"`gpus: {g}` is not a GPU index", "indices start at 0"))
    # power limits: plausible board limits only; per-card constraints are checked against NVML at `up`
    if p.power_limit_w is not None:
        items = [((), p.power_limit_w)] if isinstance(p.power_limit_w, int) else [
            ((k,), v) for k, v in p.power_limit_w.items()]
        for sub, watts in items:
            if not 50 <= watts <= 1000:
                out.append(Problem(("power_limit_w",) + sub, f"`power_limit_w: {watts}` W is not a GPU power limit",
                                   "give watts between 50 and 1000 (a 3090 takes 100–350, a 4090 150–450)"))
        if isinstance(p.power_limit_w, dict) and profile_gpus is not None:
            for k in p.power_limit_w:
                if k not in profile_gpus:
                    out.append(Problem(("power_limit_w", k), f"GPU {k} has a power limit but is not in `gpus`",
                                       f"add {k} to gpus or remove its limit"))
    ports: dict[int, int] = {}
    aliases: dict[str, int] = {}
    labels: dict[str, int] = {}
    gpu_use: dict[int, float] = {}
    hosted_names = {h.name for h in p.proxy.hosted}
    for i, e in enumerate(p.engines):
        base = ("engines", i)
        if e.port in ports:
            out.append(Problem(base + ("port",), f"engines[{ports[e.port]}] and engines[{i}] both use port {e.port}",
                               "give each engine its own port"))
        ports.setdefault(e.port, i)
        if e.port == p.proxy.port:
            out.append(Problem(base + ("port",), f"port {e.port} is the proxy's port", "pick another engine port"))
        if e.label in labels:
            out.append(Problem(base + ("name",), f"two engines are called `{e.label}`", "set a distinct `name:`"))
        labels.setdefault(e.label, i)
        if e.name is not None and not NAME_RE.match(e.name):
            out.append(Problem(base + ("name",), f"`name: {e.name}` must be lowercase letters, digits, - or _", None))
        if not e.aliases:
            out.append(Problem(base + ("aliases",), "the engine has no `aliases`",
                               "give the names agents use through the proxy, e.g. aliases: [local]"))
        for j, a in enumerate(e.aliases):
            if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,63}", a):
                out.append(Problem(base + ("aliases", j), f"alias `{a}` has characters the proxy cannot route",
                                   "use letters, digits, . _ : -"))
            if a in aliases:
                out.append(Problem(base + ("aliases", j), f"alias `{a}` is used by engines[{aliases[a]}] too",
                                   "each alias belongs to one engine"))
            if a in hosted_names:
                out.append(Problem(base + ("aliases", j), f"alias `{a}` is also the name of a hosted model",
                                   "rename one of them"))
            aliases.setdefault(a, i)
        if e.image.endswith(":latest") or ":" not in e.image.split("/")[-1]:
            out.append(Problem(base + ("image",), f"`image: {e.image}` is not pinned to a version",
                               f"pin a tag, e.g. {PINNED_IMAGE}"))
        for k in e.env:
            if not ENV_NAME_RE.match(k):
                out.append(Problem(base + ("env", k), f"`{k}` is not an environment variable name", None))
        # GPUs of this engine
        egpus = list(e.gpus) if e.gpus is not None else (
            profile_gpus[: e.gpu_count] if profile_gpus is not None else list(range(e.gpu_count)))
        if e.gpus is not None:
            if len(set(e.gpus)) != len(e.gpus):
                out.append(Problem(base + ("gpus",), f"`gpus: {list(e.gpus)}` lists a GPU twice", None))
            if profile_gpus is not None:
                for g in e.gpus:
                    if g not in profile_gpus:
                        out.append(Problem(base + ("gpus",), f"GPU {g} is not in the profile's `gpus`",
                                           f"add it to gpus: {list(profile_gpus)} or pick one of those"))
            if len(e.gpus) != e.gpu_count:
                out.append(Problem(base + ("tensor_parallel_size",),
                                   f"tensor_parallel_size {e.tensor_parallel_size} × pipeline_parallel_size "
                                   f"{e.pipeline_parallel_size} = {e.gpu_count}, but the engine has "
                                   f"{len(e.gpus)} GPUs", f"set tensor_parallel_size to a divisor of {len(e.gpus)} "
                                   "and list exactly that many gpus"))
        elif profile_gpus is not None and len(p.engines) == 1 and len(profile_gpus) != e.gpu_count:
            n = len(profile_gpus)
            divisors = [d for d in range(1, n + 1) if n % d == 0]
            if n % e.gpu_count != 0:
                out.append(Problem(base + ("tensor_parallel_size",),
                                   f"tensor_parallel_size {e.tensor_parallel_size} does not divide the profile's "
                                   f"{n} GPUs", f"use one of {divisors}, or list the engine's own `gpus`"))
            else:
                out.append(Problem(base + ("tensor_parallel_size",),
                                   f"tensor_parallel_size {e.tensor_parallel_size} uses {e.gpu_count} of the "
                                   f"profile's {n} GPUs", f"set tensor_parallel_size: {n // e.pipeline_parallel_size}"
                                   f" or list the engine's own `gpus`"))
        elif profile_gpus is not None and e.gpu_count > len(profile_gpus):
            out.append(Problem(base + ("tensor_parallel_size",),
                               f"the engine needs {e.gpu_count} GPUs, the profile has {len(profile_gpus)}", None))
        util = e.gpu_memory_utilization or 0.9
        for g in egpus:
            gpu_use[g] = gpu_use.get(g, 0) + util
        # choices
        _check_choice(out, base + ("kv_cache_dtype",), e.kv_cache_dtype, vllm_spec.KV_CACHE_DTYPES, "KV cache dtype")
        _check_choice(out, base + ("quantization",), e.quantization, vllm_spec.QUANTIZATION_METHODS,
                      "quantization method")
        _check_choice(out, base + ("dtype",), e.dtype, vllm_spec.DTYPES, "dtype")
        _check_choice(out, base + ("tool_call_parser",), e.tool_call_parser, vllm_spec.TOOL_CALL_PARSERS,
                      "tool-call parser")
        _check_choice(out, base + ("reasoning_parser",), e.reasoning_parser, vllm_spec.REASONING_PARSERS,
                      "reasoning parser")
        if e.quantization in vllm_spec.DEPRECATED_QUANTIZATION and not e.option("allow_deprecated_quantization"):
            out.append(Problem(base + ("quantization",), f"quantization `{e.quantization}` is deprecated in vLLM "
                               f"{vllm_spec.VLLM_VERSION}", "add allow_deprecated_quantization: true, or pick another"))
        if e.enable_auto_tool_choice and not e.tool_call_parser:
            out.append(Problem(base + ("enable_auto_tool_choice",),
                               "enable_auto_tool_choice needs a tool_call_parser (vLLM exits with "
                               "`--enable-auto-tool-choice requires --tool-call-parser`)",
                               "add tool_call_parser: hermes (Qwen2.5), qwen3_coder (Qwen3.x), llama3_json (Llama 3)"))
        if e.generation_config is not None and e.generation_config not in ("auto", "vllm") and not \
                e.generation_config.startswith("/"):
            out.append(Problem(base + ("generation_config",), f"`generation_config: {e.generation_config}`",
                               "use auto, vllm, or an absolute folder path inside the container"))
        _check_speculative(out, base, e)
        for dest, value in e.vllm_options.items():
            _check_vllm_option(out, base + (dest,), dest, value)
        if e.extra_args:
            _check_extra_args(out, base + ("extra_args",), e)
        # model facts
        ckpt = catalog.lookup(e.model, use_hf_cache=False)
        if ckpt:
            arch = ckpt.arch
            if e.max_model_len and e.max_model_len > arch.max_position and \
                    e.env.get("VLLM_ALLOW_LONG_MAX_MODEL_LEN") != "1" and not e.option("hf_overrides"):
                out.append(Problem(base + ("max_model_len",),
                                   f"max_model_len {e.max_model_len} is longer than {e.model}'s "
                                   f"{arch.max_position} tokens (vLLM refuses to start)",
                                   f"lower it to {arch.max_position}, or set rope scaling with hf_overrides"))
            if arch.heads % e.tensor_parallel_size:
                out.append(Problem(base + ("tensor_parallel_size",),
                                   f"{e.model} has {arch.heads} attention heads, which tensor_parallel_size "
                                   f"{e.tensor_parallel_size} does not divide",
                                   "use a tensor_parallel_size that divides " + str(arch.heads)))
            if e.quantization and ckpt.quant_method and not _quant_compatible(ckpt.quant_method, e.quantization):
                out.append(Problem(base + ("quantization",),
                                   f"{e.model} is a {ckpt.quant_method} checkpoint; quantization `{e.quantization}` "
                                   "does not match (vLLM refuses to start)",
                                   f"use quantization: {ckpt.quant_method} or leave it out"))
    for g, total in sorted(gpu_use.items()):
        if total > 1.0001:
            out.append(Problem(("engines",), f"engines on GPU {g} ask for gpu_memory_utilization {total:.2f} in all",
                               "the fractions of engines sharing a GPU must add up to at most 1.0"))
    _check_proxy(out, p, aliases)
    return out


def _quant_compatible(checkpoint: str, wanted: str) -> bool:
    if checkpoint == wanted:
        return True
    families = [{"awq", "awq_marlin", "moe_wna16"}, {"gptq", "gptq_marlin", "moe_wna16"}, {"fp8", "fbgemm_fp8"}]
    return any(checkpoint in f and wanted in f for f in families)


def _check_speculative(out: list, base: tuple, e: Engine):
    sc = e.speculative_config
    if sc is None:
        return
    path = base + ("speculative_config",)
    for key in sc:
        if key not in vllm_spec.SPECULATIVE_CONFIG_KEYS:
            near = _closest(key, vllm_spec.SPECULATIVE_CONFIG_KEYS)
            out.append(Problem(path + (key,), f"`{key}` is not a speculative_config key",
                               f"did you mean `{near}`?" if near else None))
    method = sc.get("method")
    if method is not None:
        _check_choice(out, path + ("method",), method, vllm_spec.SPECULATIVE_METHODS, "speculative method")
    elif not sc.get("model"):
        out.append(Problem(path, "speculative_config needs a `method` (e.g. mtp, ngram, eagle3) or a draft `model`",
                           "for models with built-in MTP heads: {method: mtp, num_speculative_tokens: 2}"))
    n = sc.get("num_speculative_tokens")
    if n is None and method != "suffix":
        out.append(Problem(path, "speculative_config needs `num_speculative_tokens`", "e.g. num_speculative_tokens: 2"))
    elif n is not None and (isinstance(n, bool) or not isinstance(n, int) or n < 1):
        out.append(Problem(path + ("num_speculative_tokens",), f"`num_speculative_tokens: {n!r}` must be a whole "
                           "number ≥ 1", None))


def _check_extra_args(out: list, path: tuple, e: Engine):
    import contextlib
    import io

    parser = vllm_spec.build_serve_parser()
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err):
            parser.parse_args(["model"] + list(e.extra_args))
    except SystemExit:
        last = [ln for ln in err.getvalue().strip().splitlines() if ln.strip()]
        why = last[-1].split("error:", 1)[-1].strip() if last else "rejected"
        out.append(Problem(path, f"vLLM {vllm_spec.VLLM_VERSION} would reject extra_args {list(e.extra_args)}: {why}",
                           "fix or remove the flag (vLLM exits with code 2 on an unknown flag)"))


def _check_proxy(out: list, p: Profile, local_aliases: dict[str, int]):
    hosted = {}
    for i, h in enumerate(p.proxy.hosted):
        base = ("proxy", "hosted", i)
        if h.name in hosted:
            out.append(Problem(base + ("name",), f"two hosted models are called `{h.name}`", "rename one"))
        hosted[h.name] = h
        if not ENV_NAME_RE.match(h.api_key_env):
            looks_like_key = h.api_key_env.startswith(("sk-", "sk_")) or len(h.api_key_env) > 40
            out.append(Problem(base + ("api_key_env",),
                               "`api_key_env` must be the NAME of an environment variable" +
                               (" — this looks like a key itself; never put keys in a profile" if looks_like_key
                                else f", not `{h.api_key_env}`"),
                               "e.g. api_key_env: OPENAI_API_KEY, then `appliance keys set openai`"))
        if h.provider == "openai_compatible" and not h.api_base:
            out.append(Problem(base + ("api_base",), "an openai_compatible hosted model needs `api_base`",
                               "e.g. api_base: https://api.example.com/v1"))
        if h.api_base and not re.match(r"^https?://", h.api_base):
            out.append(Problem(base + ("api_base",), f"`api_base: {h.api_base}` is not an http(s) URL", None))
    targets = set(hosted) | set(local_aliases)
    for key in ("fallbacks", "context_window_fallbacks"):
        for alias, chain in getattr(p.proxy, key).items():
            path = ("proxy", key, alias)
            if alias not in local_aliases:
                near = _closest(alias, local_aliases)
                out.append(Problem(path, f"`{alias}` in proxy.{key} is not an alias of any engine",
                                   f"did you mean `{near}`?" if near else "use one of: " + ", ".join(local_aliases)))
            for j, target in enumerate(chain):
                if target not in targets:
                    near = _closest(target, targets)
                    out.append(Problem(path + (j,), f"fallback `{target}` is neither a hosted model nor an alias",
                                       f"did you mean `{near}`?" if near else "define it under proxy.hosted"))
                elif target == alias:
                    out.append(Problem(path + (j,), f"`{alias}` falls back to itself", "remove it from its own list"))
            if key == "context_window_fallbacks" and alias in local_aliases:
                engine = p.engines[local_aliases[alias]]
                local_ctx = engine.max_model_len
                for j, target in enumerate(chain):
                    h = hosted.get(target)
                    if h is None:
                        other = p.engines[local_aliases[target]] if target in local_aliases else None
                        window = other.max_model_len if other else None
                    else:
                        window = h.max_input_tokens
                    if window is None:
                        out.append(Problem(path + (j,), f"context fallback `{target}` has no known context window",
                                           "set max_input_tokens on the hosted model (or max_model_len on the engine)"))
                    elif local_ctx and window <= local_ctx:
                        out.append(Problem(path + (j,), f"context fallback `{target}` ({window} tokens) is not larger "
                                           f"than `{alias}` ({local_ctx} tokens)",
                                           "a context-window fallback must have a larger context"))


def load_profile(ref: str | Path) -> Profile:
    """Load and validate a profile by name (searched in the profile dirs) or by path."""
    path = resolve(ref)
    src = yamlsrc.load_file(path)
    return validate(src)


def resolve(ref: str | Path) -> Path:
    ref_s = str(ref)
    candidate = Path(ref_s).expanduser()
    if candidate.suffix in (".yaml", ".yml") or "/" in ref_s or candidate.is_file():
        return candidate
    for d in paths.profile_dirs():
        for ext in (".yaml", ".yml"):
            f = d / f"{ref_s}{ext}"
            if f.is_file():
                return f
    names = available_names()
    near = _closest(ref_s, names)
    raise ProfileError(f"no profile called `{ref_s}`",
                       (f"did you mean `{near}`? " if near else "") + "see `appliance profiles` (searched: " +
                       ", ".join(str(d) for d in paths.profile_dirs()) + ")")


def available_files() -> list[Path]:
    """One file per profile name, the first directory of `paths.profile_dirs()` winning."""
    seen: dict[str, Path] = {}
    for d in paths.profile_dirs():
        if d.is_dir():
            for f in sorted(d.glob("*.y*ml")):
                seen.setdefault(f.stem, f)
    return [seen[k] for k in sorted(seen)]


def available_names() -> list[str]:
    return [f.stem for f in available_files()]


def validate(src: yamlsrc.Source) -> Profile:
    data = src.data
    if not isinstance(data, dict):
        raise ProfileError(f"{src.file}:1: a profile is a mapping (name:, engines:, …), not a "
                           f"{type(data).__name__}", "start from one of the profiles in profiles/")
    problems: list[Problem] = []
    if "source_file" in data:
        problems.append(Problem(("source_file",), "`source_file` is not a field", "remove it"))
    normalized = _pre_normalize(data, problems)
    profile = None
    try:
        profile = Profile.model_validate(normalized)
    except ValidationError as exc:
        problems.extend(_pydantic_problems(exc, normalized))
    if profile is not None and not problems:
        problems.extend(_semantic_problems(profile))
    if problems:
        raise ProfileError(*_format(src, problems))
    return profile.model_copy(update={"source_file": src.file})


def _format(src: yamlsrc.Source, problems: list[Problem]) -> tuple[str, str | None]:
    problems = sorted(problems, key=lambda p: src.line(p.path) or 0)
    first = problems[0]
    lines = [f"{src.where(first.path)}: {first.message}"]
    hint = first.hint
    for extra in problems[1:8]:
        lines.append(f"{src.where(extra.path)}: {extra.message}" + (f" ({extra.hint})" if extra.hint else ""))
    if len(problems) > 8:
        lines.append(f"… and {len(problems) - 8} more")
    return "\n".join(lines), hint
