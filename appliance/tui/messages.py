"""Typed messages from workers to the UI (posted from threads; `post_message` is thread-safe)."""

from __future__ import annotations

from dataclasses import dataclass, field

from textual.message import Message


@dataclass(frozen=True)
class Sample:
    """One finished sample: the Snapshot plus copies of the histories the views plot (taken in the worker
    thread, so the UI never iterates a series the sampler is appending to)."""

    snapshot: object
    history: dict[str, list[float]] = field(default_factory=dict)


class Sampled(Message):
    def __init__(self, sample: Sample) -> None:
        super().__init__()
        self.sample = sample


class SwitchProgress(Message):
    """An Event from Stack.switch (kind, message, data)."""

    def __init__(self, event) -> None:
        super().__init__()
        self.event = event


class SwitchFinished(Message):
    def __init__(self, result=None, error: str | None = None) -> None:
        super().__init__()
        self.result = result
        self.error = error
