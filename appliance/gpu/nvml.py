"""NVML through nvidia-ml-py (`import pynvml`). Every call goes through `_call`; reads never raise.

Units: NVML reports power in mW and energy in mJ; everything here is W and J. Energy comes from the GPU's
total-energy counter (Volta and newer); on older GPUs it is integrated from the power readings of this process.
Setting a power limit needs root, is clamped to the card's constraints, and is read back to confirm.
"""

from __future__ import annotations

import os
import threading
import time

from appliance.errors import GPUError
from appliance.gpu.base import GPUProcess, GPUReading, PowerChange, clamp_power, throttle_names


def _pynvml():
    import pynvml  # nvidia-ml-py

    return pynvml


def explain(exc: Exception, doing: str) -> GPUError:
    """A pynvml exception → a message an owner can act on."""
    nv = _pynvml()
    name = type(exc).__name__
    if isinstance(exc, nv.NVMLError_LibraryNotFound):
        return GPUError(f"{doing}: the NVIDIA driver library (libnvidia-ml.so.1) is not installed",
                        "install the NVIDIA driver, or try the simulated rig: `appliance demo`")
    if isinstance(exc, nv.NVMLError_DriverNotLoaded):
        return GPUError(f"{doing}: the NVIDIA driver is not loaded", "load it (`sudo modprobe nvidia`) or reboot")
    if isinstance(exc, nv.NVMLError_NoPermission):
        return GPUError(f"{doing}: NVML refused (no permission)",
                        "power limits need root: run the command with sudo (inside a container, the container "
                        "needs the GPU's admin capability)")
    if isinstance(exc, nv.NVMLError_NotSupported):
        return GPUError(f"{doing}: this GPU does not support it", "nothing to do on this card")
    if isinstance(exc, nv.NVMLError_GpuIsLost):
        return GPUError(f"{doing}: the GPU has fallen off the bus (GPU is lost)",
                        "check power cables and risers, then reboot; `dmesg | grep -i xid` shows the cause")
    if isinstance(exc, nv.NVMLError_LibRmVersionMismatch):
        return GPUError(f"{doing}: the driver was upgraded but the old kernel module is still loaded",
                        "reboot (or reload the nvidia kernel modules)")
    if isinstance(exc, nv.NVMLError_InvalidArgument):
        return GPUError(f"{doing}: NVML rejected the value", "stay within the card's power-limit constraints")
    if isinstance(exc, nv.NVMLError_ResetRequired):
        return GPUError(f"{doing}: the GPU needs a reset", "reboot, or `sudo nvidia-smi -r -i N` when nothing runs on it")
    return GPUError(f"{doing}: NVML error {name}: {exc}", "see `nvidia-smi -q` for the GPU's state")


class NvmlGPUs:
    kind = "nvml"

    # errors that mean "this field is not available" on a read
    def __init__(self):
        nv = _pynvml()
        self._nv = nv
        try:
            nv.nvmlInit()
        except nv.NVMLError as exc:
            raise explain(exc, "starting NVML") from None
        self._lock = threading.Lock()
        self._handles: dict[int, object] = {}
        self._integrated: dict[int, tuple[float, float, float]] = {}  # index → (t, power_w, energy_j)
        self._closed = False

    # -- the one way into NVML -------------------------------------------------------------------
    def _call(self, fn_name: str, *args, default=None):
        """Call pynvml.<fn_name>; on any NVML error return `default` (reads never raise)."""
        fn = getattr(self._nv, fn_name, None)
        if fn is None:
            return default
        try:
            return fn(*args)
        except self._nv.NVMLError:
            return default

    def _call_raise(self, fn_name: str, *args, doing: str):
        try:
            return getattr(self._nv, fn_name)(*args)
        except self._nv.NVMLError as exc:
            raise explain(exc, doing) from None

    def _handle(self, index: int):
        h = self._handles.get(index)
        if h is None:
            h = self._call_raise("nvmlDeviceGetHandleByIndex", index, doing=f"opening GPU {index}")
            self._handles[index] = h
        return h

    # -- reads ------------------------------------------------------------------------------------
    def count(self) -> int:
        return int(self._call("nvmlDeviceGetCount", default=0) or 0)

    def read(self, index: int) -> GPUReading:
        nv = self._nv
        try:
            h = self._handle(index)
        except GPUError:
            return GPUReading(index=index, name="(unavailable)", lost=True)
        lost_probe = None
        try:
            name = nv.nvmlDeviceGetName(h)
        except nv.NVMLError_GpuIsLost:
            return GPUReading(index=index, name="(GPU is lost)", lost=True)
        except nv.NVMLError as exc:  # pragma: no cover - depends on the driver
            name, lost_probe = "(unknown)", exc
        mem = self._call("nvmlDeviceGetMemoryInfo", h)
        mw = self._call("nvmlDeviceGetPowerUsage", h)
        limit = self._call("nvmlDeviceGetEnforcedPowerLimit", h) or self._call("nvmlDeviceGetPowerManagementLimit", h)
        cons = self._call("nvmlDeviceGetPowerManagementLimitConstraints", h)
        default = self._call("nvmlDeviceGetPowerManagementDefaultLimit", h)
        energy_mj = self._call("nvmlDeviceGetTotalEnergyConsumption", h)
        temp = self._call("nvmlDeviceGetTemperature", h, 0)  # NVML_TEMPERATURE_GPU
        util = self._call("nvmlDeviceGetUtilizationRates", h)
        sm = self._call("nvmlDeviceGetClockInfo", h, 1)  # NVML_CLOCK_SM
        reasons = self._call("nvmlDeviceGetCurrentClocksEventReasons", h)
        if reasons is None:
            reasons = self._call("nvmlDeviceGetCurrentClocksThrottleReasons", h)
        procs = self._call("nvmlDeviceGetComputeRunningProcesses", h, default=[]) or []
        power_w = mw / 1000.0 if mw is not None else None
        now = time.monotonic()
        if energy_mj is not None:
            energy_j, source = energy_mj / 1000.0, "counter"
        elif power_w is not None:
            with self._lock:
                t0, p0, e0 = self._integrated.get(index, (now, power_w, 0.0))
                energy_j = e0 + (now - t0) * (p0 + power_w) / 2
                self._integrated[index] = (now, power_w, energy_j)
            source = "integrated"
        else:
            energy_j, source = None, None
        return GPUReading(
            index=index, name=str(name), uuid=self._call("nvmlDeviceGetUUID", h),
            memory_total_bytes=getattr(mem, "total", None), memory_used_bytes=getattr(mem, "used", None),
            power_w=power_w, power_limit_w=limit / 1000.0 if limit else None,
            power_min_w=cons[0] / 1000.0 if cons else None, power_max_w=cons[1] / 1000.0 if cons else None,
            power_default_w=default / 1000.0 if default else None, energy_j=energy_j, energy_source=source,
            temperature_c=float(temp) if temp is not None else None,
            utilization_pct=float(util.gpu) if util is not None else None,
            sm_clock_mhz=float(sm) if sm is not None else None, throttle_reasons=tuple(throttle_names(reasons)),
            processes=tuple(GPUProcess(int(p.pid), getattr(p, "usedGpuMemory", None)) for p in procs),
            lost=lost_probe is not None and isinstance(lost_probe, nv.NVMLError_GpuIsLost))

    def read_all(self) -> list[GPUReading]:
        return [self.read(i) for i in range(self.count())]

    # -- writes ------------------------------------------------------------------------------------
    def set_power_limit(self, index: int, watts: float) -> PowerChange:
        h = self._handle(index)
        doing = f"setting GPU {index}'s power limit to {watts:.0f} W"
        before = self._call_raise("nvmlDeviceGetPowerManagementLimit", h, doing=doing) / 1000.0
        cons = self._call("nvmlDeviceGetPowerManagementLimitConstraints", h)
        applied, note = clamp_power(watts, cons[0] / 1000.0 if cons else None, cons[1] / 1000.0 if cons else None)
        if hasattr(os, "geteuid") and os.geteuid() != 0:
            raise GPUError(f"{doing}: setting power limits needs root (you are uid {os.geteuid()})",
                           "run it with sudo, or leave power_limit_w out of the profile")
        # v1 on purpose: the Python wrapper of _v2 ignores the C return code (techref §3)
        self._call_raise("nvmlDeviceSetPowerManagementLimit", h, int(round(applied * 1000)), doing=doing)
        after = self._call_raise("nvmlDeviceGetPowerManagementLimit", h, doing=doing) / 1000.0
        if abs(after - applied) > 1.0:
            raise GPUError(f"{doing}: NVML accepted {applied:.0f} W but the GPU reports {after:.0f} W",
                           "another tool (nvidia-smi, a daemon) may be managing the limit")
        return PowerChange(index, watts, after, before, note)

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._call("nvmlShutdown")
