"""What the owner sees of a run: the two tables, the terminal plot, the shareable SVG, and the live progress line
while a sweep runs. Reads BenchRun/Cell only; measures nothing.
"""

from __future__ import annotations

import statistics
import threading
from pathlib import Path

from appliance.bench.results import BenchRun


def _f(v, nd=1, unit=""):
    if v is None:
        return "–"
    return f"{v:.{nd}f}{unit}"


def table_by_power(run: BenchRun) -> str:
    """One row per power limit; the columns a decision rests on (tok/J, W) first, so they show on 80 columns."""
    rows = {}
    for c in run.cells:
        rows.setdefault(c.power_limit_w, []).append(c)
    out = [f"{'Power':>8} {'tok/J':>7} {'Avg W':>8} {'Cells':>5} {'Avg gen tok/s':>14} {'Best gen tok/s':>15} "
           f"{'Avg prefill tok/s':>18}"]
    for p in sorted(rows, key=lambda x: x or 0):
        cs = rows[p]
        gen = [c.gen_tps for c in cs]
        tpj = [c.tokens_per_joule for c in cs if c.tokens_per_joule]
        out.append(f"{_f(p, 0, ' W'):>8} {_f(statistics.mean(tpj) if tpj else None, 3):>7} "
                   f"{_f(statistics.mean(c.power_w for c in cs), 0, ' W'):>8} {len(cs):>5} "
                   f"{_f(statistics.mean(gen)):>14} {_f(max(gen)):>15} "
                   f"{_f(statistics.mean(c.prompt_tps for c in cs)):>18}")
    return "\n".join(out)


def table_by_concurrency(run: BenchRun) -> str:
    """One row per cell; tok/J, W and the speeds first (what the recommendation weighs), then the rest."""
    out = [f"{'Power':>8} {'Conc':>4} {'tok/J':>7} {'W':>7} {'Agg gen tok/s':>14} {'Per-req p50/p95 tok/s':>22} "
           f"{'TTFT p50/p95 ms':>16} {'Reqs':>5} {'MTP acc':>8}"]
    for c in sorted(run.cells, key=lambda c: (c.power_limit_w or 0, c.concurrency)):
        per = f"{_f(c.per_request_tps_p50)}/{_f(c.per_request_tps_p95)}"
        ttft = f"{_f(c.ttft_p50_s * 1000 if c.ttft_p50_s else None, 0)}/" \
               f"{_f(c.ttft_p95_s * 1000 if c.ttft_p95_s else None, 0)}"
        acc = _f(c.spec_acceptance * 100 if c.spec_acceptance is not None else None, 0, "%")
        out.append(f"{_f(c.power_limit_w, 0, ' W'):>8} {c.concurrency:>4} {_f(c.tokens_per_joule, 3):>7} "
                   f"{_f(c.power_w, 0, ' W'):>7} {_f(c.gen_tps):>14} {per:>22} {ttft:>16} {c.requests_ok:>5} "
                   f"{acc:>8}")
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
