"""Hosted-provider stand-ins for the simulated rig.

These machines reach no hosted API, so under `--sim` and in `appliance demo` every hosted model a profile names
(OpenAI, Anthropic, OpenRouter, any OpenAI-compatible) is served by a local stand-in engine speaking the OpenAI
API, on a loopback port of its own. The proxy config then points that hosted model at the stand-in; everything
else (aliases, fallbacks, context windows, cooldowns) stays exactly as rendered for the real providers.
The stand-ins run on a separate simulated datacenter GPU each, so they never show up as load on the owner's rig.
"""

from __future__ import annotations

from appliance.profile import Profile

import os

PROJECT = "appliance-hosted"


def base_port() -> int:
    return int(os.environ.get("APPLIANCE_HOSTED_BASE_PORT", "4100"))


def _hosted(profiles: list[Profile]) -> dict:
    out = {}
    for p in profiles:
        for h in p.proxy.hosted:
            out.setdefault(h.name, h)
    return dict(sorted(out.items()))


def compose_for(profiles: list[Profile], sim_dir: str) -> tuple[dict, dict[str, str]]:
    services, urls = {}, {}
    for i, (name, h) in enumerate(_hosted(profiles).items()):
        port = base_port() + i
        model = h.model.split("/")[-1]
        ctx = h.max_input_tokens or 131072
        services[f"hosted-{name}"] = {
            "entrypoint": ["vllm", "serve"],
            "command": [model, "--served-model-name", model, name, "--host", "127.0.0.1", "--port", str(port),
                        "--max-model-len", str(ctx), "--max-num-seqs", "256"],
            "environment": {"APPLIANCE_SIM_DIR": sim_dir, "NVIDIA_VISIBLE_DEVICES": str(i),
                            "APPLIANCE_SIM_LOAD_S": "0.3", "APPLIANCE_SIM_PARAMS_B": "8",
                            "APPLIANCE_SIM_MEMORY_CHECK": "0"},  # a hosted API has no VRAM limit to show
            "restart": "unless-stopped",
            "stop_grace_period": "5s",
        }
        urls[name] = f"http://127.0.0.1:{port}/v1"
    return {"name": PROJECT, "services": services}, urls


def ensure_stand_ins(stack, profiles: list[Profile]) -> dict[str, str]:
    """Start (or keep) one stand-in per hosted model; returns hosted name → base URL for the proxy config."""
    from appliance.gpu import open_gpus
    from appliance.runtime.process import ProcessRuntime
    from appliance.sim import state as simstate

    rig = stack.rig
    sim_dir = rig.dir / "hosted-gpus"
    compose, urls = compose_for(profiles, str(sim_dir))
    if not urls:
        return urls
    n = len(compose["services"])
    existing = simstate.gpus_path(sim_dir).exists() and open_gpus(sim_dir).count() >= n
    if not existing:
        open_gpus(sim_dir, ["h100-80"] * max(n, 1))
    rt = ProcessRuntime(rig.dir / "processes")
    alive = {s.service for s in rt.states(PROJECT) if s.alive}
    if set(compose["services"]) - alive:
        if alive:
            rt.down(PROJECT, None, timeout_s=5)
        stack.emit("info", f"simulated rig: hosted models served by local stand-ins ({', '.join(urls)})")
        rt.up(PROJECT, None, compose)
    return urls


def stop_stand_ins(stack) -> None:
    from appliance.runtime.process import ProcessRuntime

    ProcessRuntime(stack.rig.dir / "processes").down(PROJECT, None, timeout_s=5)
