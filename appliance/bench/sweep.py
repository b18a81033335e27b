"""`appliance bench`: concurrency × power-limit sweeps, tokens per joule, and a recommendation.

For each power limit (set on the engine's GPUs through the Stack, restored afterwards — also on Ctrl-C) and
each concurrency, a closed loop of streaming requests runs (after a warm-up). The measurement window starts
once every stream is running: aggregate generation and prompt tokens/s come from the engine's own counters
(`vllm:generation_tokens_total`, `vllm:prompt_tokens_total`) over the window, energy from the GPUs' energy
counters over the same window, per-request numbers (TTFT, inter-token latency, tokens/s) from the client.
Results are kept in the state dir as JSON and CSV.
"""

from __future__ import annotations

import asyncio
import csv
import json
import statistics
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from appliance import load, metrics, paths
from appliance.errors import ApplianceError, StackError


@dataclass
class BenchSettings:
    concurrency: list[int] = field(default_factory=lambda: [1, 2, 4, 8])
    power_w: list[float | None] = field(default_factory=lambda: [None])  # None: leave the limit as it is
    duration_s: float | None = 30.0
    requests: int | None = None  # instead of a duration: stop each cell after N finished requests
    prompt_tokens: int = 256
    max_tokens: int = 256
    target: str = "proxy"  # proxy | engine
    engine: str | None = None
    dataset: str | None = None  # JSONL of real prompts ({"prompt": …} or {"messages": …})
    seed: int = 1
    warmup: int = 2  # requests per stream before the window
    settle_s: float = 2.0  # after a power-limit change
    at_concurrency: int | None = None  # the concurrency the owner cares about (recommendation)
    keep_within: float = 0.9  # per-request tok/s must stay within this share of the best


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


def _pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    s = sorted(values)
    k = (len(s) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


def load_dataset(path: str) -> list[str]:
    prompts = []
    try:
        lines = Path(path).read_text().splitlines()
    except OSError as exc:
        raise ApplianceError(f"--dataset {path}: {exc.strerror}", "give a JSONL file of prompts") from None
    for i, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except ValueError:
            raise ApplianceError(f"{path}:{i}: not a JSON line", 'each line: {"prompt": "…"} or {"messages": […]}') \
                from None
        if isinstance(obj, dict) and isinstance(obj.get("prompt"), str):
            prompts.append(obj["prompt"])
        elif isinstance(obj, dict) and isinstance(obj.get("messages"), list):
            prompts.append("\n".join(str(m.get("content", "")) for m in obj["messages"] if isinstance(m, dict)))
        else:
            raise ApplianceError(f"{path}:{i}: no `prompt` or `messages`", 'each line: {"prompt": "…"}')
    if not prompts:
        raise ApplianceError(f"{path}: no prompts", "add JSON lines with a prompt each")
    return prompts


class Bench:
    def __init__(self, stack, settings: BenchSettings, on_progress: Callable[[dict], None] | None = None,
                 should_stop: Callable[[], bool] | None = None):
        self.stack = stack
        self.s = settings
        self.on_progress = on_progress or (lambda d: None)
        self.should_stop = should_stop or (lambda: False)
        profile = stack.active_profile()
        if profile is None:
            raise StackError("no profile is running", "start one: `appliance up PROFILE` (or give PROFILE to bench)")
        self.profile = profile
        self.engine = profile.engine(settings.engine) if settings.engine else profile.engines[0]
        from appliance.fit import engine_gpu_indices

        self.gpus = engine_gpu_indices(profile, self.engine, stack.rig.gpus().count())
        self.prompts = load_dataset(settings.dataset) if settings.dataset else None

    # -- endpoints --------------------------------------------------------------------------------
    def _target(self) -> tuple[str, str | None, str]:
        alias = self.engine.aliases[0] if self.engine.aliases else self.engine.served_names[0]
        if self.s.target == "engine":
            return f"http://127.0.0.1:{self.engine.port}/v1", None, alias
        from appliance import secrets

        proxy = self.stack.rig.load_state().get("proxy")
        if not proxy:
            raise StackError("the proxy is not running", "use --target engine, or `appliance up` first")
        return f"http://127.0.0.1:{proxy['port']}/v1", secrets.master_key(), alias

    def _scrape(self) -> metrics.Scrape | None:
        from appliance import http

        with http.client(timeout_s=3.0) as c:
            p = http.get(c, f"http://127.0.0.1:{self.engine.port}/metrics")
        if not p.ok or not p.body:
            return None
        try:
            return metrics.parse(p.body, time.time())
        except ValueError:
            return None

    def _energy(self) -> tuple[float, dict[int, float | None]]:
        readings = {g: self.stack.rig.gpus().read(g) for g in self.gpus}
        return time.time(), {g: r.energy_j for g, r in readings.items()}

    def _prompt(self, worker: int, n: int) -> str:
        if self.prompts:
            return self.prompts[(self.s.seed * 7919 + worker * 104729 + n) % len(self.prompts)]
        return load.synthetic_prompt(self.s.prompt_tokens, seed=self.s.seed * 1_000_003 + worker * 10_007 + n)

    # -- one cell ---------------------------------------------------------------------------------
    async def _cell(self, limit_w: float | None, c: int, index: int, total: int) -> Cell:
        from appliance import http

        base, key, model = self._target()
        results: list[load.RequestResult] = []
        window = {"t0": None, "t1": None}
        stop = asyncio.Event()
        done_count = {"n": 0}
        warm = {"n": 0}

        async with http.async_client(timeout_s=600) as client:
            async def worker(i: int):
                for w in range(self.s.warmup):  # warm-up: not measured
                    await load.stream_chat(client, base, key, model, self._prompt(i, -1 - w), 16)
                warm["n"] += 1
                n = 0
                while not stop.is_set():
                    n += 1
                    res = await load.stream_chat(client, base, key, model, self._prompt(i, n), self.s.max_tokens)
                    if window["t0"] is not None and res.t_start >= window["t0"] and \
                            (window["t1"] is None or res.t_end <= window["t1"] + 0.5):
                        results.append(res)
                        done_count["n"] += 1
                    if not res.ok and not stop.is_set():
                        await asyncio.sleep(0.5)

            tasks = [asyncio.create_task(worker(i)) for i in range(c)]
            # the window opens once every stream is past its warm-up and running
            deadline = time.time() + 120
            while time.time() < deadline:
                if warm["n"] < c:
                    await asyncio.sleep(0.1)
                    continue
                s = await asyncio.to_thread(self._scrape)
                running = s.get("vllm:num_requests_running") if s else None
                if running is not None and running + (s.get("vllm:num_requests_waiting") or 0) >= c:
                    break
                if s is None and time.time() > deadline - 110:
                    break
                await asyncio.sleep(0.2)
            scrape0 = await asyncio.to_thread(self._scrape)
            t0, e0 = await asyncio.to_thread(self._energy)
            window["t0"] = t0
            kv_max = None
            last_scrape = scrape0
            end_at = t0 + (self.s.duration_s or 1e9)
            while True:
                await asyncio.sleep(1.0)
                now = time.time()
                if self.should_stop():
                    stop.set()
                    for t in tasks:
                        t.cancel()
                    await asyncio.gather(*tasks, return_exceptions=True)
                    raise KeyboardInterrupt
                cur = await asyncio.to_thread(self._scrape)
                live_tps = metrics.rate(last_scrape, cur, "vllm:generation_tokens_total") if cur else None
                if cur is not None:
                    kv = cur.get("vllm:kv_cache_usage_perc")
                    kv_max = kv if kv_max is None or (kv is not None and kv > kv_max) else kv_max
                    last_scrape = cur
                watts = sum(r.power_w or 0 for r in (self.stack.rig.gpus().read(g) for g in self.gpus))
                self.on_progress({"cell": index, "cells": total, "power_limit_w": limit_w, "concurrency": c,
                                  "live_tps": live_tps, "watts": watts, "elapsed_s": now - t0,
                                  "remaining_s": max(0.0, end_at - now) if self.s.duration_s else None,
                                  "requests": done_count["n"]})
                if self.s.duration_s and now >= end_at:
                    break
                if self.s.requests and done_count["n"] >= self.s.requests:
                    break
            scrape1 = await asyncio.to_thread(self._scrape)
            t1, e1 = await asyncio.to_thread(self._energy)
            window["t1"] = t1
            stop.set()
            # streams still running are cut: they are outside the window
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        dt = t1 - t0
        ok = [r for r in results if r.ok]
        failed = [r for r in results if not r.ok]
        if scrape0 is not None and scrape1 is not None:
            gen = metrics.counter_delta(scrape0.get("vllm:generation_tokens_total"),
                                        scrape1.get("vllm:generation_tokens_total")) / dt
            prompt = metrics.counter_delta(scrape0.get("vllm:prompt_tokens_total"),
                                           scrape1.get("vllm:prompt_tokens_total")) / dt
            stats = metrics.engine_stats(scrape0, scrape1)
            acceptance, source = stats.spec_acceptance, "counters"
        else:
            gen = sum(r.output_tokens for r in ok) / dt if dt > 0 else 0.0
            prompt = sum(r.prompt_tokens for r in ok) / dt if dt > 0 else 0.0
            acceptance, source = None, "client"
        per_gpu = {}
        energy = 0.0
        for g in self.gpus:
            if e0.get(g) is not None and e1.get(g) is not None and dt > 0:
                d = metrics.energy_delta(e0[g], e1[g]) or 0.0
                energy += d
                per_gpu[str(g)] = d / dt
        power = energy / dt if dt > 0 else 0.0
        tps = [r.tokens_per_s for r in ok if r.tokens_per_s]
        ttft = [r.ttft_s for r in ok if r.ttft_s is not None]
        itl = [x for r in ok for x in r.itl_s]
        return Cell(
            power_limit_w=power_limit_applied(self.stack, self.gpus),
            concurrency=c, window_s=round(dt, 3), requests_ok=len(ok), requests_failed=len(failed),
            gen_tps=gen, prompt_tps=prompt, per_request_tps_p50=_pct(tps, 0.5), per_request_tps_p95=_pct(tps, 0.95),
            ttft_p50_s=_pct(ttft, 0.5), ttft_p95_s=_pct(ttft, 0.95), itl_p50_s=_pct(itl, 0.5),
            power_w_per_gpu=per_gpu, power_w=power, energy_j=energy,
            tokens_per_joule=(gen * dt / energy) if energy > 0 else None, spec_acceptance=acceptance,
            kv_usage_max=kv_max, source=source)

    # -- the sweep --------------------------------------------------------------------------------
    def run(self) -> BenchRun:
        before = {g: self.stack.rig.gpus().read(g).power_limit_w for g in self.gpus}
        cells: list[Cell] = []
        total = len(self.s.power_w) * len(self.s.concurrency)
        interrupted = False
        run = self._new_run(cells)
        try:
            index = 0
            for watts in self.s.power_w:
                if watts is not None:
                    self.stack.set_power(watts, self.gpus)
                    time.sleep(self.s.settle_s)
                for c in self.s.concurrency:
                    index += 1
                    cell = asyncio.run(self._cell(watts, c, index, total))
                    cells.append(cell)
                    self.on_progress({"cell_done": cell, "cell": index, "cells": total})
                    save(run)
        except KeyboardInterrupt:
            interrupted = True
        finally:
            for g, w in before.items():
                now = self.stack.rig.gpus().read(g).power_limit_w
                if w is not None and (now is None or abs(now - w) > 0.5):
                    self.stack.set_power(w, [g])
        run.interrupted = interrupted
        run.recommendation = recommend(run, self.s.at_concurrency, self.s.keep_within)
        save(run)
        return run

    def _new_run(self, cells: list[Cell]) -> BenchRun:
        from appliance import __version__, vllm_spec

        created = time.time()
        hw = [self.stack.rig.gpus().read(g).name for g in self.gpus]
        return BenchRun(
            run_id=time.strftime("%Y%m%d-%H%M%S", time.localtime(created)) + f"-{self.profile.name}",
            created=created, profile=self.profile.name, engine=self.engine.label, model=self.engine.model,
            hardware=hw, versions={"appliance": __version__, "vllm_pinned": vllm_spec.VLLM_VERSION,
                                   "rig": self.stack.rig.gpus().kind, "image": self.engine.image},
            settings=asdict(self.s), cells=cells)


def power_limit_applied(stack, gpus: list[int]) -> float | None:
    limits = [stack.rig.gpus().read(g).power_limit_w for g in gpus]
    limits = [x for x in limits if x is not None]
    return round(sum(limits) / len(limits), 1) if limits else None


# ------------------------------------------------------------------------------------------- results


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
    if not at:
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
                 f"joule ({pick.tokens_per_joule:.3f} tok/J) while keeping {speed(pick):.1f} tok/s per request "
                 f"({100 * speed(pick) / best_speed:.0f}% of the best, at {fastest.power_limit_w:.0f} W)"),
    }


# ------------------------------------------------------------------------------------------- tables and plots


def _f(v, nd=1, unit=""):
    if v is None:
        return "–"
    return f"{v:.{nd}f}{unit}"


def table_by_power(run: BenchRun) -> str:
    rows = {}
    for c in run.cells:
        rows.setdefault(c.power_limit_w, []).append(c)
    out = [f"{'Power':>8} {'Cells':>5} {'Avg gen tok/s':>14} {'Best gen tok/s':>15} {'Avg prefill tok/s':>18} "
           f"{'Avg W':>8} {'tok/J':>7}"]
    for p in sorted(rows, key=lambda x: x or 0):
        cs = rows[p]
        gen = [c.gen_tps for c in cs]
        tpj = [c.tokens_per_joule for c in cs if c.tokens_per_joule]
        out.append(f"{_f(p, 0, ' W'):>8} {len(cs):>5} {_f(statistics.mean(gen)):>14} {_f(max(gen)):>15} "
                   f"{_f(statistics.mean(c.prompt_tps for c in cs)):>18} "
                   f"{_f(statistics.mean(c.power_w for c in cs), 0, ' W'):>8} "
                   f"{_f(statistics.mean(tpj) if tpj else None, 3):>7}")
    return "\n".join(out)


def table_by_concurrency(run: BenchRun) -> str:
    out = [f"{'Power':>8} {'Conc':>4} {'Reqs':>5} {'Agg gen tok/s':>14} {'Per-req p50/p95 tok/s':>22} "
           f"{'TTFT p50/p95 ms':>16} {'W':>7} {'tok/J':>7} {'MTP acc':>8}"]
    for c in sorted(run.cells, key=lambda c: (c.power_limit_w or 0, c.concurrency)):
        per = f"{_f(c.per_request_tps_p50)}/{_f(c.per_request_tps_p95)}"
        ttft = f"{_f(c.ttft_p50_s * 1000 if c.ttft_p50_s else None, 0)}/" \
               f"{_f(c.ttft_p95_s * 1000 if c.ttft_p95_s else None, 0)}"
        acc = _f(c.spec_acceptance * 100 if c.spec_acceptance is not None else None, 0, "%")
        out.append(f"{_f(c.power_limit_w, 0, ' W'):>8} {c.concurrency:>4} {c.requests_ok:>5} {_f(c.gen_tps):>14} "
                   f"{per:>22} {ttft:>16} {_f(c.power_w, 0, ' W'):>7} {_f(c.tokens_per_joule, 3):>7} {acc:>8}")
    return "\n".join(out)


def terminal_plot(run: BenchRun, width: int = 100, height: int = 20) -> str:
    import plotext as plt

    plt.clear_figure()
    plt.theme("clear")
    plt.plotsize(width, height)
    for p in sorted({c.power_limit_w for c in run.cells}, key=lambda x: x or 0):
        cs = sorted((c for c in run.cells if c.power_limit_w == p), key=lambda c: c.concurrency)
        plt.plot([c.concurrency for c in cs], [c.gen_tps for c in cs], label=f"{_f(p, 0)} W", marker="braille")
    plt.title("aggregate generation tok/s vs concurrency")
    plt.xlabel("concurrent requests")
    plt.ylabel("tok/s")
    return plt.build()


def svg_plots(run: BenchRun, path: Path) -> Path:
    """Two charts in one shareable SVG: throughput vs concurrency per power level; tokens per joule vs power."""
    colors = ["#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1"]
    W, H, M = 520, 320, 50

    def chart(x0, title, xlabel, ylabel, series):
        xs = [x for _, pts, _ in series for x, _ in pts] or [0, 1]
        ys = [y for _, pts, _ in series for _, y in pts] or [0, 1]
        xmin, xmax = min(xs), max(xs)
        ymax = max(ys) * 1.1 or 1
        xmax = xmax if xmax > xmin else xmin + 1
        sx = lambda x: x0 + M + (x - xmin) / (xmax - xmin) * (W - 2 * M)  # noqa: E731
        sy = lambda y: H - M - y / ymax * (H - 2 * M)  # noqa: E731
        parts = [f'<text x="{x0 + W / 2}" y="22" text-anchor="middle" font-size="15">{title}</text>',
                 f'<line x1="{x0 + M}" y1="{H - M}" x2="{x0 + W - M}" y2="{H - M}" stroke="#333"/>',
                 f'<line x1="{x0 + M}" y1="{M}" x2="{x0 + M}" y2="{H - M}" stroke="#333"/>',
                 f'<text x="{x0 + W / 2}" y="{H - 12}" text-anchor="middle" font-size="12">{xlabel}</text>',
                 f'<text x="{x0 + 14}" y="{H / 2}" text-anchor="middle" font-size="12" '
                 f'transform="rotate(-90 {x0 + 14} {H / 2})">{ylabel}</text>']
        for i in range(5):
            y = ymax * i / 4
            parts.append(f'<text x="{x0 + M - 6}" y="{sy(y) + 4}" text-anchor="end" font-size="10">{y:.3g}</text>')
        for x in sorted(set(xs)):
            parts.append(f'<text x="{sx(x)}" y="{H - M + 15}" text-anchor="middle" font-size="10">{x:g}</text>')
        for k, (label, pts, color) in enumerate(series):
            pts = sorted(pts)
            d = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in pts)
            parts.append(f'<polyline fill="none" stroke="{color}" stroke-width="2" points="{d}"/>')
            parts += [f'<circle cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="3" fill="{color}"/>' for x, y in pts]
            parts.append(f'<text x="{x0 + W - M}" y="{M + 14 * k}" text-anchor="end" font-size="11" '
                         f'fill="{color}">{label}</text>')
        return parts

    powers = sorted({c.power_limit_w for c in run.cells}, key=lambda x: x or 0)
    s1 = [(f"{_f(p, 0)} W", [(c.concurrency, c.gen_tps) for c in run.cells if c.power_limit_w == p],
           colors[i % len(colors)]) for i, p in enumerate(powers)]
    concs = sorted({c.concurrency for c in run.cells})
    s2 = [(f"{k} concurrent", [(c.power_limit_w or 0, c.tokens_per_joule or 0) for c in run.cells
                               if c.concurrency == k], colors[i % len(colors)]) for i, k in enumerate(concs)]
    body = chart(0, "Generation throughput", "concurrent requests", "tokens/s", s1)
    body += chart(W, "Tokens per joule", "power limit (W)", "tokens / J", s2)
    sub = f"{run.profile} · {run.model} · {', '.join(sorted(set(run.hardware)))} · {run.run_id}"
    svg = (f'<svg xmlns="http://www.w3.org/2000/svg" width="{2 * W}" height="{H + 24}" '
           f'font-family="sans-serif"><rect width="100%" height="100%" fill="white"/>'
           f'<g transform="translate(0,0)">{"".join(body)}</g>'
           f'<text x="{W}" y="{H + 16}" text-anchor="middle" font-size="11" fill="#555">{sub}</text></svg>')
    path.write_text(svg)
    return path


def apply_recommendation(run: BenchRun, profile_path: Path) -> tuple[float, Path]:
    """Write the recommended limit into the profile's top-level `power_limit_w`, keeping the file's comments."""
    import re

    rec = run.recommendation or recommend(run)
    if not rec:
        raise ApplianceError(f"bench run {run.run_id} has no recommendation (no power limits were swept)",
                             "run `appliance bench --power 200,250,300` first")
    watts = int(round(rec["power_limit_w"]))
    text = profile_path.read_text()
    new, n = re.subn(r"(?m)^power_limit_w:.*$", f"power_limit_w: {watts}", text, count=1)
    if n == 0:
        new, n = re.subn(r"(?m)^(gpus:.*)$", rf"\1\npower_limit_w: {watts}", text, count=1)
    if n == 0:
        new = text.rstrip("\n") + f"\npower_limit_w: {watts}\n"
    from appliance import yamlsrc
    from appliance.profile import validate

    validate(yamlsrc.load(new, str(profile_path)))  # never write a profile that does not load
    tmp = profile_path.with_name(profile_path.name + ".tmp")
    tmp.write_text(new)
    tmp.replace(profile_path)
    return float(watts), profile_path


class ProgressLine:
    """A live progress line for the terminal (cells done, the current cell's tok/s and W)."""

    def __init__(self, stream):
        self.stream = stream
        self.tty = stream.isatty()
        self.lock = threading.Lock()

    def __call__(self, d: dict) -> None:
        with self.lock:
            if "cell_done" in d:
                c = d["cell_done"]
                if self.tty:
                    self.stream.write("\r\033[K")
                self.stream.write(f"cell {d['cell']}/{d['cells']}: {_f(c.power_limit_w, 0, ' W')} × {c.concurrency}"
                                  f" → {c.gen_tps:.1f} tok/s, {_f(c.per_request_tps_p50)} tok/s per request, "
                                  f"{c.power_w:.0f} W, {_f(c.tokens_per_joule, 3)} tok/J, "
                                  f"{c.requests_ok} ok / {c.requests_failed} failed\n")
            else:
                rem = f", {d['remaining_s']:.0f} s left" if d.get("remaining_s") is not None else \
                    f", {d['requests']} requests"
                line = (f"cell {d['cell']}/{d['cells']}: {_f(d['power_limit_w'], 0, ' W')} × {d['concurrency']} — "
                        f"{_f(d['live_tps'])} tok/s, {d['watts']:.0f} W{rem}")
                if self.tty:
                    self.stream.write("\r\033[K" + line)
                else:
                    self.stream.write(line + "\n")
            self.stream.flush()
