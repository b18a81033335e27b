"""The sampler tells an engine's health truthfully: hung (accepts TCP, no answer), failing (5xx outside a drain
the appliance started), draining (5xx during a switch), loading (refused, process alive, logging), stalled
(refused, alive, silent), down; each engine with its fallback count."""

from __future__ import annotations

import http.server
import socket
import threading
from types import SimpleNamespace

import pytest

from appliance import yamlsrc
from appliance.profile import validate
from appliance.runtime.base import ServiceState
from appliance.stack.state import RigState
from appliance.telemetry import Sampler


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _Answer(http.server.BaseHTTPRequestHandler):
    code = 500

    def do_GET(self):
        self.send_response(self.code)
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, *a):
        pass


@pytest.fixture
def servers():
    """port → what listens there: a 500-answering server, a socket that accepts and never answers, nothing."""
    made = {}
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Answer)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    made["error"] = srv.server_address[1]
    hung = socket.socket()
    hung.bind(("127.0.0.1", 0))
    hung.listen(16)  # the kernel accepts; nobody answers
    made["hung"] = hung.getsockname()[1]
    made["refused"] = _free_port()
    yield made
    srv.shutdown()
    hung.close()


class FakeRuntime:
    def __init__(self, alive: bool, lines: list[str]):
        self.alive, self.lines = alive, lines

    def states(self, project):
        return [ServiceState(service="eng", status="running" if self.alive else "exited", restarts=0)]

    def new_lines(self, project, service, cursor):
        out, self.lines = self.lines, []
        return out


def _sample(port: int, *, alive=True, lines=("INFO loading weights",), starting=None):
    data = {"name": "h", "card": "4090", "gpus": [0],
            "engines": [{"name": "eng", "aliases": ["local"], "port": port, "model": "Qwen/Qwen2.5-7B-Instruct",
                         "max_model_len": 4096}]}
    profile = validate(yamlsrc.Source("h.yaml", data))
    state = RigState(starting=starting)
    rig = SimpleNamespace(label="test rig", runtime=FakeRuntime(alive, list(lines)),
                          state=SimpleNamespace(load=lambda: state),
                          gpus=lambda: SimpleNamespace(read_all=lambda: []))
    stack = SimpleNamespace(rig=rig, warnings=lambda: [], active_profile=lambda state=None: profile,
                            project=lambda name: f"appliance-{name}")
    sampler = Sampler(stack, probe_timeout_s=0.5)
    try:
        return sampler.sample().engines[0]
    finally:
        sampler.close()


def test_hung_engine_is_hung(servers):
    assert _sample(servers["hung"]).health == "hung"


def test_500_is_failing_outside_a_drain(servers):
    assert _sample(servers["error"]).health == "failing"


def test_500_during_a_switch_is_draining(servers):
    assert _sample(servers["error"], starting="other").health == "draining"


def test_refused_alive_and_logging_is_loading(servers):
    assert _sample(servers["refused"]).health == "loading"


def test_refused_alive_and_silent_is_stalled(servers):
    assert _sample(servers["refused"], lines=()).health == "stalled"


def test_refused_and_no_process_is_down(servers):
    assert _sample(servers["refused"], alive=False).health == "down"
