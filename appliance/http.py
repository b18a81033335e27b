"""The HTTP boundary: one place that makes httpx clients, always with timeouts.

A vLLM engine accepts TCP while it loads but does not answer (techref §1.5): every probe has a short read
timeout, and "no answer in time" means "not ready", never "hang the caller".
"""

from __future__ import annotations

from dataclasses import dataclass

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
    """GET with the client's timeouts; never raises for network trouble."""
    import httpx

    try:
        r = c.get(url, headers=headers)
    except httpx.ConnectError:
        return Probe(False, error="refused")
    except httpx.TimeoutException:
        return Probe(False, error="timeout")
    except httpx.HTTPError as exc:
        return Probe(False, error=type(exc).__name__)
    return Probe(200 <= r.status_code < 300, r.status_code, body=r.text)
