"""Pure: the front door — HAProxy on the agents' URL, LiteLLM behind it for fallbacks and translation.

Why (benchmarks/README.md has the numbers): one LiteLLM worker spends ~0.7–1 ms of CPU per streamed token and
adds ~14 ms to every time-to-first-token; HAProxy relays a token for a few µs. So the hot path — a request for
a local alias whose engine is healthy — goes from HAProxy straight to vLLM (which serves the alias itself via
--served-model-name, and every agent API itself: chat and completions, the Responses API, Anthropic Messages and
count_tokens), and everything else goes to LiteLLM:

  agents ──▶ HAProxy :port ──(healthy local alias, request small enough)──▶ vLLM 127.0.0.1:engine-port
                 │  └─(engine down, loading, hung, 5xx, draining)──▶ LiteLLM, same request: it falls back
                 └─(hosted aliases, /v1/models, large requests, anything else)──▶ LiteLLM :port+1
  LiteLLM ──▶ HAProxy :port+2… (one internal listener per alias) ──▶ vLLM, or 503 at once when it is down

- One key, two headers: `Authorization: Bearer <key>` (OpenAI clients) or `x-api-key: <key>` (Anthropic clients,
  Claude Code). The key is read from the environment, never written here; anything else gets 401 with a JSON
  body on every path. LiteLLM is handed the Bearer form whatever header the agent used.
- Paths without `/v1` (`/chat/completions`, `/responses`, `/messages`, …) are rewritten to `/v1/…`: vLLM serves
  only the `/v1` ones.
- Only what the active profile serves (render/plan.py): a model name the front door does not serve now gets 404
  with the list of names it serves, before anything is forwarded.
- Health: an active `GET /health` check every second marks an engine down while it loads or hangs; one error
  response or refused connection marks it down at once (`observe layer7`, `error-limit 1`); the request is
  retried on LiteLLM, whose way to the engine (the internal listener) then answers 503 at once, so LiteLLM takes
  the profile's fallback, if there is one.
- Context guard: a request goes the direct way only when it provably fits the engine's context —
  body bytes + max output tokens + 256 ≤ max_model_len (a token is at least one byte of the prompt). Larger
  ones go to LiteLLM, which sends them to the local engine (with timeouts as long as a long prefill needs) and,
  on vLLM's context-length error, to a context-window fallback with a larger window.
- Switches: local servers of a profile not yet routed start disabled; the Stack enables a server (runtime API) once
  its engine answers /health, and sets it to drain before stopping it, so requests in flight finish and new ones
  take the fallback (or wait at the door, when the alias has none). One request per connection (`option
  httpclose`): a drain set through the runtime API reaches only the current worker, so no kept-alive connection may
  carry a new request into an old worker after a reload (see `render_haproxy`).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from appliance.errors import ProfileError

from appliance.profile import Profile
from appliance.render.litellm import (
    PROXY_ENV,
    PROXY_PROJECT,
    SECRETS_VAR,
    engine_listener_ports,
    local_deployment_id,
)
from appliance.render.plan import ProxyPlan, backend_name

HAPROXY_IMAGE = "haproxy:2.6.12"
KEYS_DIR = "/usr/local/etc/appliance-keys"
CONTEXT_MARGIN_TOKENS = 256
# Requests up to this size are inspected (model, max tokens) and may take the hot path; larger ones go to LiteLLM.
# The context guard counts a byte as at most one token, so a body larger than the engine's context never takes
# the hot path anyway: 256 KiB covers contexts up to 256k tokens.
BUFSIZE = 262144
# Every agent API vLLM (>= 0.19) serves itself; the model name in the body selects the alias.
AGENT_PATHS = ("/v1/chat/completions", "/v1/completions", "/v1/responses", "/v1/messages",
               "/v1/messages/count_tokens")
BARE_PATHS = ("/chat/completions", "/completions", "/responses", "/messages", "/messages/count_tokens", "/models")


@dataclass(frozen=True)
class FrontDoorSettings:
    host: str = "127.0.0.1"
    port: int = 4000
    litellm_port: int = 4001  # the LiteLLM in service now: port + 1 or port + 2 (a config change starts the
    # other one beside it and swaps it in at the front door, so no connection is dropped)
    engine_base_port: int = 4003  # one internal listener per local alias: LiteLLM's way to that engine
    socket_path: str = "/run/appliance/haproxy.sock"
    stream_s: float = 120.0  # silence allowed in a stream (before its headers or between chunks)
    request_s: float = 600.0  # a whole non-streaming response
    hold_s: float = 300.0  # a request for an alias without a fallback waits this long for its engine
    check_interval_ms: int = 1000
    master_key_env: str = "LITELLM_MASTER_KEY"
    engine_key_env: str = "APPLIANCE_ENGINE_KEY"

    @property
    def relay_path(self) -> str:
        """A unix socket beside the runtime socket (its directory is the owner's, mode 0700): a request retried
        on LiteLLM from an engine's backend arrives here with the engine key and leaves with the master key."""
        return self.socket_path.rsplit("/", 1)[0] + "/lr.sock"  # not longer than haproxy.sock (sun_path: 108)


@dataclass(frozen=True)
class Route:
    alias: str
    port: int
    max_model_len: int | None  # of the routed profile's engine; None when it does not serve the alias now
    backend: str
    listener_port: int  # the internal listener LiteLLM uses for this alias
    has_fallback: bool = True  # False: nothing but its engine can serve it (requests wait for the engine)


def routes(pl: ProxyPlan, routed: Profile | None, settings: FrontDoorSettings) -> list[Route]:
    """The plan's local aliases; max_model_len only for those the routed profile's engines serve (on that port)."""
    lens = {a: (e.port, e.max_model_len) for e in (routed.engines if routed else ()) for a in e.aliases}
    listeners = engine_listener_ports(pl, settings.engine_base_port)
    out = []
    for alias, port in pl.alias_port.items():
        rport, mml = lens.get(alias, (None, None))
        out.append(Route(alias, port, mml if rport == port else None, backend_name(alias), listeners[alias],
                         bool(pl.fallbacks.get(alias))))
    return out


def _q(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


_NAME_RE = re.compile(r"/?[A-Za-z0-9_][A-Za-z0-9._/:@+-]{0,254}")


def _name(text: str) -> str:
    """A model name (alias, hosted name, served model id) as a quoted HAProxy word — only after it matched the
    names' grammar (profile/grammar.py). The profile loader refuses anything else; this is the second lock: a name
    from anywhere else (the owner's settings, a state file) cannot bring a newline, `$` (expanded from the
    environment inside double quotes, where the master key lives), `%` or a quote into haproxy.cfg."""
    if not _NAME_RE.fullmatch(text):
        shown = text.encode("unicode_escape").decode("ascii")[:60]
        raise ProfileError(f"model name `{shown}` cannot be served: the front door routes only letters, digits and "
                           ". _ / : @ + -", "rename it in the profile or in the settings file")
    return _q(text)


def _ms(seconds: float) -> str:
    """An HAProxy timeout: whole milliseconds, at least 1 (`0s` would mean no timeout at all)."""
    ms = max(1, math.ceil(seconds * 1000))
    return f"{ms // 1000}s" if ms % 1000 == 0 else f"{ms}ms"


def _error_json(status: int, kind: str, message: str) -> str:
    """One error body both kinds of client read: OpenAI's `error.message`, Anthropic's `type` + `error.type`."""
    return ('{"type":"error","error":{"type":"%s","message":"%s","code":"%s","param":null}}'
            % (kind, message, status))


def render_haproxy(pl: ProxyPlan, routed: Profile | None, settings: FrontDoorSettings) -> str:
    rs = routes(pl, routed, settings)
    key = f"${{{settings.master_key_env}}}"
    engine_key = f"${{{settings.engine_key_env}}}"
    unauthorized = _error_json(401, "authentication_error", "no valid key: send the master key as "
                               "`Authorization: Bearer <key>` or `x-api-key: <key>` (see `appliance endpoint`)")
    served = (", ".join(_name(n).strip('"') for n in pl.served()) or "none (no profile is running)").replace(
        "%", "%%")  # a log-format string
    unknown = _error_json(404, "not_found_error", f"model `%[var(txn.model),json(utf8s)]` is not served now "
                          f"(profile {_name(pl.profile).strip(chr(34)) if pl.profile else 'none'}); served now: {served}")
    lines = [
        "global",
        "    master-worker",
        f"    stats socket {settings.socket_path} mode 600 level admin expose-fd listeners",
        f"    tune.bufsize {BUFSIZE}         # requests this large are inspected (model, max tokens); larger: LiteLLM",
        "    nbthread 1",
        "    lua-load hold.lua           # appliance_hold: wait for an engine instead of 503 (a switch, a restart)",
        "",
        "defaults",
        "    mode http",
        "    timeout connect 200ms       # loopback: a refused or missing engine is retried elsewhere at once",
        "    timeout client 10m",
        f"    timeout server {_ms(settings.request_s)}",
        "    timeout http-request 60s",
        "    timeout queue 10s",
        "    timeout check 1s            # an engine that does not answer /health within 1 s is down",
        "    option http-no-delay",
        # one request per connection. Why: a seamless reload leaves the old worker serving its connections, and
        # one whose streamed response started before the reload (headers sent with keep-alive) carries one MORE
        # request there, under the old config — where an engine being drained is still enabled (the runtime API
        # reaches only the current worker; an old one refuses changes). That request hit the draining engine,
        # its 500 marked the engine down in the old worker, and shutdown-sessions cut the streams LiteLLM relayed.
        # A new connection per request costs a loopback handshake; every request lands in the current worker.
        "    option httpclose",
        "    retries 2",
        "    option redispatch 1",
        "    retry-on conn-failure empty-response response-timeout 500 502 503 504",
        "",
        "frontend agents",
        f"    bind {settings.host}:{settings.port}",
        "    option http-buffer-request",
        f'    acl key_bearer req.hdr(authorization) -m str "Bearer {key}"',
        f'    acl key_x req.hdr(x-api-key) -m str "{key}"',
        "    acl public path /health/liveliness /health/liveness /health/readiness",
        f"    http-request return status 401 content-type application/json string {_q(unauthorized)} "
        "unless key_bearer or key_x or public",
        f'    http-request set-header authorization "Bearer {key}" if key_x !key_bearer   # LiteLLM reads this one',
        "    http-request del-header x-api-key",
        f"    acl bare path {' '.join(BARE_PATHS)}",
        "    http-request set-path /v1%[path] if bare",
        f"    acl inference path {' '.join(AGENT_PATHS)}",
        "    http-request set-var(txn.model) req.body,json_query('$.model') if inference",
    ]
    if pl.served():
        lines.append(f"    acl served var(txn.model) -m str {' '.join(_name(n) for n in pl.served())}")
    else:
        lines.append("    acl served always_false")
    lines += [
        f"    http-request return status 404 content-type application/json lf-string {_q(unknown)} "
        "if inference { var(txn.model) -m found } !served",
        "    http-request set-var(txn.max_tokens) int(0) if inference",
        "    http-request set-var(txn.max_tokens) req.body,json_query('$.max_output_tokens','int') if inference",
        "    http-request set-var(txn.max_tokens) req.body,json_query('$.max_completion_tokens','int') if inference",
        "    http-request set-var(txn.max_tokens) req.body,json_query('$.max_tokens','int') if inference",
        "    http-request set-var(txn.need) req.body_size,add(txn.max_tokens),add(" + str(CONTEXT_MARGIN_TOKENS) +
        ") if inference",
        "    acl streaming req.body,json_query('$.stream') -m bool   # a JSON true comes back as boolean 1",
    ]
    for r in rs:
        if r.max_model_len is None:
            continue  # not served by a running engine now: LiteLLM serves it from its fallbacks
        lines += [
            f"    acl is_{r.backend} var(txn.model) -m str {_name(r.alias)}",
            f"    acl fits_{r.backend} var(txn.need) -m int le {r.max_model_len}",
            f"    use_backend {r.backend} if inference is_{r.backend} fits_{r.backend} streaming",
            f"    use_backend {r.backend}_full if inference is_{r.backend} fits_{r.backend}",
        ]
    lines += ["    default_backend litellm", ""]
    for r in rs:
        mid = local_deployment_id(r.alias, r.port)
        # Two backends per alias, one engine: streams (vLLM sends the headers at once, then tokens; silence longer
        # than stream_s means a hang) and whole responses (nothing until done: up to request_s). `timeout server`
        # is an inactivity timeout; a request that runs into it before any byte came back is retried on LiteLLM.
        # The streaming backend health-checks the engine; the others track that check.
        # An engine of the routed profile is enabled in the file itself, so a restarted HAProxy (killed, a reboot,
        # a docker restart) serves it again as soon as its health check passes; others start disabled and the
        # Stack enables them once their engine answers /health.
        off = "" if r.max_model_len is not None else " disabled"
        for backend, timeout, check in ((r.backend, settings.stream_s, True), (f"{r.backend}_full",
                                                                               settings.request_s, False)):
            lines += [
                f"backend {backend}",
                "    balance first",
                f"    timeout server {_ms(timeout)}",
                # engines take only their own key; the agent's (master) key goes no further than this proxy
                f'    http-request set-header authorization "Bearer {engine_key}"',
            ]
            if not r.has_fallback:  # nothing else can serve it: wait for the engine (HAProxy alone says 503)
                lines += [f"    http-request lua.appliance_hold {int(settings.hold_s * 1000)}",
                          "    http-response set-header x-appliance-held-ms %[var(txn.held_ms)] "
                          "if { var(txn.held_ms) -m found }"]
            if check:
                lines += [
                    "    option httpchk GET /health",
                    "    http-check expect status 200",
                    f"    default-server inter {settings.check_interval_ms}ms fastinter 500ms downinter "
                    f"{settings.check_interval_ms}ms fall 1 rise 1",
                    f"    server local 127.0.0.1:{r.port} check observe layer7 error-limit 1 on-error mark-down"
                    + off,
                ]
            else:
                lines.append(f"    server local 127.0.0.1:{r.port} track {r.backend}/local" + off)
            # listed second, not as `backup`: `balance first` sends everything to `local` while it is up, and a
            # retried request (after a 5xx, a refused connection or a timeout before any byte) is redispatched
            # here — HAProxy does not redispatch to a backup while the failing one counts as up. LiteLLM gets the
            # same request and serves it from the alias's fallbacks (its way to the engine answers 503 now).
            lines += [
                f"    server litellm unix@{settings.relay_path}   # back to the master key (frontend litellm_relay)",
                f"    http-response set-header x-litellm-model-id {_q(mid)} if {{ srv_name local }}",
                f"    http-response set-header x-litellm-model-group {_name(r.alias)} if {{ srv_name local }}",
                "    http-response set-header x-appliance-route local if { srv_name local }",
                "    http-response set-header x-appliance-route litellm if { srv_name litellm }",
                "",
            ]
        # LiteLLM's way to the engine: the health check's verdict, not a LiteLLM timeout, says it is gone
        # (503 at once while it is down, loading or draining; a hung engine's requests are cut when it is marked
        # down). Timeouts as long as a whole response: a long prefill is not a dead engine.
        lines += [
            f"frontend engine_{r.backend}",
            f"    bind 127.0.0.1:{r.listener_port}",
            f"    default_backend engine_{r.backend}",
            "",
            f"backend engine_{r.backend}",
            f"    timeout server {_ms(settings.request_s)}",
            "    retry-on conn-failure empty-response",
            f"    server local 127.0.0.1:{r.port} track {r.backend}/local on-marked-down shutdown-sessions",
            "",
        ]
    lines += [
        "frontend litellm_relay",
        f"    bind unix@{settings.relay_path} mode 600",
        "    timeout client 10m",
        f'    http-request set-header authorization "Bearer {key}"',
        "    default_backend litellm",
        "",
        "backend litellm",
        "    timeout server 10m",
        # LiteLLM busy relaying streams can take over a second to answer its liveness probe; right after a reload
        # one failed check marks a server DOWN, and every request without an engine would get HAProxy's 503
        "    timeout check 5s",
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
                # the keys first (secrets.frontdoor_keys_cfg): a reload re-reads them, so a new key needs no restart
                "command": ["haproxy", "-W", "-db", "-f", f"{KEYS_DIR}/keys.cfg", "-f",
                            "/usr/local/etc/appliance/haproxy.cfg"],
                "working_dir": "/usr/local/etc/appliance",  # lua-load hold.lua
                "network_mode": "host",
                "restart": "unless-stopped",
                # the image runs as uid 99; the runtime socket lives in a root-owned 0700 host directory
                "user": "0:0",
                "env_file": [{"path": SECRETS_VAR + ".frontdoor", "required": True}],  # master key for the ACL
                # the directory, not the file: a reload must see the rewritten config (a file bind mount keeps
                # the old inode after the appliance replaces it)
                "volumes": ["./:/usr/local/etc/appliance:ro", f"{sock_dir}:{sock_dir}",
                            f"{SECRETS_VAR}.frontdoor.d:{KEYS_DIR}:ro"],
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
            "env_file": [{"path": SECRETS_VAR + ".litellm", "required": True}],  # hosted keys, master key
            "environment": dict(PROXY_ENV),
            "volumes": [f"./{config}:/app/config.yaml:ro"],
            "healthcheck": {"test": ["CMD", "python3", "-c", probe], "interval": "10s", "timeout": "5s",
                            "retries": 3, "start_period": "60s"},
            "labels": {"appliance.proxy": "litellm"},
        }
    return compose
