"""Pure: the proxy plan → the LiteLLM config dict.

LiteLLM serves what the hot path (HAProxy → vLLM) does not: fallbacks, hosted models, translation, requests too
large for HAProxy to inspect. It is rendered from the ACTIVE profile's plan (render/plan.py) — that profile's
aliases and fallbacks plus the owner's global ones — never from every profile.

Local engines: each alias is one model group with one local deployment (`hosted_vllm/<alias>`; vLLM serves the
alias itself via --served-model-name) whose api_base is HAProxy's internal listener for that alias, not the
engine. HAProxy's health checks decide that an engine is gone: the listener answers 503 at once when the engine
is down, loading or draining, and cuts a request in flight when a hung engine is marked down; LiteLLM then takes
the fallback. So LiteLLM's own timeouts toward local engines can be as long as the longest prefill needs (the
whole-request timeout, no 30 s first-token timeout): a long prompt is served locally, not sent to a hosted model.
"""
from __future__ import annotations

from dataclasses import dataclass

from appliance.profile import Profile
from appliance.render.plan import ProxyPlan

PROXY_PROJECT = "appliance-proxy"
LITELLM_IMAGE = "ghcr.io/berriai/litellm:v1.106.2"
MASTER_KEY_ENV = "LITELLM_MASTER_KEY"
ENGINE_KEY_ENV = "APPLIANCE_ENGINE_KEY"
SECRETS_VAR = "${APPLIANCE_SECRETS_FILE:-~/.config/appliance/secrets.env}"
# Exception classes LiteLLM counts per deployment; 0 allowed fails = cool down on the first one. Not
# ServiceUnavailable: a local engine that is down gets HAProxy's instant 503, and cooling it down would keep
# LiteLLM's requests away from it for cooldown_s after it is back.
ALLOWED_FAILS_POLICY = {
    "TimeoutErrorAllowedFails": 0,
    "InternalServerErrorAllowedFails": 0,
    "BadGatewayErrorAllowedFails": 0,
    "NotFoundErrorAllowedFails": 0,
    "RateLimitErrorAllowedFails": 1,
}  # only AllowedFailsPolicy's own fields (litellm/types/router.py): an unknown key is silently dropped
# Local deployments (model_info.allowed_fails_policy, read per deployment by LiteLLM's cooldown_handlers.py): never
# cooled down for an error answer. Their way in is HAProxy's listener, which answers 503 at once while the engine
# is down; a cooldown would only keep LiteLLM's requests (the large ones) on a hosted model for cooldown_s after
# the engine is healthy again.
LOCAL_ALLOWED_FAILS_POLICY = {
    "InternalServerErrorAllowedFails": 1000,
    "ServiceUnavailableErrorAllowedFails": 1000,
    "BadGatewayErrorAllowedFails": 1000,
}
# The proxy's own environment. LITELLM_LOCAL_MODEL_COST_MAP: never fetch the price list from the internet.
PROXY_ENV = {
    "LITELLM_LOCAL_MODEL_COST_MAP": "True",
    "LITELLM_LOG": "ERROR",
    "PYTHON_GC_THRESHOLD": "20000,50,100",  # removes ~0.5 s full-GC stalls of every stream (testbed.md)
}


@dataclass(frozen=True)
class ProxySettings:
    host: str = "127.0.0.1"
    port: int = 4000
    cooldown_s: float = 30
    request_timeout_s: float = 600
    stream_timeout_s: float = 120  # hosted models: silence allowed before/between chunks
    hold_s: float = 300  # a request for an alias with no fallback waits this long for its engine


def proxy_settings(profile: Profile | None, lan: bool | None = None) -> ProxySettings:
    """The proxy's settings, from the profile it serves (defaults when none runs)."""
    if profile is None:
        return ProxySettings(host="0.0.0.0" if lan else "127.0.0.1")
    px = profile.proxy
    return ProxySettings(
        host="0.0.0.0" if (px.lan if lan is None else lan) else "127.0.0.1",
        port=px.port,
        cooldown_s=px.cooldown_s,
        request_timeout_s=px.timeouts.request_s,
        stream_timeout_s=px.timeouts.stream_s,
        hold_s=px.timeouts.hold_s,
    )


def engine_base_port(proxy_port: int) -> int:
    """The first internal listener: after the agents' port and the two LiteLLM ports (+1, +2: a config change
    starts the second beside the first)."""
    return proxy_port + 3


def engine_listener_ports(pl: ProxyPlan, base_port: int) -> dict[str, int]:
    """HAProxy's internal listener per local alias (LiteLLM's way to that engine): base_port, base_port+1, … in
    alias order."""
    return {a: base_port + i for i, a in enumerate(sorted(pl.alias_port))}


def local_deployment_id(alias: str, port: int) -> str:
    return f"local:{alias}@{port}"


def hosted_deployment_id(name: str) -> str:
    return f"hosted:{name}"


def render_litellm_config(pl: ProxyPlan, settings: ProxySettings | None = None,
                          hosted_overrides: dict[str, str] | None = None) -> dict:
    """The LiteLLM proxy config for the plan. `hosted_overrides` maps a hosted name to a local stand-in base URL
    (the simulated rig: these machines reach no hosted API); the real provider settings are still validated."""
    settings = settings or ProxySettings()
    listeners = engine_listener_ports(pl, engine_base_port(settings.port))
    model_list = []
    for alias, port in pl.alias_port.items():
        model_list.append({
            "model_name": alias,
            "litellm_params": {
                "model": f"hosted_vllm/{alias}",
                "api_key": f"os.environ/{ENGINE_KEY_ENV}",  # the engines' own key (agents never see it)
                "api_base": f"http://127.0.0.1:{listeners[alias]}/v1",  # HAProxy: 503 at once if the engine is down
                # a long prefill must not look like a dead engine: HAProxy's health checks decide that
                "timeout": settings.request_timeout_s,
                "stream_timeout": settings.request_timeout_s,
                "max_retries": 0,
            },
            "model_info": {"id": local_deployment_id(alias, port), "mode": "chat",
                           "allowed_fails_policy": dict(LOCAL_ALLOWED_FAILS_POLICY)},
        })

    def hosted_params(name: str) -> tuple[dict, dict]:
        h = pl.hosted[name]
        params: dict = {"model": h.litellm_model, "api_key": f"os.environ/{h.api_key_env}",
                        "timeout": settings.request_timeout_s, "stream_timeout": settings.stream_timeout_s}
        if h.api_base:
            params["api_base"] = h.api_base
        if hosted_overrides and name in hosted_overrides:
            params["model"] = f"openai/{h.model.split('/')[-1]}"
            params["api_base"] = hosted_overrides[name]
            params["api_key"] = "sim-stand-in-needs-no-key"  # the local stand-in; the real key may not exist here
        info: dict = {"id": hosted_deployment_id(name), "mode": "chat"}
        if h.max_input_tokens:
            info["max_input_tokens"] = h.max_input_tokens
        return params, info

    for name in pl.hosted:
        params, info = hosted_params(name)
        model_list.append({"model_name": name, "litellm_params": params, "model_info": info})
    fallbacks = dict(pl.fallbacks)
    for alias, chain in pl.global_aliases.items():
        # an alias the active profile lacks: its first global fallback answers under the alias's name
        params, info = hosted_params(chain[0])
        info = {**info, "id": f"{hosted_deployment_id(chain[0])}#{alias}"}
        model_list.append({"model_name": alias, "litellm_params": params, "model_info": info})
        if chain[1:]:
            fallbacks[alias] = chain[1:]
    router: dict = {
        "routing_strategy": "simple-shuffle",
        "num_retries": 0,  # a failed local call goes straight to the fallback instead of retrying a dead engine
        "timeout": settings.request_timeout_s,
        "allowed_fails_policy": dict(ALLOWED_FAILS_POLICY),
        "cooldown_time": settings.cooldown_s,
        "retry_after": 0,
    }
    if fallbacks:
        router["fallbacks"] = [{a: list(c)} for a, c in sorted(fallbacks.items())]
    if pl.ctx_fallbacks:
        router["context_window_fallbacks"] = [{a: list(c)} for a, c in sorted(pl.ctx_fallbacks.items())]
    return {
        "model_list": model_list,
        "router_settings": router,
        "litellm_settings": {
            "drop_params": True,
            "request_timeout": settings.request_timeout_s,
            "num_retries": 0,
            "turn_off_message_logging": True,
            "callbacks": ["prometheus"],
            "require_auth_for_metrics_endpoint": True,
        },
        "general_settings": {
            "master_key": f"os.environ/{MASTER_KEY_ENV}",
            "disable_spend_logs": True,
            "background_health_checks": False,
        },
    }
