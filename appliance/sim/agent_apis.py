"""The agent APIs vLLM (>= 0.19) serves next to chat completions, for the stand-in engine: Anthropic Messages
(`POST /v1/messages`, streaming as Anthropic events), `POST /v1/messages/count_tokens` and the OpenAI Responses
API (`POST /v1/responses`, streaming as response.* events).

Why translate instead of a second engine: a real vLLM runs these requests through the same scheduler as chat
completions, so here each request is turned into a chat completion and run by the engine's own code (queueing,
prefill time, decode rate, tool calls, metrics); only what goes over the wire is re-shaped. Stdlib only.

Hook: `Handler._route` calls `serve(handler, "messages" | "count_tokens" | "responses")`.
"""

from __future__ import annotations

import json
import time
import uuid


def _text_of(content) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(str(b.get("text", "")) for b in content if isinstance(b, dict) and "text" in b)
    return ""


def _tool(name, description, schema) -> dict:
    return {"type": "function", "function": {"name": name, "description": description or "",
                                             "parameters": schema or {"type": "object", "properties": {}}}}


# ------------------------------------------------------------------------------------------------ requests → chat


def messages_to_chat(body: dict) -> dict:
    """An Anthropic Messages request as a chat completion request."""
    out: list[dict] = []
    if body.get("system"):
        out.append({"role": "system", "content": _text_of(body["system"])})
    for m in body.get("messages") or []:
        if not isinstance(m, dict):
            continue
        content = m.get("content")
        if not isinstance(content, list):
            out.append({"role": m.get("role", "user"), "content": _text_of(content)})
            continue
        calls = [b for b in content if isinstance(b, dict) and b.get("type") == "tool_use"]
        results = [b for b in content if isinstance(b, dict) and b.get("type") == "tool_result"]
        for r in results:
            out.append({"role": "tool", "tool_call_id": r.get("tool_use_id", ""), "content": _text_of(r.get("content"))})
        text = _text_of([b for b in content if isinstance(b, dict) and b.get("type") == "text"])
        if calls:
            out.append({"role": "assistant", "content": text or None, "tool_calls": [
                {"id": c.get("id"), "type": "function",
                 "function": {"name": c.get("name"), "arguments": json.dumps(c.get("input") or {})}} for c in calls]})
        elif text or not results:
            out.append({"role": m.get("role", "user"), "content": text})
    chat = {"model": body.get("model"), "messages": out, "stream": bool(body.get("stream"))}
    if body.get("max_tokens") is not None:
        chat["max_tokens"] = body["max_tokens"]
    if body.get("tools"):
        chat["tools"] = [_tool(t.get("name"), t.get("description"), t.get("input_schema")) for t in body["tools"]]
        choice = body.get("tool_choice") or {"type": "auto"}
        kind = choice.get("type") if isinstance(choice, dict) else choice
        chat["tool_choice"] = {"auto": "auto", "any": "required", "none": "none"}.get(
            kind, {"type": "function", "function": {"name": choice.get("name") if isinstance(choice, dict) else ""}})
    return chat


def responses_to_chat(body: dict) -> dict:
    """An OpenAI Responses request as a chat completion request."""
    out: list[dict] = []
    if body.get("instructions"):
        out.append({"role": "system", "content": str(body["instructions"])})
    items = body.get("input")
    if isinstance(items, str):
        items = [{"role": "user", "content": items}]
    for it in items or []:
        if not isinstance(it, dict):
            continue
        kind = it.get("type", "message")
        if kind == "function_call":
            out.append({"role": "assistant", "content": None, "tool_calls": [
                {"id": it.get("call_id"), "type": "function",
                 "function": {"name": it.get("name"), "arguments": it.get("arguments", "{}")}}]})
        elif kind == "function_call_output":
            out.append({"role": "tool", "tool_call_id": it.get("call_id", ""), "content": str(it.get("output", ""))})
        else:
            out.append({"role": it.get("role", "user"), "content": _text_of(it.get("content"))})
    chat = {"model": body.get("model"), "messages": out, "stream": bool(body.get("stream"))}
    if body.get("max_output_tokens") is not None:
        chat["max_tokens"] = body["max_output_tokens"]
    tools = [t for t in body.get("tools") or [] if isinstance(t, dict) and t.get("type") == "function"]
    if tools:
        chat["tools"] = [_tool(t.get("name"), t.get("description"), t.get("parameters")) for t in tools]
        choice = body.get("tool_choice", "auto")
        chat["tool_choice"] = choice if isinstance(choice, str) else {
            "type": "function", "function": {"name": choice.get("name")}}
    return chat


# ------------------------------------------------------------------------------------------------ chat → answers


def _anthropic_blocks(message: dict) -> list[dict]:
    if message.get("tool_calls"):
        return [{"type": "tool_use", "id": "toolu_" + uuid.uuid4().hex[:24], "name": c["function"]["name"],
                 "input": json.loads(c["function"]["arguments"] or "{}")} for c in message["tool_calls"]]
    return [{"type": "text", "text": message.get("content") or ""}]


STOP = {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use"}


def chat_to_message(obj: dict) -> dict:
    choice = obj["choices"][0]
    u = obj.get("usage") or {}
    return {"id": "msg_" + uuid.uuid4().hex[:24], "type": "message", "role": "assistant", "model": obj["model"],
            "content": _anthropic_blocks(choice["message"]), "stop_reason": STOP.get(choice["finish_reason"], "end_turn"),
            "stop_sequence": None, "usage": {"input_tokens": u.get("prompt_tokens", 0),
                                             "output_tokens": u.get("completion_tokens", 0)}}


def _response_items(message: dict) -> list[dict]:
    if message.get("tool_calls"):
        return [{"type": "function_call", "id": "fc_" + uuid.uuid4().hex, "call_id": c["id"],
                 "name": c["function"]["name"], "arguments": c["function"]["arguments"], "status": "completed"}
                for c in message["tool_calls"]]
    return [{"type": "message", "id": "msg_" + uuid.uuid4().hex, "status": "completed", "role": "assistant",
             "content": [{"type": "output_text", "text": message.get("content") or "", "annotations": [],
                          "logprobs": None}]}]


def _response(model: str, body: dict, output: list, usage: dict, finish: str, status: str = "completed") -> dict:
    incomplete = finish == "length"
    return {"id": "resp_" + uuid.uuid4().hex, "object": "response", "created_at": int(time.time()), "model": model,
            "status": "incomplete" if incomplete and status == "completed" else status, "error": None,
            "incomplete_details": {"reason": "max_output_tokens"} if incomplete else None,
            "instructions": body.get("instructions"), "max_output_tokens": body.get("max_output_tokens"),
            "metadata": {}, "output": output, "parallel_tool_calls": True, "previous_response_id": None,
            "reasoning": None, "temperature": body.get("temperature", 1.0), "text": {"format": {"type": "text"}},
            "tool_choice": body.get("tool_choice", "auto"), "tools": body.get("tools") or [], "top_p": 1.0,
            "truncation": "disabled", "user": None,
            "usage": {"input_tokens": usage.get("prompt_tokens", 0), "output_tokens": usage.get("completion_tokens", 0),
                      "total_tokens": usage.get("total_tokens", 0), "input_tokens_details": {"cached_tokens": 0},
                      "output_tokens_details": {"reasoning_tokens": 0}}}


def chat_to_response(obj: dict, body: dict) -> dict:
    choice = obj["choices"][0]
    return _response(obj["model"], body, _response_items(choice["message"]), obj.get("usage") or {},
                     choice["finish_reason"])


def anthropic_error(status: int, obj) -> dict:
    """Like vLLM 0.19's `translate_error_response`: the OpenAI error's own type and message in Anthropic's shape
    (`NotFoundError`, `BadRequestError` …, not Anthropic's snake_case names; tests/real checks it)."""
    err = obj.get("error") if isinstance(obj.get("error"), dict) else {}
    msg = err.get("message") if err else str(obj.get("error") or obj)
    kind = err.get("type") or {400: "BadRequestError", 404: "NotFoundError"}.get(status, "InternalServerError")
    return {"type": "error", "error": {"type": kind, "message": msg}}


# ------------------------------------------------------------------------------------------------ streams


def _sse(event: str, data: dict) -> bytes:
    return f"event: {event}\ndata: ".encode() + json.dumps(data, separators=(",", ":")).encode() + b"\n\n"


def _stream(handler, api: str, body: dict, req, tool_call, finish, words, split) -> str:
    """Send the answer as the API's event stream, token by token at the engine's pace. Returns the finished
    reason the engine counts (`vllm:request_success{finished_reason}`), like the chat stream does."""
    model = handler.engine.cfg.name
    handler.send_response(200)
    handler.send_header("content-type", "text/event-stream; charset=utf-8")
    handler.send_header("transfer-encoding", "chunked")
    handler.end_headers()
    handler._access(200)

    def send(payload: bytes) -> None:
        handler.wfile.write(b"%x\r\n%s\r\n" % (len(payload), payload))

    seq = [0]

    def ev(event: str, data: dict) -> bytes:
        if api == "responses":
            data = {"type": event, "sequence_number": seq[0], **data}
            seq[0] += 1
        else:
            data = {"type": event, **data}
        return _sse(event, data)

    args = tool_call["function"]["arguments"] if tool_call else ""
    pieces = split(args, req.output_tokens) if tool_call else []
    text: list[str] = []
    if api == "messages":
        mid = "msg_" + uuid.uuid4().hex[:24]
        block = ({"type": "tool_use", "id": "toolu_" + uuid.uuid4().hex[:24], "name": tool_call["function"]["name"],
                  "input": {}} if tool_call else {"type": "text", "text": ""})
        send(ev("message_start", {"message": {"id": mid, "type": "message", "role": "assistant", "model": model,
                                              "content": [], "stop_reason": None, "stop_sequence": None,
                                              "usage": {"input_tokens": req.prompt_tokens, "output_tokens": 0}}})
             + ev("content_block_start", {"index": 0, "content_block": block}))
    else:
        rid, item_id = "resp_" + uuid.uuid4().hex, ("fc_" if tool_call else "msg_") + uuid.uuid4().hex
        start = _response(model, body, [], {}, "stop", status="in_progress")
        start["id"] = rid
        item = ({"type": "function_call", "id": item_id, "call_id": tool_call["id"], "name":
                 tool_call["function"]["name"], "arguments": "", "status": "in_progress"} if tool_call else
                {"type": "message", "id": item_id, "status": "in_progress", "role": "assistant", "content": []})
        head = ev("response.created", {"response": start}) + ev("response.in_progress", {"response": start})
        head += ev("response.output_item.added", {"output_index": 0, "item": item})
        if not tool_call:
            head += ev("response.content_part.added", {"item_id": item_id, "output_index": 0, "content_index": 0,
                                                       "part": {"type": "output_text", "text": "", "annotations": []}})
        send(head)

    def on_tokens(start: int, k: int) -> None:
        out = b""
        for i in range(start, start + k):
            piece = pieces[i] if tool_call else words[i % len(words)]
            text.append(piece)
            if api == "messages":
                delta = ({"type": "input_json_delta", "partial_json": piece} if tool_call else
                         {"type": "text_delta", "text": piece})
                out += ev("content_block_delta", {"index": 0, "delta": delta})
            elif tool_call:
                out += ev("response.function_call_arguments.delta", {"item_id": item_id, "output_index": 0,
                                                                     "delta": piece})
            else:
                out += ev("response.output_text.delta", {"item_id": item_id, "output_index": 0, "content_index": 0,
                                                         "delta": piece, "logprobs": []})
        send(out)

    handler._decode(req, on_tokens)
    full = "".join(text)
    usage = {"prompt_tokens": req.prompt_tokens, "completion_tokens": req.emitted,
             "total_tokens": req.prompt_tokens + req.emitted}
    if api == "messages":
        tail = ev("content_block_stop", {"index": 0})
        tail += ev("message_delta", {"delta": {"stop_reason": STOP.get(finish, "end_turn"), "stop_sequence": None},
                                     "usage": {"output_tokens": req.emitted}})
        tail += ev("message_stop", {})
    else:
        message = ({"tool_calls": [{"id": tool_call["id"], "function": {"name": tool_call["function"]["name"],
                                                                        "arguments": full}}]} if tool_call else
                   {"content": full})
        done_item = {**_response_items(message)[0], "id": item_id}
        if tool_call:
            tail = ev("response.function_call_arguments.done", {"item_id": item_id, "output_index": 0,
                                                                "arguments": full})
        else:
            part = done_item["content"][0]
            tail = ev("response.output_text.done", {"item_id": item_id, "output_index": 0, "content_index": 0,
                                                    "text": full, "logprobs": []})
            tail += ev("response.content_part.done", {"item_id": item_id, "output_index": 0, "content_index": 0,
                                                      "part": part})
        tail += ev("response.output_item.done", {"output_index": 0, "item": done_item})
        final = _response(model, body, [done_item], usage, finish)
        final["id"] = rid
        tail += ev("response.completed" if final["status"] == "completed" else "response.incomplete",
                   {"response": final})
    send(tail)
    handler.wfile.write(b"0\r\n\r\n")
    return "stop" if finish in ("stop", "tool_calls") else "length"


# ------------------------------------------------------------------------------------------------ the hook


def serve(handler, api: str) -> None:
    """Answer one agent-API request on `handler` (the engine's request handler) by running it as a chat
    completion through the engine's own code and re-shaping what goes out."""
    from appliance.sim.config import WORDS, chat_prompt_tokens
    from appliance.sim.openai_api import split_text

    raw = handler._body()
    try:
        body = json.loads(raw or b"")
        if not isinstance(body, dict):
            raise ValueError("body is not a JSON object")
    except ValueError as e:
        return handler._json(400, {"type": "error", "error": {"type": "invalid_request_error",
                                                              "message": f"JSON decode error: {e}"}})
    chat = messages_to_chat(body) if api in ("messages", "count_tokens") else responses_to_chat(body)
    if api == "count_tokens":
        model = body.get("model")
        if model and model not in handler.engine.cfg.served_names:
            return handler._json(404, anthropic_error(404, {"error": {"message": f"The model `{model}` does not "
                                                                                 "exist.", "type": "NotFoundError"}}))
        return handler._json(200, {"input_tokens": chat_prompt_tokens(chat["messages"])})
    plain_json = handler._json

    def reshape(status: int, obj) -> None:
        if status != 200:
            return plain_json(status, anthropic_error(status, obj) if api == "messages" else obj)
        return plain_json(200, chat_to_message(obj) if api == "messages" else chat_to_response(obj, body))

    def stream(req, rid, created, is_chat, tool_call, finish, include_usage) -> str:
        return _stream(handler, api, body, req, tool_call, finish, WORDS, split_text)

    handler._body = lambda: json.dumps(chat).encode()
    handler._json = reshape
    handler._stream = stream
    try:
        handler._completion(chat=True)
    finally:  # the handler object serves the next request on a kept-alive connection
        del handler._body, handler._json, handler._stream
