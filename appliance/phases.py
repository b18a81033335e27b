"""Pure: follow an engine's startup phase by phase from its log lines and its health.

created → loading weights → KV cache & CUDA graphs → ready. A real vLLM (0.19 source, 0.32 measured) refuses TCP
until it is ready and then answers /health 200 at once — it never answers 503 while loading — so only a healthy
/health means ready, and "refused" from a process that is still alive means "loading", not "down"
(`health_state`). "Slow" (log lines keep coming), "stuck" (alive, silent and unhealthy for longer than the stall
limit) and "crashed" (exited) are told apart by the caller from this tracker's `last_progress`.

The markers are real log lines: the GPU build's ("Model loading took", "GPU KV cache size", CUDA graphs) and the
CPU build's, which has neither of the first two ("Explicitly set … GiB for KV cache", "CPU KV cache size"); the
conformance suite (tests/real/) feeds a real engine's log through this tracker.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

PHASES = ("created", "weights", "kv_graphs", "ready")
LABELS = {
    "created": "container created",
    "weights": "loading weights",
    "kv_graphs": "KV cache / graph capture",
    "ready": "ready",
}
_MARKERS = (
    ("weights", re.compile(r"Starting to load model|Loading weights|Loading safetensors|Downloading")),
    ("kv_graphs", re.compile(r"Model loading took|Available KV cache memory|[GC]PU KV cache size|"
                             r"Capturing CUDA graph|Memory profiling takes|GiB for KV cache on node|"
                             r"init engine \(profile, create kv cache")),
    ("ready", re.compile(r"Application startup complete")),
)
_DETAIL = (
    re.compile(r"Model loading took ([\d.]+) GiB memory and ([\d.]+) seconds"),
    re.compile(r"[GC]PU KV cache size: ([\d,]+) tokens"),
    re.compile(r"Maximum concurrency for ([\d,]+) tokens per request: ([\d.]+)x"),
)


@dataclass
class StartupTracker:
    t0: float
    started: dict[str, float] = field(default_factory=dict)
    last_progress: float = 0.0
    details: list[str] = field(default_factory=list)
    healthy_at: float | None = None

    def __post_init__(self):
        self.started.setdefault("created", self.t0)
        self.last_progress = self.t0

    @property
    def current(self) -> str:
        for phase in reversed(PHASES):
            if phase in self.started:
                return phase
        return "created"

    def _enter(self, phase: str, t: float) -> None:
        idx = PHASES.index(phase)
        for earlier in PHASES[1:idx]:
            self.started.setdefault(earlier, t)
        self.started.setdefault(phase, t)

    def feed(self, line: str, t: float) -> None:
        """A new log line seen at time t (every line is progress: the engine is alive and talking)."""
        self.last_progress = t
        for phase, pattern in _MARKERS:
            if pattern.search(line):
                if phase == "ready":
                    continue  # uvicorn is up, but only /health decides
                self._enter(phase, t)
        for pattern in _DETAIL:
            m = pattern.search(line)
            if m:
                self.details.append(m.group(0))

    def healthy(self, t: float) -> None:
        if self.healthy_at is None:
            self.healthy_at = t
            self.last_progress = t
            self._enter("ready", t)

    @property
    def ready(self) -> bool:
        return self.healthy_at is not None

    def timeline(self, now: float) -> list[dict]:
        """[{phase, label, started_s (since t0), elapsed_s, done}] for the phases reached so far."""
        out = []
        reached = [p for p in PHASES if p in self.started]
        for i, phase in enumerate(reached):
            start = self.started[phase]
            end = self.started[reached[i + 1]] if i + 1 < len(reached) else (start if phase == "ready" else now)
            out.append({"phase": phase, "label": LABELS[phase], "started_s": round(start - self.t0, 2),
                        "elapsed_s": round(end - start, 2), "done": i + 1 < len(reached) or phase == "ready"})
        return out

    def silent_for(self, now: float) -> float:
        return now - self.last_progress


def health_state(ok: bool, error: str | None, status: int | None, process_alive: bool | None) -> str:
    """One /health probe (appliance.http.Probe's ok/error/status) → healthy | loading | unhealthy | hung | down.

    A real vLLM refuses TCP while it loads, so "refused" is "loading" as long as its process is alive
    (`process_alive` None: unknown, treated as alive only for a timeout). A timeout means the port accepted the
    connection but nobody answered: an engine that hangs (vLLM never does that while loading)."""
    if ok:
        return "healthy"
    if status is not None:
        return "unhealthy"
    if error == "refused":
        return "loading" if process_alive else "down"
    if error == "timeout":
        return "hung" if process_alive is not False else "down"
    return "down"
