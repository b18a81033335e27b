"""The network side of the fake rig: HTTP probes (engines' /health, the proxy's liveness) answered by the
FakeDocker's containers, and HAProxy's runtime API answered by the running `frontdoor` container.

Both record what they were asked in the shared journal, so a test can check that the front door enabled the
aliases only after /health said 200, and drained them before the old engines stopped.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlparse

from appliance.errors import StackError
from appliance.http import Probe

from .fakedocker import FakeDocker


class FakeHttpClient:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self) -> None:
        pass


class FakeHTTP:
    """`appliance.http.client/get` over the FakeDocker: an engine's /health is its container's; the proxy's
    liveness is ok while its LiteLLM container runs (after `liveness_after` probes)."""

    def __init__(self, d: FakeDocker, proxy_port: int):
        self.d = d
        self.proxy_port = proxy_port
        self.liveness_after = 1
        self.liveness_probes = 0

    def client(self, timeout_s: float = 2.0, **kw) -> FakeHttpClient:
        return FakeHttpClient()

    def get(self, c, url: str, headers: dict | None = None) -> Probe:
        u = urlparse(url)
        if u.path == "/health/liveliness" and u.port in (self.proxy_port, self.proxy_port + 1, self.proxy_port + 2):
            # through the front door, or straight to the LiteLLM on port + 1 (`litellm`) / + 2 (`litellm-b`)
            want = {self.proxy_port + 1: "litellm", self.proxy_port + 2: "litellm-b"}.get(u.port)
            running = [c for c in self.d.running("appliance-proxy") if c.service != "frontdoor"]
            if not [c for c in running if want is None or c.service == want]:
                return Probe(False, error="refused")
            self.liveness_probes += 1
            return Probe(True, 200, body='"I\'m alive!"') if self.liveness_probes >= self.liveness_after else \
                Probe(False, 503)
        if u.path == "/health":
            for ct in self.d.containers:
                if ct.port == u.port and ct.health():
                    self.d.journal.append(("healthy", ct.project, ct.service))
                    return Probe(True, 200, body="")
        return Probe(False, error="refused")


class FakeHAProxy:
    """`appliance.frontdoor.admin`: the runtime API of the HAProxy in the running `frontdoor` container.
    `show info` gives the worker's pid (a SIGUSR2 to the container starts a new worker); `set server B/S …`
    answers like HAProxy for a backend that the loaded config does not have."""

    def __init__(self, d: FakeDocker):
        self.d = d
        self.fail: set[str] = set()  # commands (or parts of them) the socket does not answer

    @property
    def commands(self) -> list[str]:
        return [e[1] for e in self.d.journal if e[0] == "haproxy"]

    def admin(self, sock: Path, command: str, timeout_s: float = 2.0) -> str:
        fds = self.d.running("appliance-proxy")
        fd = [c for c in fds if c.service == "frontdoor"]
        if not fd or any(f in command for f in self.fail):
            raise StackError(f"the front door's runtime socket {sock} does not answer ([Errno 111] Connection "
                             "refused)", "is the proxy running? `appliance up` starts it")
        if command == "show info":
            return f"Name: HAProxy\nVersion: 2.6.12\nPid: {fd[0].worker_pid}\nProcess_num: 1\n"
        self.d.journal.append(("haproxy", command))
        if command.startswith("set server "):
            backend = command.split()[2].split("/")[0]
            if backend not in fd[0].backends:
                return "No such backend.\n"
            return "\n"
        return "Unknown command. Please enter one of the following commands only :\n"
