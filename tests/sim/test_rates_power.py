"""Measured token rates, power and energy of the simulated rig against appliance.sim.physics."""

from __future__ import annotations

import threading
import time

import httpx
import pytest

from appliance.cards import CARDS
from appliance.sim import physics

from .conftest import MODEL
from .test_engine import metrics

CHAT = "/v1/chat/completions"


def _streams(ep, n: int, max_tokens: int, stop: threading.Event):
    def run():
        with httpx.stream("POST", ep.url + CHAT, timeout=30, json={
            "model": MODEL, "messages": [{"role": "user", "content": "go"}], "max_tokens": max_tokens,
            "stream": True, "ignore_eos": True,
        }) as r:
            for _ in r.iter_lines():
                if stop.is_set():
                    break

    threads = [threading.Thread(target=run, daemon=True) for _ in range(n)]
    for t in threads:
        t.start()
    return threads


def _measure(ep, n: int, window: float = 3.0) -> float:
    """Aggregate generation tok/s from the metrics counter while n streams run. The window is long enough that a
    stream thread the loaded machine runs late (its tokens land a few 100 ms after they were due) moves the
    rate by a few %, not by the tolerance."""
    stop = threading.Event()
    threads = _streams(ep, n, 2000, stop)
    deadline = time.monotonic() + 5
    while metrics(ep)["vllm:num_requests_running"] < n:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    time.sleep(0.1)
    t0, g0 = time.monotonic(), metrics(ep)["vllm:generation_tokens_total"]
    time.sleep(window)
    t1, g1 = time.monotonic(), metrics(ep)["vllm:generation_tokens_total"]
    stop.set()
    for t in threads:
        t.join(5)
    return (g1 - g0) / (t1 - t0)


def test_physics_shape():
    card = CARDS["3090"]
    r = [physics.rates(card, 250, 4, "Qwen3.5-27B-AWQ", None, {"method": "mtp", "num_speculative_tokens": 2}, c)
         for c in (1, 2, 3, 4, 6)]
    per_req = [x.per_request_tok_s for x in r]
    assert per_req == sorted(per_req, reverse=True)
    assert per_req[3] < 0.5 * per_req[0]  # falls fast beyond 2-3 streams
    assert r[3].aggregate_tok_s > r[0].aggregate_tok_s
    limits = [physics.rates(card, p, 1, "x-8B-AWQ").single_stream_tok_s for p in (150, 200, 250, 300, 350)]
    assert limits == sorted(limits)
    assert physics.power_factor(card, 350) == pytest.approx(1.0)
    gains = [b - a for a, b in zip(limits, limits[1:])]
    assert gains == sorted(gains, reverse=True)  # saturating
    assert r[0].busy == 0.75 and r[3].busy == 1.0
    assert r[3].power_w == 250
    assert physics.parse_params_b("Qwen/Qwen3-30B-A3B") == 30 and physics.parse_active_params_b("Qwen3-30B-A3B") == 3
    assert physics.parse_params_b("Qwen/Qwen2.5-0.5B-Instruct") == 0.5
    assert physics.parse_params_b("mistralai/Mixtral-8x7B-v0.1") == 56
    assert physics.bytes_per_param("awq_marlin", "x") == 0.55 and physics.bytes_per_param(None, "x-FP8") == 1.05
    assert physics.bytes_per_param(None, "meta-llama/Llama-3.1-8B-Instruct") == 2.0
    spec = physics.spec_decode({"method": "qwen3_next_mtp", "num_speculative_tokens": 2})
    assert spec.method == "mtp" and spec.factor > 1.5


@pytest.mark.parametrize("n", [1, 4])
def test_measured_rate_matches_physics(start_engine, n):
    ep = start_engine("--quantization", "awq")
    expected = physics.rates(CARDS["3090"], 350, 1, MODEL, "awq", None, n).aggregate_tok_s
    measured = _measure(ep, n)
    assert measured == pytest.approx(expected, rel=0.05)


def test_power_limit_changes_rate_and_draw(start_engine, rig):
    ep = start_engine("--quantization", "awq")
    stop = threading.Event()
    threads = _streams(ep, 4, 2000, stop)
    try:
        full = _until(lambda: rig.info(0), lambda i: i.power_w == pytest.approx(350, abs=0.5)
                      and i.throttle_reasons & 0x4, "the GPU at its 350 W limit, power-capped")
        fast = _window_rate(ep)
        rig.set_power_limit(0, 150)
        _until(lambda: rig.info(0), lambda i: i.power_w == pytest.approx(150, abs=0.5)
               and i.sm_clock_mhz < full.sm_clock_mhz, "the GPU at the new 150 W limit, clocks down")
        slow = _window_rate(ep)
    finally:
        stop.set()
        for t in threads:
            t.join(5)
    ratio = physics.power_factor(CARDS["3090"], 150) / physics.power_factor(CARDS["3090"], 350)
    assert slow / fast == pytest.approx(ratio, rel=0.1)
    with pytest.raises(ValueError, match="Invalid Argument"):
        rig.set_power_limit(0, 400)
    assert rig.get_power_limit(0) == 150


def _until(read, ok, what: str, timeout_s: float = 10.0):
    """Poll `read()` until `ok(value)`: the streams start (and the GPU follows a new limit) when the loaded
    machine gets to it, not after a fixed sleep. Returns the value that passed; fails naming `what` and the last."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = read()
        if ok(value):
            return value
        assert time.monotonic() < deadline, f"never saw {what}: last {value}"
        time.sleep(0.02)


def _window_rate(ep, window=2.0) -> float:
    t0, g0 = time.monotonic(), metrics(ep)["vllm:generation_tokens_total"]
    time.sleep(window)
    return (metrics(ep)["vllm:generation_tokens_total"] - g0) / (time.monotonic() - t0)


def test_energy_monotonic_and_consistent(start_engine, rig):
    ep = start_engine("--quantization", "awq")
    samples = []
    stop = threading.Event()
    threads = []
    t_end = time.monotonic() + 2.0
    started = False
    while time.monotonic() < t_end:
        if not started and time.monotonic() > t_end - 1.5:
            threads = _streams(ep, 2, 2000, stop)
            started = True
        info = rig.info(0)
        samples.append((time.time(), info.energy_j, info.power_w))
        time.sleep(0.02)
    stop.set()
    for t in threads:
        t.join(5)
    energies = [e for _, e, _ in samples]
    assert all(b >= a for a, b in zip(energies, energies[1:]))
    integrated = sum((t1 - t0) * p0 for (t0, _, p0), (t1, _, _) in zip(samples, samples[1:]))
    assert energies[-1] - energies[0] == pytest.approx(integrated, rel=0.05)
    assert max(p for _, _, p in samples) > 200  # the load really happened
    # every reader agrees: a second attachment computes the same number for the same instant
    from appliance.sim.gpu import SimGPUs

    now = time.time()
    assert SimGPUs(rig.sim_dir).info(0, now=now).energy_j == pytest.approx(rig.info(0, now=now).energy_j)
