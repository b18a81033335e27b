"""Pure pieces: metrics math (rates, resets, quantiles), failure diagnosis, startup phases."""

from __future__ import annotations

import pytest

from appliance import metrics
from appliance.diagnose import diagnose
from appliance.phases import StartupTracker

PAGE = """# TYPE vllm:generation_tokens_total counter
vllm:generation_tokens_total{{engine="0",model_name="m"}} {gen}
# TYPE vllm:prompt_tokens_total counter
vllm:prompt_tokens_total{{engine="0",model_name="m"}} {prompt}
# TYPE vllm:num_requests_running gauge
vllm:num_requests_running{{engine="0",model_name="m"}} 3.0
# TYPE vllm:kv_cache_usage_perc gauge
vllm:kv_cache_usage_perc{{engine="0",model_name="m"}} 0.25
# TYPE vllm:time_to_first_token_seconds histogram
vllm:time_to_first_token_seconds_bucket{{engine="0",le="0.1",model_name="m"}} {b1}
vllm:time_to_first_token_seconds_bucket{{engine="0",le="0.5",model_name="m"}} {b2}
vllm:time_to_first_token_seconds_bucket{{engine="0",le="+Inf",model_name="m"}} {b2}
vllm:time_to_first_token_seconds_count{{engine="0",model_name="m"}} {b2}
vllm:time_to_first_token_seconds_sum{{engine="0",model_name="m"}} 1.0
# TYPE vllm:spec_decode_num_drafts_total counter
vllm:spec_decode_num_drafts_total{{engine="0",model_name="m"}} {drafts}
# TYPE vllm:spec_decode_num_draft_tokens_total counter
vllm:spec_decode_num_draft_tokens_total{{engine="0",model_name="m"}} {dtok}
# TYPE vllm:spec_decode_num_accepted_tokens_total counter
vllm:spec_decode_num_accepted_tokens_total{{engine="0",model_name="m"}} {acc}
"""


def page(t, gen, prompt=0, b1=0, b2=0, drafts=0, dtok=0, acc=0):
    return metrics.parse(PAGE.format(gen=gen, prompt=prompt, b1=b1, b2=b2, drafts=drafts, dtok=dtok, acc=acc), t)


def test_rates_and_gauges():
    a = page(100.0, 1000, 500, 10, 10, 100, 200, 140)
    b = page(102.0, 1300, 900, 15, 20, 150, 300, 210)
    s = metrics.engine_stats(a, b)
    assert s.generation_tps == pytest.approx(150) and s.prompt_tps == pytest.approx(200)
    assert s.running == 3 and s.kv_usage == 0.25
    assert s.spec_acceptance == pytest.approx(70 / 100) and s.spec_mean_accept_len == pytest.approx(1 + 70 / 50)
    # window: 5 new observations ≤ 0.1 s, 5 in (0.1, 0.5] → p50 at the 0.1 boundary, p95 inside the upper bucket
    assert s.ttft_p50_s == pytest.approx(0.1)
    assert 0.1 < s.ttft_p95_s <= 0.5


def test_counter_reset_on_restart_is_not_negative():
    a = page(100.0, 50_000)
    b = page(101.0, 120)  # the engine restarted: counters began again at 0
    assert metrics.rate(a, b, "vllm:generation_tokens_total") == pytest.approx(120)


def test_fitted_rate_shrugs_off_one_late_scrape_and_stitches_a_restart():
    # 100 tok/s for 40 s, read once a second; the last reading's timestamp is 2 s late (a slow scrape on a busy
    # box): the two ends would say 4000/42 = 95 tok/s (-5 %), the fitted slope stays within 1 %
    pages = [page(float(t), 100 * t) for t in range(40)] + [page(42.0, 4000)]
    two_ends = metrics.rate(pages[0], pages[-1], "vllm:generation_tokens_total")
    assert two_ends == pytest.approx(95.2, abs=0.1)
    assert metrics.fitted_rate(pages, "vllm:generation_tokens_total") == pytest.approx(100, rel=0.01)
    # the engine restarted at t=20: its counter began again at 0, the rate is still 100 tok/s
    restarted = [page(float(t), 100 * t if t < 20 else 100 * (t - 20) + 50) for t in range(40)]
    assert metrics.fitted_rate(restarted, "vllm:generation_tokens_total") == pytest.approx(100, rel=0.05)
    assert metrics.fitted_rate(pages[:1], "vllm:generation_tokens_total") is None


def test_histogram_quantile_interpolates():
    buckets = [(0.1, 50.0), (0.2, 100.0), (float("inf"), 100.0)]
    assert metrics.histogram_quantile(0.5, buckets) == pytest.approx(0.1)
    assert metrics.histogram_quantile(0.75, buckets) == pytest.approx(0.15)
    assert metrics.histogram_quantile(0.5, []) is None


def test_history_is_bounded():
    h = metrics.History(maxlen=3)
    for i in range(10):
        h.add(i, float(i))
    assert h.values() == [7.0, 8.0, 9.0] and h.last() == 9.0


@pytest.mark.parametrize("line,kind,fix_part", [
    ("ValueError: No available memory for the cache blocks. Try increasing `gpu_memory_utilization` when "
     "initializing the engine.", "no_kv_memory", "gpu_memory_utilization"),
    ("ValueError: To serve at least one request with the models's max seq len (262144), (16.0 GiB KV cache is "
     "needed, which is larger than the available KV cache memory (5.31 GiB). Based on the available memory, the "
     "estimated maximum model length is 86960. Try increasing", "kv_too_small", "max_model_len to 86960"),
    ("torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB.", "cuda_oom", "enforce_eager"),
    ("vllm serve: error: unrecognized arguments: --swap-space 4", "unknown_flag", "remove them"),
    ("huggingface_hub.errors.GatedRepoError: 401 Client Error. Cannot access gated repo for url", "gated",
     "appliance keys set huggingface"),
    ("OSError: [Errno 98] error while attempting to bind on address ('127.0.0.1', 8000): address already in use",
     "address_in_use", "port"),
    ("Error response from daemon: pull access denied for vllm/vllm-openai", "image_missing", "docker pull"),
])
def test_diagnosis(line, kind, fix_part):
    d = diagnose(["INFO starting", "ERROR something before", line], exit_code=1)
    assert d.kind == kind and fix_part in d.fix and line in d.lines
    if kind == "kv_too_small":
        assert d.estimated_max_model_len == 86960


def test_unknown_failure_shows_last_error_lines():
    d = diagnose(["INFO a", "ERROR first", "INFO b", "Exception: boom"], exit_code=3)
    assert d.kind == "unknown" and "exit code 3" in d.title and "Exception: boom" in d.lines


def test_startup_phases():
    tr = StartupTracker(t0=0.0)
    tr.feed("(EngineCore pid=1) INFO [gpu_model_runner.py:4735] Starting to load model m...", 1.0)
    assert tr.current == "weights"
    tr.feed("INFO Model loading took 7.17 GiB memory and 40.0 seconds", 41.0)
    tr.feed("INFO GPU KV cache size: 125,424 tokens", 45.0)
    assert tr.current == "kv_graphs" and not tr.ready
    tr.feed("INFO:     Application startup complete.", 60.0)
    assert not tr.ready  # only /health decides
    tr.healthy(61.0)
    tl = tr.timeline(70.0)
    assert [p["phase"] for p in tl] == ["created", "weights", "kv_graphs", "ready"]
    assert tl[1]["elapsed_s"] == 40.0 and tl[2]["elapsed_s"] == 20.0
    assert "GPU KV cache size: 125,424 tokens" in tr.details
    assert tr.silent_for(100.0) == 39.0


NO_KV = "ValueError: No available memory for the cache blocks. Try increasing `gpu_memory_utilization` when initializing"
TOO_SMALL = ("ValueError: To serve at least one request with the models's max seq len (262144), (16.0 GiB KV cache is "
             "needed, which is larger than the available KV cache memory (5.31 GiB). Based on the available memory, "
             "the estimated maximum model length is 86960. Try increasing `gpu_memory_utilization`")


@pytest.mark.parametrize("line", [NO_KV, TOO_SMALL])
def test_out_of_kv_at_high_utilization_does_not_suggest_raising_it(line):
    """vLLM's own message says "try increasing gpu_memory_utilization" whatever it is; at 0.95 or more that moves the
    OOM to CUDA-graph capture, so the fix must name what helps instead."""
    low = diagnose(["INFO starting", line], exit_code=1, gpu_memory_utilization=0.9)
    high = diagnose(["INFO starting", line], exit_code=1, gpu_memory_utilization=0.95)
    assert "gpu_memory_utilization" in low.fix and "already" not in low.fix
    assert "already 0.95" in high.fix and "raise gpu_memory_utilization" not in high.fix
    assert "tensor_parallel_size" in high.fix
    if line is TOO_SMALL:
        assert "max_model_len to 86960" in high.fix
    else:
        assert "max_num_batched_tokens" in high.fix


def test_utilization_read_from_the_log_when_the_caller_does_not_know_it():
    args = ("(APIServer pid=1) INFO [utils.py:233] non-default args: {'model': 'Qwen/Qwen3-8B', "
            "'gpu_memory_utilization': 0.97, 'max_model_len': 32768}")
    d = diagnose([args, "INFO loading", NO_KV], exit_code=1)
    assert d.kind == "no_kv_memory" and "already 0.97" in d.fix
    d = diagnose(["INFO loading", NO_KV], exit_code=1)  # unknown (vLLM's default 0.9 is not logged): the usual fix
    assert "raise gpu_memory_utilization" in d.fix
