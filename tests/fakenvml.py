"""A fake NVML behind pynvml's own function names, shared by the NVML boundary tests and the real-path Stack
tests: failures are pynvml's real exception classes, power limits are clamped like a driver does."""

from __future__ import annotations

from types import SimpleNamespace

import pynvml


class FakeNVML:
    """A 2-GPU machine behind pynvml's function names; per-call failures raise real pynvml exceptions."""

    def __init__(self):
        self.limits_mw = {0: 350_000, 1: 350_000}
        self.fail: dict[str, Exception] = {}
        self.energy_supported = True
        self.power_mw = 200_000

    def install(self, monkeypatch):
        for name in dir(self):
            if name.startswith("nvml"):
                monkeypatch.setattr(pynvml, name, getattr(self, name), raising=False)

    def _maybe(self, name):
        if name in self.fail:
            raise self.fail[name]

    def nvmlInit(self):
        self._maybe("nvmlInit")

    def nvmlShutdown(self):
        pass

    def nvmlDeviceGetCount(self):
        return 2

    def nvmlDeviceGetHandleByIndex(self, i):
        self._maybe("nvmlDeviceGetHandleByIndex")
        return i

    def nvmlDeviceGetName(self, h):
        self._maybe("nvmlDeviceGetName")
        return "NVIDIA GeForce RTX 3090"

    def nvmlDeviceGetUUID(self, h):
        return f"GPU-{h}"

    def nvmlDeviceGetMemoryInfo(self, h):
        return SimpleNamespace(total=24 * 2**30, used=2**30, free=23 * 2**30)

    def nvmlDeviceGetPowerUsage(self, h):
        return self.power_mw

    def nvmlDeviceGetEnforcedPowerLimit(self, h):
        return self.limits_mw[h]

    def nvmlDeviceGetPowerManagementLimit(self, h):
        return self.limits_mw[h]

    def nvmlDeviceGetPowerManagementLimitConstraints(self, h):
        return [100_000, 350_000]

    def nvmlDeviceGetPowerManagementDefaultLimit(self, h):
        return 350_000

    def nvmlDeviceGetTotalEnergyConsumption(self, h):
        if not self.energy_supported:
            raise pynvml.NVMLError_NotSupported()
        return 5_000_000

    def nvmlDeviceGetTemperature(self, h, sensor):
        return 64

    def nvmlDeviceGetUtilizationRates(self, h):
        return SimpleNamespace(gpu=97, memory=40)

    def nvmlDeviceGetClockInfo(self, h, t):
        return 1695

    def nvmlDeviceGetCurrentClocksEventReasons(self, h):
        return 0x4

    def nvmlDeviceGetComputeRunningProcesses(self, h):
        return [SimpleNamespace(pid=4242, usedGpuMemory=20 * 2**30)]

    def nvmlDeviceSetPowerManagementLimit(self, h, mw):
        self._maybe("nvmlDeviceSetPowerManagementLimit")
        if not 100_000 <= mw <= 350_000:
            raise pynvml.NVMLError_InvalidArgument()
        self.limits_mw[h] = mw
