"""Docker: `docker compose` (Compose v2 CLI plugin) to create and remove projects, the docker SDK to read state,
health, exit codes, restarts and logs.

`run_compose` is the only place in the appliance that starts a subprocess for docker: argv is built as a list,
logged with shlex.join, and a failure raises a RuntimeBoundaryError carrying argv, exit code and stderr, turned
into a message a user understands.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shlex
import subprocess
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

from appliance.errors import RuntimeBoundaryError
from appliance.runtime.base import ServiceState

log = logging.getLogger("appliance.runtime")

PROJECT_LABEL = "com.docker.compose.project"
SERVICE_LABEL = "com.docker.compose.service"


class ComposeFailed(RuntimeBoundaryError):
    def __init__(self, argv: list[str], returncode: int, stderr: str, message: str, hint: str | None):
        super().__init__(message, hint)
        self.argv, self.returncode, self.stderr = argv, returncode, stderr


def _explain(argv: list[str], rc: int, stderr: str) -> tuple[str, str | None]:
    err = stderr.strip()
    last = err.splitlines()[-1] if err else f"exit code {rc}"
    low = err.lower()
    if "is not a docker command" in low or "unknown command" in low and "compose" in low:
        return ("`docker compose` is not available (the Compose v2 plugin is missing)",
                "install docker-compose-plugin, or run `make testbed` here")
    if "cannot connect to the docker daemon" in low or "permission denied" in low and "docker.sock" in low:
        return (f"docker is not reachable: {last}",
                "start docker (`sudo systemctl start docker`) or add yourself to the docker group")
    if "pull access denied" in low or "manifest unknown" in low or "no such image" in low or \
            "failed to resolve reference" in low:
        return (f"an image could not be pulled: {last}", "check the image tag in the profile; `docker pull IMAGE`")
    if 'could not select device driver "nvidia"' in low:
        return ("docker cannot give containers a GPU (no NVIDIA runtime)",
                "install the NVIDIA Container Toolkit and restart docker, or use --sim")
    if "address already in use" in low:
        return (f"a port is already in use: {last}", "stop what listens there (`ss -ltnp`) or change the port")
    return (f"`{shlex.join(argv[:4])} …` failed (exit code {rc}): {last}", "see the full error above; "
            "`appliance logs` shows the engines' output")


def run_compose(args: list[str], *, env: dict | None = None, timeout_s: float = 600, check: bool = True,
                capture: bool = True) -> subprocess.CompletedProcess:
    """Run `docker compose ARGS`. The only subprocess call for docker in the appliance."""
    argv = ["docker", "compose", *args]
    log.info("run: %s", shlex.join(argv))
    try:
        proc = subprocess.run(argv, env=env, capture_output=capture, text=True, timeout=timeout_s,
                              stdin=subprocess.DEVNULL)
    except FileNotFoundError:
        raise RuntimeBoundaryError("the docker CLI is not installed",
                                   "install docker (Debian: `apt-get install docker.io docker-compose-plugin`), "
                                   "or run without docker: --runtime process") from None
    except subprocess.TimeoutExpired:
        raise RuntimeBoundaryError(f"`{shlex.join(argv)}` did not finish within {timeout_s:.0f} s",
                                   "is the docker daemon responsive? (`docker info`)") from None
    if check and proc.returncode != 0:
        msg, hint = _explain(argv, proc.returncode, proc.stderr or "")
        raise ComposeFailed(argv, proc.returncode, proc.stderr or "", msg, hint)
    return proc


def _ts(value: str | None) -> float | None:
    """Docker's RFC 3339 timestamps (nanoseconds, Z) → epoch seconds."""
    if not value or value.startswith("0001-"):
        return None
    m = re.match(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d+)?", value)
    if not m:
        return None
    base = datetime.fromisoformat(m.group(1)).replace(tzinfo=timezone.utc).timestamp()
    return base + (float(m.group(2)) if m.group(2) else 0.0)


class DockerRuntime:
    kind = "docker"

    def __init__(self, env: dict | None = None, local_images: dict[str, str] | None = None):
        """`local_images`: image → how to build it, for images that exist only locally (never pulled)."""
        self.env = dict(os.environ if env is None else env)
        self.local_images = dict(local_images or {})
        self._client = None

    # -- SDK ---------------------------------------------------------------------------------------
    @property
    def client(self):
        if self._client is None:
            import docker

            try:
                self._client = docker.from_env(environment=self.env, timeout=30)
                self._client.ping()
            except Exception as exc:  # docker.errors.DockerException and connection errors
                self._client = None
                raise RuntimeBoundaryError(f"docker is not reachable ({exc.__class__.__name__}: {exc})",
                                           "start docker, or run without it: --runtime process") from None
        return self._client

    def compose(self, args: list[str], **kw) -> subprocess.CompletedProcess:
        return run_compose(args, env=self.env, **kw)

    def config(self, compose_file: Path) -> dict:
        out = self.compose(["-f", str(compose_file), "config", "--format", "json"], timeout_s=60)
        return json.loads(out.stdout)

    def image_exists(self, image: str) -> bool:
        import docker

        try:
            self.client.images.get(image)
            return True
        except docker.errors.ImageNotFound:
            return False

    def prepare(self, compose_file: Path, compose: dict, emit=None) -> None:
        """Before `up`: what Compose will really run (`docker compose config`) has every service on the host
        network and no project network (a bridge with a private-range subnet); every image is here (pulled
        with progress through `emit(kind, message)` when it is not)."""
        cfg = self.config(compose_file)
        bad = [n for n, svc in cfg.get("services", {}).items() if svc.get("network_mode") != "host"]
        if bad or cfg.get("networks"):
            raise RuntimeBoundaryError(f"{compose_file}: services {', '.join(bad) or '(networks defined)'} are not "
                                       "on the host network", "this is a bug in the renderer: engines must use "
                                       "network_mode: host")
        emit = emit or (lambda kind, message: None)
        for svc in compose.get("services", {}).values():
            image = svc["image"]
            if self.image_exists(image):
                continue
            if image in self.local_images:
                raise RuntimeBoundaryError(f"the image {image} is not in the local docker engine",
                                           self.local_images[image])
            emit("info", f"pulling {image} (the first pull of a vLLM image is ~10 GB)")
            for line in self.pull(image):
                emit("wait", line)

    def pull(self, image: str) -> Iterator[str]:
        """Pull with progress from the docker SDK's stream: a line every 2 s while bytes arrive."""
        import time

        import docker

        last = 0.0
        try:
            for ev in self.client.api.pull(image, stream=True, decode=True):
                now = time.time()
                if "error" in ev:
                    raise RuntimeBoundaryError(f"pulling {image}: {ev['error']}", "check the image tag and your "
                                               "network")
                prog = ev.get("progressDetail") or {}
                if prog.get("total") and now - last > 2:
                    last = now
                    yield (f"{image}: {ev.get('status', '')} {prog['current'] / 2**20:.0f} / "
                           f"{prog['total'] / 2**20:.0f} MiB")
        except docker.errors.APIError as exc:
            raise RuntimeBoundaryError(f"pulling {image} failed: {exc.explanation or exc}",
                                       "check the image tag in the profile and that this machine reaches the "
                                       "registry") from None

    def signal(self, project: str, service: str, sig: str) -> None:
        """Send `sig` to the service's container (its PID 1: HAProxy's master reloads on SIGUSR2)."""
        for c in self._containers(project):
            if c.labels.get(SERVICE_LABEL) == service:
                c.kill(signal=sig)
                return
        raise RuntimeBoundaryError(f"the {service} container of {project} is not running",
                                   "`appliance up PROFILE` starts it")

    # -- lifecycle ---------------------------------------------------------------------------------
    def up(self, project: str, compose_file: Path, compose: dict | None = None) -> None:
        self.compose(["-p", project, "-f", str(compose_file), "up", "-d", "--remove-orphans", "--no-build"],
                     timeout_s=1800)

    def down(self, project: str, compose_file: Path | None = None, timeout_s: int = 30) -> None:
        args = ["-p", project]
        if compose_file and compose_file.exists():
            args += ["-f", str(compose_file)]
        self.compose(args + ["down", "--remove-orphans", "-t", str(timeout_s)], timeout_s=timeout_s + 120)

    def stop_service(self, project: str, service: str, timeout_s: int = 30) -> None:
        for c in self._containers(project):
            if c.labels.get(SERVICE_LABEL) == service:
                c.stop(timeout=timeout_s)

    def _containers(self, project: str):
        return self.client.containers.list(all=True, filters={"label": f"{PROJECT_LABEL}={project}"})

    def states(self, project: str) -> list[ServiceState]:
        out = []
        for c in self._containers(project):
            st = c.attrs.get("State", {})
            health = (st.get("Health") or {}).get("Status")
            out.append(ServiceState(
                service=c.labels.get(SERVICE_LABEL, c.name), status=st.get("Status", c.status),
                exit_code=st.get("ExitCode") if st.get("Status") in ("exited", "dead") else None,
                restarts=int(c.attrs.get("RestartCount", 0) or 0), started_at=_ts(st.get("StartedAt")),
                health=health, oom_killed=bool(st.get("OOMKilled")), pid=st.get("Pid") or None,
                ident=c.short_id))
        return sorted(out, key=lambda s: s.service)

    def logs(self, project: str, service: str, tail: int | None = 200, follow: bool = False) -> Iterator[str]:
        """The service's output (stdout and stderr); tail=None: all of it."""
        tail = tail if tail else "all"
        for c in self._containers(project):
            if c.labels.get(SERVICE_LABEL) != service:
                continue
            if not follow:
                data = c.logs(tail=tail, stdout=True, stderr=True)
                yield from data.decode("utf-8", "replace").splitlines()
                return
            buf = b""
            for chunk in c.logs(tail=tail, stream=True, follow=True, stdout=True, stderr=True):
                buf += chunk
                while b"\n" in buf:
                    line, buf = buf.split(b"\n", 1)
                    yield line.decode("utf-8", "replace")
            if buf:
                yield buf.decode("utf-8", "replace")
            return

    def new_lines(self, project: str, service: str, cursor: dict) -> list[str]:
        """Lines written since the last call with the same `cursor` (a dict this method keeps its place in):
        asks docker only for what came after the last timestamp seen, instead of the whole log every time."""
        for c in self._containers(project):
            if c.labels.get(SERVICE_LABEL) != service:
                continue
            kw = {"since": cursor["since"]} if cursor.get("since") else {}
            raw = c.logs(stdout=True, stderr=True, timestamps=True, **kw).decode("utf-8", "replace")
            out = []
            for line in raw.splitlines():
                stamp, _, text = line.partition(" ")
                if cursor.get("last") and stamp <= cursor["last"]:
                    continue  # `since` is inclusive: lines of the last second come again
                cursor["last"] = stamp
                out.append(text)
            if cursor.get("last"):
                ts = _ts(cursor["last"])
                cursor["since"] = int(ts) if ts else None
            return out
        return []

    def projects(self) -> list[str]:
        names = set()
        for c in self.client.containers.list(all=True, filters={"label": PROJECT_LABEL}):
            name = c.labels.get(PROJECT_LABEL, "")
            if name.startswith("appliance-"):
                names.add(name)
        return sorted(names)
