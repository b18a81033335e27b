"""The runtime boundary: start, stop, inspect and read the logs of a compose project — either under docker
(Compose v2 CLI + docker SDK) or as local processes running the same services."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol


@dataclass(frozen=True)
class ServiceState:
    service: str
    status: str  # created | running | restarting | exited | dead | paused | missing
    exit_code: int | None = None
    restarts: int = 0
    started_at: float | None = None  # epoch seconds
    health: str | None = None  # docker's own healthcheck state, when there is one
    oom_killed: bool = False
    pid: int | None = None
    ident: str | None = None  # container id or supervisor pid

    @property
    def alive(self) -> bool:
        return self.status in ("running", "created", "restarting")


class Runtime(Protocol):
    kind: str  # "docker" | "process"

    def prepare(self, compose_file: Path, compose: dict, emit=None) -> None:
        """Everything `up` needs is here and safe (docker: host network only, images pulled with progress;
        processes: the programs exist). Raises RuntimeBoundaryError with a fix."""

    def up(self, project: str, compose_file: Path, compose: dict) -> None:
        """Create and start every service of the project (returns at once; startup is followed by the caller)."""

    def down(self, project: str, compose_file: Path | None = None, timeout_s: int = 30) -> None:
        """Stop and remove the project's services."""

    def states(self, project: str) -> list[ServiceState]: ...

    def logs(self, project: str, service: str, tail: int = 200, follow: bool = False) -> Iterator[str]: ...

    def new_lines(self, project: str, service: str, cursor: dict) -> list[str]:
        """Lines written since the previous call with the same cursor dict (starts at the beginning)."""

    def signal(self, project: str, service: str, sig: str) -> None:
        """Send a signal by name (e.g. "SIGUSR2") to a running service's main program."""

    def stop_service(self, project: str, service: str, timeout_s: int = 30) -> None: ...

    def projects(self) -> list[str]:
        """Projects of this appliance (names starting with `appliance-`) that have services."""
