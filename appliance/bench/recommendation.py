"""The recommendation: which power limit buys the most tokens per joule without slowing requests down, and
writing it into the profile.
"""

from __future__ import annotations

from pathlib import Path

from appliance.bench.results import BenchRun
from appliance.errors import ApplianceError


def recommend(run: BenchRun, at_concurrency: int | None = None, keep_within: float = 0.9) -> dict | None:
    """The power limit with the best tokens per joule that keeps per-request tokens/s within `keep_within` of
    the best, at the concurrency the owner cares about."""
    cells = [c for c in run.cells if c.power_limit_w is not None and c.requests_ok > 0]
    if not cells:
        return None
    concs = sorted({c.concurrency for c in cells})
    if at_concurrency is None:
        at_concurrency = next((c for c in concs if c >= 2), concs[-1])
    at = [c for c in cells if c.concurrency == at_concurrency]
    if len({c.power_limit_w for c in at}) < 2:  # one limit measured (the power as it was): nothing to compare
        return None
    speed = lambda c: c.per_request_tps_p50 or (c.gen_tps / max(1, c.concurrency))  # noqa: E731
    best_speed = max(speed(c) for c in at)
    ok = [c for c in at if speed(c) >= keep_within * best_speed and c.tokens_per_joule]
    if not ok:
        return None
    pick = max(ok, key=lambda c: c.tokens_per_joule)
    fastest = max(at, key=speed)
    return {
        "power_limit_w": pick.power_limit_w, "concurrency": at_concurrency,
        "tokens_per_joule": pick.tokens_per_joule, "per_request_tps": speed(pick),
        "share_of_best": speed(pick) / best_speed if best_speed else None,
        "fastest_power_limit_w": fastest.power_limit_w, "gen_tps": pick.gen_tps,
        "text": (f"at {at_concurrency} concurrent request(s), {pick.power_limit_w:.0f} W gives the most tokens per "
                 f"joule ({pick.tokens_per_joule:.3f} tok/J) of the limits that keep at least "
                 f"{100 * keep_within:.0f}% of the best speed per request: {speed(pick):.1f} tok/s per request "
                 f"({100 * speed(pick) / best_speed:.0f}% of the best, at {fastest.power_limit_w:.0f} W)"),
    }


def apply_recommendation(run: BenchRun, profile_path: Path) -> tuple[float, Path]:
    """Write the recommended limit into the profile's top-level `power_limit_w` the way `appliance set` does: the
    file's comments (the one on that line too) and layout kept, the previous version in .history/, a shipped
    profile changed in the owner's own copy (returned). Nothing is written when the result would not load."""
    from appliance.editing import store

    rec = run.recommendation or recommend(run)
    if not rec:
        raise ApplianceError(f"bench run {run.run_id} has no recommendation (it measured fewer than two power "
                             "limits)", "run `appliance bench --power 200,250,300` first")
    watts = int(round(rec["power_limit_w"]))
    result = store.set_values(profile_path, [f"power_limit_w={watts}"])
    return float(watts), result.path
