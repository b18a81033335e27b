"""The GPU boundary (appliance.gpu.base.GPUs): NVML on a real rig. The simulated GPUs implement the same
interface in appliance.sim.gpu_boundary; the rig assembly (appliance.rig) picks one."""
