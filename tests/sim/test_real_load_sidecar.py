"""The sidecar that makes simulated cards follow a REAL engine (appliance/sim/real_load.py): a busy engine that
answers /metrics slowly is not an engine that is gone. Before, one slow stretch (a CPU engine holding every core
on a loaded CI box) ended the sidecar for good and the card read idle under load."""

from __future__ import annotations

import http.server
import json
import os
import socket
import subprocess
import sys
import threading
import time

from appliance.sim import state
from appliance.sim.gpu import SimGPUs

PAGE = ('vllm:num_requests_running{engine="0",model_name="m"} 2.0\n'
        'vllm:num_requests_waiting{engine="0",model_name="m"} 0.0\n'
        'vllm:generation_tokens_total{engine="0",model_name="m"} 100.0\n')


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_slow_engine_keeps_its_load_and_a_gone_one_ends_the_sidecar(tmp_path):
    SimGPUs.create(tmp_path, ["3090"])
    delay = {"s": 0.0}

    class Metrics(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - the stdlib's name
            time.sleep(delay["s"])
            body = PAGE.encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *a):
            pass

    port = free_port()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Metrics)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    env = dict(os.environ, **{state.ENV_DIR: str(tmp_path)})
    proc = subprocess.Popen([sys.executable, "-m", "appliance.sim.real_load", "--port", str(port), "--gpus", "0",
                             "--every", "0.2"], env=env)
    engine_file = tmp_path / f"engine-real-{port}.json"

    def power() -> float | None:
        try:
            return json.loads(engine_file.read_text())["per_gpu"]["0"]["power_w"]
        except (OSError, ValueError, KeyError):
            return None

    try:
        deadline = time.time() + 20
        while (power() or 0) < 60 and time.time() < deadline:
            time.sleep(0.2)
        busy = power()
        assert busy is not None and busy > 60  # 2 requests running: well above the 3090's idle
        delay["s"] = 4.0  # slower than the sidecar's timeout, for longer than the 5 s that mean "gone"
        time.sleep(9)
        assert proc.poll() is None and power() == busy  # still running, still showing the load
        delay["s"] = 0.0
        server.shutdown()
        server.server_close()  # now refused: the engine is gone
        proc.wait(timeout=20)
        assert json.loads(engine_file.read_text())["state"] == "stopped"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
