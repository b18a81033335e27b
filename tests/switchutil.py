"""Switches under streaming load, measured per switch: shared by tests/test_switch_matrix.py and
benchmarks/switch_matrix.py.

Agents stream short chats to the alias `local` without pause while the profile is switched; each switch reports
the requests in flight when it began, failed and cut requests, requests the front door held (and the longest
hold), requests served by a fallback, the time until `local` was served by the local engine again, and the speed
of the streams that were in flight compared with the old engine's speed just before.
"""

from __future__ import annotations

import asyncio
import os
import re
import statistics
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import rigutil

REPO = Path(__file__).resolve().parent.parent
SINGLE_GPU = ["rtx4090-llama31-8b-chat", "rtx4090-qwen25-14b-agent", "rtx4060ti16-qwen25-7b"]


TEST_TIMEOUTS = "{request_s: 120, stream_s: 30, first_token_s: 30, hold_s: 120}"


def write_shipped(d: Path, names: list[str], local_only: dict[str, str] | None = None,
                  timeouts: str | None = TEST_TIMEOUTS) -> None:
    """Copies of shipped profiles on the test's ports (everything else as shipped), plus `local_only`: name →
    shipped profile to copy without its proxy section (no hosted model, no fallback). `timeouts=None` keeps the
    shipped (default) proxy timeouts."""
    d.mkdir(parents=True, exist_ok=True)
    for name in names:
        _copy(d, name, name, keep_proxy=True, timeouts=timeouts)
    for name, source in (local_only or {}).items():
        _copy(d, source, name, keep_proxy=False, timeouts=timeouts)


def _copy(d: Path, source: str, name: str, keep_proxy: bool, timeouts: str | None) -> None:
    text = (REPO / "profiles" / f"{source}.yaml").read_text()
    text = re.sub(r"^name: .*$", f"name: {name}", text, flags=re.M)
    text = re.sub(r"^(\s+port:) 8000$", rf"\1 {rigutil.ENGINE_PORT}", text, flags=re.M)
    head, sep, proxy = text.partition("\nproxy:\n")
    lines = f"  timeouts: {timeouts}\n" if timeouts else ""
    if keep_proxy and sep:
        text = head + sep + f"  port: {rigutil.PROXY_PORT}\n" + lines + proxy
    else:
        text = head.rstrip("\n") + f"\nproxy:\n  port: {rigutil.PROXY_PORT}\n" + lines
    (d / f"{name}.yaml").write_text(text)


@dataclass
class SwitchReport:
    source: str
    target: str
    ok: bool
    in_flight: int  # requests running when the switch began
    requests: int  # requests that started before the switch ended (in flight + started during it)
    failed: int
    cut: int  # of the failed: streams that had started producing tokens
    held: int  # held by the front door until an engine could serve them
    longest_hold_s: float
    fallback: int  # served by a fallback
    local_again_s: float | None  # from the start of the switch until `local` was served locally again
    speed_ratio: float | None  # in-flight streams: tok/s after the switch began ÷ their own tok/s before it
    seconds: float  # how long the switch took
    errors: tuple[str, ...] = ()  # of each failed request: what it asked, where it went, when, the error


def run_switches(stack, sequence: list[str], agents: int = 6, settle_s: float = 3.0,
                 max_tokens: tuple[int, int] = (30, 80)) -> list[SwitchReport]:
    """Start with sequence[0], then switch to each next profile while `agents` stream without pause."""
    from appliance import http, load, secrets
    from appliance.profile import load_profile

    assert stack.up(load_profile(sequence[0])).ok
    key = secrets.master_key()
    base = f"http://127.0.0.1:{rigutil.PROXY_PORT}/v1"
    local_id = f"local:local@{rigutil.ENGINE_PORT}"
    results: list = []
    stop = threading.Event()

    async def run_agents():
        async with http.async_client(timeout_s=180) as client:
            async def agent(i):
                n = 0
                while not stop.is_set():
                    n += 1
                    tokens = max_tokens[0] + (i * 13 + n * 7) % (max_tokens[1] - max_tokens[0])
                    results.append(await load.stream_chat(client, base, key, "local",
                                                          load.synthetic_prompt(60, i * 1000 + n), tokens))
            await asyncio.gather(*(agent(i) for i in range(agents)))

    runner = threading.Thread(target=lambda: asyncio.run(run_agents()), daemon=True)
    runner.start()
    reports = []
    try:
        time.sleep(settle_s)
        for source, target in zip(sequence, sequence[1:]):
            t0 = time.time()
            result = stack.switch(load_profile(target))
            t1 = time.time()
            deadline = t1 + 60
            while time.time() < deadline and not any(r.model_id == local_id and r.ok and r.t_start > t1
                                                     for r in list(results)):
                time.sleep(0.2)
            time.sleep(settle_s)
            reports.append(_report(source, target, result.ok, list(results), t0, t1, local_id))
    finally:
        stop.set()
        runner.join(timeout=240)
    return reports


def _split_speed(r, t0: float) -> tuple[float, float] | None:
    """A stream's mean gap between tokens before and after `t0` (from its own token times)."""
    if r.ttft_s is None or len(r.itl_s) < 4:
        return None
    t = r.t_start + r.ttft_s
    before, after = [], []
    for gap in r.itl_s:
        t += gap
        (before if t <= t0 else after).append(gap)
    if len(before) < 2 or len(after) < 2:
        return None
    return statistics.mean(before), statistics.mean(after)


def _report(source, target, ok, results, t0, t1, local_id) -> SwitchReport:
    started_before = [r for r in results if r.t_start < t0 < r.t_end]
    during = [r for r in results if r.t_start < t1 and r.t_end > t0]
    failed = [r for r in during if not r.ok]
    held = [r for r in during if r.held_ms]
    again = [r.t_end - t0 for r in results if r.ok and r.model_id == local_id and r.t_start > t1]
    splits = [s for s in (_split_speed(r, t0) for r in started_before if r.ok and r.model_id == local_id) if s]
    ratio = statistics.median(b / a for b, a in splits) if splits else None
    return SwitchReport(source, target, ok, len(started_before), len(during), len(failed),
                        sum(1 for r in failed if r.ttft_s is not None), len(held),
                        max((r.held_ms for r in held), default=0) / 1000,
                        sum(1 for r in during if r.ok and (r.model_id or "").startswith("hosted:")),
                        min(again) if again else None, ratio, t1 - t0,
                        tuple(f"{r.model_id or '-'} started {r.t_start - t0:+.1f} s, ttft {r.ttft_s}, "
                              f"{r.output_tokens} tokens, held {r.held_ms} ms: {r.error}" for r in failed))


def table(reports: list[SwitchReport]) -> str:
    head = (f"{'switch':<58}{'in flight':>10}{'requests':>9}{'failed':>7}{'cut':>5}{'held':>5}{'longest hold':>13}"
            f"{'fallback':>9}{'local again':>12}{'speed':>7}")
    rows = [head]
    for r in reports:
        again = f"{r.local_again_s:.1f} s" if r.local_again_s is not None else "never"
        speed = f"{r.speed_ratio:.2f}" if r.speed_ratio is not None else "–"
        rows.append(f"{r.source + ' → ' + r.target:<58}{r.in_flight:>10}{r.requests:>9}{r.failed:>7}{r.cut:>5}"
                    f"{r.held:>5}{r.longest_hold_s:>11.1f} s{r.fallback:>9}{again:>12}{speed:>7}")
        rows += [f"    failed: {e}" for e in r.errors]
    return "\n".join(rows)


def env_for(tmp: Path) -> dict[str, str]:
    env = rigutil.rig_env(tmp)
    env["APPLIANCE_SIM_LOAD_S"] = os.environ.get("APPLIANCE_SIM_LOAD_S", "2.0")
    return env
