"""Pure: Profiles → the proxy project (LiteLLM config dict and its compose dict).

The proxy outlives profile switches, so it is rendered from *all* profiles: it knows every alias any profile
serves. Each alias is one LiteLLM model group with one local deployment (`hosted_vllm/<alias>` at the engine's
port: vLLM serves the alias itself via --served-model-name, so nothing is rewritten) and the hosted fallbacks
named in the profiles. An alias therefore lives on the same port in every profile; the renderer refuses
profiles that disagree.

Fallback and cooldown settings (techref §2.3, testbed.md): a local engine that is down, loading (TCP accepted,
no answer) or failing is cooled down after ONE failure of each of the listed exception types, for
`cooldown_s`; meanwhile the alias is served by its fallbacks. A hung engine therefore costs one slow request
per cooldown window, not every request.
"""

from __future__ import annotations

from dataclasses import dataclass

from appliance.errors import ProfileError
from appliance.profile import Profile
from appliance.render.plan import plan

PROXY_PROJECT = "appliance-proxy"
LITELLM_IMAGE = "ghcr.io/berriai/litellm:v1.106.2"
MASTER_KEY_ENV = "LITELLM_MASTER_KEY"
SECRETS_VAR = "${APPLIANCE_SECRETS_FILE:-~/.config/appliance/secrets.env}"
# Exception classes LiteLLM counts per deployment; 0 allowed fails = cool down on the first one.
ALLOWED_FAILS_POLICY = {
    "TimeoutErrorAllowedFails": 0,
    "InternalServerErrorAllowedFails": 0,
    "ServiceUnavailableErrorAllowedFails": 0,
    "BadGatewayErrorAllowedFails": 0,
    "NotFoundErrorAllowedFails": 0,
    "RateLimitErrorAllowedFails": 1,
    "APIConnectionErrorAllowedFails": 0,
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
    stream_timeout_s: float = 120
    first_token_timeout_s: float = 30
    hold_s: float = 300


def proxy_settings(profiles: list[Profile], lan: bool | None = None) -> ProxySettings:
    """Settings shared by the proxy: taken from the profiles, which must agree on the port."""
    ports = {p.proxy.port for p in profiles} or {4000}
    if len(ports) > 1:
        detail = ", ".join(f"{p.name}: {p.proxy.port}" for p in profiles)
        raise ProfileError(f"the profiles disagree on proxy.port ({detail})",
                           "the proxy outlives profile switches: give every profile the same proxy.port")
    any_lan = any(p.proxy.lan for p in profiles) if lan is None else lan
    first = profiles[0].proxy if profiles else None
    return ProxySettings(
        host="0.0.0.0" if any_lan else "127.0.0.1",
        port=ports.pop(),
        cooldown_s=max((p.proxy.cooldown_s for p in profiles), default=30),
        request_timeout_s=first.timeouts.request_s if first else 600,
        stream_timeout_s=first.timeouts.stream_s if first else 120,
        first_token_timeout_s=first.timeouts.first_token_s if first else 30,
        hold_s=first.timeouts.hold_s if first else 300,
    )


def local_deployment_id(alias: str, port: int) -> str:
    return f"local:{alias}@{port}"


def hosted_deployment_id(name: str) -> str:
    return f"hosted:{name}"


def render_litellm_config(profiles: list[Profile], settings: ProxySettings | None = None,
                          hosted_overrides: dict[str, str] | None = None) -> dict:
    """The LiteLLM proxy config. `hosted_overrides` maps a hosted name to a local stand-in base URL (the
    simulated rig: these machines reach no hosted API); the real provider settings are still validated."""
    settings = settings or proxy_settings(profiles)
    pl = plan(profiles)
    alias_port, hosted, fallbacks, ctx_fallbacks = pl.alias_port, pl.hosted, pl.fallbacks, pl.ctx_fallbacks
    model_list = []
    for alias in sorted(alias_port):
        port = alias_port[alias][0]
        model_list.append({
            "model_name": alias,
            "litellm_params": {
                "model": f"hosted_vllm/{alias}",
                "api_base": f"http://127.0.0.1:{port}/v1",
                "timeout": settings.request_timeout_s,
                "stream_timeout": settings.first_token_timeout_s,
                "max_retries": 0,
            },
            "model_info": {"id": local_deployment_id(alias, port), "mode": "chat"},
        })
    for name in sorted(hosted):
        h = hosted[name]
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
        model_list.append({"model_name": name, "litellm_params": params, "model_info": info})
    router: dict = {
        "routing_strategy": "simple-shuffle",
        "num_retries": 0,  # a failed local call goes straight to the fallback instead of retrying a dead engine
        "timeout": settings.request_timeout_s,
        "stream_timeout": settings.first_token_timeout_s,
        "allowed_fails_policy": dict(ALLOWED_FAILS_POLICY),
        "cooldown_time": settings.cooldown_s,
        "retry_after": 0,
    }
    if fallbacks:
        router["fallbacks"] = [{a: list(c)} for a, c in sorted(fallbacks.items())]
    if ctx_fallbacks:
        router["context_window_fallbacks"] = [{a: list(c)} for a, c in sorted(ctx_fallbacks.items())]
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
