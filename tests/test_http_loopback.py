"""appliance.http.Loopback, the sampler's HTTP client (stdlib http.client on kept-alive connections): what a
probe must tell apart — answered, refused, accepted-but-silent (a loading or hung engine) — and a kept-alive
connection the server closed while idle."""

import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from appliance import http


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, like uvicorn and HAProxy
    seen_conns: set = set()

    def do_GET(self):
        Handler.seen_conns.add(self.client_address)
        if self.path == "/close":  # answers, then closes the connection without saying so
            body = b"bye"
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            self.close_connection = True
            return
        body = f"path={self.path} auth={self.headers.get('Authorization')}".encode()
        self.send_response(503 if self.path == "/busy" else 200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *a):
        pass


@pytest.fixture
def server():
    srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    srv.daemon_threads = True
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    Handler.seen_conns = set()
    yield srv
    srv.shutdown()
    srv.server_close()


def url(srv, path):
    return f"http://127.0.0.1:{srv.server_address[1]}{path}"


def test_answers_keep_one_connection_and_carry_headers(server):
    with http.Loopback(timeout_s=2) as c:
        for i in range(5):
            p = http.get(c, url(server, f"/metrics?i={i}"), headers={"Authorization": "Bearer k"})
            assert p.ok and p.status == 200 and p.body == f"path=/metrics?i={i} auth=Bearer k"
        busy = http.get(c, url(server, "/busy"))
        assert not busy.ok and busy.status == 503 and busy.error is None
    assert len(Handler.seen_conns) == 1  # one kept-alive connection for all six


def test_a_connection_the_server_closed_is_opened_again(server):
    with http.Loopback(timeout_s=2) as c:
        assert http.get(c, url(server, "/close")).ok
        assert http.get(c, url(server, "/after")).body.startswith("path=/after")
    assert len(Handler.seen_conns) == 2


def test_refused_and_accepted_but_silent_are_told_apart():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now
    c = http.Loopback(timeout_s=0.3)
    assert http.get(c, f"http://127.0.0.1:{port}/health").error == "refused"
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(1)  # accepts TCP (the kernel does) but never answers: a hung engine
    try:
        assert http.get(c, f"http://127.0.0.1:{silent.getsockname()[1]}/health").error == "timeout"
    finally:
        silent.close()


def test_only_plain_http_and_a_bug_is_not_swallowed():
    with pytest.raises(ValueError, match="plain HTTP"):
        http.Loopback().get("https://127.0.0.1:1/x")

    class Broken:
        def get(self, url, headers=None):
            raise KeyError("a bug")

    with pytest.raises(KeyError):
        http.get(Broken(), "http://127.0.0.1:1/")
