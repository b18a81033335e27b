"""The HTTP boundary: one place that makes HTTP clients, always with timeouts.

A vLLM engine accepts TCP while it loads but does not answer (techref §1.5): every probe has a short read
timeout, and "no answer in time" means "not ready", never "hang the caller".

Two kinds: httpx clients for everything that talks to the world, and `Loopback` — the standard library's
http.client on kept-alive connections — for the sampler, which GETs this machine's own engines and front door
five times a second: there httpx (with h11) costs ~3× the CPU per request and ~160 ms more imports before the first
sample (benchmarks/http_cost.py).
"""

from __future__ import annotations

import http.client as _stdlib
import sys
from dataclasses import dataclass
from urllib.parse import urlsplit

PROBE_TIMEOUT_S = 2.0


def client(timeout_s: float = PROBE_TIMEOUT_S, **kw):
    import httpx

    return httpx.Client(timeout=httpx.Timeout(timeout_s, connect=min(timeout_s, 2.0)), trust_env=False, **kw)


def async_client(timeout_s: float = PROBE_TIMEOUT_S, **kw):
    import httpx

    limits = kw.pop("limits", httpx.Limits(max_connections=256, max_keepalive_connections=64))
    return httpx.AsyncClient(timeout=httpx.Timeout(timeout_s, connect=min(timeout_s, 2.0)), trust_env=False,
                             limits=limits, **kw)


@dataclass(frozen=True)
class Probe:
    ok: bool
    status: int | None = None
    error: str | None = None  # "refused", "timeout", "…"
    body: str | None = None


def get(c, url: str, headers: dict | None = None) -> Probe:
    """GET with the client's timeouts (an httpx client or a Loopback); never raises for network trouble."""
    try:
        r = c.get(url, headers=headers)
    except Exception as exc:
        kind = error_kind(exc)
        if kind is None:
            raise
        return Probe(False, error=kind)
    return Probe(200 <= r.status_code < 300, r.status_code, body=r.text)


def error_kind(exc: BaseException) -> str | None:
    """"refused", "timeout" or the exception's name for network trouble (stdlib or httpx); None for a bug."""
    if isinstance(exc, ConnectionRefusedError):
        return "refused"
    if isinstance(exc, TimeoutError):
        return "timeout"
    if isinstance(exc, (OSError, _stdlib.HTTPException)):
        return type(exc).__name__
    httpx = sys.modules.get("httpx")  # an httpx error means httpx is imported: no import here
    if httpx is not None and isinstance(exc, httpx.HTTPError):
        if isinstance(exc, httpx.ConnectError):
            return "refused"
        if isinstance(exc, httpx.TimeoutException):
            return "timeout"
        return type(exc).__name__
    return None


@dataclass(frozen=True)
class Response:
    status_code: int
    text: str


class Loopback:
    """GETs to services on this machine over plain HTTP, one kept-alive connection per host and port. A
    connection the server closed meanwhile is opened again once; refused and timed-out requests raise
    ConnectionRefusedError / TimeoutError (see `get`)."""

    def __init__(self, timeout_s: float = PROBE_TIMEOUT_S):
        self.timeout = timeout_s
        self._conns: dict[tuple[str, int], _stdlib.HTTPConnection] = {}

    def get(self, url: str, headers: dict | None = None) -> Response:
        u = urlsplit(url)
        if u.scheme != "http" or not u.hostname:
            raise ValueError(f"Loopback speaks plain HTTP to this machine only, not {url!r}")
        key = (u.hostname, u.port or 80)
        path = (u.path or "/") + (f"?{u.query}" if u.query else "")
        for _ in (0, 1):  # the second time with a new connection (the first one's is not put back)
            conn = self._conns.pop(key, None)
            reused = conn is not None
            if conn is None:
                conn = _stdlib.HTTPConnection(key[0], key[1], timeout=self.timeout)
            try:
                conn.request("GET", path, headers=headers or {})
                r = conn.getresponse()
                body = r.read()
            except (_stdlib.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                conn.close()
                if reused:  # the server closed an idle kept-alive connection: once more, on a new one
                    continue
                raise
            except BaseException:
                conn.close()
                raise
            if not r.will_close:
                self._conns[key] = conn
            else:
                conn.close()
            return Response(r.status, body.decode("utf-8", "replace"))
        raise AssertionError("unreachable")

    def close(self) -> None:
        for conn in self._conns.values():
            conn.close()
        self._conns.clear()

    def __enter__(self) -> "Loopback":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
