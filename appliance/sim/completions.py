"""The stand-in engine's OpenAI completion routes: validation with vLLM's error wordings, scheduling, decoding at
the physics rate, JSON and SSE answers (usage chunk, `[DONE]`), and what a drain or an abort does to a request in
flight. A mixin of appliance.sim.server.Handler. Stdlib only."""

from __future__ import annotations

import json
import os
import time
import uuid

from appliance.sim import messages as M
from appliance.sim import physics, validation
from appliance.sim.config import DEFAULT_OUTPUT_TOKENS, WORDS, chat_prompt_tokens, content_text, count_tokens
from appliance.sim.core import Request, crash
from appliance.sim.openai_api import full_response, make_tool_call, split_text, usage_of


class Interrupted(Exception):
    """A request cut short by the engine's shutdown: "abort" (no drain window) or "expired" (the window ran out)."""


class CompletionsMixin:
    # ------------------------------------------------------------------------------------------ completions

    def _refuse_while_stopping(self) -> bool:
        """During a drain the API server still answers, but a NEW request fails (HTTP 500, measured on 0.32)."""
        if self.engine.stopping is None:
            return False
        self._error(500, M.SHUTDOWN_NEW_REQUEST, "InternalServerError")
        return True

    def _completion(self, chat: bool) -> None:
        eng = self.engine
        cfg = eng.cfg
        body, err = validation.parse_body(self._body())
        err = err or validation.check(body, ("messages",) if chat else ())
        if err:
            return self._error(*err)
        model = body.get("model")
        if model and model not in cfg.served_names:
            return self._error(404, M.MODEL_NOT_FOUND.format(model=model), "NotFoundError", "model")
        if self._refuse_while_stopping():
            return None
        if chat:
            messages = body.get("messages")
            if not isinstance(messages, list):
                return self._error(400, "Field required: messages", "BadRequestError")
            prompt_text = " ".join(content_text(m.get("content")) for m in messages if isinstance(m, dict))
            prompt_tokens = chat_prompt_tokens(messages)
        else:
            prompt = body.get("prompt", "")
            prompt_text = prompt if isinstance(prompt, str) else " ".join(map(str, prompt))
            prompt_tokens = count_tokens(prompt_text) if isinstance(prompt, str) else len(prompt)
            messages = []

        tools = body.get("tools") if chat else None
        tool_choice = body.get("tool_choice", "auto" if tools else "none") if chat else "none"
        if chat and tool_choice not in (None, "none"):
            if not tools:
                return self._error(400, M.TOOL_CHOICE_NEEDS_TOOLS, "BadRequestError")
            if tool_choice == "auto" and not (cfg.enable_auto_tool_choice and cfg.tool_call_parser):
                return self._error(400, M.AUTO_TOOL_CHOICE, "BadRequestError")
            if tool_choice != "auto" and not cfg.tool_call_parser:
                choice = tool_choice if isinstance(tool_choice, str) else json.dumps(tool_choice)
                return self._error(400, M.TOOL_CHOICE_NEEDS_PARSER.format(choice=choice), "BadRequestError")

        param = "max_completion_tokens" if chat and body.get("max_completion_tokens") is not None else "max_tokens"
        explicit = body.get(param)
        max_len = eng.max_model_len
        if explicit is not None:
            explicit = int(explicit)
            if explicit > max_len:
                return self._error(400, M.OUTPUT_TOO_LONG.format(param=param, out=explicit, max_len=max_len),
                                   "BadRequestError", param)
        out = explicit or 0
        max_input = max_len - out
        if prompt_tokens > max_input:
            # the tokenizer truncates at max_input + 1, hence vLLM's "at least"
            shown = max_input + 1
            msg = M.CONTEXT_LENGTH.format(max_len=max_len, out=out, q="at least ", prompt=shown, total=shown + out)
            return self._error(400, msg, "BadRequestError", "input_tokens")
        if eng.runtime_fault in ("http500", "dead"):
            text = M.INTERNAL if eng.runtime_fault == "http500" else M.ENGINE_DEAD
            return self._error(500, text, "InternalServerError")

        output_tokens = explicit if explicit is not None else min(DEFAULT_OUTPUT_TOKENS, max_len - prompt_tokens)
        finish = "length" if (explicit is not None or body.get("ignore_eos")) else "stop"
        stream = bool(body.get("stream"))
        include_usage = bool((body.get("stream_options") or {}).get("include_usage")) and stream

        tool_call = None
        if chat and tools and tool_choice not in (None, "none"):
            last_role = messages[-1].get("role") if messages and isinstance(messages[-1], dict) else None
            if tool_choice != "auto" or last_role != "tool":
                tool_call = make_tool_call(tools, tool_choice)
        if tool_call is not None:
            output_tokens = max(1, min(output_tokens, count_tokens(tool_call["function"]["arguments"]) + 4))
            finish = "tool_calls"

        req = Request(prompt_tokens, output_tokens)
        eng.prefix_cache(prompt_text, prompt_tokens)
        if not eng.admit(req):
            return self._error(503, M.ENGINE_DEAD, "ServiceUnavailableError")
        reason = "abort"
        try:
            queued = time.monotonic() - req.arrival
            with eng.lock:
                eng.h["queue"].observe(queued)
                eng.prompt_tokens += prompt_tokens
            prefill_s = prompt_tokens / max(eng.prefill, 1e-9) + physics.TTFT_OVERHEAD_S
            time.sleep(prefill_s)
            with eng.lock:
                eng.h["prefill"].observe(prefill_s)
            rid = ("chatcmpl-" if chat else "cmpl-") + uuid.uuid4().hex
            created = int(time.time())
            if stream:
                reason = self._stream(req, rid, created, chat, tool_call, finish, include_usage)
            else:
                try:
                    self._decode(req, None)
                except Interrupted as stop:
                    reason = "abort" if str(stop) == "abort" else "error"
                    return self._error(500, M.ENGINE_DEAD, "EngineDeadError")
                self._json(200, full_response(rid, created, cfg, chat, req, tool_call, finish))
                reason = "stop" if finish in ("stop", "tool_calls") else "length"
        finally:
            eng.finish(req, reason, explicit)

    def _decode(self, req: Request, on_tokens) -> None:
        """Advance `req` at the physics rate; call on_tokens(start, k) for each batch of k new tokens."""
        eng = self.engine
        crash_after = int(os.environ.get("APPLIANCE_SIM_CRASH_AFTER_TOKENS", "20") or 20)
        last = time.monotonic()
        rate = eng.per_request_rate()
        credit = 0.0
        while req.emitted < req.output_tokens:
            if eng.stopping in ("abort", "expired"):
                raise Interrupted(eng.stopping)
            now = time.monotonic()
            credit += (now - last) * rate
            last = now
            rate = eng.per_request_rate()
            k = min(int(credit), req.output_tokens - req.emitted)
            if req.emitted == 0 and k == 0:
                k, credit = 1, credit + 1  # the first token comes with the prefill
            if k:
                if eng.runtime_fault == "crash_mid_stream" and req.emitted + k > crash_after:
                    k = max(0, crash_after - req.emitted)
                    if k and on_tokens:
                        on_tokens(req.emitted, k)
                    crash(eng)
                start = req.emitted
                credit -= k
                eng.emitted(req, k, now)
                if on_tokens:
                    on_tokens(start, k)
                continue
            wait = (1.0 - credit) / rate if rate > 0 else 0.05
            time.sleep(min(max(wait, 0.0005), 0.05))

    def _stream(self, req, rid, created, chat, tool_call, finish, include_usage) -> str:
        eng = self.engine
        cfg = eng.cfg
        self.send_response(200)
        self.send_header("content-type", "text/event-stream; charset=utf-8")
        self.send_header("transfer-encoding", "chunked")
        self.end_headers()
        self._access(200)
        obj = "chat.completion.chunk" if chat else "text_completion"

        def chunk(choice: dict, usage=None) -> bytes:
            data = {"id": rid, "object": obj, "created": created, "model": cfg.name, "choices": [choice]}
            if usage is not None:
                data["usage"] = usage
            return b"data: " + json.dumps(data, separators=(",", ":")).encode() + b"\n\n"

        def send(payload: bytes) -> None:
            self.wfile.write(b"%x\r\n%s\r\n" % (len(payload), payload))

        reasoning_n = min(16, req.output_tokens // 4) if cfg.reasoning_parser and not tool_call else 0
        args = tool_call["function"]["arguments"] if tool_call else ""
        pieces = split_text(args, req.output_tokens) if tool_call else []
        if chat:
            first = {"role": "assistant", "content": ""}
            send(chunk({"index": 0, "delta": first, "logprobs": None, "finish_reason": None}))

        def on_tokens(start: int, k: int) -> None:
            out = []
            for i in range(start, start + k):
                last = i == req.output_tokens - 1
                fin = finish if last else None
                if chat:
                    if tool_call:
                        tc = {"index": 0, "function": {"arguments": pieces[i]}}
                        if i == 0:
                            tc = {"index": 0, "id": tool_call["id"], "type": "function",
                                  "function": {"name": tool_call["function"]["name"], "arguments": pieces[i]}}
                        delta = {"tool_calls": [tc]}
                    elif i < reasoning_n:
                        delta = {"reasoning": WORDS[i % len(WORDS)]}
                    else:
                        delta = {"content": WORDS[i % len(WORDS)]}
                    choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": fin}
                else:
                    choice = {"index": 0, "text": WORDS[i % len(WORDS)], "logprobs": None, "finish_reason": fin,
                              "stop_reason": None}
                if fin:
                    choice["stop_reason"] = None
                out.append(chunk(choice))
            send(b"".join(out))

        reason = "stop" if finish in ("stop", "tool_calls") else "length"
        tail = b""
        try:
            self._decode(req, on_tokens)
        except Interrupted as stop:
            if str(stop) == "expired":  # the drain window ran out: an error event inside the 200 stream
                err = {"error": {"message": M.ENGINE_DEAD, "type": "InternalServerError", "param": None, "code": 500}}
                # json.dumps' default separators: this event is written by a different code path than the chunks
                send(b"data: " + json.dumps(err).encode() + b"\n\ndata: [DONE]\n\n")
                self.wfile.write(b"0\r\n\r\n")
                return "error"
            reason = "abort"
            end = {"index": 0, "delta": {"content": ""}, "logprobs": None} if chat else {"index": 0, "text": ""}
            tail += chunk({**end, "finish_reason": "abort", "stop_reason": None})
        if include_usage:
            usage = {k: v for k, v in usage_of(req).items() if k != "prompt_tokens_details"}
            data = {"id": rid, "object": obj, "created": created, "model": cfg.name, "choices": [], "usage": usage}
            tail += b"data: " + json.dumps(data, separators=(",", ":")).encode() + b"\n\n"
        tail += b"data: [DONE]\n\n"
        send(tail)
        self.wfile.write(b"0\r\n\r\n")
        return reason
