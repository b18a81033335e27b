"""The GPU boundary: one interface, two implementations (NVML on a real rig, the simulated GPUs elsewhere).

Reads never raise: a field the GPU does not support is None. Units are in the names.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

# NVML clock-event (throttle) reason bits (techref §3)
THROTTLE_BITS = {
    0x1: "idle",
    0x2: "app clocks",
    0x4: "power cap",
    0x8: "HW slowdown",
    0x10: "sync boost",
    0x20: "SW thermal",
    0x40: "HW thermal",
    0x80: "power brake",
    0x100: "display clocks",
}


def throttle_names(mask: int | None) -> list[str]:
    if not mask:
        return []
    return [name for bit, name in THROTTLE_BITS.items() if mask & bit]


@dataclass(frozen=True)
class GPUProcess:
    pid: int
    used_bytes: int | None


@dataclass(frozen=True)
class GPUReading:
    index: int
    name: str
    uuid: str | None = None
    memory_total_bytes: int | None = None
    memory_used_bytes: int | None = None
    power_w: float | None = None
    power_limit_w: float | None = None
    power_min_w: float | None = None
    power_max_w: float | None = None
    power_default_w: float | None = None
    energy_j: float | None = None  # cumulative; from the GPU's counter where supported, else integrated power
    energy_source: str | None = None  # "counter" | "integrated"
    temperature_c: float | None = None
    utilization_pct: float | None = None
    sm_clock_mhz: float | None = None
    throttle_reasons: tuple[str, ...] = ()
    processes: tuple[GPUProcess, ...] = field(default_factory=tuple)
    lost: bool = False  # the GPU fell off the bus / needs a reset

    @property
    def at_power_limit(self) -> bool:
        return "power cap" in self.throttle_reasons or (
            self.power_w is not None and self.power_limit_w is not None and self.power_w >= 0.97 * self.power_limit_w)


@dataclass(frozen=True)
class PowerChange:
    index: int
    requested_w: float
    applied_w: float
    previous_w: float
    note: str | None = None  # e.g. "clamped to the card's maximum of 350 W"


class GPUs(Protocol):
    """What the rest of the appliance may ask of the GPUs."""

    kind: str  # "nvml" | "sim"

    def count(self) -> int: ...

    def read(self, index: int) -> GPUReading: ...

    def read_all(self) -> list[GPUReading]: ...

    def set_power_limit(self, index: int, watts: float) -> PowerChange: ...

    def close(self) -> None: ...


def clamp_power(requested: float, min_w: float | None, max_w: float | None) -> tuple[float, str | None]:
    """Clamp a requested limit into the card's constraints and say why it changed."""
    if min_w is not None and requested < min_w:
        return min_w, f"{requested:.0f} W is below this card's minimum; using {min_w:.0f} W"
    if max_w is not None and requested > max_w:
        return max_w, f"{requested:.0f} W is above this card's maximum; using {max_w:.0f} W"
    return requested, None
