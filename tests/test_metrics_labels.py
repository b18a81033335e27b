"""The plain parser remembers label sets (appliance/metrics.py `_pairs`): remembered pairs must never leak into
another series, a label set it cannot read must still go to the full parser, and the memory stays bounded."""

from __future__ import annotations

from appliance import metrics


def test_remembered_label_sets_keep_series_apart_and_values_fresh():
    page = ('vllm:request_success_total{finished_reason="stop",model_name="m"} 3\n'
            'vllm:request_success_total{finished_reason="length",model_name="m"} 1\n')
    first = metrics.parse(page, 1.0, metrics.ENGINE_METRICS)
    second = metrics.parse(page.replace(" 3\n", " 7\n"), 2.0, metrics.ENGINE_METRICS)
    assert first.get("vllm:request_success_total", finished_reason="stop") == 3
    assert second.get("vllm:request_success_total", finished_reason="stop") == 7
    assert second.get("vllm:request_success_total", finished_reason="length") == 1
    assert second.get("vllm:request_success_total") == 8


def test_a_label_set_the_plain_form_cannot_read_still_parses_fully():
    metrics.parse('vllm:cache_config_info{a="x"} 1\n', 1.0)  # a plain one, remembered
    odd = metrics.parse('vllm:cache_config_info{a="x,}y", b="z"} 1\n', 1.0)  # a brace inside a value
    assert odd.series("vllm:cache_config_info") == [({"a": "x,}y", "b": "z"}, 1.0)]


def test_the_memory_of_label_sets_is_bounded():
    lines = "".join(f'litellm_proxy_total_requests_metric_total{{requested_model="m{i}"}} {i}\n'
                    for i in range(5000))
    scrape = metrics.parse(lines, 1.0)
    assert len(metrics._label_pairs) <= 4096
    assert scrape.get("litellm_proxy_total_requests_metric_total", requested_model="m4999") == 4999
    assert scrape.get("litellm_proxy_total_requests_metric_total", requested_model="m0") == 0
