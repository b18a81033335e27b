"""Pure: follow an engine's startup phase by phase from its log lines and its health.

created → loading weights → KV cache & CUDA graphs → ready. vLLM accepts TCP long before it answers, so only a
healthy /health means ready. "Slow" (log lines keep coming), "stuck" (alive, silent and unhealthy for longer than
the stall limit) and "crashed" (exited) are told apart by the caller from this tracker's `last_progress`.
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
    ("kv_graphs", re.compile(r"Model loading took|Available KV cache memory|GPU KV cache size|"
                             r"Capturing CUDA graph|Memory profiling takes")),
    ("ready", re.compile(r"Application startup complete")),
)
_DETAIL = (
    re.compile(r"Model loading took ([\d.]+) GiB memory and ([\d.]+) seconds"),
    re.compile(r"GPU KV cache size: ([\d,]+) tokens"),
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
