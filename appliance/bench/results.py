"""What a bench run produces and where it is kept: Cell (one power limit × concurrency), BenchRun, and the
JSON + CSV files in the state dir (saved after every cell, so an interrupted sweep keeps what it measured).
"""

from __future__ import annotations

import csv
import json
from dataclasses import asdict, dataclass
from pathlib import Path

from appliance import paths
from appliance.errors import ApplianceError


@dataclass
class Cell:
    power_limit_w: float | None
    concurrency: int
    window_s: float
    requests_ok: int
    requests_failed: int
    gen_tps: float  # aggregate generation tokens/s
    prompt_tps: float
    per_request_tps_p50: float | None
    per_request_tps_p95: float | None
    ttft_p50_s: float | None
    ttft_p95_s: float | None
    itl_p50_s: float | None
    power_w_per_gpu: dict[str, float]
    power_w: float  # all of the engine's GPUs together
    energy_j: float
    tokens_per_joule: float | None
    spec_acceptance: float | None
    kv_usage_max: float | None
    source: str  # "counters" (engine /metrics) or "client"


@dataclass
class BenchRun:
    run_id: str
    created: float
    profile: str
    engine: str
    model: str
    hardware: list[str]
    versions: dict
    settings: dict
    cells: list[Cell]
    interrupted: bool = False
    recommendation: dict | None = None

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "BenchRun":
        cells = [Cell(**c) for c in d.get("cells", [])]
        return cls(**{**d, "cells": cells})


def bench_dir() -> Path:
    return paths.state_dir() / "bench"


def save(run: BenchRun) -> Path:
    d = bench_dir()
    d.mkdir(parents=True, exist_ok=True)
    path = d / f"{run.run_id}.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(run.to_dict(), indent=2))
    tmp.replace(path)
    with open(d / f"{run.run_id}.csv", "w", newline="") as f:
        fields = [k for k in Cell.__dataclass_fields__ if k != "power_w_per_gpu"]
        w = csv.DictWriter(f, fieldnames=fields)
        w.writeheader()
        for c in run.cells:
            row = asdict(c)
            row.pop("power_w_per_gpu")
            w.writerow(row)
    return path


def list_runs() -> list[Path]:
    d = bench_dir()
    return sorted(d.glob("*.json")) if d.is_dir() else []


def load_run(ref: str | None) -> BenchRun:
    runs = list_runs()
    if not runs:
        raise ApplianceError("no bench results yet", "run `appliance bench`")
    if ref is None:
        path = runs[-1]
    else:
        p = Path(ref)
        matches = [p] if p.is_file() else [r for r in runs if ref in r.stem]
        if not matches:
            raise ApplianceError(f"no bench run matches `{ref}`",
                                 "runs: " + ", ".join(r.stem for r in runs[-5:]))
        path = matches[-1]
    return BenchRun.from_dict(json.loads(path.read_text()))
