"""The stand-in engine's OpenAI response bodies: full chat/completion answers, usage, tool calls built from a tool's
JSON schema. Stdlib only."""

from __future__ import annotations

import json
import uuid
from typing import TYPE_CHECKING

from appliance.sim.config import WORDS

if TYPE_CHECKING:
    from appliance.sim.core import Request


def usage_of(req: Request) -> dict:
    return {"prompt_tokens": req.prompt_tokens, "total_tokens": req.prompt_tokens + req.emitted,
            "completion_tokens": req.emitted, "prompt_tokens_details": None}


def words_text(n: int, start: int = 0) -> str:
    return "".join(WORDS[i % len(WORDS)] for i in range(start, n))


def full_response(rid, created, cfg, chat, req, tool_call, finish) -> dict:
    if chat:
        reasoning_n = min(16, req.output_tokens // 4) if cfg.reasoning_parser and not tool_call else 0
        message = {
            "role": "assistant",
            "content": None if tool_call else words_text(req.emitted, reasoning_n),
            "refusal": None,
            "annotations": None,
            "audio": None,
            "function_call": None,
            "tool_calls": [tool_call] if tool_call else [],
            "reasoning": words_text(reasoning_n) if reasoning_n else None,
        }
        choice = {"index": 0, "message": message, "logprobs": None, "finish_reason": finish, "stop_reason": None,
                  "token_ids": None}
        return {"id": rid, "object": "chat.completion", "created": created, "model": cfg.name, "choices": [choice],
                "service_tier": None, "system_fingerprint": None, "usage": usage_of(req), "prompt_logprobs": None,
                "prompt_token_ids": None, "kv_transfer_params": None}
    choice = {"index": 0, "text": words_text(req.emitted), "logprobs": None, "finish_reason": finish, "stop_reason": None,
              "token_ids": None, "prompt_logprobs": None, "prompt_token_ids": None}
    return {"id": rid, "object": "text_completion", "created": created, "model": cfg.name, "choices": [choice],
            "service_tier": None, "system_fingerprint": None, "usage": usage_of(req), "kv_transfer_params": None}


def _example(schema: dict):
    if not isinstance(schema, dict):
        return "example"
    if "enum" in schema and schema["enum"]:
        return schema["enum"][0]
    t = schema.get("type")
    if isinstance(t, list):
        t = next((x for x in t if x != "null"), "string")
    if t == "integer":
        return 1
    if t == "number":
        return 1.0
    if t == "boolean":
        return True
    if t == "array":
        return [_example(schema.get("items", {}))] if schema.get("items") else []
    if t == "object":
        return _arguments(schema)
    return "example"


def _arguments(schema: dict) -> dict:
    props = schema.get("properties") or {}
    return {name: _example(props.get(name, {})) for name in schema.get("required") or []}


def make_tool_call(tools: list, tool_choice) -> dict | None:
    funcs = [t.get("function") for t in tools if isinstance(t, dict) and isinstance(t.get("function"), dict)]
    if not funcs:
        return None
    fn = funcs[0]
    if isinstance(tool_choice, dict):
        wanted = (tool_choice.get("function") or {}).get("name")
        fn = next((f for f in funcs if f.get("name") == wanted), fn)
    args = json.dumps(_arguments(fn.get("parameters") or {}))
    return {"id": f"chatcmpl-tool-{uuid.uuid4().hex}", "type": "function",
            "function": {"name": fn.get("name", "tool"), "arguments": args}}


def split_text(text: str, n: int) -> list[str]:
    """text in n consecutive pieces (some may be empty when n > len(text))."""
    n = max(1, n)
    step = len(text) / n
    return [text[round(i * step):round((i + 1) * step)] for i in range(n)]


