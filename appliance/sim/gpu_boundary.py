"""The simulated GPUs behind the GPU boundary, the same interface as NVML (appliance.gpu.base); the physics and
the shared state live in appliance.sim.gpu / appliance.sim.state."""

from __future__ import annotations

from pathlib import Path

from appliance.errors import GPUError
from appliance.gpu.base import (
    GPUProcess,
    GPUReading,
    PowerChange,
    clamp_power,
    throttle_names,
)


class SimulatedGPUs:
    kind = "sim"

    def __init__(self, sim_dir: Path, cards: list[str] | None = None):
        from appliance.sim import state
        from appliance.sim.gpu import SimGPUs

        self.sim_dir = Path(sim_dir)
        if cards is not None or not state.gpus_path(self.sim_dir).exists():
            self._gpus = SimGPUs.create(self.sim_dir, cards or ["3090"] * 4)
        else:
            self._gpus = SimGPUs(self.sim_dir)

    @property
    def cards(self) -> list[str]:
        return [row["card"] for row in self._gpus.gpus]

    def count(self) -> int:
        return self._gpus.count()

    def read(self, index: int) -> GPUReading:
        return self._convert(self._gpus.info(index))

    def read_all(self) -> list[GPUReading]:
        return [self._convert(i) for i in self._gpus.info_all()]

    @staticmethod
    def _convert(i) -> GPUReading:
        return GPUReading(
            index=i.index, name=i.name, uuid=i.uuid, memory_total_bytes=i.memory_total_bytes,
            memory_used_bytes=i.memory_used_bytes, power_w=i.power_w, power_limit_w=i.power_limit_w,
            power_min_w=i.power_min_w, power_max_w=i.power_max_w, power_default_w=i.power_default_w,
            energy_j=i.energy_j, energy_source="counter", temperature_c=i.temperature_c,
            utilization_pct=i.utilization_pct, sm_clock_mhz=i.sm_clock_mhz,
            throttle_reasons=tuple(throttle_names(i.throttle_reasons)),
            processes=tuple(GPUProcess(pid, None) for pid in i.processes))

    def set_power_limit(self, index: int, watts: float) -> PowerChange:
        if not 0 <= index < self.count():
            raise GPUError(f"setting GPU {index}'s power limit: this rig has GPUs 0–{self.count() - 1}",
                           "check the profile's gpus")
        before = self._gpus.get_power_limit(index)
        row = self._gpus.gpus[index]
        applied, note = clamp_power(watts, row["power_min_w"], row["power_max_w"])
        try:
            self._gpus.set_power_limit(index, applied)
        except ValueError as exc:  # the simulated NVML InvalidArgument
            raise GPUError(f"setting GPU {index}'s power limit to {watts:.0f} W: {exc}",
                           "stay within the card's constraints") from None
        after = self._gpus.get_power_limit(index)
        return PowerChange(index, watts, after, before, note)

    def close(self) -> None:
        self._gpus.close()
