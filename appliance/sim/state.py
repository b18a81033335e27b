"""The shared sim state directory (see README.md in this package): paths, atomic JSON writes, readers.

Stdlib only. Writers replace files atomically (temporary file in the same directory + os.replace), so a reader
sees either the old or the new content, never a torn one; readers still tolerate a missing or unreadable file.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path

ENV_DIR = "APPLIANCE_SIM_DIR"
GPUS_FILE = "gpus.json"
LIVE_S = 2.0  # an engine file older than this counts as not live


class SimDirError(RuntimeError):
    pass


def sim_dir_from_env(environ: dict | None = None) -> Path:
    env = os.environ if environ is None else environ
    raw = env.get(ENV_DIR)
    if not raw:
        raise SimDirError(
            f"{ENV_DIR} is not set: the simulated engine needs the shared sim state directory "
            "(created by the appliance's simulated GPUs, holding gpus.json)"
        )
    path = Path(raw)
    if not path.is_absolute():
        raise SimDirError(f"{ENV_DIR} must be an absolute path, got {raw!r}")
    return path


def write_json_atomic(path: Path, data: object) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as fh:
            json.dump(data, fh, separators=(",", ":"))
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def read_json(path: Path, default=None):
    try:
        with open(path) as fh:
            return json.load(fh)
    except (OSError, ValueError):
        return default


def gpus_path(sim_dir: Path) -> Path:
    return sim_dir / GPUS_FILE


def limit_path(sim_dir: Path, index: int) -> Path:
    return sim_dir / f"gpu{index}.limit.json"


def read_gpus(sim_dir: Path) -> dict:
    """gpus.json: {"created": t, "gpus": [...]} (a bare list is accepted too, with created = file mtime)."""
    data = read_json(gpus_path(sim_dir))
    if data is None:
        raise SimDirError(f"{gpus_path(sim_dir)} is missing or unreadable: create the simulated GPUs first")
    if isinstance(data, list):
        try:
            created = gpus_path(sim_dir).stat().st_mtime
        except OSError:
            created = time.time()
        data = {"created": created, "gpus": data}
    return data


def read_limit_w(sim_dir: Path, index: int, default: float) -> float:
    data = read_json(limit_path(sim_dir, index))
    try:
        return float(data["power_limit_w"])
    except (TypeError, KeyError, ValueError):
        return float(default)


def engine_files(sim_dir: Path) -> list[Path]:
    try:
        return sorted(p for p in sim_dir.iterdir() if p.name.startswith("engine-") and p.name.endswith(".json"))
    except OSError:
        return []


def read_engines(sim_dir: Path) -> list[dict]:
    out = []
    for path in engine_files(sim_dir):
        data = read_json(path)
        if isinstance(data, dict):
            data["_file"] = path.name
            out.append(data)
    return out


def is_live(engine: dict, now: float) -> bool:
    return engine.get("state") in ("loading", "ready") and now - float(engine.get("t", 0)) <= LIVE_S
