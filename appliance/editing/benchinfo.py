"""What a recorded bench says about a profile at its power limit: measured tok/s and tok/J next to the fit, so the
owner choosing a limit in the editor sees numbers from this rig instead of guesses. Reads bench results only."""

from __future__ import annotations

import json
from dataclasses import dataclass


@dataclass(frozen=True)
class Measured:
    run_id: str
    power_limit_w: float  # the swept limit closest to the profile's
    concurrency: int
    gen_tps: float
    tokens_per_joule: float | None
    per_request_tps: float | None
    exact: bool  # the profile's limit was swept exactly

    def text(self) -> str:
        near = "" if self.exact else " (nearest measured)"
        tpj = f", {self.tokens_per_joule:.3f} tok/J" if self.tokens_per_joule else ""
        per = f", {self.per_request_tps:.1f} tok/s per request" if self.per_request_tps else ""
        return (f"bench {self.run_id}: at {self.power_limit_w:.0f} W{near} × {self.concurrency} concurrent: "
                f"{self.gen_tps:.1f} tok/s{per}{tpj}")


def runs_for(profile_name: str) -> list:
    """Recorded runs of a profile, newest last (unreadable files are skipped)."""
    from appliance import bench

    out = []
    for path in bench.list_runs():
        try:
            run = bench.BenchRun.from_dict(json.loads(path.read_text()))
        except (OSError, ValueError, TypeError, KeyError):
            continue
        if run.profile == profile_name:
            out.append(run)
    return out


def _limit(profile) -> float | None:
    pl = profile.power_limit_w
    if pl is None:
        return None
    return float(pl) if isinstance(pl, int) else float(max(pl.values()))


def measured(profile, runs: list | None = None) -> Measured | None:
    """The newest run of this profile: the cell at the swept power limit nearest the profile's, at the
    recommendation's concurrency (else the highest measured)."""
    runs = runs_for(profile.name) if runs is None else runs
    for run in reversed(runs):
        cells = [c for c in run.cells if c.requests_ok > 0]
        if not cells:
            continue
        rec = run.recommendation or {}
        conc = rec.get("concurrency") or max(c.concurrency for c in cells)
        at = [c for c in cells if c.concurrency == conc] or cells
        want = _limit(profile)
        limits = [c for c in at if c.power_limit_w is not None]
        if want is not None and limits:
            cell = min(limits, key=lambda c: abs(c.power_limit_w - want))
        else:
            cell = max(at, key=lambda c: c.gen_tps)
        power = cell.power_limit_w if cell.power_limit_w is not None else cell.power_w
        return Measured(run.run_id, power, cell.concurrency, cell.gen_tps, cell.tokens_per_joule,
                        cell.per_request_tps_p50, want is not None and cell.power_limit_w == want)
    return None
