"""What the TUI's 1 Hz sampling costs: metrics.parse reads the plain exposition form itself (two engines' pages
every second) and hands anything else to prometheus-client's parser — both must give the same samples; the
kernel's socket table is read with the proxy metrics, not on every sample."""

from __future__ import annotations

import math

from prometheus_client.parser import text_string_to_metric_families

from appliance import metrics

PAGE = """\
# HELP vllm:generation_tokens_total Number of generation tokens processed.
# TYPE vllm:generation_tokens_total counter
vllm:generation_tokens_total{engine="0",model_name="Qwen/Qwen2.5-32B-Instruct-AWQ"} 12345.0
vllm:num_requests_running{engine="0",model_name="m"} 3.0
# TYPE vllm:time_to_first_token_seconds histogram
vllm:time_to_first_token_seconds_bucket{engine="0",le="0.001",model_name="m"} 0.0
vllm:time_to_first_token_seconds_bucket{engine="0",le="+Inf",model_name="m"} 7.0
vllm:time_to_first_token_seconds_count{engine="0",model_name="m"} 7.0
vllm:time_to_first_token_seconds_sum{engine="0",model_name="m"} 1.25
vllm:kv_cache_usage_perc{engine="0", model_name="spaced , label"} NaN
vllm:cache_config_info{block_size="16",cache_dtype="fp8",enable_prefix_caching="True"} 1.0 1700000000000
process_open_fds 12
"""


def reference(text: str) -> dict:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = float(s.value)
    return out


def same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(a[k] == b[k] or (math.isnan(a[k]) and math.isnan(b[k])) for k in a)


def test_the_plain_form_is_read_directly_and_equals_prometheus_clients_reading():
    plain = metrics._plain(PAGE)
    assert plain is not None and same(plain, reference(PAGE))
    scrape = metrics.parse(PAGE, 1.0)
    assert scrape.get("vllm:generation_tokens_total") == 12345.0
    assert scrape.buckets("vllm:time_to_first_token_seconds") == [(0.001, 0.0), (math.inf, 7.0)]
    assert dict(next(lab for (n, lab) in scrape.values if n == "vllm:kv_cache_usage_perc"))["model_name"] == \
        "spaced , label"


def test_anything_beyond_the_plain_form_goes_to_the_full_parser_with_the_same_result():
    tricky = [
        'm{path="a\\\\b",q="say \\"hi\\""} 1\n',  # escapes in label values
        'm{v="x}y"} 2\n',  # a brace inside a label value
        'm{v="x"} 1e3\nn 4\n',
    ]
    for text in tricky[:2]:
        assert metrics._plain(text) is None
        assert same(metrics.parse(text, 0.0).values, reference(text))
    assert same(metrics._plain(tricky[2]), reference(tricky[2]))


def test_a_line_that_is_not_a_sample_is_not_guessed_at():
    assert metrics._plain("m{v=unquoted} 1\n") is None
    assert metrics._plain("m{v=\"x\"} not-a-number\n") is None


def test_the_sampler_reads_the_kernels_socket_table_seldom_and_at_once_when_the_door_changed(monkeypatch):
    """Reading /proc/net/tcp costs ~10 ms of CPU with a busy door: the sampler reads it every LISTEN_EVERY_S,
    and at once when the door's record changed (a new port, a restart with --lan, a LiteLLM swap)."""
    from dataclasses import dataclass, replace
    from types import SimpleNamespace

    from appliance import http, listening
    from appliance.telemetry import LISTEN_EVERY_S, Sampler

    @dataclass(frozen=True)
    class Record:
        port: int = 4000
        litellm_port: int = 4001
        socket: None = None
        pid: int = 10

    reads: list[int] = []
    monkeypatch.setattr(listening, "listening_hosts", lambda port: reads.append(port) or {"127.0.0.1"})
    monkeypatch.setattr(http, "get", lambda c, url, headers=None: http.Probe(False, error="refused"))
    box = SimpleNamespace(proxy=Record())
    now = [1000.0]
    monkeypatch.setattr("appliance.telemetry.time.time", lambda: now[0])
    s = Sampler(SimpleNamespace(), proxy_every_s=5.0, http_client=object())
    for _ in range(int(LISTEN_EVERY_S) - 1):
        snap = s._proxy(box.proxy)
        now[0] += 1.0
    assert reads == [4000] and snap.listen == ("127.0.0.1",) and not snap.lan
    now[0] += 2.0  # past LISTEN_EVERY_S since the first read
    s._proxy(box.proxy)
    assert reads == [4000, 4000]
    box.proxy = replace(box.proxy, pid=11)  # the door restarted (same port): read at once
    s._proxy(box.proxy)
    assert reads == [4000, 4000, 4000]
    box.proxy = replace(box.proxy, port=4100)  # a new front door: read at once
    s._proxy(box.proxy)
    assert reads == [4000, 4000, 4000, 4100]
