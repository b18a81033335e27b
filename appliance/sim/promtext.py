"""Tiny Prometheus text-format writer shaped like prometheus_client's `generate_latest` (stdlib only).

As prometheus_client 0.26 writes them: counters as a `<name>_total` family plus a `<name>_created` gauge family;
histograms as `_bucket{le=…}`, `_count`, `_sum` plus a `_created` gauge family; label names sorted; numbers in
Go's float format (`1.7953e+09`). That is what vLLM's `/metrics` (prometheus_client.make_asgi_app) serves.
"""

from __future__ import annotations

import bisect
import math

# vllm/v1/metrics/loggers.py (0.19.0)
TTFT_BUCKETS = (0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0,
                40.0, 80.0, 160.0, 640.0, 2560.0)
ITL_BUCKETS = (0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 40.0,
               80.0)
REQUEST_LATENCY_BUCKETS = (0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0, 120.0,
                           240.0, 480.0, 960.0, 1920.0, 7680.0)
PARAMS_N_BUCKETS = (1, 2, 5, 10, 20)


def buckets_1_2_5(max_value: int) -> tuple[int, ...]:
    """vLLM's build_1_2_5_buckets: 1, 2, 5, 10, 20, 50, … up to max_value."""
    out, exponent = [], 0
    while True:
        for m in (1, 2, 5):
            v = m * 10**exponent
            if v > max_value:
                return tuple(out)
            out.append(v)
        exponent += 1


def _fmt(value: float) -> str:
    """Go's float formatting as prometheus_client writes it (exponent form for large numbers)."""
    d = float(value)
    if d == math.inf:
        return "+Inf"
    if d == -math.inf:
        return "-Inf"
    if math.isnan(d):
        return "NaN"
    s = repr(d)
    dot = s.find(".")
    if d > 0 and dot > 6:
        mantissa = f"{s[0]}.{s[1:dot]}{s[dot + 1:]}".rstrip("0.")
        return f"{mantissa}e+0{dot - 1}"
    return s


def _escape(value: object) -> str:
    return str(value).replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(pairs) -> str:
    if not pairs:
        return ""
    return "{" + ",".join(f'{k}="{_escape(v)}"' for k, v in sorted(pairs)) + "}"


class Histogram:
    def __init__(self, buckets):
        self.bounds = tuple(float(b) for b in buckets)
        self.counts = [0] * (len(self.bounds) + 1)
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.bounds, value)] += 1
        self.sum += value


class Writer:
    def __init__(self, base_labels: list[tuple[str, str]], created: float):
        self.base = list(base_labels)
        self.created = created
        self.lines: list[str] = []

    def _head(self, name: str, doc: str, kind: str) -> None:
        self.lines.append(f"# HELP {name} {doc}")
        self.lines.append(f"# TYPE {name} {kind}")

    def gauge(self, name: str, doc: str, samples: list[tuple[list, float]]) -> None:
        self._head(name, doc, "gauge")
        for extra, value in samples:
            self.lines.append(f"{name}{_labels(self.base + list(extra))} {_fmt(value)}")

    def info_gauge(self, name: str, doc: str, labels: list[tuple[str, str]]) -> None:
        self._head(name, doc, "gauge")
        self.lines.append(f"{name}{_labels(labels)} 1.0")

    def counter(self, name: str, doc: str, samples: list[tuple[list, float]]) -> None:
        self._head(f"{name}_total", doc, "counter")
        for extra, value in samples:
            self.lines.append(f"{name}_total{_labels(self.base + list(extra))} {_fmt(value)}")
        self._head(f"{name}_created", doc, "gauge")
        for extra, _ in samples:
            self.lines.append(f"{name}_created{_labels(self.base + list(extra))} {_fmt(self.created)}")

    def histogram(self, name: str, doc: str, hist: Histogram) -> None:
        self._head(name, doc, "histogram")
        cumulative = 0
        for bound, count in zip(self.bounds_with_inf(hist), hist.counts):
            cumulative += count
            self.lines.append(f"{name}_bucket{_labels(self.base + [('le', _fmt(bound))])} {_fmt(cumulative)}")
        self.lines.append(f"{name}_count{_labels(self.base)} {_fmt(cumulative)}")
        self.lines.append(f"{name}_sum{_labels(self.base)} {_fmt(hist.sum)}")
        self._head(f"{name}_created", doc, "gauge")
        self.lines.append(f"{name}_created{_labels(self.base)} {_fmt(self.created)}")

    @staticmethod
    def bounds_with_inf(hist: Histogram):
        return (*hist.bounds, math.inf)

    def text(self) -> str:
        return "\n".join(self.lines) + "\n"
