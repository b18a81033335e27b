"""The GPU boundary. `open_gpus(sim_dir=None)`: NVML on a real rig, the simulated GPUs when sim_dir is given."""

from __future__ import annotations

from pathlib import Path


def open_gpus(sim_dir: Path | None = None, cards: list[str] | None = None):
    if sim_dir is not None:
        from appliance.gpu.sim import SimulatedGPUs

        return SimulatedGPUs(sim_dir, cards)
    from appliance.gpu.nvml import NvmlGPUs

    return NvmlGPUs()
