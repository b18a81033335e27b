"""What a client (the appliance, an agent) observes of an engine: the same helpers for the stand-in and the real one.
Every call has a timeout (a real engine's abort-on-SIGTERM can leave a stream hanging)."""

from __future__ import annotations

import json

import httpx
from prometheus_client.parser import text_string_to_metric_families

TIMEOUT = httpx.Timeout(120.0, connect=5.0)


def chat_body(model: str = "local", content: str = "hello there", **kw) -> dict:
    return {"model": model, "messages": [{"role": "user", "content": content}], **kw}


def post(eng, path: str, body=None, **kw) -> httpx.Response:
    return httpx.post(eng.url + path, json=body, timeout=TIMEOUT, **kw)


def sse(eng, path: str, body: dict) -> tuple[httpx.Response, str]:
    """(response, raw text) of a streamed request, read to the end."""
    with httpx.Client(timeout=TIMEOUT) as c, c.stream("POST", eng.url + path, json=body) as r:
        return r, r.read().decode()


def events(raw: str) -> list:
    """The `data:` payloads of an SSE body (JSON decoded, `[DONE]` kept as the string)."""
    out = []
    for block in raw.split("\n\n"):
        for line in block.splitlines():
            if line.startswith("data: "):
                payload = line[6:]
                out.append(payload if payload == "[DONE]" else json.loads(payload))
    return out


def families(text: str) -> dict[str, set[str]]:
    """Metric family → the label names its samples carry (`le` and the `_created` series left out)."""
    out: dict[str, set[str]] = {}
    for fam in text_string_to_metric_families(text):
        if not fam.name.startswith("vllm:"):
            continue
        keys = out.setdefault(f"{fam.name} {fam.type}", set())
        for s in fam.samples:
            if s.name.endswith("_created"):
                continue
            keys.update(k for k in s.labels if k != "le")
    return out


def label_values(text: str, family: str, label: str) -> set[str]:
    values = set()
    for fam in text_string_to_metric_families(text):
        if fam.name == family:
            values.update(s.labels[label] for s in fam.samples if label in s.labels)
    return values
