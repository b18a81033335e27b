"""What the TUI needs from the rig, as one small Protocol, and `StackBackend`, its real implementation over a
`Stack` and a `Sampler`. The app never touches docker, NVML or HTTP itself: every call here may block and is
made from a thread worker. Tests pass a fake with canned Snapshots (tests/tui/fakes.py)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from appliance.errors import ApplianceError

if TYPE_CHECKING:
    from appliance.fit import FitReport
    from appliance.gpu.base import PowerChange
    from appliance.profile import Profile
    from appliance.render.plan import ProxyPlan
    from appliance.stack import Event, StartResult
    from appliance.telemetry import Snapshot


@dataclass(frozen=True)
class ProfileEntry:
    """One profile file: the loaded Profile, or the error that stops it from loading."""

    path: Path
    profile: "Profile | None"
    error: ApplianceError | None = None

    @property
    def name(self) -> str:
        return self.profile.name if self.profile is not None else self.path.stem


@dataclass(frozen=True)
class RigInfo:
    """What the app says about the rig before the first sample: where it runs, and what is missing."""

    description: str  # e.g. "simulated rig · 4 × RTX 3090 · local processes"
    sim: bool
    gpu_problem: str | None = None  # NVML missing / no permission …
    runtime_problem: str | None = None  # docker missing …
    running: bool = False  # an engine project is up


@runtime_checkable
class Backend(Protocol):
    def info(self) -> RigInfo: ...

    def sample(self) -> "Snapshot": ...

    def history(self, key: str) -> list[float]:
        """Values of a bounded series named by appliance.telemetry.Series."""
        ...

    def profiles(self) -> list[ProfileEntry]: ...

    def fit(self, profile: "Profile") -> "FitReport": ...

    def active_profile(self) -> "Profile | None": ...

    def plan(self, profile: "Profile | None") -> "ProxyPlan":
        """What the front door would serve for `profile` under the owner's settings (reads settings.yaml; a
        mistake in it is an ApplianceError)."""
        ...

    def switch(self, profile: "Profile", on_event: Callable[["Event"], None]) -> "StartResult": ...

    def set_power(self, watts: float) -> list["PowerChange"]: ...

    def log_targets(self) -> list[str]: ...

    def logs(self, target: str, tail: int = 200) -> list[str]: ...

    def follow(self, target: str, tail: int = 200) -> Iterator[str]: ...

    def warnings(self) -> list[str]: ...

    def close(self) -> None: ...


def tui_sampler(stack, proxy_every_s: float = 5.0, quick: bool = False):
    """The core Sampler, cheaper at 1 Hz: LiteLLM's /metrics page is read every `proxy_every_s` (the Stack
    caches the active profile itself); `quick`: not at all (the first sample, see early.py)."""
    from appliance.telemetry import Sampler

    return Sampler(stack, proxy_every_s=proxy_every_s, quick=quick)


class StackBackend:
    """The real backend: a Stack (changes the rig) and a Sampler (reads it)."""

    def __init__(self, stack=None, sampler=None, *, make_stack: Callable[[], object] | None = None, early=None):
        """`stack`, or `make_stack` to build it on first use: with `early` (the first sample and the rig's info
        from a forked child, see early.py) the rig's heavy imports then happen after the first paint."""
        import threading

        self._stack, self._make_stack, self._sampler = stack, make_stack, sampler
        self._build = threading.RLock()
        self._early = early
        self._early_used = {"sample": early is None, "info": early is None}
        self._carry: dict | None = None  # the child's sampler state, taken over by this one
        self._first = None  # the first sample, taken while the app starts (prefetch)

    @property
    def stack(self):
        with self._build:
            if self._stack is None:
                self._stack = self._make_stack()
            return self._stack

    @property
    def sampler(self):
        with self._build:
            if self._sampler is None:
                self._sampler = tui_sampler(self.stack)
                if self._carry is not None:
                    self._sampler.resume(self._carry)
            return self._sampler

    def _from_early(self, what: str):
        """The child's (snapshot, info, carry) the first time `what` is asked for; None after, or if it failed."""
        if self._early_used[what]:
            return None
        self._early_used[what] = True
        return self._early.result()

    def prefetch(self) -> None:
        """Take the first sample in a thread now, while the app imports its screens, parses its CSS and draws the
        first frame: most of a sample is waiting on HTTP, so the first paint with data comes that much sooner.
        The app's first `sample()` returns it."""
        import threading

        box: dict = {}

        def run() -> None:
            try:
                box["snap"] = self.sampler.sample()
            except BaseException as exc:  # noqa: BLE001 - handed to the app's first sample(), which raises it
                box["error"] = exc

        thread = threading.Thread(target=run, name="first-sample", daemon=True)
        thread.start()
        self._first = (thread, box)

    # -- reading -----------------------------------------------------------------------------------
    def info(self) -> RigInfo:
        early = self._from_early("info")
        if early is not None:
            return early[1]
        rig = self.stack.rig
        gpu_problem = runtime_problem = None
        desc = []
        try:
            gpus = rig.gpus()
            names = [r.name.replace("NVIDIA ", "").replace("GeForce ", "") for r in gpus.read_all()]
            if names:
                same = len(set(names)) == 1
                desc.append(f"{len(names)} × {names[0]}" if same else ", ".join(names))
        except ApplianceError as exc:
            gpu_problem = exc.message + (f" — {exc.hint}" if exc.hint else "")
        running = False
        try:
            running = bool(self.stack.engine_projects())
        except ApplianceError as exc:
            runtime_problem = exc.message + (f" — {exc.hint}" if exc.hint else "")
        where = "local processes" if rig.runtime_kind == "process" else "docker"
        return RigInfo(" · ".join([rig.label] + desc + [where]), rig.simulated, gpu_problem, runtime_problem,
                       running)

    def sample(self):
        early = self._from_early("sample")
        if early is not None:
            snap, _, self._carry = early
            return snap
        first, self._first = self._first, None
        if first is not None:  # samples never overlap: wait for the prefetched one and return it
            thread, box = first
            thread.join()
            if "error" in box:
                raise box["error"]
            return box["snap"]
        return self.sampler.sample()

    def history(self, key: str) -> list[float]:
        if self._sampler is None and self._carry is not None:  # after the child's sample: its history
            h = self._carry["history"].get(key)
            return h.values() if h is not None else []
        h = self.sampler.history.get(key)
        return h.values() if h is not None else []

    def profiles(self) -> list[ProfileEntry]:
        from appliance.profile import available_files, load_profile

        out = []
        for f in available_files():
            try:
                out.append(ProfileEntry(f, load_profile(f)))
            except ApplianceError as exc:
                out.append(ProfileEntry(f, None, exc))
        return out

    def fit(self, profile):
        """The fit check against this rig's GPUs (total memory; a switch frees the active profile's), or the
        profile's own card when no GPU can be read."""
        from appliance import cards
        from appliance.fit import GPU, fit_profile

        try:
            gpus = [GPU(r.index, r.name, r.memory_total_bytes or 0) for r in self.stack.rig.gpus().read_all()]
        except ApplianceError:
            gpus = []
        if not gpus:
            card = cards.lookup(profile.card or "3090") or cards.lookup("3090")
            need = (max(profile.gpus) + 1) if profile.gpus != "all" else sum(e.gpu_count for e in profile.engines)
            gpus = [GPU.from_card(i, card) for i in range(max(1, need))]
        return fit_profile(profile, gpus)

    def active_profile(self):
        return self.stack.active_profile()

    def plan(self, profile):
        return self.stack.front_door.plan(profile) if profile is not None else self._plan_of_nothing()

    def running_plan(self, profile):
        """What the running front door serves for `profile` (settings.yaml may have been edited since)."""
        return self.stack.front_door.running_plan(profile)[0]

    @staticmethod
    def _plan_of_nothing():
        """Nothing runs: only the owner's global aliases are served (FrontDoor.plan(None) would take the active
        profile)."""
        from appliance.render.plan import plan
        from appliance.settings import load_settings

        return plan(None, load_settings())

    def warnings(self) -> list[str]:
        return list(self.stack.warnings())

    # -- changing the rig ---------------------------------------------------------------------------
    def switch(self, profile, on_event):
        old = self.stack.on_event
        self.stack.on_event = on_event
        try:
            return self.stack.switch(profile)
        finally:
            self.stack.on_event = old

    def set_power(self, watts: float):
        return self.stack.set_power(watts)

    # -- logs ----------------------------------------------------------------------------------------
    def log_targets(self) -> list[str]:
        p = self.stack.active_profile()
        return ([e.label for e in p.engines] if p else []) + ["proxy"]

    def logs(self, target: str, tail: int = 200) -> list[str]:
        return list(self.stack.logs(target, follow=False, tail=tail))

    def follow(self, target: str, tail: int = 200) -> Iterator[str]:
        return self.stack.logs(target, follow=True, tail=tail)

    def close(self) -> None:
        if self._sampler is not None:
            self._sampler.close()
        if self._early is not None:
            self._early.abandon()  # the child, if nothing asked for its sample yet
