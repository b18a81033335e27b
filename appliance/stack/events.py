"""What the Stack tells its callers: progress as `Event`s, and the outcome of a start as a typed `StartResult`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from appliance.diagnose import Diagnosis

Failure = Literal["crashed", "stuck", "timeout", "could not start"]


@dataclass(frozen=True)
class Event:
    kind: str  # info | warn | power | phase | wait | fail | rollback | done
    message: str
    data: dict = field(default_factory=dict)


@dataclass
class StartResult:
    profile: str
    ok: bool
    timelines: dict[str, list[dict]]
    diagnosis: Diagnosis | None = None
    failed_engine: str | None = None
    failure: Failure | None = None  # why the start failed (None when ok)
    rolled_back_to: str | None = None  # a failed switch: the profile that runs again
    rollback_failed: bool = False  # … which failed to start too: nothing runs

    @property
    def reason(self) -> str | None:
        """One line for people (the CLI, the TUI): the failure, and where the rollback went."""
        if self.ok or self.failure is None:
            return None
        text = self.failure
        if self.rolled_back_to:
            text += f"; rolled back to {self.rolled_back_to}" + (" (which failed too)" if self.rollback_failed
                                                                 else "")
        return text
