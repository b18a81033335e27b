"""The rig, assembled at the edge from independent parts — the one module besides appliance/sim/ that knows
simulation exists.

A `Rig` is: where its state lives, the GPUs (NVML | simulated), the engines' runtime (docker | local processes,
running the real `vllm` | the stand-in engine), the front door's runtime, the hosted models (real providers |
local stand-ins), and how engine files are rendered for that runtime. The Stack, the sampler, the bench, the CLI
and the TUI receive a Rig and never ask which parts it has. `real_rig()` and `simulated_rig()` build the usual
combinations; the parts combine freely (e.g. a real vLLM on CPU next to simulated GPUs).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

from appliance import paths
from appliance.errors import ApplianceError, StackError
from appliance.render.compose import RenderSettings
from appliance.stack.state import StateStore

SIM_IMAGE_DEFAULT = "appliance-sim-vllm:local"
STAND_IN_COMMAND = [sys.executable, "-m", "appliance.sim.engine"]


class RealHosted:
    """Hosted models are the real providers: nothing to start; a fallback without its key is worth a warning."""

    def check_keys(self, profile, emit) -> None:
        from appliance import secrets

        for h in profile.proxy.hosted:
            if not secrets.lookup(h.api_key_env):
                emit("warn", f"fallback `{h.name}` ({h.litellm_model}) cannot work: {h.api_key_env} is not set "
                             f"(`appliance keys set {h.provider}` or export it)")

    def ensure(self, profiles, emit) -> dict[str, str] | None:
        return None  # the proxy config points at the providers themselves

    def stop(self) -> None:
        pass


class NvmlSource:
    """The GPUs of this machine through NVML. Memory other programs use counts against the fit."""

    counts_used_memory = True

    def open(self):
        from appliance.gpu.nvml import NvmlGPUs

        return NvmlGPUs()

    def prepare(self, rig: "Rig", profile, engines_running: bool, emit) -> None:
        pass  # real hardware is what it is


class SimulatedSource:
    """Simulated GPUs in the rig's dir. A profile brings its own card: the simulated rig is rebuilt to fit it when
    nothing runs on it (so `up rtx4090-…` simulates a 4090)."""

    counts_used_memory = False  # the simulated engines' own memory is the only use

    def __init__(self, sim_dir: Path, cards: list[str] | None = None):
        self.sim_dir = sim_dir
        self.cards = cards

    def open(self, cards: list[str] | None = None):
        from appliance.sim import state as simstate
        from appliance.sim.gpu_boundary import SimulatedGPUs

        fresh = not simstate.gpus_path(self.sim_dir).exists()
        return SimulatedGPUs(self.sim_dir, (cards or self.cards or ["3090"] * 4) if (fresh or cards) else None)

    def prepare(self, rig: "Rig", profile, engines_running: bool, emit) -> None:
        from appliance import cards as cardlib

        card = cardlib.lookup(profile.card or "3090")
        need = max(1, max(list(profile.gpus) + [0]) + 1 if profile.gpus != "all" else
                   sum(e.gpu_count for e in profile.engines))
        if rig.gpus().cards == [card.key] * need or engines_running:
            return  # hardware cannot change under running engines; the fit check will say if it fits
        rig.set_gpus(self.open([card.key] * need))
        emit("info", f"simulated rig: {need} × {card.name}")


@dataclass
class Rig:
    """One rig: its parts and where its state lives. Build it with `real_rig()` / `simulated_rig()`."""

    dir: Path
    label: str  # what the owner is told: "GPU rig", "simulated rig"
    gpu_source: object  # NvmlSource | SimulatedSource: open() → GPUs, prepare(rig, profile, running, emit)
    runtime: object  # appliance.runtime.base.Runtime for the engines
    proxy_runtime: object  # the Runtime of the front door (HAProxy + LiteLLM)
    hosted: object  # RealHosted | HostedStandIns: check_keys, ensure(profiles, emit) → overrides, stop
    render_base: RenderSettings  # how engine services are rendered for this runtime
    simulated: bool = False  # for labels only: the core never branches on it
    measurements_path: Path | None = None  # what vLLM measured at its starts (None: the GPU rig's, state/)

    def __post_init__(self):
        self.dir = Path(self.dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.state = StateStore(self.dir / "state.json")
        self._gpus = None

    def measurements(self):
        """This rig's store of what vLLM measured (appliance.measured): a simulated rig keeps its own, so its
        starts never show as "measured on this rig" in a check of the real one."""
        from appliance import measured

        return measured.open_store(self.measurements_path, rig=self.label)

    @property
    def rendered(self) -> Path:
        return self.dir / "rendered"

    @property
    def runtime_kind(self) -> str:
        return self.runtime.kind

    def gpus(self):
        if self._gpus is None:
            self._gpus = self.gpu_source.open()
        return self._gpus

    def set_gpus(self, gpus) -> None:
        self._gpus = gpus

    def render_settings(self, *, drain_s: int) -> RenderSettings:
        return replace(self.render_base, gpu_count=self.gpus().count(), drain_s=drain_s)

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """One changing operation at a time per rig (a second `up` waits for a clear message instead)."""
        f = open(self.dir / "lock", "w")
        try:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise StackError("another appliance command is changing this rig right now",
                                 "wait for it to finish (see `appliance status`)") from None
            yield
        finally:
            f.close()


def _process_runtime(rig_dir: Path, vllm_command: list[str] | None):
    from appliance import secrets
    from appliance.runtime.process import ProcessRuntime

    return ProcessRuntime(rig_dir / "processes", env_file=secrets.secrets_file(), vllm_command=vllm_command)


def _docker_runtime(env: dict | None, local_images: dict[str, str] | None = None):
    from appliance import secrets
    from appliance.runtime.docker import DockerRuntime

    full = dict(os.environ if env is None else env)
    full["APPLIANCE_SECRETS_FILE"] = str(secrets.secrets_file())
    return DockerRuntime(full, local_images=local_images)


def _check_runtime(runtime: str) -> None:
    if runtime not in ("docker", "process"):
        raise ApplianceError(f"--runtime {runtime}", "use docker or process")


def real_rig(*, runtime: str = "docker", root: Path | None = None, docker_env: dict | None = None,
             vllm_command: list[str] | None = None) -> Rig:
    """This machine's GPUs through NVML, real vLLM engines (docker images, or `vllm` from an environment) and the
    real hosted providers. The front door runs under docker next to docker engines, else as local processes."""
    _check_runtime(runtime)
    d = Path(root) if root else paths.state_dir() / "rig"
    engines = _docker_runtime(docker_env) if runtime == "docker" else _process_runtime(d, vllm_command)
    return Rig(dir=d, label="GPU rig", gpu_source=NvmlSource(), runtime=engines, proxy_runtime=engines,
               hosted=RealHosted(), render_base=RenderSettings())


SIM_MEASUREMENTS = "measurements.json"  # in the simulated rig's own dir, apart from the GPU rig's


def sim_root() -> Path:
    """Where the simulated rig keeps its state (also read by `appliance measurements` to list its records)."""
    return paths.state_dir() / "sim"


def simulated_rig(*, runtime: str = "process", root: Path | None = None, docker_env: dict | None = None,
                  cards: list[str] | None = None, engine: str = "stand-in",
                  vllm_command: list[str] | None = None) -> Rig:
    """Simulated GPUs in the rig's dir and stand-ins for the hosted models; engines are the stand-in (default) or a
    real `vllm` (`engine="vllm"`, `vllm_command` = how to run it), as local processes or docker containers of the
    locally built stand-in image. The front door always runs as local processes here."""
    from appliance.sim.hosted import HostedStandIns

    _check_runtime(runtime)
    if engine not in ("stand-in", "vllm"):
        raise ApplianceError(f"engine {engine}", "use stand-in or vllm")
    d = Path(root) if root else sim_root()
    sim_dir = d / "gpus"
    command, engine_env, sidecar = STAND_IN_COMMAND, {}, ()
    if engine == "vllm":  # a real vLLM (the CPU build here) on simulated GPUs whose power follows its load
        from appliance import realvllm

        exe = vllm_command or ([str(realvllm.vllm_executable())] if realvllm.vllm_executable() else None)
        if not exe:
            raise ApplianceError("the real vLLM (CPU build) is not installed here",
                                 "run `make real-vllm` (it creates .venv-vllm and the tiny model), or set APPLIANCE_VLLM")
        command = exe
        engine_env = {k: v for k, v in realvllm.engine_env(d / "vllm", base={}).items()}
        sidecar = (sys.executable, "-m", "appliance.sim.real_load")
    proxy = _process_runtime(d, None)
    if runtime == "docker":
        image = os.environ.get("APPLIANCE_SIM_IMAGE", SIM_IMAGE_DEFAULT)
        engines = _docker_runtime(docker_env, {image: "build it with `make testbed` (testbed/up)"})
        base = RenderSettings(image=image, gpu_reservation=False,
                              extra_env={"APPLIANCE_SIM_DIR": str(sim_dir)},
                              extra_volumes=(f"{sim_dir}:{sim_dir}",))
    else:
        engines = _process_runtime(d, command)
        base = RenderSettings(gpu_reservation=False, extra_env={"APPLIANCE_SIM_DIR": str(sim_dir), **engine_env},
                              sidecar=sidecar)
    return Rig(dir=d, label="simulated rig", gpu_source=SimulatedSource(sim_dir, cards), runtime=engines,
               proxy_runtime=proxy, hosted=HostedStandIns(d), render_base=base, simulated=True,
               measurements_path=d / SIM_MEASUREMENTS)


def from_args(*, sim: bool, runtime: str) -> Rig:
    """The rig a CLI command acts on."""
    return simulated_rig(runtime=runtime) if sim else real_rig(runtime=runtime)


def _last_file() -> Path:
    return paths.state_dir() / "last-rig.json"


def last_used() -> tuple[bool, str]:
    """(simulated, runtime) of the rig the last `up`/`switch`/`demo` acted on; (False, "docker") at first."""
    import json

    try:
        data = json.loads(_last_file().read_text())
        sim, runtime = bool(data["sim"]), str(data["runtime"])
        if runtime in ("docker", "process"):
            return sim, runtime
    except (OSError, ValueError, KeyError, TypeError):
        pass
    return False, "docker"


def remember_used(*, sim: bool, runtime: str) -> None:
    import json

    f = _last_file()
    f.parent.mkdir(parents=True, exist_ok=True)
    tmp = f.with_name(f.name + ".tmp")
    tmp.write_text(json.dumps({"sim": sim, "runtime": runtime}))
    os.replace(tmp, f)

