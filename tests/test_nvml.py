"""The NVML boundary against the real pynvml exception classes: every failure becomes a clear message, reads
never raise, power limits are clamped, need root, and are read back."""

from __future__ import annotations

import pynvml
import pytest

from appliance.errors import GPUError
from appliance.gpu import nvml
from appliance.gpu.nvml import NvmlGPUs

from fakenvml import FakeNVML


@pytest.fixture
def fake(monkeypatch):
    f = FakeNVML()
    f.install(monkeypatch)
    monkeypatch.setattr(nvml.os, "geteuid", lambda: 0)
    return f


def test_reads_units_and_throttle(fake):
    g = NvmlGPUs()
    r = g.read(0)
    assert r.power_w == 200 and r.power_limit_w == 350 and (r.power_min_w, r.power_max_w) == (100, 350)
    assert r.energy_j == 5000 and r.energy_source == "counter"
    assert r.temperature_c == 64 and r.utilization_pct == 97 and r.sm_clock_mhz == 1695
    assert r.throttle_reasons == ("power cap",) and r.processes[0].pid == 4242
    assert len(g.read_all()) == 2


def test_energy_integrated_when_the_counter_is_not_supported(fake):
    fake.energy_supported = False
    g = NvmlGPUs()
    first = g.read(0)
    assert first.energy_source == "integrated" and first.energy_j == 0
    import time

    time.sleep(0.2)
    second = g.read(0)
    assert 0.15 * 200 < second.energy_j < 0.5 * 200  # ~0.2 s at 200 W


@pytest.mark.parametrize("exc,expect", [
    (pynvml.NVMLError_LibraryNotFound(), "driver library"),
    (pynvml.NVMLError_DriverNotLoaded(), "driver is not loaded"),
    (pynvml.NVMLError_NoPermission(), "no permission"),
    (pynvml.NVMLError_LibRmVersionMismatch(), "reboot"),
])
def test_init_failures_are_explained(fake, exc, expect):
    fake.fail["nvmlInit"] = exc
    with pytest.raises(GPUError) as e:
        NvmlGPUs()
    assert expect in str(e.value)


def test_gpu_lost_is_a_reading_not_a_crash(fake):
    g = NvmlGPUs()
    fake.fail["nvmlDeviceGetName"] = pynvml.NVMLError_GpuIsLost()
    r = g.read(0)
    assert r.lost and r.power_w is None


def test_not_supported_reads_are_none(fake, monkeypatch):
    def nope(*a):
        raise pynvml.NVMLError_NotSupported()

    for name in ("nvmlDeviceGetTemperature", "nvmlDeviceGetUtilizationRates", "nvmlDeviceGetPowerUsage"):
        monkeypatch.setattr(pynvml, name, nope)
    r = NvmlGPUs().read(1)
    assert r.temperature_c is None and r.utilization_pct is None and r.power_w is None
    assert r.name == "NVIDIA GeForce RTX 3090"


def test_set_power_limit_clamps_and_reads_back(fake):
    g = NvmlGPUs()
    change = g.set_power_limit(0, 250)
    assert change.applied_w == 250 and change.previous_w == 350 and fake.limits_mw[0] == 250_000
    change = g.set_power_limit(1, 500)
    assert change.applied_w == 350 and "maximum" in change.note


def test_set_power_limit_needs_root(fake, monkeypatch):
    monkeypatch.setattr(nvml.os, "geteuid", lambda: 1000)
    with pytest.raises(GPUError) as e:
        NvmlGPUs().set_power_limit(0, 250)
    assert "needs root" in str(e.value) and "sudo" in str(e.value)


@pytest.mark.parametrize("exc,expect", [
    (pynvml.NVMLError_NoPermission(), "no permission"),
    (pynvml.NVMLError_NotSupported(), "does not support"),
    (pynvml.NVMLError_GpuIsLost(), "fallen off the bus"),
])
def test_set_power_limit_failures(fake, exc, expect):
    fake.fail["nvmlDeviceSetPowerManagementLimit"] = exc
    with pytest.raises(GPUError) as e:
        NvmlGPUs().set_power_limit(0, 250)
    assert expect in str(e.value) and "250 W" in str(e.value)


def test_on_this_machine_nvml_is_missing_and_says_so():
    """No NVIDIA driver here: the real pynvml raises LibraryNotFound, which the boundary explains."""
    try:
        NvmlGPUs().close()
    except GPUError as e:
        assert "driver library" in str(e) and "appliance demo" in str(e)
    else:
        pytest.skip("this machine has an NVIDIA driver")
