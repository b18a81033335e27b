"""Local processes: the same compose services run as supervised processes (for `appliance demo`, and for owners
who run vLLM from a Python environment without docker).

Each service runs under `appliance.runtime.supervise` (restart unless stopped, like the compose files say), in
its own session so it outlives the CLI and the TUI; its status file and log live in the state dir. Only the
processes started here are ever signalled, by the pid recorded in their status file.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from appliance import paths
from appliance.errors import RuntimeBoundaryError
from appliance.runtime.base import ServiceState
from appliance.runtime.supervise import start_time

SUPERVISOR_MARK = "appliance.runtime.supervise"


def _alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie child of ours counts as gone
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def _same_process(pid: int | None, start: int | None, mark: str | None = None) -> bool:
    """Is `pid` still the process the appliance started? Its start time must be the one recorded with the pid
    (a stale pid file may name a pid the kernel has since given to someone else's process); with `mark`, its
    command line must also contain it. A pid without a recorded start time is never trusted."""
    if not pid or start is None or start_time(pid) != start:
        return False
    if mark is not None:
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                return mark.encode() in f.read()
        except OSError:
            return False
    return True


def read_env_file(path: Path) -> dict[str, str]:
    """KEY=VALUE lines (comments and blanks ignored), like compose's env_file."""
    out: dict[str, str] = {}
    try:
        text = path.read_text()
    except OSError:
        return out
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, value = line.split("=", 1)
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        out[key.strip()] = value
    return out


def compose_literal(value: str) -> str:
    """What Compose makes of a rendered value without `${…}`: `$$` is one `$` (render/compose.py doubles every
    literal `$`), so a process gets exactly what a container would."""
    return value.replace("$$", "$")


class ProcessRuntime:
    kind = "process"

    def __init__(self, root: Path | None = None, env_file: Path | None = None, litellm: Path | None = None,
                 vllm_command: list[str] | None = None):
        """`vllm_command`: what runs a service whose entrypoint is `vllm` — the rig assembly decides (a real
        `vllm` from some environment, or the stand-in engine); None: the `vllm` on PATH."""
        self.root = root or paths.state_dir() / "processes"
        self.env_file = env_file
        self.litellm = litellm
        self.vllm_command = list(vllm_command) if vllm_command else None

    def _dir(self, project: str) -> Path:
        return self.root / project

    # -- what to run ------------------------------------------------------------------------------
    def argv_for(self, service: dict) -> list[str]:
        entry = [compose_literal(str(x)) for x in service.get("entrypoint") or []]
        command = [compose_literal(str(x)) for x in service.get("command") or []]
        if entry[:1] == ["vllm"]:
            if self.vllm_command:
                return [*self.vllm_command, *entry[1:], *command]
            vllm = shutil.which("vllm")
            if not vllm:
                raise RuntimeBoundaryError("`vllm` is not installed in this environment (--runtime process runs it "
                                           "directly)", "pip install vllm==0.19.0 here, or use --runtime docker")
            return [vllm, *entry[1:], *command]
        if "litellm" in str(service.get("image", "")) or entry[:1] == ["litellm"]:
            from appliance.proxyenv import litellm_executable

            exe = self.litellm or litellm_executable()
            if exe is None:
                raise RuntimeBoundaryError("the LiteLLM proxy environment is missing",
                                           "run `make install` (it creates .venv-proxy), or set APPLIANCE_LITELLM")
            return [str(exe), *command]
        if command[:1] == ["haproxy"]:
            exe = shutil.which("haproxy")
            if not exe:
                raise RuntimeBoundaryError("HAProxy (the front door) is not installed",
                                           "install it: `sudo apt-get install haproxy` (Debian/Ubuntu), or `make "
                                           "install`")
            return [exe, *command[1:]]
        if entry or command:
            return [*entry, *command]
        raise RuntimeBoundaryError(f"service has nothing to run: {service}", "this is a bug in the renderer")

    def env_for(self, service: dict) -> dict[str, str]:
        """Like Compose: the service's own env_file(s), then its environment. The secrets file is never given
        whole: a rendered service names its role's file (`…secrets.env.engine`), and engines and HAProxy do not
        inherit anything secret-looking from the environment this runs in (LiteLLM may: hosted keys can live
        in the owner's environment)."""
        from appliance import secrets

        files = [self._env_file_path(e) for e in service.get("env_file") or []]
        roles = {secrets.role_of_env_file(str(f)) for f in files if f}
        env = dict(os.environ) if "litellm" in roles else secrets.scrub_environ(dict(os.environ))
        if files:
            secrets.write_role_files()  # an edit of the secrets file by hand counts from the next start
        for f in files:
            if f is not None:
                env.update(read_env_file(f))
        env.update({k: compose_literal(str(v)) for k, v in (service.get("environment") or {}).items()})
        env.setdefault("PYTHONUNBUFFERED", "1")
        return env

    def _env_file_path(self, entry) -> Path | None:
        """A rendered env_file entry (`{path: "${APPLIANCE_SECRETS_FILE:-…}.engine"}`) → the file: the secrets
        file is the one this runtime was given (what APPLIANCE_SECRETS_FILE means to Compose)."""
        raw = entry.get("path") if isinstance(entry, dict) else entry
        if not isinstance(raw, str):
            return None
        m = re.match(r"^\$\{APPLIANCE_SECRETS_FILE(?::-[^}]*)?\}(.*)$", raw)
        if m:
            if self.env_file is None:
                return None
            return Path(str(self.env_file) + m.group(1))
        return Path(os.path.expanduser(raw))

    # -- lifecycle ----------------------------------------------------------------------------------
    def up(self, project: str, compose_file: Path | None, compose: dict) -> None:
        d = self._dir(project)
        d.mkdir(parents=True, exist_ok=True)
        for name, service in compose.get("services", {}).items():
            status = d / f"{name}.status.json"
            if _alive(self._supervisor_pid(d, name)):
                continue  # already running (idempotent like `compose up -d`)
            status.unlink(missing_ok=True)
            argv = self.argv_for(service)
            env = self.env_for(service)
            grace = str(service.get("stop_grace_period", "30s")).rstrip("s")
            env["APPLIANCE_STOP_GRACE_S"] = grace if grace.replace(".", "").isdigit() else "30"
            env["APPLIANCE_RESTART"] = "no" if service.get("restart") == "no" else "unless-stopped"
            log = d / f"{name}.log"
            if log.exists():  # like a new container: a fresh log, the previous run's kept as .log.1
                os.replace(log, d / f"{name}.log.1")
            with open(log, "ab") as f:
                f.write(f"--- {time.strftime('%Y-%m-%d %H:%M:%S')} appliance: starting {name}\n".encode())
            cwd = service.get("working_dir")  # relative paths in the program's config (HAProxy's lua-load)
            proc = subprocess.Popen(
                [sys.executable, "-m", "appliance.runtime.supervise", str(status), str(log), "--", *argv],
                env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                start_new_session=True, cwd=cwd if cwd and Path(cwd).is_dir() else None)
            # the pid file is ours; the status file is the supervisor's (no two writers)
            (d / f"{name}.pid").write_text(f"{proc.pid} {start_time(proc.pid)}")

    def down(self, project: str, compose_file: Path | None = None, timeout_s: int = 30) -> None:
        d = self._dir(project)
        if not d.is_dir():
            return
        names = [p.name[: -len(".pid")] for p in d.glob("*.pid")]
        sups = {n: self._supervisor_pid(d, n) for n in names}
        for pid in sups.values():
            if _alive(pid):
                try:
                    os.kill(pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        deadline = time.monotonic() + timeout_s + 5
        while time.monotonic() < deadline and any(_alive(pid) for pid in sups.values()):
            time.sleep(0.05)
        for n in names:
            st = self._read(d / f"{n}.status.json") or {}
            child = st.get("child_pid")
            if _alive(child) and _same_process(child, st.get("child_start")):
                # the supervisor died before its child: end the child's whole session
                try:
                    os.killpg(child, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
            if _alive(sups[n]) and self._supervisor_pid(d, n) == sups[n]:  # still ours after the wait
                try:
                    os.kill(sups[n], signal.SIGKILL)
                except ProcessLookupError:
                    pass
            (d / f"{n}.pid").unlink(missing_ok=True)
            (d / f"{n}.status.json").unlink(missing_ok=True)

    def prepare(self, compose_file: Path | None, compose: dict, emit=None) -> None:
        """Before `up`: every program the services run must exist here (nothing to pull)."""
        for service in compose.get("services", {}).values():
            self.argv_for(service)

    def signal(self, project: str, service: str, sig: str) -> None:
        """Send `sig` (e.g. "SIGUSR2") to the service's program itself (HAProxy's master reloads on it)."""
        st = {s.service: s for s in self.states(project)}.get(service)
        if st is None or not st.alive or not st.pid:
            raise RuntimeBoundaryError(f"{service} of {project} is not running", "`appliance up PROFILE` starts it")
        os.kill(st.pid, getattr(signal, sig))  # states() reports a child pid only after _same_process

    def stop_service(self, project: str, service: str, timeout_s: int = 30) -> None:
        pid = self._supervisor_pid(self._dir(project), service)
        if _alive(pid):
            os.kill(pid, signal.SIGTERM)

    # -- inspection -----------------------------------------------------------------------------------
    def states(self, project: str) -> list[ServiceState]:
        out = []
        d = self._dir(project)
        for pid_path in sorted(d.glob("*.pid")) if d.is_dir() else []:
            name = pid_path.name[: -len(".pid")]
            st = self._read(d / f"{name}.status.json") or {}
            sup = self._supervisor_pid(d, name)
            state = st.get("state", "created")
            if not _alive(sup):
                status = "exited" if state == "exited" else "dead"
            elif state == "running" and _alive(st.get("child_pid")) and _same_process(st.get("child_pid"),
                                                                                       st.get("child_start")):
                status = "running"
            elif state == "restarting":
                status = "restarting"
            elif state in ("created", "starting"):
                status = "created"
            else:
                status = "restarting"
            out.append(ServiceState(service=name, status=status,
                                    exit_code=st.get("exit_code") if status in ("exited", "dead", "restarting")
                                    else None,
                                    restarts=int(st.get("restarts", 0)), started_at=st.get("started_at"),
                                    pid=st.get("child_pid") if status == "running" else None, ident=str(sup)))
        return out

    def logs(self, project: str, service: str, tail: int | None = 200, follow: bool = False,
             stop=None) -> Iterator[str]:
        """The service's output; tail=None: all of it. With follow, `stop` (a threading.Event) ends the wait."""
        path = self._dir(project) / f"{service}.log"
        if not path.exists():
            return
        with open(path, "rb") as f:
            lines = f.read().decode("utf-8", "replace").splitlines()
            yield from lines[-tail:] if tail else lines
            if not follow:
                return
            buf = b""
            while stop is None or not stop.is_set():
                chunk = f.read()
                if not chunk:
                    time.sleep(0.2)
                    continue
                buf += chunk
                while b"\n" in buf:
                    line, buf = buf.split(b"\n", 1)
                    yield line.decode("utf-8", "replace")

    def new_lines(self, project: str, service: str, cursor: dict) -> list[str]:
        """Lines written since the last call with the same `cursor` (it keeps the file offset)."""
        path = self._dir(project) / f"{service}.log"
        try:
            with open(path, "rb") as f:
                size = f.seek(0, 2)
                if size < cursor.get("offset", 0):  # a new log (the service was started again)
                    cursor["offset"] = 0
                f.seek(cursor.get("offset", 0))
                data = cursor.pop("partial", b"") + f.read()
                cursor["offset"] = f.tell()
        except OSError:
            return []
        lines = data.split(b"\n")
        cursor["partial"] = lines.pop()  # an unfinished last line waits for its end
        return [ln.decode("utf-8", "replace") for ln in lines]

    def projects(self) -> list[str]:
        out = []
        if self.root.is_dir():
            for d in sorted(self.root.iterdir()):
                if d.is_dir() and any(_alive(self._supervisor_pid(d, p.name[: -len(".pid")]))
                                      for p in d.glob("*.pid")):
                    out.append(d.name)
        return out

    @staticmethod
    def _supervisor_pid(d: Path, name: str) -> int | None:
        """The supervisor's pid from `<name>.pid` ("PID START"), only while that pid is still our supervisor:
        same start time, and `appliance.runtime.supervise` with this service's status file on its command line.
        Anything else (an old file without a start time, a reused pid) is None: never signalled."""
        try:
            pid_s, start_s = (d / f"{name}.pid").read_text().split()
            pid, start = int(pid_s), int(start_s)
        except (OSError, ValueError):
            return None
        return pid if _same_process(pid, start, str(d / f"{name}.status.json")) else None

    @staticmethod
    def _read(path: Path) -> dict | None:
        try:
            return json.loads(path.read_text())
        except (OSError, ValueError):
            return None
