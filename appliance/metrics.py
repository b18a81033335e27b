"""Pure metrics math: Prometheus text → samples → rates, quantiles, bounded history.

vLLM exposes counters as `<name>_total` (techref §1.6); rates come from counter deltas between two scrapes and
are robust to counter resets (an engine restart starts its counters at zero: a drop is treated as a reset,
the new value counts from zero). Histogram quantiles interpolate inside buckets like PromQL's
histogram_quantile, over the *increase* between two scrapes (a recent window) or over all time.
"""

from __future__ import annotations

import functools
import math
import re
from collections import deque
from dataclasses import dataclass, field

VLLM = "vllm:"
# what the sampler reads of an engine's /metrics and of LiteLLM's
ENGINE_METRICS = tuple(VLLM + n for n in (
    "generation_tokens", "prompt_tokens", "num_requests_running", "num_requests_waiting", "kv_cache_usage_perc",
    "time_to_first_token_seconds", "spec_decode_num", "request_success", "cache_config_info"))
LITELLM_METRICS = ("litellm_proxy_total_requests_metric", "litellm_deployment_successful_fallbacks",
                   "litellm_proxy_failed_requests_metric",
                   "litellm_input_tokens_metric", "litellm_output_tokens_metric")  # hosted spend (costs.py)


@dataclass(frozen=True)
class Scrape:
    """One parse of a /metrics page: value per (name, labels) with labels as a sorted tuple of pairs."""

    t: float
    values: dict[tuple[str, tuple], float]

    @functools.cached_property
    def _by_name(self) -> dict[str, list[tuple[tuple, float]]]:
        """The series of each metric name, in page order — built once per scrape: the sampler asks a scrape for
        ~25 names, and each ask walked every series of the page."""
        index: dict[str, list[tuple[tuple, float]]] = {}
        for (n, lab), v in self.values.items():
            index.setdefault(n, []).append((lab, v))
        return index

    def get(self, name: str, **labels) -> float | None:
        """Sum of all series of `name` whose labels include `labels`."""
        total = None
        for lab, v in self._by_name.get(name, ()):
            if labels:
                d = dict(lab)
                if not all(d.get(k) == str(val) for k, val in labels.items()):
                    continue
            total = (total or 0.0) + v
        return total

    def series(self, name: str) -> list[tuple[dict, float]]:
        return [(dict(lab), v) for lab, v in self._by_name.get(name, ())]

    def buckets(self, name: str) -> list[tuple[float, float]]:
        """(upper bound, cumulative count) of histogram `name`, summed over label sets other than `le`."""
        acc: dict[float, float] = {}
        for lab, v in self._by_name.get(name + "_bucket", ()):
            le = dict(lab).get("le")
            if le is None:
                continue
            bound = math.inf if le in ("+Inf", "inf") else float(le)
            acc[bound] = acc.get(bound, 0.0) + v
        return sorted(acc.items())


def _only(text: str, prefixes: tuple[str, ...]) -> str:
    """Keep the lines of the metric families we read (parsing all of LiteLLM's ~60 kB each second is costly)."""
    out = []
    for line in text.splitlines():
        if line.startswith("#"):
            parts = line.split(None, 3)
            if len(parts) >= 3 and parts[2].startswith(prefixes):
                out.append(line)
        elif line.startswith(prefixes):
            out.append(line)
    return "\n".join(out) + "\n"


_SAMPLE = re.compile(r"([A-Za-z_:][A-Za-z0-9_:]*)(?:\{([^}]*)\})?[ \t]+(\S+)(?:[ \t]+-?\d+)?[ \t]*")
_LABELS = re.compile(r'(?:\s*[A-Za-z_][A-Za-z0-9_]*\s*=\s*"[^"]*"\s*,?)*\s*')
_LABEL = re.compile(r'([A-Za-z_][A-Za-z0-9_]*)\s*=\s*"([^"]*)"')


_label_pairs: dict[str, tuple] = {}  # a label set's text → its sorted pairs: each scrape repeats the same ones


def _pairs(labels: str) -> tuple | None:
    """The sorted (name, value) pairs of a plain label set (None: not plain), remembered — parsing the ~100 label
    sets of two pages every second was a third of the parse."""
    if not _LABELS.fullmatch(labels):
        return None
    if len(_label_pairs) >= 4096:  # series come and go (a new model, new status codes): stay bounded
        _label_pairs.clear()
    pairs = _label_pairs[labels] = tuple(sorted(_LABEL.findall(labels)))
    return pairs


def _plain(text: str) -> dict[tuple[str, tuple], float] | None:
    """The samples of exposition text in its plain form (`name{label="value",…} number [timestamp]`), about ten
    times faster than prometheus-client's parser — the TUI reads two engines' pages every second. None when the
    text uses anything else (an escape, a brace inside a label value): the full parser reads it then."""
    if "\\" in text:
        return None
    values: dict[tuple[str, tuple], float] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        m = _SAMPLE.fullmatch(line)
        if m is None:
            return None
        name, labels, value = m.groups()
        pairs: tuple | None = ()
        if labels:
            pairs = _label_pairs.get(labels) or _pairs(labels)
            if pairs is None:
                return None
        try:
            values[(name, pairs)] = float(value)
        except ValueError:
            return None
    return values


def parse(text: str, t: float, only: tuple[str, ...] | None = None) -> Scrape:
    """Parse Prometheus exposition text (the plain form directly, anything else with prometheus-client's own
    parser); `only`: metric-name prefixes to keep."""
    if only:
        text = _only(text, only)
    plain = _plain(text)
    if plain is not None:
        return Scrape(t, plain)
    from prometheus_client.parser import text_string_to_metric_families  # ~60 ms to import: only when needed

    values: dict[tuple[str, tuple], float] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            key = (s.name, tuple(sorted(s.labels.items())))
            values[key] = float(s.value)
    return Scrape(t, values)


def counter_delta(prev: float | None, cur: float | None) -> float:
    """Increase of a counter between two readings; a drop means the process restarted (reset to 0)."""
    if cur is None:
        return 0.0
    if prev is None:
        return 0.0
    if cur < prev:
        return cur
    return cur - prev


def rate(prev: Scrape | None, cur: Scrape, name: str, **labels) -> float | None:
    """Per-second increase of counter `name` between two scrapes."""
    if prev is None:
        return None
    dt = cur.t - prev.t
    if dt <= 0:
        return None
    return counter_delta(prev.get(name, **labels), cur.get(name, **labels)) / dt


def fitted_rate(scrapes: list[Scrape], name: str, **labels) -> float | None:
    """Per-second increase of counter `name` as the least-squares slope over many scrapes.

    Why not the two ends: a scrape's time is known only to within its own latency, and on a busy box (the
    engine holding every core) one scrape can take a second — over a 40 s window that alone moves a two-point
    rate by 5 %. The slope over one scrape a second averages that jitter away. Resets are stitched (each step
    adds `counter_delta`), so an engine restart inside the window does not read as negative throughput."""
    points: list[tuple[float, float]] = []
    total, prev = 0.0, None
    for s in scrapes:
        cur = s.get(name, **labels)
        if cur is None:
            continue
        if prev is not None:
            total += counter_delta(prev, cur)
        prev = cur
        points.append((s.t, total))
    if len(points) < 2:
        return None
    n = len(points)
    mt = sum(t for t, _ in points) / n
    mv = sum(v for _, v in points) / n
    var = sum((t - mt) ** 2 for t, _ in points)
    if var <= 0:
        return None
    return sum((t - mt) * (v - mv) for t, v in points) / var


def histogram_quantile(q: float, buckets: list[tuple[float, float]]) -> float | None:
    """PromQL-style quantile from cumulative buckets [(le, count)], linear inside the bucket."""
    if not buckets:
        return None
    total = buckets[-1][1]
    if total <= 0:
        return None
    rank = q * total
    prev_bound, prev_count = 0.0, 0.0
    for bound, count in buckets:
        if count >= rank:
            if math.isinf(bound):
                return prev_bound
            if count == prev_count:
                return bound
            return prev_bound + (bound - prev_bound) * (rank - prev_count) / (count - prev_count)
        prev_bound, prev_count = bound, count
    return prev_bound


def bucket_increase(prev: Scrape | None, cur: Scrape, name: str) -> list[tuple[float, float]]:
    """Cumulative buckets of the observations made between two scrapes (all of them when prev is None)."""
    now = cur.buckets(name)
    if prev is None:
        return now
    before = dict(prev.buckets(name))
    out = []
    for bound, count in now:
        b = before.get(bound, 0.0)
        out.append((bound, count - b if count >= b else count))
    return out


@dataclass
class History:
    """A bounded time series (for plots and sparklines)."""

    maxlen: int = 300
    points: deque = field(default_factory=deque)

    def add(self, t: float, value: float | None) -> None:
        self.points.append((t, value))
        while len(self.points) > self.maxlen:
            self.points.popleft()

    def values(self) -> list[float]:
        return [v for _, v in self.points if v is not None]

    def last(self) -> float | None:
        for _, v in reversed(self.points):
            if v is not None:
                return v
        return None


@dataclass(frozen=True)
class EngineStats:
    """What one /metrics scrape pair says about an engine."""

    generation_tps: float | None = None
    prompt_tps: float | None = None
    running: float | None = None
    waiting: float | None = None
    kv_usage: float | None = None  # 0–1
    ttft_p50_s: float | None = None
    ttft_p95_s: float | None = None
    spec_acceptance: float | None = None  # accepted / drafted tokens (0–1)
    spec_mean_accept_len: float | None = None
    generation_tokens_total: float | None = None
    prompt_tokens_total: float | None = None
    requests_total: float | None = None


def engine_stats(prev: Scrape | None, cur: Scrape) -> EngineStats:
    g = lambda n: cur.get(VLLM + n)  # noqa: E731
    ttft_window = bucket_increase(prev, cur, VLLM + "time_to_first_token_seconds")
    if not ttft_window or ttft_window[-1][1] <= 0:
        ttft_window = cur.buckets(VLLM + "time_to_first_token_seconds")  # nothing new: all-time quantiles
    acc = rate(prev, cur, VLLM + "spec_decode_num_accepted_tokens_total")
    draft = rate(prev, cur, VLLM + "spec_decode_num_draft_tokens_total")
    drafts = rate(prev, cur, VLLM + "spec_decode_num_drafts_total")
    if acc is None or not draft:  # no new drafts in this window: all-time ratio
        a_all, d_all = g("spec_decode_num_accepted_tokens_total"), g("spec_decode_num_draft_tokens_total")
        n_all = g("spec_decode_num_drafts_total")
        acceptance = a_all / d_all if a_all is not None and d_all else None
        mean_len = 1 + a_all / n_all if a_all is not None and n_all else None
    else:
        acceptance = acc / draft
        mean_len = 1 + acc / drafts if drafts else None
    return EngineStats(
        generation_tps=rate(prev, cur, VLLM + "generation_tokens_total"),
        prompt_tps=rate(prev, cur, VLLM + "prompt_tokens_total"),
        running=g("num_requests_running"),
        waiting=g("num_requests_waiting"),
        kv_usage=g("kv_cache_usage_perc"),
        ttft_p50_s=histogram_quantile(0.5, ttft_window),
        ttft_p95_s=histogram_quantile(0.95, ttft_window),
        spec_acceptance=acceptance,
        spec_mean_accept_len=mean_len,
        generation_tokens_total=g("generation_tokens_total"),
        prompt_tokens_total=g("prompt_tokens_total"),
        requests_total=g("request_success_total"),
    )


def _int(value: str | None) -> int | None:
    try:
        return int(float(value)) if value not in (None, "", "None") else None
    except ValueError:
        return None


def cache_info(scrape: Scrape) -> dict:
    """The engine's real KV cache facts from `vllm:cache_config_info` (an info gauge: the facts are its labels).

    kv_cache_size_tokens is the label vLLM 0.32 writes; older engines only have num_gpu_blocks × block_size, which
    is the same number. {} when the engine does not export the family (e.g. --disable-log-stats)."""
    series = scrape.series(VLLM + "cache_config_info")
    if not series:
        return {}
    labels = series[0][0]
    blocks, block = _int(labels.get("num_gpu_blocks")), _int(labels.get("block_size"))
    tokens = _int(labels.get("kv_cache_size_tokens"))
    if tokens is None and blocks is not None and block is not None:
        tokens = blocks * block
    util = labels.get("gpu_memory_utilization")
    return {
        "kv_cache_size_tokens": tokens,
        "kv_cache_memory_bytes": _int(labels.get("kv_cache_memory_bytes")),
        "num_gpu_blocks": blocks,
        "block_size": block,
        "cache_dtype": labels.get("cache_dtype"),
        "gpu_memory_utilization": float(util) if util not in (None, "None") else None,
        "enable_prefix_caching": labels.get("enable_prefix_caching") == "True",
    }


def tokens_per_joule(tokens_per_s: float | None, watts: float | None) -> float | None:
    if not tokens_per_s or not watts:
        return None
    return tokens_per_s / watts


def energy_delta(prev_j: float | None, cur_j: float | None) -> float | None:
    """Energy counter increase; NVML's counter restarts when the driver reloads."""
    if prev_j is None or cur_j is None:
        return None
    return cur_j - prev_j if cur_j >= prev_j else None
