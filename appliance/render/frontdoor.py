"""Pure: the front door — HAProxy on the agents' URL, LiteLLM behind it for fallbacks and translation.

Why (benchmarks/README.md has the numbers): one LiteLLM worker spends ~0.7–1 ms of CPU per streamed token and
adds ~14 ms to every time-to-first-token; HAProxy relays a token for a few µs. So the hot path — a request for
a local alias whose engine is healthy — goes from HAProxy straight to vLLM (which serves the alias itself via
--served-model-name), and everything else goes to LiteLLM:

  agents ──▶ HAProxy :port ──(healthy local alias, request small enough)──▶ vLLM 127.0.0.1:engine-port
                 │  └─(engine down, loading, hung, 5xx, draining)──▶ backup: LiteLLM, asking for the alias's
                 │                                                   first fallback by path
                 └─(hosted aliases, /v1/models, large requests, anything else)──▶ LiteLLM :port+1

- The master key is checked by HAProxy (`Authorization: Bearer …`, read from the environment, never written
  here); a request without it gets 401.
- Health: an active `GET /health` check every second marks an engine down while it loads or hangs; one error
  response or refused connection marks it down at once (`observe layer7`, `error-limit 1`); the request is
  retried on the backup server (LiteLLM → the fallback), so it does not fail.
- Context guard: a request goes the direct way only when it provably fits the engine's context —
  body bytes + max_tokens + 256 ≤ max_model_len (a token is at least one byte of the prompt). Larger ones go to
  LiteLLM, which sends them to the local engine and, on vLLM's context-length error, to a context-window
  fallback with a larger window.
- Switches: local servers start disabled; the Stack enables a server (runtime API) once its engine answers
  /health, and sets it to drain before stopping it, so requests in flight finish and new ones take the fallback.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from appliance.profile import Profile
from appliance.render.litellm import (
    PROXY_ENV,
    PROXY_PROJECT,
    SECRETS_VAR,
    local_deployment_id,
)
from appliance.render.plan import backend_name, plan

HAPROXY_IMAGE = "haproxy:2.6.12"
CONTEXT_MARGIN_TOKENS = 256


@dataclass(frozen=True)
class FrontDoorSettings:
    host: str = "127.0.0.1"
    port: int = 4000
    litellm_port: int = 4001  # the LiteLLM in service now: port + 1 or port + 2 (a config change starts the
    # other one beside it and swaps it in at the front door, so no connection is dropped)
    fallback_base_port: int = 4003  # one internal listener per alias that has a fallback
    socket_path: str = "/run/appliance/haproxy.sock"
    stream_s: float = 120.0  # silence allowed in a stream (before its headers or between chunks)
    request_s: float = 600.0  # a whole non-streaming response
    hold_s: float = 300.0  # a request for an alias without a fallback waits this long for its engine
    check_interval_ms: int = 1000
    master_key_env: str = "LITELLM_MASTER_KEY"


@dataclass(frozen=True)
class Route:
    alias: str
    port: int
    max_model_len: int | None  # of the active profile's engine; None when the alias is not served locally now
    fallback: str | None
    backend: str = field(default="")
    fallback_port: int | None = None


def routes(profiles: list[Profile], active: Profile | None, settings: FrontDoorSettings) -> list[Route]:
    pl = plan(profiles)
    alias_port, fallbacks = pl.alias_port, pl.fallbacks
    lens = {a: e.max_model_len for e in (active.engines if active else ()) for a in e.aliases}
    out = []
    k = 0
    for alias in sorted(alias_port):
        fb = (fallbacks.get(alias) or [None])[0]
        fport = None
        if fb:
            fport = settings.fallback_base_port + k
            k += 1
        out.append(Route(alias, alias_port[alias][0], lens.get(alias), fb, backend_name(alias), fport))
    return out


def _q(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def render_haproxy(profiles: list[Profile], active: Profile | None, settings: FrontDoorSettings) -> str:
    rs = routes(profiles, active, settings)
    key_acl = f'"Bearer ${{{settings.master_key_env}}}"'
    unauthorized = ('{"error":{"message":"Authentication Error: no valid key (Authorization: Bearer <master key>)",'
                    '"type":"auth_error","param":null,"code":"401"}}')
    lines = [
        "global",
        "    master-worker",
        f"    stats socket {settings.socket_path} mode 600 level admin expose-fd listeners",
        "    tune.bufsize 65536          # requests up to 64 KiB are inspected (model, max_tokens); larger: LiteLLM",
        "    nbthread 1",
        "    lua-load hold.lua           # appliance_hold: wait for an engine instead of 503 (a switch, a restart)",
        "",
        "defaults",
        "    mode http",
        "    timeout connect 200ms       # loopback: a refused or missing engine is retried elsewhere at once",
        "    timeout client 10m",
        f"    timeout server {int(settings.request_s)}s",
        "    timeout http-request 60s",
        "    timeout queue 10s",
        "    timeout check 1s            # a loading vLLM accepts TCP and stays silent: no answer in 1 s = down",
        "    option http-no-delay",
        "    retries 2",
        "    option redispatch 1",
        "    retry-on conn-failure empty-response response-timeout 500 502 503 504",
        "",
        "frontend agents",
        f"    bind {settings.host}:{settings.port}",
        "    option http-buffer-request",
        f"    acl authed req.hdr(authorization) -m str {key_acl}",
        "    acl public path /health/liveliness /health/liveness /health/readiness",
        f"    http-request return status 401 content-type application/json string {_q(unauthorized)} "
        "unless authed or public",
        "    acl inference path /v1/chat/completions /chat/completions /v1/completions /completions",
        "    http-request set-var(txn.model) req.body,json_query('$.model') if inference",
        "    http-request set-var(txn.max_tokens) int(0) if inference",
        "    http-request set-var(txn.max_tokens) req.body,json_query('$.max_completion_tokens','int') if inference",
        "    http-request set-var(txn.max_tokens) req.body,json_query('$.max_tokens','int') if inference",
        "    http-request set-var(txn.need) req.body_size,add(txn.max_tokens),add(" + str(CONTEXT_MARGIN_TOKENS) +
        ") if inference",
        "    acl streaming req.body,json_query('$.stream') -m bool   # a JSON true comes back as boolean 1",
    ]
    for r in rs:
        if r.max_model_len is None:
            continue  # not served locally by the active profile: LiteLLM serves it from its fallbacks
        lines += [
            f"    acl is_{r.backend} var(txn.model) -m str {_q(r.alias)}",
            f"    acl fits_{r.backend} var(txn.need) -m int le {r.max_model_len}",
            f"    use_backend {r.backend} if inference is_{r.backend} fits_{r.backend} streaming",
            f"    use_backend {r.backend}_full if inference is_{r.backend} fits_{r.backend}",
        ]
    lines += ["    default_backend litellm", ""]
    for r in rs:
        if r.max_model_len is None:
            continue
        mid = local_deployment_id(r.alias, r.port)
        # Two backends per alias, one engine: streams (vLLM sends the headers at once, then tokens; silence longer
        # than stream_s means a hang) and whole responses (nothing until done: up to request_s). `timeout server`
        # is an inactivity timeout; a request that runs into it before any byte came back is retried on the
        # fallback. The streaming backend health-checks the engine; the other tracks that check.
        for backend, timeout, check in ((r.backend, settings.stream_s, True), (f"{r.backend}_full",
                                                                               settings.request_s, False)):
            lines += [
                f"backend {backend}",
                "    balance first",
                f"    timeout server {max(1, round(timeout))}s",
            ]
            if not r.fallback_port:  # nothing else can serve it: wait for the engine (HAProxy alone says 503)
                lines += [f"    http-request lua.appliance_hold {int(settings.hold_s * 1000)}",
                          "    http-response set-header x-appliance-held-ms %[var(txn.held_ms)] "
                          "if { var(txn.held_ms) -m found }"]
            if check:
                lines += [
                    "    option httpchk GET /health",
                    "    http-check expect status 200",
                    f"    default-server inter {settings.check_interval_ms}ms fastinter 500ms downinter "
                    f"{settings.check_interval_ms}ms fall 1 rise 1",
                    f"    server local 127.0.0.1:{r.port} check observe layer7 error-limit 1 on-error mark-down "
                    "disabled",
                ]
            else:
                lines.append(f"    server local 127.0.0.1:{r.port} track {r.backend}/local disabled")
            if r.fallback_port:
                # listed second, not as `backup`: `balance first` sends everything to `local` while it is up, and
                # a retried request (after a 5xx, a refused connection or a timeout before any byte) is
                # redispatched here — HAProxy does not redispatch to a backup while the failing one counts as up
                lines.append(f"    server fallback 127.0.0.1:{r.fallback_port}")
            lines += [
                f"    http-response set-header x-litellm-model-id {_q(mid)} if {{ srv_name local }}",
                f"    http-response set-header x-litellm-model-group {_q(r.alias)} if {{ srv_name local }}",
                "    http-response set-header x-appliance-route local if { srv_name local }",
                "    http-response set-header x-appliance-route fallback if { srv_name fallback }",
                "",
            ]
        if r.fallback_port:
            lines += [
                f"frontend fallback_{r.backend}",
                f"    bind 127.0.0.1:{r.fallback_port}",
                f"    http-request set-path /openai/deployments/{r.fallback}%[path,regsub(^/v1,)]",
                "    default_backend litellm",
                "",
            ]
    lines += [
        "backend litellm",
        "    timeout server 10m",
        "    option httpchk GET /health/liveliness",
        f"    server litellm 127.0.0.1:{settings.litellm_port} check inter 2s fall 3 rise 1",
        "",
    ]
    return "\n".join(lines) + "\n"


HOLD_LUA = """\
-- appliance_hold(ms): while the `local` server of this backend is not UP (its engine stopped for a switch, loading,
-- restarting) sleep in 250 ms steps, up to ms; then let HAProxy route the request as usual (to the engine, or 503
-- if it never came). A backend with a fallback server does not use it: the fallback serves meanwhile.
core.register_action("appliance_hold", { "http-req" }, function(txn, hold_ms)
    local be = core.backends[txn.f:be_name()]
    local srv = be and be.servers["local"]
    if srv == nil then return end
    local limit = tonumber(hold_ms) or 0
    local waited = 0
    while waited < limit do
        local status = srv:get_stats()["status"] or ""
        if string.sub(status, 1, 2) == "UP" then break end
        core.msleep(250)
        waited = waited + 250
    end
    if waited > 0 then txn:set_var("txn.held_ms", waited) end
end, 1)
"""


def litellm_service(port: int, base_port: int) -> tuple[str, str]:
    """(service name, config file) of the LiteLLM on `port`: `litellm` on base + 1, `litellm-b` on base + 2."""
    return ("litellm", "litellm.yaml") if port == base_port + 1 else ("litellm-b", "litellm-b.yaml")


def render_frontdoor_compose(settings: FrontDoorSettings, litellm_image: str, litellm_host: str = "127.0.0.1",
                             litellm_ports: tuple[int, ...] | None = None) -> dict:
    """The proxy project on a real rig: HAProxy on the agents' port, LiteLLM on the next port (or, while a new
    config is swapped in, also on the one after), all on the host network; the runtime socket lives in a host
    directory so the appliance can drain and enable engines."""
    sock_dir = settings.socket_path.rsplit("/", 1)[0]
    compose = {
        "name": PROXY_PROJECT,
        "services": {
            "frontdoor": {
                "image": HAPROXY_IMAGE,
                "command": ["haproxy", "-W", "-db", "-f", "/usr/local/etc/appliance/haproxy.cfg"],
                "working_dir": "/usr/local/etc/appliance",  # lua-load hold.lua
                "network_mode": "host",
                "restart": "unless-stopped",
                # the image runs as uid 99; the runtime socket lives in a root-owned 0700 host directory
                "user": "0:0",
                "env_file": [{"path": SECRETS_VAR, "required": True}],  # the master key for the ACL
                # the directory, not the file: a reload must see the rewritten config (a file bind mount keeps
                # the old inode after the appliance replaces it)
                "volumes": ["./:/usr/local/etc/appliance:ro", f"{sock_dir}:{sock_dir}"],
                "labels": {"appliance.proxy": "haproxy"},
            },
        },
    }
    for port in litellm_ports or (settings.litellm_port,):
        name, config = litellm_service(port, settings.port)
        probe = (f"import urllib.request; urllib.request.urlopen('http://127.0.0.1:{port}/health/liveliness', "
                 "timeout=5)")
        compose["services"][name] = {
            "image": litellm_image,
            "command": ["--config", "/app/config.yaml", "--host", litellm_host, "--port", str(port)],
            "network_mode": "host",
            "restart": "unless-stopped",
            "stop_grace_period": "120s",  # a retired LiteLLM finishes the streams it relays
            "env_file": [{"path": SECRETS_VAR, "required": True}],
            "environment": dict(PROXY_ENV),
            "volumes": [f"./{config}:/app/config.yaml:ro"],
            "healthcheck": {"test": ["CMD", "python3", "-c", probe], "interval": "10s", "timeout": "5s",
                            "retries": 3, "start_period": "60s"},
            "labels": {"appliance.proxy": "litellm"},
        }
    return compose
