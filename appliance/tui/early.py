"""The dashboard's first sample, taken in a forked child while this process imports Textual and mounts the screen.

Why a process: on the way to the first paint with data two heavy imports sit in a row — the rig (profiles,
pydantic models, ~0.5 s) for the sample, and Textual with the screens (~0.5 s) for the frame — and a thread
cannot run them side by side (the GIL). A child forked before either is imported builds the rig and samples it
on the other core; this process only imports Textual, mounts the dashboard and shows what the child sent. The
rig is imported here later, in a worker, for the second sample.

The child reads only (GPUs, engines' /health and /metrics, the door's liveliness); it skips LiteLLM's metrics
page, which a freshly started proxy takes seconds to answer — the second sample reads it. It writes nothing to
the terminal (its stdio is /dev/null) and ends with `os._exit`, so nothing of this process runs twice. If it
fails in any way, the app samples itself as it would have without it.

This module imports only the standard library: it runs before Textual is imported.
"""

from __future__ import annotations

import os
import pickle
import select
import threading
import time
from collections.abc import Callable

WAIT_S = 20.0  # longer than any sample (probe timeouts are 1.5 s); past it the app samples itself


class EarlySample:
    """`start(make_stack)` forks; `result()` (any thread, once or many times) is the child's
    `(snapshot, rig info, sampler carry)` or None when the child failed."""

    def __init__(self, pid: int, fd: int):
        self.pid, self.fd = pid, fd
        self._lock = threading.Lock()
        self._done = False
        self._value: tuple | None = None

    @classmethod
    def start(cls, make_stack: Callable[[], object]) -> "EarlySample | None":
        """Fork the child; None where fork is not available (the app then samples itself)."""
        if not hasattr(os, "fork"):
            return None
        r, w = os.pipe()
        try:
            pid = os.fork()
        except OSError:
            os.close(r)
            os.close(w)
            return None
        if pid == 0:  # the child: never returns
            os.close(r)
            _child(make_stack, w)
        os.close(w)
        return cls(pid, r)

    def result(self, wait_s: float = WAIT_S) -> tuple | None:
        with self._lock:
            if not self._done:
                self._done = True
                try:
                    self._value = self._read(wait_s)
                finally:
                    os.close(self.fd)
                    self._reap()
            return self._value

    def abandon(self) -> None:
        """The app is closing before it asked: end the child, do not wait for it."""
        with self._lock:
            if not self._done:
                self._done = True
                os.close(self.fd)
                self._reap()

    def _read(self, wait_s: float) -> tuple | None:
        data, deadline = b"", time.monotonic() + wait_s
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self.fd], [], [], left)[0]:
                return None  # too slow: the app samples itself
            chunk = os.read(self.fd, 1 << 20)
            if not chunk:
                break
            data += chunk
        try:
            value = pickle.loads(data)
        except Exception:  # noqa: BLE001 - a child that died half-way wrote half a pickle: sample here instead
            return None
        return value if isinstance(value, tuple) and len(value) == 3 else None

    def _reap(self) -> None:
        """The child has written everything (or is stuck): end it if needed, never leave a zombie."""
        try:
            done, _ = os.waitpid(self.pid, os.WNOHANG)
            if done == 0:
                os.kill(self.pid, 9)
                os.waitpid(self.pid, 0)
        except OSError:
            pass


def _child(make_stack: Callable[[], object], w: int) -> None:
    code = 1
    try:
        null = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):  # the terminal belongs to the app
            os.dup2(null, fd)
        from appliance.tui.backend import StackBackend, tui_sampler

        stack = make_stack()
        sampler = tui_sampler(stack, quick=True)
        backend = StackBackend(stack, sampler)
        snap = sampler.sample()
        info = backend.info()
        payload = pickle.dumps((snap, info, sampler.carry()))
        view = memoryview(payload)
        while view:
            view = view[os.write(w, view):]
        code = 0
    except BaseException:  # noqa: BLE001 - the parent sees a closed pipe and samples itself
        pass
    finally:
        os._exit(code)
