"""What vLLM measured on this rig, kept so `appliance check` can say "predicted / last measured" and correct its
next prediction for the same model on the same card.

Two readers feed one typed `Measurement`:
- the startup log. GPU build: "Model loading took X GiB", "Available KV cache memory: Y GiB",
  "GPU KV cache size: N tokens", and from 0.10.1 "Free memory on device (free/total GiB) ... Desired GPU memory
  utilization is (u, b GiB). Actual usage is ..." which also gives the CUDA-visible total. CPU build: "CPU KV
  cache size: N tokens" and "Explicitly set (k/total) GiB for KV cache"; it has no "Model loading took".
  Multi-GPU logs repeat the lines per rank; vLLM sizes every rank like the smallest, so the smallest wins.
- the `vllm:cache_config_info` metric, whose labels carry kv_cache_size_tokens, kv_cache_memory_bytes,
  num_gpu_blocks, block_size, cache_dtype, gpu_memory_utilization.

The store is one JSON file per rig, keyed by (model, card, vLLM version, settings): the GPU rig's is
state/measurements.json, the simulated rig's lives in its own dir (state/sim/measurements.json), so a simulated
start — the simulator agreeing with itself — never shows as "measured on this rig" in a real check. Each record
names its rig; a store learns only from its own rig's records (one of unknown rig, written before records named
their rig, is listed but not learned from). Written atomically (temp file + rename). Reading is tolerant: an unreadable or corrupt file, or entries of another shape,
are reported in `Store.problem` and ignored, so a bad store never breaks `check`. Stdlib only.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import time
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path

GIB = 1024**3
STORE_NAME = "measurements.json"
FORMAT = 1
SETTING_KEYS = ("tensor_parallel_size", "pipeline_parallel_size", "gpu_memory_utilization", "max_model_len",
                "max_num_seqs", "max_num_batched_tokens", "kv_cache_dtype", "enforce_eager")

_NUM = r"(-?[\d.]+)"
_LOG = {
    "weights": re.compile(r"Model loading took " + _NUM + r" ?GiB"),
    "kv_gib": re.compile(r"Available KV cache memory:\s*" + _NUM + r" ?GiB"),
    "tokens": re.compile(r"(GPU|CPU|XPU|NPU) KV cache size:\s+([\d,]+) tokens"),
    "concurrency": re.compile(r"Maximum concurrency for ([\d,]+) tokens per request: ([\d.]+)x"),
    "free": re.compile(r"Free memory on device(?: cuda:\d+)? \(" + _NUM + r"/" + _NUM + r" ?GiB\) on startup"),
    "desired": re.compile(r"Desired GPU memory utilization is \(" + _NUM + r", " + _NUM + r" ?GiB\)"),
    "usage_old": re.compile(r"Actual usage is " + _NUM + r" GiB for weight, " + _NUM + r" GiB for peak activation, "
                            + _NUM + r" GiB for non-torch memory, and " + _NUM + r" GiB for CUDAGraph memory"),
    "usage_new": re.compile(r"Actual usage is " + _NUM + r" GiB for consumed memory \(weights \+ non-torch\), "
                            + _NUM + r" GiB for peak activation, and " + _NUM + r" GiB for CUDAGraph memory"),
    "cpu_kv": re.compile(r"Explicitly set \(" + _NUM + r"/" + _NUM + r"\) GiB for KV cache"),
    "version": re.compile(r"(?:Initializing a V1 LLM engine \(v|vLLM API server version |█ +version )([0-9][\w.+-]*)"),
    "flashinfer": re.compile(r"Using FlashInfer for top-p & top-k sampling"),
}
_METRIC = re.compile(r"^vllm:cache_config_info\{(?P<labels>[^}]*)\}\s+\S+", re.M)
_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


class NoMeasurement(ValueError):
    """Neither the log nor the metric said how big the KV cache is."""


def _gib(value: str | float) -> int:
    return int(round(float(value) * GIB))


@dataclass(frozen=True)
class Measurement:
    """One start of one engine, per GPU (bytes), as vLLM reported it."""

    model: str
    card: str  # the GPU's NVML name ("cpu" for the CPU build)
    vllm_version: str
    settings: dict  # SETTING_KEYS, as the engine was started
    device: str = "gpu"
    weights_bytes: int | None = None  # "Model loading took"
    kv_cache_bytes: int | None = None  # "Available KV cache memory" / kv_cache_memory_bytes
    kv_cache_tokens: int | None = None  # "GPU KV cache size" / kv_cache_size_tokens
    num_gpu_blocks: int | None = None
    block_size: int | None = None
    visible_bytes: int | None = None  # CUDA's total ("Free memory on device (free/total GiB)")
    activation_bytes: int | None = None
    cudagraph_bytes: int | None = None
    sampler: str | None = None  # "flashinfer" when the log says so
    source: str = "log"  # "log", "metrics" or "log+metrics"
    measured_at: float = field(default_factory=time.time)
    rig: str = ""  # the rig it was measured on ("GPU rig", "simulated rig"); "" = not recorded (older record)

    @property
    def key(self) -> str:
        return key_of(self.model, self.card, self.vllm_version, self.settings)

    def overhead_bytes(self, visible_fallback: int | None = None) -> int | None:
        """What vLLM took besides weights and KV: util × total − weights − KV (None when a term is unknown)."""
        visible = self.visible_bytes or visible_fallback
        util = self.settings.get("gpu_memory_utilization")
        if not (visible and util and self.weights_bytes is not None and self.kv_cache_bytes is not None):
            return None
        return int(visible * float(util)) - self.weights_bytes - self.kv_cache_bytes

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "Measurement":
        known = {f.name for f in fields(cls)}
        if not isinstance(data, dict) or not {"model", "card", "vllm_version", "settings"} <= data.keys():
            raise ValueError("not a measurement")
        if not isinstance(data["settings"], dict):
            raise ValueError("settings is not a mapping")
        return cls(**{k: v for k, v in data.items() if k in known})


def describe(m: Measurement) -> str:
    """One line for a listing (`appliance measurements` or the check's "last measured")."""
    when = time.strftime("%Y-%m-%d %H:%M", time.localtime(m.measured_at))
    kv = f"{m.kv_cache_tokens:,} tokens" if m.kv_cache_tokens else "? tokens"
    if m.kv_cache_bytes is not None:
        kv += f" / {m.kv_cache_bytes / GIB:.2f} GiB KV"
    w = f", weights {m.weights_bytes / GIB:.2f} GiB" if m.weights_bytes else ""
    s = m.settings
    knobs = (f"tp {s.get('tensor_parallel_size')}, util {s.get('gpu_memory_utilization')}, "
             f"len {s.get('max_model_len')}, seqs {s.get('max_num_seqs')}")
    return (f"{when}  {m.model} on {m.card}, vLLM {m.vllm_version} ({knobs}): {kv}{w}  [{m.source}; "
            f"{m.rig or 'rig not recorded'}]")


def key_of(model: str, card: str, vllm_version: str, settings: dict) -> str:
    norm = {k: settings.get(k) for k in SETTING_KEYS}
    return json.dumps([model.lower(), card, vllm_version, norm], sort_keys=True)


def read_log(text: str) -> dict:
    """Everything the startup log says about memory (missing facts are absent from the dict)."""
    facts: dict = {}
    weights = [float(v) for v in _LOG["weights"].findall(text)]
    if weights:
        facts["weights_bytes"] = _gib(max(weights))  # ranks of one engine load the same share; max is safe
    kv = [float(v) for v in _LOG["kv_gib"].findall(text)]
    if kv:
        facts["kv_cache_bytes"] = _gib(min(kv))
    tokens = _LOG["tokens"].findall(text)
    if tokens:
        facts["kv_cache_tokens"] = min(int(n.replace(",", "")) for _, n in tokens)
        facts["device"] = "cpu" if tokens[-1][0] == "CPU" else "gpu"
    cpu = _LOG["cpu_kv"].findall(text)
    if cpu and "kv_cache_bytes" not in facts:
        facts["kv_cache_bytes"] = _gib(cpu[-1][0])
        facts["device"] = "cpu"
    free = _LOG["free"].findall(text)
    if free:
        facts["visible_bytes"] = _gib(min(float(t) for _, t in free))
    desired = _LOG["desired"].findall(text)
    if desired:
        facts["gpu_memory_utilization"] = float(desired[-1][0])
    old, new = _LOG["usage_old"].findall(text), _LOG["usage_new"].findall(text)
    if old:
        facts["activation_bytes"], facts["cudagraph_bytes"] = _gib(old[-1][1]), _gib(old[-1][3])
        facts.setdefault("weights_bytes", _gib(old[-1][0]))
    elif new:
        facts["activation_bytes"], facts["cudagraph_bytes"] = _gib(new[-1][1]), _gib(new[-1][2])
    version = _LOG["version"].findall(text)
    if version:
        facts["vllm_version"] = version[-1]
    if _LOG["flashinfer"].search(text):
        facts["sampler"] = "flashinfer"
    return facts


def read_cache_config_info(metrics_text: str) -> dict:
    """The labels of `vllm:cache_config_info` from a /metrics page (the first series; {} when absent)."""
    m = _METRIC.search(metrics_text or "")
    if not m:
        return {}
    labels = dict(_LABEL.findall(m.group("labels")))
    facts: dict = {}
    for label, name in (("kv_cache_size_tokens", "kv_cache_tokens"), ("kv_cache_memory_bytes", "kv_cache_bytes"),
                        ("num_gpu_blocks", "num_gpu_blocks"), ("block_size", "block_size")):
        try:
            if labels.get(label) not in (None, "", "None"):
                facts[name] = int(float(labels[label]))
        except ValueError:
            continue
    if labels.get("gpu_memory_utilization") not in (None, "", "None"):
        facts["gpu_memory_utilization"] = float(labels["gpu_memory_utilization"])
    if "kv_cache_tokens" not in facts and facts.get("num_gpu_blocks") and facts.get("block_size"):
        facts["kv_cache_tokens"] = facts["num_gpu_blocks"] * facts["block_size"]
    return facts


def measurement(model: str, card: str, vllm_version: str, settings: dict, *, log_text: str | None = None,
                metrics_text: str | None = None, now: float | None = None) -> Measurement:
    """One Measurement from whatever the start left: the log, the metric, or both (the metric wins on KV)."""
    from_log = read_log(log_text) if log_text else {}
    from_metric = read_cache_config_info(metrics_text) if metrics_text else {}
    facts = {**from_log, **from_metric}
    if not (facts.get("kv_cache_tokens") or facts.get("kv_cache_bytes")):
        raise NoMeasurement("the log and the metric say nothing about the KV cache")
    settings = {k: settings.get(k) for k in SETTING_KEYS}
    if settings.get("gpu_memory_utilization") is None and facts.get("gpu_memory_utilization"):
        settings["gpu_memory_utilization"] = facts["gpu_memory_utilization"]
    source = "+".join(s for s, d in (("log", from_log), ("metrics", from_metric)) if d)
    known = {f.name for f in fields(Measurement)}
    return Measurement(model=model, card=card, vllm_version=facts.get("vllm_version") or vllm_version,
                       settings=settings, source=source, measured_at=now if now is not None else time.time(),
                       **{k: v for k, v in facts.items() if k in known and k not in ("vllm_version",)})


REAL_RIG = "GPU rig"  # appliance.rig's labels: the store of each rig learns only from that rig's starts


class Store:
    """Measurements of one rig (`rig`, its label), newest last. `problem` says why the file was ignored."""

    def __init__(self, path: Path | None = None, rig: str = REAL_RIG):
        if path is None:
            from appliance.paths import state_dir

            path = state_dir() / STORE_NAME
        self.path = Path(path)
        self.rig = rig
        self.problem: str | None = None
        self._items: list[Measurement] = self._read()

    def _read(self) -> list[Measurement]:
        try:
            raw = self.path.read_text()
        except FileNotFoundError:
            return []
        except OSError as exc:
            self.problem = f"{self.path}: cannot read ({exc}); measurements ignored"
            return []
        try:
            data = json.loads(raw)
            entries = data["measurements"]
            if not isinstance(entries, list):
                raise TypeError("measurements is not a list")
        except (ValueError, KeyError, TypeError) as exc:
            self.problem = (f"{self.path}: not a measurement store ({exc}); ignored — the next recorded start "
                            "replaces it")
            return []
        items, bad = [], 0
        for entry in entries:
            try:
                items.append(Measurement.from_dict(entry))
            except (TypeError, ValueError):
                bad += 1
        if bad:
            self.problem = f"{self.path}: {bad} unreadable entr{'y' if bad == 1 else 'ies'} ignored"
        return items

    def all(self) -> list[Measurement]:
        """Every record, for listing (also those of another or an unrecorded rig)."""
        return sorted(self._items, key=lambda m: m.measured_at)

    def own(self) -> list[Measurement]:
        """The records of this store's rig: the only ones a check shows as measured here or learns from."""
        return [m for m in self.all() if m.rig == self.rig]

    def record(self, m: Measurement) -> None:
        """Keep the newest measurement per key; write the file atomically. A record without a rig is one of
        this store's rig (it is being recorded here)."""
        if not m.rig:
            m = replace(m, rig=self.rig)
        self._items = [x for x in self._items if x.key != m.key] + [m]
        self.path.parent.mkdir(parents=True, exist_ok=True)
        payload = json.dumps({"format": FORMAT, "measurements": [x.to_dict() for x in self.all()]}, indent=1)
        fd, tmp = tempfile.mkstemp(prefix=".measurements-", dir=self.path.parent)
        try:
            with os.fdopen(fd, "w") as fh:
                fh.write(payload)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        self.problem = None

    def latest(self, model: str, card: str, *, vllm_version: str | None = None, settings: dict | None = None,
               tp: int | None = None, pp: int | None = None) -> Measurement | None:
        """The newest measurement of `model` on `card`, optionally with this version, these settings or TP/PP."""
        found = None
        for m in self.own():
            if m.model.lower() != model.lower() or m.card != card:
                continue
            if vllm_version and m.vllm_version != vllm_version:
                continue
            if settings is not None and key_of(m.model, m.card, m.vllm_version, settings) != m.key:
                continue
            if tp is not None and int(m.settings.get("tensor_parallel_size") or 1) != tp:
                continue
            if pp is not None and int(m.settings.get("pipeline_parallel_size") or 1) != pp:
                continue
            found = m
        return found


def learned(store: Store, model: str, card: str, *, tp: int, pp: int = 1,
            vllm_version: str | None = None) -> Measurement | None:
    """The newest GPU start of `model` on `card` with this TP/PP (and vLLM version, when given) that knows its
    weights and KV memory: what the next prediction learns from (any other settings: the overhead residual
    carries over). A start of another vLLM version is stale: listed, never learned from."""
    best = None
    for m in store.own():
        if m.model.lower() != model.lower() or m.card != card or m.device != "gpu":
            continue
        if vllm_version and m.vllm_version != vllm_version:
            continue
        if int(m.settings.get("tensor_parallel_size") or 1) != tp or int(m.settings.get("pipeline_parallel_size")
                                                                         or 1) != pp:
            continue
        if m.weights_bytes and m.kv_cache_bytes is not None and m.settings.get("max_num_seqs") and \
                m.settings.get("max_num_batched_tokens") and m.settings.get("gpu_memory_utilization"):
            best = m
    return best


def settings_of(engine, max_model_len: int, max_num_seqs: int, max_num_batched_tokens: int, util: float) -> dict:
    """The SETTING_KEYS of a profile engine, defaults resolved the way the fit check resolves them."""
    return {"tensor_parallel_size": engine.tensor_parallel_size,
            "pipeline_parallel_size": engine.pipeline_parallel_size, "gpu_memory_utilization": util,
            "max_model_len": max_model_len, "max_num_seqs": max_num_seqs,
            "max_num_batched_tokens": max_num_batched_tokens, "kv_cache_dtype": engine.kv_cache_dtype or "auto",
            "enforce_eager": bool(engine.option("enforce_eager"))}


def open_store(path: Path | None = None, rig: str = REAL_RIG) -> Store:
    """The store of a rig: by default the GPU rig's (state/measurements.json); a Rig gives its own
    (appliance.rig.Rig.measurements)."""
    return Store(path, rig)


def record_start(store: Store, engine_fit, *, log_text: str | None = None, metrics_text: str | None = None,
                 now: float | None = None) -> Measurement | None:
    """After a successful start: what vLLM measured, keyed like the check that predicted it (appliance.fit's
    EngineFit carries the model, GPU name, vLLM version and resolved settings). None when the start said nothing
    about its KV cache; never raises for a store that cannot be written (the start already succeeded)."""
    try:
        m = measurement(engine_fit.model, engine_fit.gpu_name, engine_fit.vllm_version, engine_fit.settings,
                        log_text=log_text, metrics_text=metrics_text, now=now)
    except NoMeasurement:
        return None
    try:
        store.record(m)
    except OSError as exc:
        store.problem = f"{store.path}: cannot write ({exc}); the measurement of this start is lost"
    return m
