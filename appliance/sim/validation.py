"""Request validation of the stand-in engine, answered like vLLM's FastAPI/pydantic layer. Stdlib only.

Measured on vLLM 0.32 (tests/real/test_conformance.py): a body that is not JSON, a missing required field or a field
of the wrong type is HTTP 400 with error type "Bad Request" (not "BadRequestError"), `param` "body.<field>" and a
pydantic-style message; a sampling value out of range is a BadRequestError naming the parameter.
Each check returns None or (status, message, error type, param) for Handler._error.
"""

from __future__ import annotations

import json

Error = tuple[int, str, str, "str | None"]
INT_FIELDS = ("max_tokens", "max_completion_tokens", "n", "max_output_tokens")


def _pydantic(kind: str, loc: str, msg: str, value, ctx: dict | None = None) -> Error:
    shown = f"<dict of {len(value)} items>" if isinstance(value, dict) else value
    item = {"type": kind, "loc": loc, "msg": msg, "input": shown}
    if ctx:
        item["ctx"] = ctx
    return 400, f"1 validation error:\n  {item!r}", "Bad Request", loc


def parse_body(raw: bytes) -> tuple[dict | None, Error | None]:
    try:
        body = json.loads(raw or b"")
    except ValueError as e:
        pos = getattr(e, "pos", 0)
        return None, _pydantic("json_invalid", f"body.{pos}", "JSON decode error", {},
                               {"error": getattr(e, "msg", str(e))})
    if not isinstance(body, dict):
        return None, _pydantic("model_attributes_type", "body", "Input should be a valid dictionary or object to "
                               "extract fields from", body)
    return body, None


def check(body: dict, required: tuple[str, ...] = ()) -> Error | None:
    for name in required:
        if name not in body:
            return _pydantic("missing", f"body.{name}", "Field required", body)
    for name in INT_FIELDS:
        value = body.get(name)
        if value is None or (isinstance(value, int) and not isinstance(value, bool)):
            continue
        try:
            body[name] = int(str(value))
        except ValueError:
            return _pydantic("int_parsing", f"body.{name}", "Input should be a valid integer, unable to parse string "
                             "as an integer", value)
    temperature = body.get("temperature")
    if isinstance(temperature, (int, float)) and temperature < 0:
        t = float(temperature)
        return 400, f"temperature must be non-negative, got {t}. (parameter=temperature, value={t})", \
            "BadRequestError", "temperature"
    top_p = body.get("top_p")
    if isinstance(top_p, (int, float)) and not 0 < top_p <= 1:
        p = float(top_p)
        return 400, f"top_p must be in (0, 1], got {p}. (parameter=top_p, value={p})", "BadRequestError", "top_p"
    return None
