"""The simulated side of the GPU boundary: GPUs that exist as files in the shared sim state directory.

`SimGPUs.create(sim_dir, cards)` writes gpus.json and one limit file per GPU; `SimGPUs(sim_dir)` attaches to an
existing rig (any number of readers, in any process, see the same numbers). Readings are computed from the
engine files the simulated engines write (README.md): power = idle + the extra power of live engines, energy =
idle × age of the rig + every engine's integrated extra energy, memory = live engines' memory, and a simple
thermal / clock / throttle model on top. Stdlib only.
"""

from __future__ import annotations

import hashlib
import math
import time
from dataclasses import dataclass
from pathlib import Path

from appliance.cards import CARDS, Card, lookup
from appliance.sim import state

# NVML clock-event reason bits
THROTTLE_GPU_IDLE = 0x1
THROTTLE_SW_POWER_CAP = 0x4

AMBIENT_C = 30.0
FULL_LOAD_C = 80.0  # steady temperature at the card's default limit, fully loaded
IDLE_SM_CLOCK_MHZ = 210.0
BOOST_SM_CLOCK_MHZ = 1890.0


@dataclass(frozen=True)
class SimGPUInfo:
    """One reading of one simulated GPU (units in the names, like NVML's facade)."""

    index: int
    name: str
    uuid: str
    card: str  # cards.CARDS key
    memory_total_bytes: int
    memory_used_bytes: int
    memory_free_bytes: int
    power_w: float
    power_limit_w: float
    power_min_w: float
    power_max_w: float
    power_default_w: float
    energy_j: float  # monotonic, since the rig was created
    temperature_c: float
    utilization_pct: float
    sm_clock_mhz: float
    throttle_reasons: int  # NVML bitmask: 0x1 GpuIdle, 0x4 SwPowerCap
    processes: tuple[int, ...]  # pids of live engines using this GPU

    @property
    def power_constraints_w(self) -> tuple[float, float]:
        return (self.power_min_w, self.power_max_w)


def _uuid(sim_dir: Path, index: int, card: str) -> str:
    h = hashlib.sha1(f"{sim_dir}:{index}:{card}".encode()).hexdigest()
    return f"GPU-{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:32]}"


class SimGPUs:
    kind = "sim"

    def __init__(self, sim_dir: str | Path):
        self.sim_dir = Path(sim_dir)
        data = state.read_gpus(self.sim_dir)
        self.created = float(data["created"])
        self.gpus: list[dict] = list(data["gpus"])

    # ---------------------------------------------------------------------------------------------- setup

    @classmethod
    def create(cls, sim_dir: str | Path, cards: list[str] | None = None, limits_w: list[float] | None = None):
        """Write a fresh rig: gpus.json (with its creation time) and gpu<i>.limit.json at each card's default."""
        sim_dir = Path(sim_dir)
        sim_dir.mkdir(parents=True, exist_ok=True)
        rows = []
        for i, key in enumerate(cards or ["3090"] * 4):
            card = lookup(key)
            if card is None:
                raise ValueError(f"unknown card {key!r}; known: {', '.join(CARDS)}")
            rows.append(
                {
                    "index": i,
                    "card": card.key,
                    "uuid": _uuid(sim_dir, i, card.key),
                    "name": card.name,
                    "memory_bytes": card.memory_bytes,
                    "power_min_w": card.power_min_w,
                    "power_max_w": card.power_max_w,
                    "power_default_w": card.power_default_w,
                    "idle_w": card.idle_w,
                    "bandwidth_gbps": card.bandwidth_gbps,
                }
            )
        for i, row in enumerate(rows):
            limit = limits_w[i] if limits_w and i < len(limits_w) else row["power_default_w"]
            state.write_json_atomic(state.limit_path(sim_dir, i), {"power_limit_w": limit})
        state.write_json_atomic(state.gpus_path(sim_dir), {"created": time.time(), "gpus": rows})
        return cls(sim_dir)

    # ---------------------------------------------------------------------------------------------- limits

    def count(self) -> int:
        return len(self.gpus)

    def _row(self, index: int) -> dict:
        if not 0 <= index < len(self.gpus):
            raise IndexError(f"no simulated GPU {index} (this rig has {len(self.gpus)})")
        return self.gpus[index]

    def card(self, index: int) -> Card:
        return CARDS[self._row(index)["card"]]

    def get_power_limit(self, index: int) -> float:
        row = self._row(index)
        return state.read_limit_w(self.sim_dir, index, row["power_default_w"])

    def set_power_limit(self, index: int, watts: float) -> None:
        """Like nvmlDeviceSetPowerManagementLimit: outside [min, max] raises ValueError (NVML InvalidArgument)."""
        row = self._row(index)
        if not row["power_min_w"] <= watts <= row["power_max_w"]:
            raise ValueError(
                f"Invalid Argument: power limit {watts} W for GPU {index} is outside its constraints "
                f"[{row['power_min_w']}, {row['power_max_w']}] W"
            )
        state.write_json_atomic(state.limit_path(self.sim_dir, index), {"power_limit_w": float(watts)})

    def reset_power_limits(self) -> None:
        for i, row in enumerate(self.gpus):
            self.set_power_limit(i, row["power_default_w"])

    # ---------------------------------------------------------------------------------------------- readings

    def info(self, index: int, now: float | None = None) -> SimGPUInfo:
        return self._info(index, state.read_engines(self.sim_dir), time.time() if now is None else now)

    def info_all(self, now: float | None = None) -> list[SimGPUInfo]:
        engines = state.read_engines(self.sim_dir)
        now = time.time() if now is None else now
        return [self._info(i, engines, now) for i in range(self.count())]

    def _info(self, index: int, engines: list[dict], now: float) -> SimGPUInfo:
        row = self._row(index)
        key = str(index)
        idle = float(row["idle_w"])
        limit = self.get_power_limit(index)
        extra_live = 0.0
        energy_extra = 0.0
        mem_used = 0
        util = 0.0
        pids: list[int] = []
        for eng in engines:
            per_gpu = eng.get("per_gpu", {}).get(key)
            if per_gpu is None:
                continue
            t = float(eng.get("t", now))
            live = state.is_live(eng, now)
            # Live engines are extrapolated with their current extra power; a file that stopped updating
            # (a killed engine) is extrapolated up to LIVE_S and no further, so the total never goes back.
            horizon = min(now, t + state.LIVE_S) if eng.get("state") in ("loading", "ready") else t
            energy_extra += float(per_gpu.get("extra_energy_j", 0.0)) + float(per_gpu.get("extra_power_w", 0.0)) * max(
                0.0, horizon - t
            )
            if live:
                extra_live += float(per_gpu.get("extra_power_w", 0.0))
                mem_used += int(per_gpu.get("memory_used_bytes", 0))
                util = max(util, float(per_gpu.get("utilization_pct", 0.0)))
                pids.append(int(eng.get("pid", 0)))
        power = min(idle + extra_live, max(limit, idle))
        at_cap = extra_live > 0 and power >= limit - 0.5
        reasons = THROTTLE_SW_POWER_CAP if at_cap else 0
        if extra_live <= 0:
            reasons |= THROTTLE_GPU_IDLE
        default = float(row["power_default_w"])
        if extra_live <= 0:
            clock = IDLE_SM_CLOCK_MHZ
        elif at_cap:
            clock = BOOST_SM_CLOCK_MHZ * min(1.0, math.sqrt(max(limit, 1.0) / default))
        else:
            clock = BOOST_SM_CLOCK_MHZ
        total = int(row["memory_bytes"])
        mem_used = min(mem_used, total)
        return SimGPUInfo(
            index=index,
            name=row["name"],
            uuid=row["uuid"],
            card=row["card"],
            memory_total_bytes=total,
            memory_used_bytes=mem_used,
            memory_free_bytes=total - mem_used,
            power_w=round(power, 3),
            power_limit_w=limit,
            power_min_w=float(row["power_min_w"]),
            power_max_w=float(row["power_max_w"]),
            power_default_w=default,
            energy_j=idle * max(0.0, now - self.created) + energy_extra,
            temperature_c=round(AMBIENT_C + (FULL_LOAD_C - AMBIENT_C) * power / default, 1),
            utilization_pct=round(util, 1),
            sm_clock_mhz=round(clock),
            throttle_reasons=reasons,
            processes=tuple(sorted(pids)),
        )

    def close(self) -> None:
        pass
