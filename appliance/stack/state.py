"""The rig's state: one typed record, one writer.

What must survive the CLI and the TUI lives in the rig's `state.json`: which profile runs (and which one is being
started), the last one that started fine, which profile the front door routes to, the power limits the owner had
before the appliance changed them (restored on `down`, kept across a crash), whether the front door listens on
the LAN, and where the front door is. Everybody reads a `RigState`; only `StateStore.update` writes, atomically
(temp file + fsync + rename), so a crash mid-write leaves the previous record.

Read strictly: a file that is not exactly this record (empty, truncated, hand-edited into nonsense) is a
StateError naming the file, what is wrong and the fix (`appliance doctor`), never a silent reset — an empty record
would forget the owner's power limits and the front door. The owner's original power limits are also kept in a
file of their own (`power-originals.json`), written BEFORE the state records a change, so a corrupt or deleted
state.json cannot lose them; the state's `power_saved` is always read together with it.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from appliance.errors import ApplianceError

ORIGINALS_NAME = "power-originals.json"


class StateError(ApplianceError):
    """The rig's state file cannot be read: a broken rig record, not bad input (exit 1)."""

    exit_code = 1


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
        """The record from parsed JSON; a ValueError names the first field that is not what the appliance wrote."""
        if not isinstance(data, dict):
            raise ValueError(f"the record is a {type(data).__name__}, not a mapping")

        def text(key: str) -> str | None:
            v = data.get(key)
            if v is not None and (not isinstance(v, str) or not v or len(v) > 4096):
                raise ValueError(f"`{key}` is {_show(v)}, not a name")
            return v

        def ref(key: str) -> ProfileRef | None:
            name, file = text(key), text(f"{key}_file")
            return ProfileRef(name, file) if name else None

        def port(v, key: str) -> int:
            if isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= 65535:
                raise ValueError(f"`{key}` is {_show(v)}, not a port")
            return v

        proxy = data.get("proxy")
        if proxy is not None:
            if not isinstance(proxy, dict) or not isinstance(proxy.get("host"), str) or \
                    not re.fullmatch(r"[0-9A-Fa-f.:]{2,45}", proxy["host"]):
                raise ValueError(f"`proxy` is {_show(proxy)}, not a front-door record")
            p = port(proxy.get("port"), "proxy.port")
            socket = proxy.get("socket")
            if socket is not None and not isinstance(socket, str):
                raise ValueError(f"`proxy.socket` is {_show(socket)}")
            record = ProxyRecord(host=proxy["host"], port=p,
                                 litellm_port=port(proxy.get("litellm_port", p + 1), "proxy.litellm_port"),
                                 socket=socket)
        else:
            record = None
        lan = data.get("lan")
        if lan is not None and not isinstance(lan, bool):
            raise ValueError(f"`lan` is {_show(lan)}, not true/false")
        return cls(active=ref("active"), starting=text("starting"), previous=text("previous"),
                   last_good=ref("last_good"), routed=ref("routed"), power_saved=_watts(data.get("power_saved")),
                   lan=lan, proxy=record)

    def with_(self, **changes) -> "RigState":
        return replace(self, **changes)


def _show(v) -> str:
    r = repr(v)
    return r if len(r) <= 60 else r[:60] + "…"


def _watts(raw) -> dict[int, float]:
    """GPU index → watts, from JSON (keys are strings there)."""
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ValueError(f"`power_saved` is {_show(raw)}, not GPU → watts")
    out: dict[int, float] = {}
    for k, v in raw.items():
        if v is None:
            continue
        try:
            idx = int(k)
        except (TypeError, ValueError):
            raise ValueError(f"`power_saved` has the key {_show(k)}, not a GPU index") from None
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 < v < 100_000 or not 0 <= idx < 1024:
            raise ValueError(f"`power_saved.{k}` is {_show(v)}, not watts")
        out[idx] = float(v)
    return out


class StateStore:
    """The one writer of `state.json`. `load()` for a read; `update(**changes)` or `edit()` for a change."""

    def __init__(self, path: Path):
        self.path = Path(path)

    @property
    def originals_path(self) -> Path:
        return self.path.with_name(ORIGINALS_NAME)

    def load(self) -> RigState:
        """The record (an empty one when there is none yet); StateError when the file is not a valid record."""
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return RigState(power_saved=self.originals())
        except OSError as exc:
            raise self._error(f"cannot be read ({exc.strerror})") from None
        try:
            state = RigState.from_json(json.loads(raw.decode("utf-8")))
        except UnicodeDecodeError:
            raise self._error("is not UTF-8 text") from None
        except RecursionError:
            raise self._error("is nested too deeply") from None
        except ValueError as exc:  # json.JSONDecodeError is a ValueError
            why = "is empty" if not raw.strip() else f"is not a valid record ({exc})"
            raise self._error(why) from None
        originals = self.originals()
        if originals:
            state = state.with_(power_saved={**state.power_saved, **originals})
        return state

    def originals(self) -> dict[int, float]:
        """The owner's limits before the appliance changed them, from their own file ({} when none)."""
        try:
            return _watts(json.loads(self.originals_path.read_text()))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError, RecursionError) as exc:
            raise StateError(f"{self.originals_path}: the owner's original power limits cannot be read ({exc})",
                             "write each GPU's own limit into it as JSON, e.g. {\"0\": 350.0}, or delete it if "
                             "the limits are the owner's already (`nvidia-smi -q -d POWER` shows them)") from None

    def _error(self, why: str) -> StateError:
        return StateError(f"the rig's state file {self.path} {why}; nothing was changed",
                          "run `appliance doctor` — it shows what runs now, rebuilds the state from the live rig "
                          "(the damaged file is kept beside it) and says what it could not recover")

    def _write_json(self, path: Path, data) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        with open(tmp, "w") as f:
            json.dump(data, f, indent=2, sort_keys=True)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)

    def save(self, state: RigState) -> RigState:
        # the originals first: a crash between the two writes leaves them recorded, never lost
        try:
            originals = self.originals()
        except StateError:
            originals = {}
        wanted = {i: w for i, w in originals.items() if i in state.power_saved}
        for i, w in state.power_saved.items():
            wanted.setdefault(i, w)
        if wanted != originals:
            self._write_json(self.originals_path, {str(k): v for k, v in sorted(wanted.items())})
        state = state.with_(power_saved=wanted)
        self._write_json(self.path, state.to_json())
        return state

    def update(self, **changes) -> RigState:
        return self.save(self.load().with_(**changes))

    def replace_corrupt(self, state: RigState) -> Path | None:
        """Doctor only: keep the damaged file beside (state.json.corrupt-N) and write `state`."""
        kept = None
        if self.path.exists():
            n = 1
            while self.path.with_name(f"{self.path.name}.corrupt-{n}").exists():
                n += 1
            kept = self.path.with_name(f"{self.path.name}.corrupt-{n}")
            os.replace(self.path, kept)
        self.save(state)
        return kept

    @contextlib.contextmanager
    def edit(self) -> Iterator[dict]:
        """Read, let the caller change fields in a dict, write once."""
        state = self.load()
        changes: dict = {}
        yield changes
        if changes:
            self.save(state.with_(**changes))
