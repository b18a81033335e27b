"""Hosted-provider stand-ins for the simulated rig.

These machines reach no hosted API, so under `--sim` and in `appliance demo` every hosted model a profile names
(OpenAI, Anthropic, OpenRouter, any OpenAI-compatible) is served by a local stand-in engine speaking the OpenAI
API, on a loopback port of its own. The proxy config then points that hosted model at the stand-in; everything
else (aliases, fallbacks, context windows, cooldowns) stays exactly as rendered for the real providers.
The stand-ins run on a separate simulated datacenter GPU each, so they never show up as load on the owner's rig.
"""

from __future__ import annotations

import os
from pathlib import Path

from appliance.profile import Profile

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


class HostedStandIns:
    """The hosted-model part of a simulated rig: one stand-in engine per hosted model, as local processes in the
    rig's dir, on simulated datacenter GPUs of their own."""

    def __init__(self, rig_dir: Path):
        self.dir = Path(rig_dir)

    def check_keys(self, profile, emit) -> None:
        """Stand-ins need no key."""

    def ensure(self, profiles: list[Profile], emit) -> dict[str, str]:
        """Start (or keep) one stand-in per hosted model; returns hosted name → base URL for the proxy config."""
        from appliance.sim import state as simstate
        from appliance.sim.gpu_boundary import SimulatedGPUs

        sim_dir = self.dir / "hosted-gpus"
        compose, urls = compose_for(profiles, str(sim_dir))
        if not urls:
            return urls
        n = len(compose["services"])
        existing = simstate.gpus_path(sim_dir).exists() and SimulatedGPUs(sim_dir).count() >= n
        if not existing:
            SimulatedGPUs(sim_dir, ["h100-80"] * max(n, 1))
        rt = self._runtime()
        alive = {s.service for s in rt.states(PROJECT) if s.alive}
        if set(compose["services"]) - alive:
            if alive:
                rt.down(PROJECT, None, timeout_s=5)
            emit("info", f"simulated rig: hosted models served by local stand-ins ({', '.join(urls)})")
            rt.up(PROJECT, None, compose)
        return urls

    def stop(self) -> None:
        self._runtime().down(PROJECT, None, timeout_s=5)

    def _runtime(self):
        import sys

        from appliance.runtime.process import ProcessRuntime

        return ProcessRuntime(self.dir / "hosted-processes", vllm_command=[sys.executable, "-m", "appliance.sim.engine"])
