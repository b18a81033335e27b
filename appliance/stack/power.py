"""Power limits: apply a profile's, set the TUI's, restore the owner's.

The owner's own limit of a GPU is written to the state BEFORE the appliance first changes it, so `down` (or the
next start after a crash) can always put it back.
"""

from __future__ import annotations

from collections.abc import Callable

from appliance.errors import GPUError, StackError
from appliance.profile import Profile


class PowerKeeper:
    def __init__(self, rig, emit: Callable[..., None]):
        self.rig = rig
        self.emit = emit

    def _remember(self, idx: int, current: float | None) -> None:
        state = self.rig.state.load()
        if idx not in state.power_saved and current is not None:
            self.rig.state.update(power_saved={**state.power_saved, idx: current})

    def _changed(self, change, suffix: str = "") -> None:
        note = f" ({change.note})" if change.note else ""
        self.emit("power", f"GPU {change.index}: power limit {change.previous_w:.0f} W → {change.applied_w:.0f} W"
                           f"{note}{suffix}", gpu=change.index, watts=change.applied_w)

    def wanted(self, profile: Profile) -> dict[int, int]:
        gpus = self.rig.gpus()
        return profile.power_limits(list(range(gpus.count())) if profile.gpus == "all" else list(profile.gpus))

    def check(self, profile: Profile) -> None:
        """Refuse before anything changes: a limit for a GPU this rig does not have."""
        count = self.rig.gpus().count()
        for idx in sorted(self.wanted(profile)):
            if idx >= count:
                raise StackError(f"profile {profile.name} sets GPU {idx}'s power limit; this rig has {count} GPUs",
                                 "fix gpus/power_limit_w in the profile")

    def probe(self, profile: Profile) -> None:
        """May we change these GPUs' limits? Set each to what it is now: NVML refuses a non-root caller the
        same way it would refuse the real change, and nothing changes. (A switch asks before it drains.)"""
        gpus = self.rig.gpus()
        for idx in sorted(self.wanted(profile)):
            current = gpus.read(idx).power_limit_w
            if current is not None:
                gpus.set_power_limit(idx, current)

    def apply(self, profile: Profile) -> None:
        """The profile's limits; GPUs it leaves alone get the owner's limit back."""
        gpus = self.rig.gpus()
        wanted = self.wanted(profile)
        self.check(profile)
        for idx, watts in sorted(self.rig.state.load().power_saved.items()):
            if idx not in wanted and idx < gpus.count():
                change = gpus.set_power_limit(idx, watts)
                if abs(change.previous_w - change.applied_w) > 0.5:
                    self._changed(change, " (the profile sets none: back to your own limit)")
        for idx, watts in sorted(wanted.items()):
            self._remember(idx, gpus.read(idx).power_limit_w)
            self._changed(gpus.set_power_limit(idx, watts))

    def restore(self) -> list[str]:
        saved = self.rig.state.load().power_saved
        done: list[str] = []
        left: dict[int, float] = {}
        if saved:
            gpus = self.rig.gpus()
            for idx, watts in sorted(saved.items()):
                try:
                    change = gpus.set_power_limit(idx, watts)
                except GPUError as exc:
                    left[idx] = watts
                    self.emit("warn", f"GPU {idx}: could not restore {watts:.0f} W: {exc.message}")
                    continue
                msg = f"GPU {idx}: power limit restored to {change.applied_w:.0f} W"
                done.append(msg)
                self.emit("power", msg, gpu=idx, watts=change.applied_w)
        self.rig.state.update(power_saved=left)
        return done

    def set(self, watts: float, gpu_indices: list[int]) -> list:
        """A limit for these GPUs (the TUI's power control), the owner's originals remembered first."""
        gpus = self.rig.gpus()
        changes = []
        for idx in gpu_indices:
            self._remember(idx, gpus.read(idx).power_limit_w)
            change = gpus.set_power_limit(idx, watts)
            changes.append(change)
            self._changed(change)
        return changes
