"""The agent APIs a real vLLM serves itself, in the stand-in: Anthropic Messages (`POST /v1/messages`, JSON or an
Anthropic event stream; `POST /v1/messages/count_tokens`) and OpenAI Responses (`POST /v1/responses`, JSON).

Shapes measured on vLLM 0.32 (tests/real/test_conformance.py): the first served name in every answer; Messages
errors as `{"type": "error", "error": {"type", "message"}}`; a Responses answer cut by max_output_tokens is
`"status": "incomplete"` with `incomplete_details.reason`. Streaming Responses is not simulated. A mixin of
appliance.sim.server.Handler. Stdlib only.
"""

from __future__ import annotations

import json
import time
import uuid

from appliance.sim import messages as M
from appliance.sim import physics, validation
from appliance.sim.completions import Interrupted
from appliance.sim.config import DEFAULT_OUTPUT_TOKENS, chat_prompt_tokens, content_text, count_tokens
from appliance.sim.core import Request
from appliance.sim.openai_api import words_text


def _anthropic_prompt_tokens(body: dict) -> int:
    system = body.get("system")
    extra = count_tokens(content_text(system)) + 3 if system else 0
    messages = body.get("messages") if isinstance(body.get("messages"), list) else []
    return chat_prompt_tokens(messages) + extra


class AgentAPIMixin:
    def _anthropic_error(self, status: int, err_type: str, message: str) -> None:
        self._json(status, {"type": "error", "error": {"type": err_type, "message": message}})

    def _agent_body(self, required: tuple[str, ...], anthropic: bool) -> dict | None:
        """The parsed body, or None after answering with the error (model, validation, drain)."""
        body, err = validation.parse_body(self._body())
        err = err or validation.check(body, required)
        if err:
            self._error(*err)
            return None
        model = body.get("model")
        if model and model not in self.engine.cfg.served_names:
            text = M.MODEL_NOT_FOUND.format(model=model)
            if anthropic:
                self._anthropic_error(404, "NotFoundError", text)
            else:
                self._error(404, text, "NotFoundError", "model")
            return None
        if self._refuse_while_stopping():
            return None
        return body

    def _generate(self, prompt_tokens: int, output_tokens: int, on_tokens=None) -> Request:
        """Schedule, prefill and decode one request at the physics rate (Interrupted by a shutdown)."""
        eng = self.engine
        req = Request(prompt_tokens, output_tokens)
        if not eng.admit(req):
            raise Interrupted("abort")
        reason = "abort"
        try:
            with eng.lock:
                eng.prompt_tokens += prompt_tokens
            time.sleep(prompt_tokens / max(eng.prefill, 1e-9) + physics.TTFT_OVERHEAD_S)
            self._decode(req, on_tokens)
            reason = "length"
        finally:
            eng.finish(req, reason, output_tokens)
        return req

    # ------------------------------------------------------------------------------------------ Anthropic

    def _count_tokens(self) -> None:
        body = self._agent_body(("model", "messages"), anthropic=True)
        if body is not None:
            n = _anthropic_prompt_tokens(body)
            self._json(200, {"input_tokens": n, "context_management": {"original_input_tokens": n}})

    def _messages(self) -> None:
        body = self._agent_body(("model", "messages", "max_tokens"), anthropic=True)
        if body is None:
            return
        prompt, out = _anthropic_prompt_tokens(body), int(body["max_tokens"])
        mid, name = "chatcmpl-" + uuid.uuid4().hex, self.engine.cfg.name
        if not body.get("stream"):
            try:
                req = self._generate(prompt, out)
            except Interrupted:
                return self._anthropic_error(500, "InternalServerError", M.ENGINE_DEAD)
            return self._json(200, {"id": mid, "type": "message", "role": "assistant",
                                    "content": [{"type": "text", "text": words_text(req.emitted)}], "model": name,
                                    "stop_reason": "max_tokens", "usage": {"input_tokens": prompt,
                                                                           "output_tokens": req.emitted}})
        send = self._start_sse()

        def event(kind: str, data: dict) -> bytes:
            return f"event: {kind}\ndata: ".encode() + json.dumps({"type": kind, **data},
                                                                  separators=(",", ":")).encode() + b"\n\n"

        send(event("message_start", {"message": {
            "id": mid, "type": "message", "role": "assistant", "content": [], "model": name, "stop_reason": None,
            "stop_sequence": None, "usage": {"input_tokens": prompt, "output_tokens": 0}}}) +
            event("content_block_start", {"content_block": {"type": "text", "text": ""}, "index": 0}))

        def on_tokens(start: int, k: int) -> None:
            send(b"".join(event("content_block_delta", {"delta": {"type": "text_delta", "text": words_text(i + 1, i)},
                                                        "index": 0}) for i in range(start, start + k)))
        try:
            req = self._generate(prompt, out, on_tokens)
        except Interrupted:
            send(event("error", {"error": {"type": "InternalServerError", "message": M.ENGINE_DEAD}}))
        else:
            send(event("content_block_stop", {"index": 0}) + event("message_delta", {
                "delta": {"stop_reason": "max_tokens", "stop_sequence": None},
                "usage": {"input_tokens": prompt, "output_tokens": req.emitted}}) + event("message_stop", {}))
        self.wfile.write(b"0\r\n\r\n")

    def _start_sse(self):
        self.send_response(200)
        self.send_header("content-type", "text/event-stream; charset=utf-8")
        self.send_header("transfer-encoding", "chunked")
        self.end_headers()
        self._access(200)
        return lambda payload: self.wfile.write(b"%x\r\n%s\r\n" % (len(payload), payload))

    # ------------------------------------------------------------------------------------------ OpenAI Responses

    def _responses(self) -> None:
        body = self._agent_body(("model", "input"), anthropic=False)
        if body is None:
            return
        inp = body["input"]
        prompt = count_tokens(inp) + 3 if isinstance(inp, str) else chat_prompt_tokens(inp if isinstance(inp, list)
                                                                                          else [])
        if body.get("instructions"):
            prompt += count_tokens(str(body["instructions"])) + 3
        limit = body.get("max_output_tokens")
        try:
            req = self._generate(prompt, int(limit) if limit is not None else DEFAULT_OUTPUT_TOKENS)
        except Interrupted:
            return self._error(500, M.ENGINE_DEAD, "EngineDeadError")
        text = {"annotations": [], "text": words_text(req.emitted), "type": "output_text", "logprobs": None}
        cut = limit is not None
        self._json(200, {
            "id": "resp_" + uuid.uuid4().hex, "created_at": int(time.time()),
            "incomplete_details": {"reason": "max_output_tokens"} if cut else None,
            "instructions": body.get("instructions"), "metadata": None, "model": self.engine.cfg.name,
            "object": "response", "output": [{"id": "msg_" + uuid.uuid4().hex, "content": [text], "role": "assistant",
                                              "status": "completed", "type": "message"}],
            "parallel_tool_calls": True, "temperature": body.get("temperature", 1.0), "tool_choice": "none",
            "tools": [], "top_p": body.get("top_p", 1.0), "background": False, "max_output_tokens": limit,
            "previous_response_id": None, "reasoning": None, "service_tier": "auto",
            "status": "incomplete" if cut else "completed", "text": None, "truncation": "disabled",
            "usage": {"input_tokens": prompt, "input_tokens_details": {"cached_tokens": 0},
                      "output_tokens": req.emitted, "output_tokens_details": {"reasoning_tokens": 0},
                      "total_tokens": prompt + req.emitted},
            "user": None})
