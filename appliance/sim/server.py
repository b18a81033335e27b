"""The stand-in engine's HTTP server: uvicorn-like HTTP/1.1 (keep-alive, chunked SSE, TCP_NODELAY), the OpenAI
routes, auth, the access log and the sim-only fault routes. Stdlib only."""

from __future__ import annotations

import json
import sys
import time
import uuid
from http.server import BaseHTTPRequestHandler, HTTPServer
from socketserver import ThreadingMixIn

from appliance.sim import agent_apis
from appliance.sim.completions import CompletionsMixin
from appliance.sim.config import RUNTIME_FAULTS, SHUTDOWN, sim_version
from appliance.sim.core import Engine

class Server(ThreadingMixIn, HTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 1024

    def handle_error(self, request, client_address) -> None:
        """A client that hangs up (a health check timing out, an agent cancelling) is not an error worth a
        traceback — uvicorn does not print one either."""
        exc = sys.exc_info()[1]
        if isinstance(exc, (ConnectionResetError, BrokenPipeError, ConnectionAbortedError, TimeoutError)):
            return
        super().handle_error(request, client_address)


class Handler(CompletionsMixin, BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # SSE through a proxy stalls ~40 ms per chunk without TCP_NODELAY
    server_version = "uvicorn"

    def version_string(self) -> str:
        return "uvicorn"
    engine: Engine  # set on the subclass built in serve()

    # ------------------------------------------------------------------------------------------ plumbing

    def log_message(self, fmt, *args):  # uvicorn access log
        pass

    def _access(self, status: int) -> None:
        if self.engine.cfg.access_log and self.path.split("?")[0] not in self.engine.cfg.quiet_paths:
            phrase = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 404: "Not Found", 405: "Method Not Allowed",
                      500: "Internal Server Error", 503: "Service Unavailable"}.get(status, "")
            self.engine.log.plain(
                f'INFO:     {self.client_address[0]}:{self.client_address[1]} - "{self.command} {self.path} '
                f'{self.request_version}" {status} {phrase}',
            )

    def _send(self, status: int, body: bytes, ctype: str = "application/json", extra: dict | None = None) -> None:
        self.send_response(status)
        self.send_header("content-type", ctype)
        self.send_header("content-length", str(len(body)))
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if body and self.command != "HEAD":
            self.wfile.write(body)
        self._access(status)

    def _json(self, status: int, obj) -> None:
        self._send(status, json.dumps(obj, separators=(",", ":")).encode())

    def _error(self, status: int, message: str, err_type: str, param: str | None = None) -> None:
        self._json(status, {"error": {"message": message, "type": err_type, "param": param, "code": status}})

    def _body(self):
        length = self.headers.get("content-length")
        if self.headers.get("transfer-encoding", "").lower() == "chunked":
            data = b""
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    self.rfile.readline()
                    break
                data += self.rfile.read(size)
                self.rfile.readline()
        else:
            data = self.rfile.read(int(length)) if length else b""
        return data

    def _hang(self) -> None:
        """Accept and never answer (a hung engine): hold the connection until shutdown."""
        while not SHUTDOWN.is_set():
            time.sleep(0.1)
        self.close_connection = True

    def _authorized(self) -> bool:
        keys = self.engine.cfg.api_keys
        if not keys or not self.path.startswith("/v1"):
            return True
        auth = self.headers.get("authorization", "")
        return any(auth == f"Bearer {k}" for k in keys)

    # ------------------------------------------------------------------------------------------ routes

    def do_GET(self):
        self._route("GET")

    def do_POST(self):
        self._route("POST")

    def do_HEAD(self):  # uvicorn/FastAPI: GET routes do not answer HEAD
        self._route("HEAD")

    def _route(self, method: str) -> None:
        eng = self.engine
        path = self.path.split("?", 1)[0]
        with eng.lock:
            eng.in_flight += 1
        try:
            if path.startswith("/_sim/"):
                return self._sim(method, path)
            if eng.runtime_fault == "hang":
                return self._hang()
            if not self._authorized():
                return self._json(401, {"error": "Unauthorized"})
            routes = {
                ("GET", "/health"): self._health,
                ("GET", "/ping"): self._health,
                ("POST", "/ping"): self._health,
                ("GET", "/version"): lambda: self._json(200, {"version": sim_version()}),
                ("GET", "/v1/models"): self._models,
                ("GET", "/metrics"): self._metrics,
                ("GET", "/load"): lambda: self._json(200, {"server_load": len(eng.running) + eng.waiting}),
                ("POST", "/v1/chat/completions"): lambda: self._completion(chat=True),
                ("POST", "/v1/completions"): lambda: self._completion(chat=False),
                # Anthropic Messages, count_tokens and the Responses API (vLLM >= 0.19 serves them): agent_apis.py
                ("POST", "/v1/messages"): lambda: agent_apis.serve(self, "messages"),
                ("POST", "/v1/messages/count_tokens"): lambda: agent_apis.serve(self, "count_tokens"),
                ("POST", "/v1/responses"): lambda: agent_apis.serve(self, "responses"),
            }
            handler = routes.get((method, path))
            if handler is None:
                if any(p == path for _, p in routes):
                    return self._json(405, {"detail": "Method Not Allowed"})
                return self._json(404, {"detail": "Not Found"})
            handler()
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        finally:
            with eng.lock:
                eng.in_flight -= 1

    def _health(self) -> None:
        if self.engine.runtime_fault == "dead":
            return self._send(503, b"")
        self._send(200, b"")

    def _models(self) -> None:
        eng = self.engine
        created = int(time.time())
        data = [
            {
                "id": name,
                "object": "model",
                "created": created,
                "owned_by": "vllm",
                "root": eng.cfg.model,
                "parent": None,
                "max_model_len": eng.max_model_len,
                "permission": [
                    {
                        "id": f"modelperm-{uuid.uuid4().hex}",
                        "object": "model_permission",
                        "created": created,
                        "allow_create_engine": False,
                        "allow_sampling": True,
                        "allow_logprobs": True,
                        "allow_search_indices": False,
                        "allow_view": True,
                        "allow_fine_tuning": False,
                        "organization": "*",
                        "group": None,
                        "is_blocking": False,
                    }
                ],
            }
            for name in eng.cfg.served_names
        ]
        self._json(200, {"object": "list", "data": data})

    def _metrics(self) -> None:
        if not self.engine.cfg.log_stats:  # --disable-log-stats: no vllm:* metrics at all (techref §1.2)
            return self._send(200, b"", "text/plain; version=0.0.4; charset=utf-8")
        self._send(200, self.engine.metrics_text().encode(), "text/plain; version=0.0.4; charset=utf-8")

    def _sim(self, method: str, path: str) -> None:
        eng = self.engine
        if method == "POST" and path == "/_sim/fault":
            try:
                fault = json.loads(self._body() or b"{}").get("fault", "none")
            except (ValueError, AttributeError):
                fault = None
            if fault not in RUNTIME_FAULTS:
                return self._json(400, {"error": f"fault must be one of {sorted(RUNTIME_FAULTS)}"})
            eng.runtime_fault = fault
            return self._json(200, {"fault": fault})
        if method == "GET" and path == "/_sim/state":
            return self._json(200, {"state": eng.state, "fault": eng.runtime_fault, "r1": eng.r1,
                                    "running": len(eng.running), "waiting": eng.waiting})
        self._json(404, {"detail": "Not Found"})
