"""Pure: Profile → the engine project's compose dict (one vLLM service per engine).

Host networking (no bridge, no docker-proxy hop), vLLM bound to 127.0.0.1 (only the proxy and the telemetry
reach it), the model as positional argument after an explicit `entrypoint: ["vllm", "serve"]`, only flags the
pinned vLLM accepts, GPU reservation per engine, `ipc: host`, the HF cache and the vLLM compile cache as
volumes, an exec-form python healthcheck with a long start period, and a restart policy.

`RenderSettings` says where the engines run, not what they are: a rig without the NVIDIA runtime (e.g. the
simulated one) asks for a local image, GPUs passed only as NVIDIA_VISIBLE_DEVICES, and extra environment and
volumes — the renderer does not know why.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from appliance import vllm_spec
from appliance.profile import Engine, Profile
from appliance.profile.placement import engine_gpu_indices

ENGINE_HOST = "127.0.0.1"
PROJECT_PREFIX = "appliance-"
HF_CACHE_VAR = "${APPLIANCE_HF_CACHE:-~/.cache/huggingface}"
SECRETS_VAR = "${APPLIANCE_SECRETS_FILE:-~/.config/appliance/secrets.env}"
VLLM_CACHE_VOLUME = "appliance-vllm-cache"
START_PERIOD_S = 1800  # download + load + compile of a large model; requests hang (not refused) until ready
READY_TIMEOUT_S = 1800  # VLLM_ENGINE_READY_TIMEOUT_S (default 600 s is too short for big models on slow disks)

# Option order on the command line: the typed fields first, in this order, then other vLLM options as written.
_TYPED_ORDER = (
    "tensor_parallel_size", "pipeline_parallel_size", "max_model_len", "max_num_seqs", "max_num_batched_tokens",
    "gpu_memory_utilization", "dtype", "quantization", "kv_cache_dtype", "enable_prefix_caching",
    "enable_chunked_prefill", "speculative_config", "enable_auto_tool_choice", "tool_call_parser",
    "reasoning_parser", "trust_remote_code", "generation_config", "override_generation_config",
    "limit_mm_per_prompt",
)


@dataclass(frozen=True)
class RenderSettings:
    image: str | None = None  # run every engine from this image instead of the profile's (a local build)
    gpu_reservation: bool = True  # docker's NVIDIA device reservation; False: NVIDIA_VISIBLE_DEVICES only
    extra_env: dict[str, str] = field(default_factory=dict)  # added to every engine's environment
    extra_volumes: tuple[str, ...] = ()  # added to every engine's volumes
    sidecar: tuple[str, ...] = ()  # a program run beside each engine (`<engine>-gpu`), given --port and --gpus
    gpu_count: int | None = None  # GPUs on the machine, for `gpus: all`; None = as many as the engines need
    drain_s: int = 60  # --shutdown-timeout: on SIGTERM, requests in flight get this long to finish


def project_name(profile: Profile) -> str:
    return PROJECT_PREFIX + profile.name


def normalize_speculative(sc: dict) -> dict:
    """vLLM rewrites every model-specific MTP alias (qwen3_next_mtp, deepseek_mtp, …) to `mtp` with a
    deprecation warning; emit `mtp` directly (techref §1.3)."""
    out = dict(sc)
    method = out.get("method")
    if isinstance(method, str) and method in vllm_spec.MTP_ALIASES:
        out["method"] = "mtp"
    return out


def vllm_options(engine: Engine, drain_s: int = 60) -> dict[str, object]:
    """dest → value for every vLLM option the engine sets (appliance keys and model excluded), plus the ones
    the appliance manages: the served names (model name + aliases), host, port and --shutdown-timeout (a switch
    drains: on SIGTERM vLLM lets requests in flight finish for that long)."""
    opts: dict[str, object] = {}
    names = engine.served_names
    opts["served_model_name"] = list(names)
    opts["host"] = ENGINE_HOST
    opts["port"] = engine.port
    for dest in _TYPED_ORDER:
        value = getattr(engine, dest)
        if dest == "tensor_parallel_size" and value == 1:
            continue
        if dest == "pipeline_parallel_size" and value == 1:
            continue
        if value is None:
            continue
        if dest == "speculative_config":
            value = normalize_speculative(value)
        opts[dest] = value
    for dest, value in engine.vllm_options.items():
        opts[dest] = value
    opts.setdefault("shutdown_timeout", drain_s)
    # health checks and the telemetry probe every second: keep them out of the access log
    opts.setdefault("disable_access_log_for_endpoints", "/health,/metrics")
    return opts


def drain_seconds(engine: Engine, drain_s: int = 60) -> int:
    return int(engine.vllm_options.get("shutdown_timeout", drain_s))


def vllm_argv(engine: Engine, drain_s: int = 60) -> list[str]:
    """The arguments after `vllm serve`: the model (positional), then flags."""
    return [engine.model] + vllm_spec.to_cli_args(vllm_options(engine, drain_s)) + list(engine.extra_args)


def _healthcheck(port: int) -> dict:
    probe = (f"import urllib.request; urllib.request.urlopen('http://{ENGINE_HOST}:{port}/health', timeout=5)")
    return {
        "test": ["CMD", "python3", "-c", probe],
        "interval": "10s",
        "timeout": "10s",
        "retries": 3,
        "start_period": f"{START_PERIOD_S}s",
    }


def engine_service(profile: Profile, engine: Engine, settings: RenderSettings) -> dict:
    total = settings.gpu_count or sum(e.gpu_count for e in profile.engines)
    if profile.gpus != "all":
        total = max(total, max(profile.gpus) + 1)
    gpus = engine_gpu_indices(profile, engine, total)
    env: dict[str, str] = {
        "VLLM_ENGINE_READY_TIMEOUT_S": str(READY_TIMEOUT_S),
        "CUDA_DEVICE_ORDER": "PCI_BUS_ID",  # CUDA's default order is fastest-first; NVML's is PCI order
    }
    env.update(engine.env)
    service: dict = {
        "image": settings.image or engine.image,
        "entrypoint": ["vllm", "serve"],
        "command": vllm_argv(engine, settings.drain_s),
        "network_mode": "host",
        "ipc": "host",
        "restart": "unless-stopped",
        "init": True,  # PID 1 forwards SIGTERM and reaps vLLM's worker processes
        "stop_grace_period": f"{drain_seconds(engine, settings.drain_s) + 15}s",  # drain, then the engine exits
        # the engines' part of the secrets file only (secrets.role_values): HF_TOKEN, never in this file
        "env_file": [{"path": SECRETS_VAR + ".engine", "required": False}],
        "environment": env,
        "volumes": [f"{HF_CACHE_VAR}:/root/.cache/huggingface", f"{VLLM_CACHE_VOLUME}:/root/.cache/vllm"],
        "healthcheck": _healthcheck(engine.port),
        "labels": {
            "appliance.profile": profile.name,
            "appliance.engine": engine.label,
            "appliance.port": str(engine.port),
            "appliance.aliases": ",".join(engine.aliases),
        },
    }
    env.update(settings.extra_env)
    service["volumes"].extend(settings.extra_volumes)
    if not settings.gpu_reservation:
        env["NVIDIA_VISIBLE_DEVICES"] = ",".join(str(g) for g in gpus)
    else:
        service["deploy"] = {"resources": {"reservations": {"devices": [
            {"driver": "nvidia", "device_ids": [str(g) for g in gpus], "capabilities": ["gpu"]}]}}}
    return service


def sidecar_service(profile: Profile, engine: Engine, settings: RenderSettings) -> dict:
    total = settings.gpu_count or sum(e.gpu_count for e in profile.engines)
    gpus = engine_gpu_indices(profile, engine, max(total, max(profile.gpus) + 1 if profile.gpus != "all" else 0))
    return {
        "entrypoint": [],
        "command": [*settings.sidecar, "--port", str(engine.port), "--gpus", ",".join(str(g) for g in gpus)],
        "network_mode": "host",
        "restart": "unless-stopped",
        "stop_grace_period": "5s",
        "environment": dict(settings.extra_env),
        "labels": {"appliance.profile": profile.name, "appliance.sidecar_of": engine.label},
    }


def literal(value):
    """A value Compose must not interpolate: every `$` doubled (Compose reads `$$` as one literal `$`), in strings
    inside lists and mappings too. Without it `model: "${HF_TOKEN}"` put the token on the command line and an env
    value `pa$word$$1` became `pa$1`."""
    if isinstance(value, str):
        return value.replace("$", "$$")
    if isinstance(value, list):
        return [literal(v) for v in value]
    if isinstance(value, dict):
        return {k: literal(v) for k, v in value.items()}
    return value


# The parts of a service that hold profile values; the others hold the appliance's own `${APPLIANCE_…}` defaults.
LITERAL_KEYS = ("image", "command", "environment", "labels", "healthcheck")


def render_engine_project(profile: Profile, settings: RenderSettings = RenderSettings()) -> dict:
    services = {e.label: engine_service(profile, e, settings) for e in profile.engines}
    if settings.sidecar:
        services.update({f"{e.label}-gpu": sidecar_service(profile, e, settings) for e in profile.engines})
    return {
        "name": project_name(profile),
        "services": {name: {k: literal(v) if k in LITERAL_KEYS else v for k, v in svc.items()}
                     for name, svc in services.items()},
        "volumes": {VLLM_CACHE_VOLUME: {"name": VLLM_CACHE_VOLUME}},
    }
