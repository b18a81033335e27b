"""What one loopback GET costs the sampler: httpx vs the standard library's http.client (appliance.http.Loopback).

    .venv/bin/python benchmarks/http_cost.py [--requests 300]

Serves a /health (2 bytes) and a /metrics page (the size of a real vLLM 0.32 /metrics, ~50 KB) from a local
keep-alive HTTP/1.1 server in a child process, then measures in this process: the import time of each client,
and the CPU time (this thread's) per GET on a kept-alive connection. The TUI's sampler makes five such GETs a
second (two engines × /health + /metrics, and the door's liveness). Ratios from one run; nothing asserted.
"""

from __future__ import annotations

import argparse
import multiprocessing
import subprocess
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

METRICS = "".join(f'vllm:some_metric_total{{engine="0",model_name="m",le="{i}"}} {i * 1.5}\n' for i in range(900))


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        body = (b"ok" if self.path == "/health" else METRICS.encode())
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *a):
        pass


def serve(q) -> None:
    srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    q.put(srv.server_address[1])
    srv.serve_forever()


def import_ms(stmt: str) -> float:
    code = f"import time; t=time.perf_counter(); {stmt}; print((time.perf_counter()-t)*1000)"
    return float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout)


def per_get_ms(client, url: str, n: int) -> float:
    for _ in range(10):
        client.get(url).text
    t = time.thread_time()
    for _ in range(n):
        client.get(url).text
    return (time.thread_time() - t) / n * 1000


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=300)
    args = ap.parse_args()
    q = multiprocessing.Queue()
    proc = multiprocessing.Process(target=serve, args=(q,), daemon=True)
    proc.start()
    try:
        port = q.get(timeout=10)
        import httpx

        from appliance import http

        clients = {"httpx": httpx.Client(timeout=2, trust_env=False), "Loopback": http.Loopback(timeout_s=2)}
        rows = {name: [import_ms("import httpx; httpx.Client()" if name == "httpx" else
                                 "import appliance.http as h; h.Loopback()")] for name in clients}
        for path in ("/health", "/metrics"):
            for name, c in clients.items():
                rows[name].append(per_get_ms(c, f"http://127.0.0.1:{port}{path}", args.requests))
        print(f"{'client':<10}{'import + client':>17}{'CPU per /health':>18}{'CPU per /metrics':>19}")
        for name, (imp, health, met) in rows.items():
            print(f"{name:<10}{imp:>14.0f} ms{health:>15.2f} ms{met:>16.2f} ms")
        h, lb = rows["httpx"], rows["Loopback"]
        print(f"{'ratio':<10}{h[0] / lb[0]:>16.1f}×{h[1] / lb[1]:>17.1f}×{h[2] / lb[2]:>18.1f}×")
        return 0
    finally:
        proc.terminate()


if __name__ == "__main__":
    raise SystemExit(main())
