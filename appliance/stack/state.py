"""The rig's state: one typed record, one writer.

What must survive the CLI and the TUI lives in the rig's `state.json`: which profile runs (and which one is being
started), the last one that started fine, which profile the front door routes to, the power limits the owner had
before the appliance changed them (restored on `down`, kept across a crash), whether the front door listens on
the LAN, and where the front door is. Everybody reads a `RigState`; only `StateStore.update` writes, atomically
(temp file + rename), so a crash mid-write leaves the previous record.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path


@dataclass(frozen=True)
class ProfileRef:
    """A profile by name and the file it was loaded from (a user's copy may shadow a shipped one)."""

    name: str
    file: str | None = None

    @property
    def ref(self) -> str:
        return self.file or self.name

    @classmethod
    def of(cls, profile) -> "ProfileRef":
        return cls(profile.name, profile.source_file)


@dataclass(frozen=True)
class ProxyRecord:
    """Where the front door listens (agents' port; LiteLLM on the next one) and its runtime socket."""

    host: str
    port: int
    litellm_port: int
    socket: str | None = None


@dataclass(frozen=True)
class RigState:
    active: ProfileRef | None = None  # the profile whose engines run (or are starting)
    starting: str | None = None  # set while a start is under way: an interrupted start leaves it
    previous: str | None = None  # the profile a switch replaced
    last_good: ProfileRef | None = None  # the last profile that started fine (rollback target)
    routed: ProfileRef | None = None  # the profile the front door sends its aliases to
    power_saved: dict[int, float] = field(default_factory=dict)  # GPU → the owner's limit before ours
    lan: bool | None = None  # front door on 0.0.0.0 (None: never said)
    proxy: ProxyRecord | None = None

    # -- (de)serialisation: the file format is flat JSON (readable, and compatible with older files) --
    def to_json(self) -> dict:
        out: dict = {"starting": self.starting, "previous": self.previous, "lan": self.lan,
                     "power_saved": {str(k): v for k, v in sorted(self.power_saved.items())},
                     "proxy": asdict(self.proxy) if self.proxy else None}
        for key in ("active", "last_good", "routed"):
            ref: ProfileRef | None = getattr(self, key)
            out[key] = ref.name if ref else None
            out[f"{key}_file"] = ref.file if ref else None
        return out

    @classmethod
    def from_json(cls, data: dict) -> "RigState":
        def ref(key: str) -> ProfileRef | None:
            name = data.get(key)
            return ProfileRef(str(name), data.get(f"{key}_file")) if name else None

        proxy = data.get("proxy")
        saved = {int(k): float(v) for k, v in (data.get("power_saved") or {}).items() if v is not None}
        return cls(active=ref("active"), starting=data.get("starting"), previous=data.get("previous"),
                   last_good=ref("last_good"), routed=ref("routed"), power_saved=saved, lan=data.get("lan"),
                   proxy=ProxyRecord(host=proxy["host"], port=int(proxy["port"]),
                                     litellm_port=int(proxy.get("litellm_port", int(proxy["port"]) + 1)),
                                     socket=proxy.get("socket")) if proxy else None)

    def with_(self, **changes) -> "RigState":
        return replace(self, **changes)


class StateStore:
    """The one writer of `state.json`. `load()` for a read; `update(**changes)` or `edit()` for a change."""

    def __init__(self, path: Path):
        self.path = Path(path)

    def load(self) -> RigState:
        try:
            data = json.loads(self.path.read_text())
        except FileNotFoundError:
            return RigState()
        except (OSError, ValueError):
            return RigState()  # TODO [5/8]: a corrupt file is a loud error with a recovery path
        if not isinstance(data, dict):
            return RigState()
        return RigState.from_json(data)

    def save(self, state: RigState) -> RigState:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".tmp")
        with open(tmp, "w") as f:
            json.dump(state.to_json(), f, indent=2, sort_keys=True)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)
        return state

    def update(self, **changes) -> RigState:
        return self.save(self.load().with_(**changes))

    @contextlib.contextmanager
    def edit(self) -> Iterator[dict]:
        """Read, let the caller change fields in a dict, write once."""
        state = self.load()
        changes: dict = {}
        yield changes
        if changes:
            self.save(state.with_(**changes))
