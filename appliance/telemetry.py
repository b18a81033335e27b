"""The sampler: one immutable Snapshot per tick (1 Hz in the TUI), shared by `status`, the TUI and the bench.

Each sample reads the GPUs (NVML or simulated), every engine's /health and /metrics, and the proxy's health and
metrics — with short timeouts, so a loading or hung engine shows as "loading"/"no answer" instead of stalling
the sampler. Rates come from the difference to the previous sample; histories are bounded.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field, replace

from appliance import metrics
from appliance.gpu.base import GPUReading

HISTORY = 300  # samples kept for plots (5 minutes at 1 Hz)
LISTEN_EVERY_S = 30.0  # where the front door listens changes only with its record; read the kernel's table seldom


class Series:
    """The names of the bounded histories the sampler keeps — spelled here only."""

    RIG_GEN_TPS = "rig:gen_tps"

    @staticmethod
    def engine_gen_tps(engine: str) -> str:
        return f"engine:{engine}:gen_tps"

    @staticmethod
    def engine_prompt_tps(engine: str) -> str:
        return f"engine:{engine}:prompt_tps"

    @staticmethod
    def gpu_power_w(index: int) -> str:
        return f"gpu:{index}:power_w"


@dataclass(frozen=True)
class EngineSnap:
    name: str
    port: int
    model: str
    aliases: tuple[str, ...]
    gpus: tuple[int, ...]
    status: str  # running | created | restarting | exited | dead | missing
    health: str  # healthy | loading | stalled | hung | failing | draining | down (see engine_health)
    restarts: int = 0
    uptime_s: float | None = None
    stats: metrics.EngineStats = field(default_factory=metrics.EngineStats)
    fallbacks: float = 0.0  # requests for this engine's aliases the front door served from a fallback


# A loading engine writes a log line at least this often (weights, compile, graph capture progress); a refused
# port with a live process and a quiet log for longer is "stalled", not "loading".
LOADING_QUIET_S = 120.0


def engine_health(probe, alive: bool, last_log_age_s, draining: bool) -> str:
    """What an engine's /health probe means, told truthfully (measured on a real vLLM, shared/reference):
    - answers 200: healthy;
    - accepts TCP but does not answer in time: hung (a loading vLLM does not accept TCP at all);
    - answers an error status: failing — or draining while a switch the appliance started drains it (vLLM
      answers 500 to new requests while it finishes the ones in flight);
    - refuses TCP while its process is alive: loading if it logged recently, else stalled;
    - refuses TCP and no process: down."""
    if probe.ok:
        return "healthy"
    if probe.error == "timeout":
        return "hung"
    if probe.status is not None:
        return "draining" if draining else "failing"
    if alive:  # the log is read only here (a callable): a healthy engine's log is not fetched every second
        age = last_log_age_s() if callable(last_log_age_s) else last_log_age_s
        return "loading" if age is not None and age <= LOADING_QUIET_S else "stalled"
    return "down"


@dataclass(frozen=True)
class ProxySnap:
    url: str
    status: str  # running | down | …
    healthy: bool
    requests_local: dict = field(default_factory=dict)  # alias → requests served by the local engine
    requests_fallback: dict = field(default_factory=dict)  # alias → requests served by a fallback
    fallbacks: float = 0.0
    errors: float = 0.0
    listen: tuple[str, ...] = ()  # where the agents' port listens, from the kernel's socket table (listening.py)
    lan: bool = False  # reachable from the LAN (listens on anything but loopback)
    routes: dict = field(default_factory=dict)  # alias → its route (appliance.routes: engine, then fallbacks)
    local_only: bool = False  # the owner's settings: no hosted model is reachable
    spend_usd: dict | None = None  # alias → today's hosted spend in USD (None: LiteLLM's counters not read)


@dataclass(frozen=True)
class Snapshot:
    t: float
    rig: str  # what the rig is ("GPU rig", "simulated rig")
    profile: str | None
    gpus: tuple[GPUReading, ...]
    engines: tuple[EngineSnap, ...]
    proxy: ProxySnap | None
    warnings: tuple[str, ...] = ()
    power_w: float | None = None  # sum over the active profile's GPUs
    generation_tps: float | None = None  # sum over engines
    tokens_per_joule: float | None = None
    watts_per_tps: float | None = None

    def to_dict(self) -> dict:
        """As plain data for JSON: NaN and ±inf (a metric page may carry them) become None — `json.dumps` would
        write `NaN`, which is not JSON."""
        from dataclasses import asdict

        return _finite(asdict(self))


def _finite(value):
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


class Sampler:
    """Samples never overlap (callers run `sample()` from one worker); previous scrapes give the rates."""

    def __init__(self, stack, probe_timeout_s: float = 1.5, proxy_every_s: float = 1.0, http_client=None,
                 quick: bool = False):
        """`stack` gives the rig's parts (GPUs, runtime) and the active profile; `http_client` (an httpx.Client)
        is the HTTP boundary — made here with short timeouts unless a test passes its own. `quick`: leave
        LiteLLM's metrics page (which a fresh proxy takes seconds to answer) to the next sampler (`carry`)."""
        self.stack = stack
        self.quick = quick
        self.timeout = probe_timeout_s
        # LiteLLM's metrics page is large, the rig's warnings come from files: the TUI reads both every few seconds
        self.proxy_every_s = proxy_every_s
        self._proxy_last: tuple[float, ProxySnap | None] = (0.0, None)
        self._warned: tuple[float, tuple[str, ...]] = (0.0, ())  # when the rig's warnings were read, and them
        self._hosts: tuple[float, object, set[str]] = (0.0, None, set())  # when, the door's record, where it listens
        self._prev: dict[str, metrics.Scrape] = {}
        self._client = http_client
        self.history: dict[str, metrics.History] = {}
        self._log_cursors: dict[str, dict] = {}
        self._log_seen: dict[str, float] = {}

    def carry(self) -> dict:
        """What the next sample needs from this sampler's (picklable): the previous scrapes the rates start
        from, the history, where each engine's log was read up to. The TUI's first sample is taken in a child
        process (appliance/tui/early.py) and goes on here."""
        return {"prev": self._prev, "history": self.history, "log_cursors": self._log_cursors,
                "log_seen": self._log_seen}

    def resume(self, carry: dict) -> None:
        self._prev, self.history = dict(carry["prev"]), dict(carry["history"])
        self._log_cursors, self._log_seen = dict(carry["log_cursors"]), dict(carry["log_seen"])

    def _http(self):
        if self._client is None:
            from appliance import http

            self._client = http.Loopback(timeout_s=self.timeout)  # engines and the door: this machine only
        return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def _hist(self, key: str, t: float, value: float | None) -> None:
        self.history.setdefault(key, metrics.History(HISTORY)).add(t, value)

    def sample(self) -> Snapshot:
        from appliance import http
        from appliance.errors import ApplianceError
        from appliance.profile.placement import engine_gpu_indices

        t = time.time()
        rig = self.stack.rig
        if t - self._warned[0] >= self.proxy_every_s:  # files and the runtime: at the proxy's pace (~2 ms)
            self._warned = (t, tuple(self.stack.warnings()))
        warnings = list(self._warned[1])
        try:
            gpus = tuple(rig.gpus().read_all())
        except ApplianceError as exc:
            gpus = ()
            warnings.append(f"GPUs: {exc.message}")
        record = rig.state.load()  # once per sample: the active profile and the door's record both come from it
        profile = self.stack.active_profile(record)
        engines = []
        if profile is not None:
            try:
                states = {s.service: s for s in rig.runtime.states(self.stack.project(profile.name))}
                if not record.starting and not any(s.alive for s in states.values()):
                    from appliance.doctor import stale_message

                    warnings.append(stale_message(profile.name))  # the record is not the truth: say so
            except ApplianceError as exc:
                states = {}
                warnings.append(f"runtime: {exc.message}")
            draining = bool(record.starting) and record.starting != profile.name  # a switch drains these
            for e in profile.engines:
                st = states.get(e.label)
                health_probe = http.get(self._http(), f"http://127.0.0.1:{e.port}/health")
                alive = bool(st and st.status in ("running", "restarting", "created"))
                health = engine_health(health_probe, alive,
                                       lambda: self._log_age(profile.name, e.label, t), draining)
                stats = metrics.EngineStats()
                if health == "healthy":
                    mp = http.get(self._http(), f"http://127.0.0.1:{e.port}/metrics")
                    if mp.ok and mp.body:
                        try:
                            scrape = metrics.parse(mp.body, time.time(), metrics.ENGINE_METRICS)
                            stats = metrics.engine_stats(self._prev.get(e.label), scrape)
                            self._prev[e.label] = scrape
                        except ValueError:
                            warnings.append(f"{e.label}: /metrics could not be parsed")
                self._hist(Series.engine_gen_tps(e.label), t, stats.generation_tps)
                self._hist(Series.engine_prompt_tps(e.label), t, stats.prompt_tps)
                uptime = t - st.started_at if st and st.started_at and st.status == "running" else None
                engines.append(EngineSnap(
                    name=e.label, port=e.port, model=e.model, aliases=tuple(e.aliases),
                    gpus=tuple(engine_gpu_indices(profile, e, len(gpus) or e.gpu_count)),
                    status=st.status if st else "missing", health=health, restarts=st.restarts if st else 0,
                    uptime_s=uptime, stats=stats))
        proxy = self._proxy(record.proxy)
        if proxy is not None:
            engines = [replace(e, fallbacks=float(sum(proxy.requests_fallback.get(a, 0) for a in e.aliases)))
                       for e in engines]
        used = {g for e in engines for g in e.gpus}
        power = sum(g.power_w for g in gpus if g.index in used and g.power_w is not None) if used else None
        gen = sum(e.stats.generation_tps or 0 for e in engines) if engines else None
        for g in gpus:
            self._hist(Series.gpu_power_w(g.index), t, g.power_w)
        self._hist(Series.RIG_GEN_TPS, t, gen)
        return Snapshot(
            t=t, rig=rig.label,
            profile=profile.name if profile else None, gpus=gpus, engines=tuple(engines), proxy=proxy,
            warnings=tuple(warnings), power_w=power, generation_tps=gen,
            tokens_per_joule=metrics.tokens_per_joule(gen, power),
            watts_per_tps=(power / gen) if power and gen else None)

    def _log_age(self, profile: str, engine: str, now: float) -> float | None:
        """Seconds since the engine last wrote a log line (as far as this sampler has seen; None: never)."""
        from appliance.errors import ApplianceError

        key = f"{profile}/{engine}"
        cursor = self._log_cursors.setdefault(key, {})
        try:
            lines = self.stack.rig.runtime.new_lines(self.stack.project(profile), engine, cursor)
        except (ApplianceError, OSError):
            lines = []
        if any(ln.strip() for ln in lines):
            self._log_seen[key] = now
        seen = self._log_seen.get(key)
        return None if seen is None else now - seen

    def _proxy(self, state) -> ProxySnap | None:
        """The front door from its record in the state (`state`: a ProxyRecord, None when no door was started)."""
        from appliance import http

        if not state:
            return None
        url = f"http://127.0.0.1:{state.port}"
        probe = http.get(self._http(), f"{url}/health/liveliness")
        from appliance.listening import listening_hosts, reachable_from_lan

        # the kernel's socket table costs ~10 ms of CPU to read with a busy door (thousands of connections): it is
        # read every LISTEN_EVERY_S, and at once when the door's record changed (a restart, `up --lan`, a swap)
        hosts_t, hosts_record, hosts = self._hosts
        if hosts_record != state or time.time() - hosts_t >= LISTEN_EVERY_S:
            hosts = listening_hosts(state.port)
            self._hosts = (time.time(), state, hosts)
        snap = ProxySnap(url=url, status="running" if probe.ok else ("down" if probe.error == "refused" else
                                                                      "no answer"), healthy=probe.ok,
                         listen=tuple(sorted(hosts)), lan=reachable_from_lan(hosts))
        if not probe.ok:
            return snap
        last_t, last = self._proxy_last
        if last is not None and time.time() - last_t < self.proxy_every_s:
            return replace(last, status=snap.status, healthy=snap.healthy, listen=snap.listen, lan=snap.lan)
        scrape = None if self.quick else self._litellm_scrape(state)
        if scrape is not None:
            snap = proxy_counts(snap, scrape)
        snap = proxy_routes(snap, self.stack, scrape)
        if state.socket:
            snap = frontdoor_counts(snap, state.socket, self.stack)
        if not self.quick:  # a quick sample's counts are not the door's: the next sample reads them
            self._proxy_last = (time.time(), snap)
        return snap

    def _litellm_scrape(self, state) -> metrics.Scrape | None:
        from appliance import secrets

        litellm = f"http://127.0.0.1:{state.litellm_port}"
        try:
            r = self._http().get(f"{litellm}/metrics/", headers={"Authorization": f"Bearer {secrets.master_key()}"})
            return metrics.parse(r.text, time.time(), metrics.LITELLM_METRICS) if r.status_code == 200 else None
        except Exception:  # noqa: BLE001 - telemetry must not take the sampler down; the proxy shows "no metrics"
            return None


def proxy_counts(snap: ProxySnap, scrape: metrics.Scrape) -> ProxySnap:
    """From LiteLLM's Prometheus metrics: requests per alias served by its local engine and by a fallback
    (`litellm_deployment_successful_fallbacks` carries the alias as requested_model), fallbacks and errors."""
    local: dict[str, float] = {}
    for labels, v in scrape.series("litellm_proxy_total_requests_metric_total"):
        mid, alias, code = labels.get("model_id", ""), labels.get("requested_model", ""), labels.get("status_code")
        if mid.startswith("local:") and mid.split(":", 1)[1].split("@")[0] == alias and str(code).startswith("2"):
            local[alias] = local.get(alias, 0) + v
    fallback: dict[str, float] = {}
    for labels, v in scrape.series("litellm_deployment_successful_fallbacks_total"):
        alias = labels.get("requested_model", "")
        fallback[alias] = fallback.get(alias, 0) + v
    errors = sum(v for _, v in scrape.series("litellm_proxy_failed_requests_metric_total"))
    return replace(snap, requests_local=local, requests_fallback=fallback, fallbacks=sum(fallback.values()),
                   errors=errors)


def proxy_routes(snap: ProxySnap, stack, scrape: metrics.Scrape | None) -> ProxySnap:
    """Where each alias's requests can go (the plan the front door serves) and today's hosted spend per alias
    (LiteLLM's token counters × the bundled price map; None without a scrape). Settings that do not load leave
    the routes empty: `status` and `endpoint` name the mistake."""
    from appliance import costs, routes
    from appliance.errors import ApplianceError

    try:
        profile = stack.front_door.serving()
        pl = stack.front_door.running_plan(profile)[0]  # what the door serves (its spend counts), not the file
    except ApplianceError:
        return snap
    spend = None
    if scrape is not None:
        # LiteLLM's ~2 MB price map costs ~100 ms of CPU to read: read only once a hosted model has answered
        prices = None if hosted_answered(scrape) else {}
        spend = costs.today_by_alias(scrape, {n: h.litellm_model for n, h in pl.hosted.items()},
                                     costs.ledger_for(stack.rig), prices)
    return replace(snap, routes=routes.alias_routes(pl, profile), local_only=pl.local_only, spend_usd=spend)


def hosted_answered(scrape: metrics.Scrape) -> bool:
    """Whether LiteLLM counted tokens of a hosted model (the only series costs.hosted_spend prices)."""
    from appliance.costs import HOSTED_PREFIX

    return any(labels.get("model_id", "").startswith(HOSTED_PREFIX)
               for name in ("litellm_input_tokens_metric_total", "litellm_output_tokens_metric_total")
               for labels, _ in scrape.series(name))


def frontdoor_counts(snap: ProxySnap, sock: str, stack) -> ProxySnap:
    """Add what the front door relayed itself (requests that never touched LiteLLM): per alias, to the local
    engine and to the fallback; 5xx answers it sent to agents."""
    from pathlib import Path

    from appliance import frontdoor
    from appliance.errors import ApplianceError
    from appliance.render.plan import backend_name

    try:
        c = frontdoor.counts(Path(sock))
    except ApplianceError:
        return snap
    local, fallback = dict(snap.requests_local), dict(snap.requests_fallback)
    profile = stack.active_profile()
    for e in profile.engines if profile else ():
        for a in e.aliases:
            b = backend_name(a)
            local[a] = local.get(a, 0) + c["local"].get(b, 0)
            fallback[a] = fallback.get(a, 0) + c["fallback"].get(b, 0)
    return replace(snap, requests_local=local, requests_fallback=fallback, fallbacks=sum(fallback.values()),
                   errors=snap.errors + c["errors"])
