"""A small in-memory docker for the real-path Stack tests: the docker SDK client the DockerRuntime reads
(containers with labels, State, RestartCount, timestamped logs, kill/stop; images; a streaming pull) and the
`docker compose` CLI it runs (config / up / down on the compose file it was given).

The engines' containers play a `Script` of real vLLM 0.19 GPU log lines: one more line each time the
runtime reads the log (the follow loop does once per round), then they either turn healthy on /health (after
`health_after` probes), exit with a code (a crash), fall silent (stuck) or keep talking forever (timeout).
Everything that changes the rig is appended to `journal`, shared with the fake HAProxy and HTTP, so tests
can assert the ORDER of drain, stop, start and reload.
"""

from __future__ import annotations

import itertools
import json
import subprocess
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import docker.errors
import yaml

PROJECT_LABEL = "com.docker.compose.project"
SERVICE_LABEL = "com.docker.compose.service"


def _p(who: str, pid: int, level: str, where: str, text: str) -> str:
    return f"({who} pid={pid}) {level} 11-29 18:40:01 [{where}] {text}"


def gpu_startup(model: str) -> list[str]:
    """A 7B AWQ model on one 24 GiB card, as vLLM 0.19 prints it (the EngineCore's lines and the API server's)."""
    ec = "EngineCore_DP0"
    return [
        _p("APIServer", 1, "INFO", "utils.py:299", f"vLLM server version 0.19.0, serving model {model}"),
        _p(ec, 212, "INFO", "gpu_model_runner.py:4735", f"Starting to load model {model}..."),
        f"({ec} pid=212) Loading safetensors checkpoint shards: 100% Completed | 2/2 [00:03<00:00,  1.61s/it]",
        _p(ec, 212, "INFO", "default_loader.py:384", "Loading weights took 3.31 seconds"),
        _p(ec, 212, "INFO", "gpu_model_runner.py:4820", "Model loading took 5.2 GiB memory and 4.102218 seconds"),
        _p(ec, 212, "INFO", "gpu_worker.py:436", "Available KV cache memory: 14.31 GiB"),
        _p(ec, 212, "INFO", "kv_cache_utils.py:1319", "GPU KV cache size: 268,032 tokens"),
        _p(ec, 212, "INFO", "kv_cache_utils.py:1324", "Maximum concurrency for 8,192 tokens per request: 32.72x"),
        f"({ec} pid=212) Capturing CUDA graphs (mixed prefill-decode, PIECEWISE): 100%|██████████| 67/67",
        _p(ec, 212, "INFO", "gpu_model_runner.py:6046", "Graph capturing finished in 9 secs, took 0.55 GiB"),
        _p(ec, 212, "INFO", "core.py:283", "init engine (profile, create kv cache, warmup model) took 21.47 seconds"),
        _p("APIServer", 1, "INFO", "api_server.py:594", "Starting vLLM server on http://127.0.0.1:8000"),
        "(APIServer pid=1) INFO:     Application startup complete.",
    ]


def no_kv_memory(model: str) -> list[str]:
    """gpu_memory_utilization too low for this model: the weights load, then no memory is left for the cache."""
    ec = "EngineCore_DP0"
    return gpu_startup(model)[:5] + [
        _p(ec, 212, "ERROR", "core.py:1108", "EngineCore failed to start."),
        f"({ec} pid=212) ERROR 11-29 18:40:09 [core.py:1108] Traceback (most recent call last):",
        f'({ec} pid=212) ERROR 11-29 18:40:09 [core.py:1108]   File "/usr/local/lib/python3.12/dist-packages/vllm/'
        'v1/core/kv_cache_utils.py", line 644, in _check_enough_kv_cache_memory',
        f"({ec} pid=212) ERROR 11-29 18:40:09 [core.py:1108]     raise ValueError(",
        f"({ec} pid=212) ERROR 11-29 18:40:09 [core.py:1108] ValueError: No available memory for the cache "
        "blocks. Try increasing `gpu_memory_utilization` when initializing the engine. See "
        "https://docs.vllm.ai/en/latest/configuration/conserving_memory/ for more details.",
        "(APIServer pid=1) RuntimeError: Engine core initialization failed. See root cause above. Failed core "
        "proc(s): {}",
    ]


@dataclass
class Script:
    """What one engine container does. `health_after`: /health probes (once every line is out) until 200;
    None: never healthy. `exit_code`: exits with it after the last line. `endless`: one more progress line on
    every read, forever."""

    lines: list[str]
    health_after: int | None = 1
    exit_code: int | None = None
    endless: bool = False

    @classmethod
    def healthy(cls, model: str = "Qwen/Qwen2.5-7B-Instruct-AWQ", health_after: int = 1) -> "Script":
        return cls(gpu_startup(model), health_after)

    @classmethod
    def crash(cls, model: str = "Qwen/Qwen2.5-7B-Instruct-AWQ") -> "Script":
        return cls(no_kv_memory(model), None, exit_code=1)

    @classmethod
    def silent(cls, model: str = "Qwen/Qwen2.5-7B-Instruct-AWQ") -> "Script":
        return cls(gpu_startup(model)[:2], None)  # a hung download: alive, quiet, never healthy

    @classmethod
    def endless_download(cls, model: str = "Qwen/Qwen2.5-7B-Instruct-AWQ") -> "Script":
        return cls(gpu_startup(model)[:2], None, endless=True)


_ids = itertools.count(1)


@dataclass
class FakeContainer:
    project: str
    service: str
    image: str
    workdir: Path
    journal: list
    script: Script | None = None  # None: a proxy service (runs, no startup to play)
    port: int | None = None
    config: dict = field(default_factory=dict)  # its service in the compose file (an unchanged one is kept)
    status: str = "running"
    exit_code: int = 0
    restarts: int = 0
    shown: int = 0
    probes: int = 0
    worker_pid: int = 8
    signals: list = field(default_factory=list)
    backends: set = field(default_factory=set)
    t0: float = field(default_factory=time.time)

    def __post_init__(self):
        self.id = f"{next(_ids):012x}" * 5
        self.short_id = self.id[:12]
        self.name = f"{self.project}-{self.service}-1"
        if self.service == "frontdoor":
            self._read_cfg()

    # -- what the SDK exposes ---------------------------------------------------------------------
    @property
    def labels(self) -> dict:
        return {PROJECT_LABEL: self.project, SERVICE_LABEL: self.service}

    @property
    def attrs(self) -> dict:
        return {"State": {"Status": self.status, "Running": self.status == "running", "ExitCode": self.exit_code,
                          "Pid": 4000 + int(self.short_id, 16) % 1000 if self.status == "running" else 0,
                          "OOMKilled": False, "StartedAt": _stamp(self.t0)},
                "RestartCount": self.restarts}

    def _line(self, i: int) -> str:
        if i < len(self.script.lines):
            return self.script.lines[i]
        return f"Downloading model shard {i}: {i % 100}% ..."  # an endless script's progress

    def logs(self, *, stdout=True, stderr=True, timestamps=False, since=None, tail="all", stream=False,
             follow=False):
        if self.script is None:
            lines = [f"proxy {self.service} listening"]
        else:
            if timestamps and self.status == "running":  # the engine moves on between two reads
                if self.shown < len(self.script.lines) or self.script.endless:
                    self.shown += 1
                if self.shown >= len(self.script.lines) and self.script.exit_code is not None:
                    self.status, self.exit_code = "exited", self.script.exit_code
                    self.journal.append(("exit", self.project, self.service, self.exit_code))
            lines = [(self.t0 + 0.25 * i, self._line(i)) for i in range(self.shown)]
            if since is not None:
                lines = [(t, ln) for t, ln in lines if t >= since]  # docker's `since` is inclusive, in seconds
            lines = [f"{_stamp(t)} {ln}" if timestamps else ln for t, ln in lines]
        if tail != "all":
            lines = lines[-int(tail):]
        data = "".join(ln + "\n" for ln in lines).encode()
        return iter([data]) if stream else data

    def kill(self, signal=None):
        self.signals.append(signal)
        self.journal.append(("kill", self.project, self.service, signal))
        if self.service == "frontdoor" and signal == "SIGUSR2":  # HAProxy's master starts a new worker
            self.worker_pid += 1
            self._read_cfg()

    def stop(self, timeout=10):
        self.status = "exited"
        self.journal.append(("stop", self.project, self.service))

    def _read_cfg(self) -> None:
        cfg = self.workdir / "haproxy.cfg"
        text = cfg.read_text() if cfg.exists() else ""
        self.backends = {ln.split()[1] for ln in text.splitlines() if ln.startswith("backend ")}

    # -- the HTTP side -------------------------------------------------------------------------------
    def health(self) -> bool:
        """/health: refused until the engine is ready (vLLM binds its port only then)."""
        s = self.script
        if self.status != "running" or s is None or s.health_after is None or self.shown < len(s.lines):
            return False
        self.probes += 1
        return self.probes >= s.health_after


def _stamp(t: float) -> str:
    dt = datetime.fromtimestamp(t, timezone.utc)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond:06d}123Z"


class FakeDocker:
    """The daemon, its SDK client and its compose CLI in one object."""

    def __init__(self, journal: list | None = None):
        self.journal = journal if journal is not None else []
        self.images: set[str] = set()
        self.pull_errors: dict[str, str] = {}  # image → the registry's error event
        self.pull_raises: dict[str, Exception] = {}  # image → what the SDK raises mid-stream (e.g. APIError)
        self.fail_down: set[str] = set()  # projects whose `compose down` fails
        self.scripts: dict[str, list[Script]] = {}  # "project[/service]" → scripts for its next starts, in order
        self.defaults: dict = {}  # project → Script factory once its queue is empty (default: healthy)
        self.containers: list[FakeContainer] = []
        self.pulled: list[str] = []
        self.api, self.images_api = _Api(self), _Images(self)

    # -- the SDK's `client.containers` --------------------------------------------------------------
    def plan(self, project: str, *scripts: Script) -> None:
        self.scripts.setdefault(project, []).extend(scripts)

    def running(self, project: str) -> list[FakeContainer]:
        return [c for c in self.containers if c.project == project and c.status == "running"]

    def list(self, all=False, filters=None):  # noqa: A002 - the SDK's own parameter names
        label = (filters or {}).get("label", "")
        key, _, value = label.partition("=")
        out = [c for c in self.containers if all or c.status == "running"]
        if key:
            out = [c for c in out if key in c.labels and (not value or c.labels[key] == value)]
        return out

    # -- the compose CLI -------------------------------------------------------------------------------
    def compose(self, args: list[str]) -> tuple[int, str, str]:
        project = file = None
        it = iter(args)
        rest = []
        for a in it:
            if a == "-p":
                project = next(it)
            elif a == "-f":
                file = Path(next(it))
            else:
                rest.append(a)
        cmd = rest[0]
        self.journal.append(("compose", cmd, project or str(file)))
        data = yaml.safe_load(file.read_text()) if file else None
        if cmd == "config":
            return 0, json.dumps(data), ""
        if cmd == "up":
            for svc in data["services"].values():
                if svc["image"] not in self.images:
                    return 1, "", f"Error response from daemon: No such image: {svc['image']}\n"
            # like `up -d --remove-orphans`: a running container whose service is unchanged keeps running (a
            # second LiteLLM started beside the first must not restart HAProxy); the others are (re)created
            keep = [c for c in self.running(project) if data["services"].get(c.service) == c.config]
            self.containers = [c for c in self.containers if c.project != project or c in keep]
            for name, svc in data["services"].items():
                if not [c for c in keep if c.service == name]:
                    self.containers.append(self._create(project, name, svc, file.parent))
            return 0, "", ""
        if cmd == "down":
            if project in self.fail_down:
                return 1, "", (f"Error response from daemon: cannot stop container: {project}-main-1: tried to "
                               "kill container, but did not receive an exit event\n")
            self.containers = [c for c in self.containers if c.project != project]
            return 0, "", ""
        return 1, "", f"unknown docker command: \"docker compose {cmd}\"\n"

    def _create(self, project: str, name: str, svc: dict, workdir: Path) -> FakeContainer:
        command = [str(x) for x in svc.get("command") or []]
        port = int(command[command.index("--port") + 1]) if "--port" in command else None
        script = None
        if project != "appliance-proxy":
            queue = self.scripts.get(f"{project}/{name}") or self.scripts.get(project) or []
            script = queue.pop(0) if queue else self.defaults.get(project, Script.healthy)()
        self.journal.append(("start", project, name))
        return FakeContainer(project, name, svc["image"], workdir, self.journal, script, port, config=svc)


class _Images:
    def __init__(self, d: FakeDocker):
        self.d = d

    def get(self, image: str):
        if image not in self.d.images:
            raise docker.errors.ImageNotFound(f"No such image: {image}")
        return image


class _Api:
    def __init__(self, d: FakeDocker):
        self.d = d

    def pull(self, image: str, stream=False, decode=False):
        """The event stream of `POST /images/create` as the SDK decodes it: per layer `Downloading` with
        progressDetail current/total, `Extracting`, `Pull complete`; an error arrives as an event too."""
        assert stream and decode, "the runtime reads the pull as a decoded stream"
        self.d.journal.append(("pull", image))
        repo, _, tag = image.rpartition(":")
        yield {"status": f"Pulling from {repo}", "id": tag}
        if image in self.d.pull_raises:
            raise self.d.pull_raises[image]
        if image in self.d.pull_errors:
            msg = self.d.pull_errors[image]
            yield {"errorDetail": {"message": msg}, "error": msg}
            return
        layers = {"a1b2c3d4e5f6": 3_215_000_000, "0f9e8d7c6b5a": 812_000_000}
        for lid in layers:
            yield {"status": "Pulling fs layer", "progressDetail": {}, "id": lid}
        for lid, total in layers.items():
            for frac in (0.1, 0.5, 1.0):
                yield {"status": "Downloading", "progressDetail": {"current": int(total * frac), "total": total},
                       "progress": f"[=====>   ] {total * frac / 1e6:.0f}MB/{total / 1e6:.0f}MB", "id": lid}
            yield {"status": "Download complete", "progressDetail": {}, "id": lid}
            yield {"status": "Extracting", "progressDetail": {"current": total, "total": total}, "id": lid}
            yield {"status": "Pull complete", "progressDetail": {}, "id": lid}
        yield {"status": "Digest: sha256:" + "ab" * 32}
        yield {"status": f"Status: Downloaded newer image for {image}"}
        self.d.images.add(image)
        self.d.pulled.append(image)


class FakeSDK:
    """What `docker.from_env()` returns, over one FakeDocker: `.containers`, `.images`, `.api`, `.ping()`."""

    def __init__(self, d: FakeDocker):
        self.containers, self.images, self.api = d, d.images_api, d.api

    def ping(self) -> bool:
        return True


class FakeSubprocess:
    """Stands in for the `subprocess` module inside appliance.runtime.docker: `docker compose …` goes to the
    FakeDocker, so the runtime's own argv building and error explanations run for real."""

    CompletedProcess, TimeoutExpired, DEVNULL = subprocess.CompletedProcess, subprocess.TimeoutExpired, \
        subprocess.DEVNULL

    def __init__(self, d: FakeDocker):
        self.d = d

    def run(self, argv, env=None, capture_output=True, text=True, timeout=None, stdin=None):
        assert argv[:2] == ["docker", "compose"], argv
        rc, out, err = self.d.compose(argv[2:])
        return subprocess.CompletedProcess(argv, rc, out, err)
