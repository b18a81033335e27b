"""A deterministic backend for the TUI tests: canned Snapshots of a 4×RTX 3090 rig with two engines, a proxy
with fallbacks, some throttling; a switch that replays canned events; a fixed clock."""

from __future__ import annotations

import math
import threading
from dataclasses import replace
from pathlib import Path

from appliance import metrics
from appliance.errors import GPUError
from appliance.gpu.base import GPUReading, PowerChange
from appliance.routes import Hop
from appliance.stack import Event, StartResult
from appliance.telemetry import EngineSnap, ProxySnap, Snapshot
from appliance.tui.backend import ProfileEntry, RigInfo

from conftest import REPO

T0 = 1_750_000_000.0
GIB = 2**30


def clock() -> float:
    return T0


def gpu(i: int, power: float, limit: float, util: float, throttle: tuple[str, ...], temp: float, used_gib: float):
    return GPUReading(index=i, name="NVIDIA GeForce RTX 3090", uuid=f"GPU-{i}", memory_total_bytes=24 * GIB,
                      memory_used_bytes=int(used_gib * GIB), power_w=power, power_limit_w=limit, power_min_w=100.0,
                      power_max_w=350.0, power_default_w=350.0, energy_j=123_456.0 + i * 1000, energy_source="counter",
                      temperature_c=temp, utilization_pct=util, sm_clock_mhz=1395.0 + i * 15,
                      throttle_reasons=throttle)


def snapshot(limit: float = 250.0, running: bool = True) -> Snapshot:
    gpus = (
        gpu(0, limit - 2, limit, 98, ("power cap",), 71, 21.6),
        gpu(1, limit - 9, limit, 95, (), 68, 21.6),
        gpu(2, limit * 0.8, limit, 87, (), 78, 22.1),
        gpu(3, limit * 0.7, limit, 81, ("SW thermal",), 84, 22.1),
    )
    fast = EngineSnap("fast", 8000, "Qwen/Qwen2.5-32B-Instruct-AWQ", ("local-fast", "local"), (0, 1), "running",
                      "healthy", 0, 3725.0, metrics.EngineStats(
                          generation_tps=142.6, prompt_tps=2830.0, running=3, waiting=0, kv_usage=0.42,
                          ttft_p50_s=0.21, ttft_p95_s=0.85, spec_acceptance=None))
    smart = EngineSnap("smart", 8001, "Qwen/Qwen2.5-72B-Instruct-AWQ", ("local-smart",), (2, 3), "running",
                       "healthy", 1, 812.0, metrics.EngineStats(
                           generation_tps=38.4, prompt_tps=610.0, running=4, waiting=2, kv_usage=0.87,
                           ttft_p50_s=1.35, ttft_p95_s=3.9, spec_acceptance=0.72))
    claude = Hop("hosted", "claude", "anthropic/claude-sonnet-4-6")
    proxy = ProxySnap("http://127.0.0.1:4000", "running", True,
                      requests_local={"local": 1204, "local-fast": 311, "local-smart": 87},
                      requests_fallback={"local": 12, "local-smart": 5}, fallbacks=17, errors=2,
                      routes={"claude": (claude,),
                              "local": (Hop("engine", "fast", fast.model), claude),
                              "local-fast": (Hop("engine", "fast", fast.model), Hop("alias", "local-smart"), claude),
                              "local-smart": (Hop("engine", "smart", smart.model), claude)},
                      spend_usd={"claude": 0.0871, "local-smart": 0.0125})
    power = sum(g.power_w for g in gpus)
    gen = 142.6 + 38.4
    if not running:
        return Snapshot(T0, "sim", None, tuple(replace(g, power_w=30.0, utilization_pct=0, throttle_reasons=("idle",))
                                                 for g in gpus), (), None, (), None, None, None, None)
    return Snapshot(T0, "sim", "rtx3090x4-two-tier", gpus, (fast, smart), proxy, (), power, gen, gen / power,
                    power / gen)


def history(key: str, n: int = 60) -> list[float]:
    """Smooth deterministic curves."""
    seed = sum(map(ord, key))
    if key.startswith("gpu:"):
        return [200 + 45 * math.sin((i + seed) / 6) for i in range(n)]
    if key.endswith("prompt_tps"):
        return [1500 + 900 * math.sin((i + seed) / 5) for i in range(n)]
    return [90 + 50 * math.sin((i + seed) / 7) + (i % 5) for i in range(n)]


def failed_events(target: str = "crashy", back: str = "alpha") -> list[Event]:
    """A switch whose engine dies with vLLM's OOM message at start, then the rollback."""
    return [
        Event("info", "fit main: fits (KV cache for 16 × 8,192 tokens)"),
        Event("info", f"switching {back} → {target}; the proxy serves the aliases from their fallbacks meanwhile"),
        Event("info", f"draining {back}: requests in flight finish (up to 30 s), new ones go to the fallbacks"),
        Event("power", "GPU 0: power limit 300 W → 200 W", {"gpu": 0, "watts": 200}),
        Event("info", f"starting {target} (main)"),
        Event("phase", "main: container created", {"engine": "main", "phase": "created", "elapsed_s": 0.0}),
        Event("phase", "main: loading weights", {"engine": "main", "phase": "weights", "elapsed_s": 0.6}),
        Event("phase", "main: KV cache / graph capture", {"engine": "main", "phase": "kv_graphs", "elapsed_s": 1.7}),
        Event("fail", "main crashed: the GPU ran out of memory while starting", {
            "lines": ["torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB. GPU 0 has a total "
                      "capacity of 23.55 GiB of which 1.12 GiB is free.",
                      "RuntimeError: Engine core initialization failed. See root cause above."],
            "fix": "lower gpu_memory_utilization or max_num_batched_tokens, or use a smaller quantization",
            "reason": "crashed"}),
        Event("rollback", f"rolling back to {back}: {target} crashed (the GPU ran out of memory while starting)",
              {"to": back, "failed": target}),
        Event("power", "GPU 0: power limit 200 W → 300 W", {"gpu": 0, "watts": 300}),
        Event("info", f"starting {back} (main)"),
        Event("phase", "main: container created", {"engine": "main", "phase": "created", "elapsed_s": 0.0}),
        Event("phase", "main: loading weights", {"engine": "main", "phase": "weights", "elapsed_s": 0.5}),
        Event("phase", "main: KV cache / graph capture", {"engine": "main", "phase": "kv_graphs", "elapsed_s": 1.5}),
        Event("phase", "main: ready", {"engine": "main", "phase": "ready", "elapsed_s": 2.3}),
        Event("done", f"{back} is ready after 2.3 s"),
    ]


class FakeBackend:
    def __init__(self, *, running: bool = True, gpu_problem: str | None = None, runtime_problem: str | None = None,
                 profile_names: tuple[str, ...] = ("rtx3090x4-two-tier", "rtx3090x4-qwen35-27b",
                                                   "rtx4090-qwen25-14b-agent"),
                 switch_events: list[Event] | None = None, switch_ok: bool = True):
        self.running = running
        self.limit = 250.0
        self.gpu_problem, self.runtime_problem = gpu_problem, runtime_problem
        self.profile_names = profile_names
        self.switch_events = switch_events
        self.switch_ok = switch_ok
        self.switched_to: list[str] = []
        self.settings = None  # the owner's settings.yaml as loaded (appliance.settings.UserSettings)
        self.power_calls: list[float] = []
        self.samples = 0
        self.release = threading.Event()
        self.release.set()
        self.lines = {"fast": [f"INFO 06-30 12:00:{i:02d} [loggers.py:123] Engine 000: Avg generation throughput: "
                               f"{140 + i % 7}.0 tokens/s" for i in range(40)] +
                      ["WARNING 06-30 12:00:41 [scheduler.py:88] KV cache usage above 90%"],
                      "smart": ["INFO smart engine line %d" % i for i in range(10)],
                      "proxy": ["INFO:     127.0.0.1:50000 - \"POST /v1/chat/completions HTTP/1.1\" 200 OK"] * 5}

    def info(self) -> RigInfo:
        desc = "GPU rig · docker" if self.gpu_problem else "simulated rig · 4 × RTX 3090 · local processes"
        return RigInfo(desc, not self.gpu_problem, self.gpu_problem,
                       self.runtime_problem, self.running)

    def sample(self) -> Snapshot:
        self.samples += 1
        snap = snapshot(self.limit, self.running)
        if self.switched_to and self.switch_ok:  # the rig now runs what it was switched to
            snap = replace(snap, profile=self.switched_to[-1])
        if self.gpu_problem:
            snap = replace(snap, gpus=(), warnings=("GPUs: " + self.gpu_problem,))
        return snap

    def history(self, key: str) -> list[float]:
        return history(key) if self.running else []

    def profiles(self) -> list[ProfileEntry]:
        from appliance.profile import load_profile

        return [ProfileEntry(Path("profiles") / f"{n}.yaml", load_profile(REPO / "profiles" / f"{n}.yaml"))
                for n in self.profile_names]

    def fit(self, profile):
        from appliance import cards
        from appliance.fit import GPU, fit_profile

        card = cards.lookup("3090")
        return fit_profile(profile, [GPU.from_card(i, card) for i in range(4)], use_hf_cache=False)

    def active_profile(self):
        from appliance.profile import load_profile

        name = self.switched_to[-1] if self.switched_to and self.switch_ok else "rtx3090x4-two-tier"
        return load_profile(REPO / "profiles" / f"{name}.yaml") if self.running else None

    def plan(self, profile):
        """The real plan of `profile` under `self.settings` (None: the defaults), as the front door would serve it."""
        from appliance.render.plan import plan

        return plan(profile, self.settings)

    def switch(self, profile, on_event):
        self.release.wait(10)
        self.switched_to.append(profile.name)
        events = self.switch_events if self.switch_events is not None else [
            Event("info", f"starting {profile.name} (…)"),
            Event("phase", "x", {"engine": profile.engines[0].label, "phase": "created", "elapsed_s": 0.0}),
            Event("phase", "x", {"engine": profile.engines[0].label, "phase": "weights", "elapsed_s": 1.0}),
            Event("phase", "x", {"engine": profile.engines[0].label, "phase": "kv_graphs", "elapsed_s": 4.0}),
            Event("phase", "x", {"engine": profile.engines[0].label, "phase": "ready", "elapsed_s": 6.5}),
            Event("done", f"{profile.name} is ready after 6.5 s")]
        for ev in events:
            on_event(ev)
        if self.switch_ok:
            return StartResult(profile.name, True, {})
        back = next((e.data["to"] for e in events if e.kind == "rollback"), "?")
        return StartResult(profile.name, False, {}, None, "main", f"crashed; rolled back to {back}")

    def set_power(self, watts: float):
        self.power_calls.append(watts)
        if watts > 1000:
            raise GPUError("GPU 0: no", "try less")
        applied = min(max(watts, 100.0), 350.0)
        changes = [PowerChange(i, watts, applied, self.limit, None if applied == watts else
                               f"{watts:.0f} W is above this card's maximum; using {applied:.0f} W") for i in range(4)]
        self.limit = applied
        return changes

    def log_targets(self) -> list[str]:
        return ["fast", "smart", "proxy"] if self.running else ["proxy"]

    def logs(self, target: str, tail: int = 200) -> list[str]:
        return self.lines.get(target, [])[-tail:]

    def follow(self, target, tail=200):
        return iter(self.logs(target, tail))

    def warnings(self) -> list[str]:
        return []

    def close(self) -> None:
        pass
