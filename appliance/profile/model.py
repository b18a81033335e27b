"""The profile models: what a profiles/*.yaml file may say, as strict, frozen pydantic models.

Engine keys are vLLM's own option names in snake_case (anything `vllm serve` of the pinned version accepts), plus
a few appliance keys: name, image, aliases, port, gpus, env, extra_args. The models only type-check; the checks
across fields live in checks.py and the loader that explains mistakes in load.py.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from appliance import vllm_spec
from appliance.errors import ProfileError
from appliance.profile import grammar

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
    "api_key": "the appliance gives every engine a key of its own (the secrets file's engine key), unknown to "
               "agents, who use the master key at the front door (`appliance keys`)",
    "ssl_keyfile": "the front door speaks plain HTTP to engines on 127.0.0.1",
    "ssl_certfile": "the front door speaks plain HTTP to engines on 127.0.0.1",
    "root_path": "the front door routes the engines' own paths (/v1/…)",
    "middleware": "it runs code in front of the engine's key check",
}
APPLIANCE_ENGINE_KEYS = ("name", "image", "aliases", "port", "gpus", "env", "extra_args")


class Strict(BaseModel):
    # no inf/NaN anywhere: `stream_s: .inf` overflowed mid-`up`, NaN compares false with every bound
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, allow_inf_nan=False)


class Hosted(Strict):
    """A hosted model the proxy can fall back to. Keys are referenced by the *name* of an env var, never inline."""

    name: str = Field(description="name used in `fallbacks` (also callable as an alias of its own)")
    provider: Literal["openai", "anthropic", "openrouter", "openai_compatible"]
    model: str = Field(description="the provider's model id, e.g. gpt-4o-mini, claude-sonnet-4-6")
    api_key_env: str = Field(description="name of the env var (or secrets-file entry) that holds the key")
    api_base: str | None = Field(default=None, description="base URL, required for openai_compatible")
    max_input_tokens: int | None = Field(default=None, gt=0, description="context window, for context fallbacks")

    @field_validator("name")
    @classmethod
    def _name_grammar(cls, v):
        _raise(grammar.alias_problem(v, "hosted name"))
        return v

    @field_validator("model")
    @classmethod
    def _model_grammar(cls, v):
        _raise(grammar.provider_model_problem(v))
        return v

    @field_validator("api_base")
    @classmethod
    def _url_grammar(cls, v):
        if v is not None:
            _raise(grammar.url_problem(v))
        return v

    @property
    def litellm_model(self) -> str:
        prefix = {"openai": "openai", "anthropic": "anthropic", "openrouter": "openrouter",
                  "openai_compatible": "openai"}[self.provider]
        return self.model if self.model.startswith(prefix + "/") else f"{prefix}/{self.model}"


# HAProxy's timeouts hold at most 2^31-1 ms (~24 days); a day is more than any request may take.
MAX_TIMEOUT_S = 86400


class Timeouts(Strict):
    request_s: float = Field(default=600, ge=1, le=MAX_TIMEOUT_S, description="whole non-streaming request")
    stream_s: float = Field(default=120, ge=1, le=MAX_TIMEOUT_S,
                            description="streaming: silence allowed before/between chunks")
    connect_s: float = Field(default=2, gt=0, le=MAX_TIMEOUT_S, description="TCP connect to an engine")
    first_token_s: float = Field(default=30, gt=0, le=MAX_TIMEOUT_S,
                                 description="a local engine that has not answered by then counts as hung")
    hold_s: float = Field(default=300, ge=0, le=3600,
                          description="a request for an alias with no fallback waits this long at the front door "
                                      "for its engine (a switch, a restart) instead of getting 503")


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

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, allow_inf_nan=False)

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


def _raise(problem: str | None) -> None:
    """pydantic turns a ValueError into a problem at the field's path (problems.py shows its text)."""
    if problem:
        raise ValueError(problem)


def _slug(text: str) -> str:
    s = re.sub(r"[^a-z0-9_-]+", "-", text.lower()).strip("-_")
    return (s or "engine")[:40]


def spec_of_image(image) -> "vllm_spec.Spec":
    """The vLLM spec an engine is validated against: its image tag's version (the nearest older known one for a
    newer tag; the pinned one when the tag names no version — `appliance check` says which)."""
    from appliance import vllm_versions

    tag = image if isinstance(image, str) and image else PINNED_IMAGE
    return vllm_versions.resolve(vllm_versions.version_from_image(tag)).spec

