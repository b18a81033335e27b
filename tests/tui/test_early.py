"""The first sample from a forked child (appliance/tui/early.py) when the child fails or hangs: the app never
waits long for it, never leaves it running or a zombie, and samples itself instead."""

from __future__ import annotations

import os
import time

import pytest

from appliance.errors import ApplianceError
from appliance.tui.backend import StackBackend
from appliance.tui.early import EarlySample


def gone(pid: int) -> bool:
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return True
    return False


def test_a_child_that_fails_hands_over_nothing():
    def make_stack():
        raise ApplianceError("no rig here", "a test")

    early = EarlySample.start(make_stack)
    assert early.result() is None and early.result() is None  # asked twice (sample and info): one answer
    assert gone(early.pid)


def test_a_hung_child_is_ended_not_waited_for():
    early = EarlySample.start(lambda: time.sleep(60))
    t = time.monotonic()
    assert early.result(wait_s=0.5) is None
    assert time.monotonic() - t < 30 and gone(early.pid)


def test_closing_before_the_first_sample_ends_the_child():
    early = EarlySample.start(lambda: time.sleep(60))
    StackBackend(make_stack=lambda: None, early=early).close()
    assert gone(early.pid)


def test_the_backend_samples_itself_when_the_child_failed():
    parent = os.getpid()

    class Sampled:
        def sample(self):
            return "own sample"

    def make_stack():
        if os.getpid() != parent:
            raise RuntimeError("the child breaks")
        return "stack"

    backend = StackBackend(make_stack=make_stack, early=EarlySample.start(make_stack), sampler=Sampled())
    assert backend.sample() == "own sample" and backend.stack == "stack"


@pytest.mark.parametrize("junk", [b"", b"\x80\x04not a pickle", b"\x80\x04\x95"])
def test_half_a_pickle_is_no_sample(junk):
    r, w = os.pipe()
    os.write(w, junk)
    os.close(w)
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    assert EarlySample(pid, r).result(wait_s=2) is None and gone(pid)
