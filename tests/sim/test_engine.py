"""The simulated engine as a real process: CLI, load phase, OpenAI API, metrics, faults, shutdown."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from .conftest import MODEL, REPO, free_port

CHAT = "/v1/chat/completions"


def chat(ep, content="hello there", **kw):
    body = {"model": kw.pop("model", ep_name(ep)), "messages": [{"role": "user", "content": content}], **kw}
    return httpx.post(ep.url + CHAT, json=body, timeout=30)


def ep_name(ep):
    return getattr(ep, "name", MODEL)


def sse_events(response: httpx.Response) -> list:
    out = []
    for line in response.iter_lines():
        if line.startswith("data: "):
            payload = line[6:]
            out.append(payload if payload == "[DONE]" else json.loads(payload))
    return out


def metrics(ep) -> dict:
    text = httpx.get(ep.url + "/metrics", timeout=5).text
    out = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            extra = ",".join(f"{k}={v}" for k, v in sorted(s.labels.items()) if k not in ("model_name", "engine"))
            key = s.name + ("|" + extra if extra else "")
            out[key] = s.value
    return out


# ------------------------------------------------------------------------------------------------ CLI


def test_unknown_flag_exits_2(start_engine):
    ep = start_engine("--disable-log-requests", wait=False)
    assert ep.wait_exit() == 2
    assert "unrecognized arguments: --disable-log-requests" in ep.output()


def test_auto_tool_choice_without_parser_exits_1(start_engine):
    ep = start_engine("--enable-auto-tool-choice", wait=False)
    assert ep.wait_exit() == 1
    assert "TypeError: Error: --enable-auto-tool-choice requires --tool-call-parser" in ep.output()


def test_refuses_without_sim_dir(start_engine):
    ep = start_engine(env={"APPLIANCE_SIM_DIR": ""}, wait=False)
    assert ep.wait_exit() == 1
    assert "APPLIANCE_SIM_DIR" in ep.output()


def test_port_in_use(start_engine):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        ep = start_engine(port=s.getsockname()[1], wait=False)
        assert ep.wait_exit() == 1
    assert "OSError: [Errno 98] Address already in use" in ep.output()


def test_stdlib_only_import():
    """The engine must run in a bare python image: no site-packages, only the stdlib and appliance."""
    code = (
        "import sys; sys.path.insert(0, %r); import appliance.sim.engine, appliance.sim.gpu; "
        "bad = [m for m in sys.modules if m.split('.')[0] not in sys.stdlib_module_names and m.split('.')[0] not in ('appliance', '__main__') and "
        "True]; "
        "allowed = {'appliance', 'appliance.vllm_spec', 'appliance.vllm_spec.data', 'appliance.vllm_spec.parser', 'appliance.cards'}; "
        "own = [m for m in sys.modules if m.startswith('appliance') and m not in allowed "
        "and not m.startswith('appliance.sim')]; "
        "print(bad, own); sys.exit(1 if bad or own else 0)" % str(REPO)
    )
    res = subprocess.run([sys.executable, "-S", "-I", "-c", code], capture_output=True, text=True, timeout=30)
    assert res.returncode == 0, res.stdout + res.stderr


# ------------------------------------------------------------------------------------------------ startup


def test_load_phase_refuses_connections(start_engine):
    """Like the real vLLM (measured, tests/real): the port refuses TCP while the engine loads, never a 503."""
    ep = start_engine(env={"APPLIANCE_SIM_LOAD_S": "1.5"}, wait=False)
    deadline = time.monotonic() + 5
    while "Starting to load model" not in ep.output():  # the port is bound by now, the engine is loading
        assert time.monotonic() < deadline and ep.proc.poll() is None, ep.output()
        time.sleep(0.02)
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", ep.port), timeout=0.5).close()
    with pytest.raises(httpx.ConnectError):
        httpx.get(ep.url + "/health", timeout=0.5)
    ep.wait_ready()
    out = ep.output()
    for wording in ("vLLM server version 0.19.0, serving model", "non-default args:", "Loading weights took",
                    "Model loading took", "Available KV cache memory:", "GPU KV cache size:",
                    "Maximum concurrency for", "Graph capturing finished in",
                    "init engine (profile, create kv cache, warmup model) took", "Starting vLLM server on http://",
                    "Application startup complete."):
        assert wording in out, wording
    assert httpx.get(ep.url + "/version").json() == {"version": "0.19.0"}


def test_models_and_unknown_model(start_engine):
    ep = start_engine("--served-model-name", "local", "qwen-14b", "--max-model-len", "4096")
    cards = httpx.get(ep.url + "/v1/models").json()["data"]
    assert [c["id"] for c in cards] == ["local", "qwen-14b"]
    assert cards[0]["max_model_len"] == 4096 and cards[0]["owned_by"] == "vllm" and cards[0]["root"] == MODEL
    r = httpx.post(ep.url + CHAT, json={"model": "nope", "messages": [{"role": "user", "content": "x"}]})
    assert r.status_code == 404
    assert r.json()["error"]["message"] == "The model `nope` does not exist."
    r = httpx.post(ep.url + CHAT, json={"model": "qwen-14b", "messages": [{"role": "user", "content": "x"}],
                                        "max_tokens": 2})
    assert r.status_code == 200 and r.json()["model"] == "local"


# ------------------------------------------------------------------------------------------------ API


def test_agent_api_streams_count_their_finish_reason_and_errors_are_vllms(start_engine):
    """Like vLLM 0.19: a Messages or Responses stream counts as finished_reason=length/stop in
    vllm:request_success (never a label `None`), and a Messages error carries the OpenAI error's type."""
    ep = start_engine()
    for path, body in (("/v1/messages", {"max_tokens": 3, "messages": [{"role": "user", "content": "hi"}]}),
                       ("/v1/responses", {"max_output_tokens": 3, "input": "hi"})):
        with httpx.stream("POST", ep.url + path, json={"model": MODEL, "stream": True, **body}, timeout=30) as r:
            assert r.status_code == 200 and list(r.iter_lines())
    m = metrics(ep)
    assert m["vllm:request_success_total|finished_reason=length"] == 2
    assert not [k for k in m if "finished_reason=None" in k]
    r = httpx.post(ep.url + "/v1/messages", json={"model": "nope", "max_tokens": 3,
                                                  "messages": [{"role": "user", "content": "hi"}]}, timeout=30)
    assert r.status_code == 404 and r.json()["error"]["type"] == "NotFoundError"


def test_chat_streaming_with_usage(start_engine):
    ep = start_engine()
    with httpx.stream("POST", ep.url + CHAT, timeout=30, json={
        "model": MODEL, "messages": [{"role": "user", "content": "Hello, world!"}], "max_tokens": 12,
        "stream": True, "stream_options": {"include_usage": True},
    }) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        events = sse_events(r)
    assert events[-1] == "[DONE]"
    usage = events[-2]["usage"]
    assert usage == {"prompt_tokens": 4 + 3, "completion_tokens": 12, "total_tokens": 19}  # as vLLM 0.32 streams it
    assert events[0]["choices"][0]["delta"]["role"] == "assistant"
    contents = [e["choices"][0]["delta"].get("content") for e in events[1:-2]]
    assert len(contents) == 12 and all(contents)
    assert events[-3]["choices"][0]["finish_reason"] == "length"

    # non-streaming, keep-alive on one client
    with httpx.Client(base_url=ep.url) as client:
        for _ in range(2):
            body = client.post(CHAT, json={"model": MODEL, "messages": [{"role": "user", "content": "hi"}],
                                           "max_tokens": 3}).json()
            assert body["object"] == "chat.completion" and body["usage"]["completion_tokens"] == 3
        r = client.post("/v1/completions", json={"model": MODEL, "prompt": "one two", "max_tokens": 4})
        assert r.json()["choices"][0]["text"] and r.json()["usage"]["prompt_tokens"] == 2


def test_context_length_error(start_engine):
    ep = start_engine("--max-model-len", "64")
    r = chat(ep, "word " * 40, max_tokens=40)
    assert r.status_code == 400
    err = r.json()["error"]
    assert err["type"] == "BadRequestError" and err["code"] == 400
    assert "this model's maximum context length is" in err["message"].lower()
    assert err["message"].startswith("This model's maximum context length is 64 tokens. However, you requested "
                                     "40 output tokens and your prompt contains at least 25 input tokens")


def test_tool_calls(start_engine):
    tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {
        "type": "object", "properties": {"city": {"type": "string"}, "days": {"type": "integer"},
                                         "unit": {"type": "string", "enum": ["c", "f"]}},
        "required": ["city", "unit"]}}}]
    plain = start_engine()
    r = chat(plain, "weather?", tools=tools)
    assert r.status_code == 400
    assert r.json()["error"]["message"] == (
        '"auto" tool choice requires --enable-auto-tool-choice and --tool-call-parser to be set')

    ep = start_engine("--enable-auto-tool-choice", "--tool-call-parser", "hermes")
    body = chat(ep, "weather?", tools=tools).json()
    choice = body["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    call = choice["message"]["tool_calls"][0]
    assert call["type"] == "function" and call["function"]["name"] == "get_weather"
    assert json.loads(call["function"]["arguments"]) == {"city": "example", "unit": "c"}

    with httpx.stream("POST", ep.url + CHAT, timeout=30, json={
        "model": MODEL, "messages": [{"role": "user", "content": "weather?"}], "tools": tools, "stream": True,
    }) as r:
        events = sse_events(r)
    deltas = [e["choices"][0]["delta"] for e in events[1:-1]]
    assert deltas[0]["tool_calls"][0]["function"]["name"] == "get_weather"
    args = "".join(d["tool_calls"][0]["function"]["arguments"] for d in deltas)
    assert json.loads(args) == {"city": "example", "unit": "c"}
    assert events[-2]["choices"][0]["finish_reason"] == "tool_calls"


def test_metrics_parse_and_move(start_engine):
    ep = start_engine("--served-model-name", "local")
    ep.name = "local"
    before = metrics(ep)
    assert before["vllm:generation_tokens_total"] == 0
    assert not any(k.startswith("vllm:spec_decode") for k in before)
    assert chat(ep, "count these words please", max_tokens=7).status_code == 200
    after = metrics(ep)
    assert after["vllm:generation_tokens_total"] == 7
    assert after["vllm:prompt_tokens_total"] == 4 + 3
    assert after["vllm:request_success_total|finished_reason=length"] == 1
    assert after["vllm:time_to_first_token_seconds_count"] == 1
    assert after["vllm:e2e_request_latency_seconds_count"] == 1
    assert 0 <= after["vllm:kv_cache_usage_perc"] <= 1
    text = httpx.get(ep.url + "/metrics").text
    assert 'vllm:num_requests_running{engine="0",model_name="local"}' in text
    assert 'le="0.001"' in text and "vllm:cache_config_info{" in text


def test_spec_decode_counters_only_with_speculative_config(start_engine):
    ep = start_engine("--speculative-config", '{"method":"qwen3_next_mtp","num_speculative_tokens":2}')
    assert "method `qwen3_next_mtp` is deprecated and replaced with mtp." in ep.output()
    chat(ep, max_tokens=50)
    m = metrics(ep)
    assert m["vllm:spec_decode_num_drafts_total"] > 0
    assert m["vllm:spec_decode_num_draft_tokens_total"] == 2 * m["vllm:spec_decode_num_drafts_total"]
    assert 0 < m["vllm:spec_decode_num_accepted_tokens_total"] < m["vllm:spec_decode_num_draft_tokens_total"]
    assert "vllm:spec_decode_num_accepted_tokens_per_pos_total|position=1" in m


# ------------------------------------------------------------------------------------------------ faults


@pytest.mark.parametrize("fault, wording", [
    ("oom_at_start", "ValueError: No available memory for the cache blocks."),
    ("kv_too_small", "ValueError: To serve at least one request with the models's max seq len (4096)"),
    ("cuda_oom", "torch.OutOfMemoryError: CUDA out of memory."),
    ("hf_token_missing", f"Access to model {MODEL} is restricted."),
])
def test_startup_faults(start_engine, fault, wording):
    ep = start_engine("--max-model-len", "4096", env={"APPLIANCE_SIM_FAULT": fault}, wait=False)
    assert ep.wait_exit() == 1
    out = ep.output()
    assert wording in out, out
    if fault in ("oom_at_start", "kv_too_small", "cuda_oom"):
        assert "Engine core initialization failed. See root cause above." in out
    if fault == "kv_too_small":
        assert "the estimated maximum model length is" in out


def test_natural_kv_too_small(start_engine):
    """No fault switch: a 14B AWQ model with 512k context does not fit a 3090's KV budget."""
    ep = start_engine("--max-model-len", "512k", wait=False)
    assert ep.wait_exit() == 1
    assert "To serve at least one request with the models's max seq len (512000)" in ep.output()


def test_hang_fault(start_engine):
    ep = start_engine(env={"APPLIANCE_SIM_FAULT": "hang", "APPLIANCE_SIM_LOAD_S": "0.1"}, wait=False)
    deadline = time.monotonic() + 10
    while "Starting to load model" not in ep.output():
        assert time.monotonic() < deadline, ep.output()
        time.sleep(0.05)
    with pytest.raises(httpx.ConnectError):  # a real vLLM stuck while loading refuses TCP, it does not hang it
        httpx.get(ep.url + "/health", timeout=0.5)
    assert ep.proc.poll() is None
    ep.stop()
    assert ep.proc.returncode == 0


def test_slow_load(start_engine):
    ep = start_engine(env={"APPLIANCE_SIM_FAULT": "slow_load", "APPLIANCE_SIM_LOAD_S": "0.1"}, wait=False)
    t0 = time.monotonic()
    ep.wait_ready()
    assert time.monotonic() - t0 >= 0.8


def test_http500_and_runtime_faults(start_engine):
    ep = start_engine(env={"APPLIANCE_SIM_FAULT": "http500"})
    r = chat(ep, max_tokens=2)
    assert r.status_code == 500 and r.json()["error"]["type"] == "InternalServerError"
    assert httpx.get(ep.url + "/health").status_code == 200
    assert httpx.post(ep.url + "/_sim/fault", json={"fault": "none"}).json() == {"fault": "none"}
    assert chat(ep, max_tokens=2).status_code == 200
    httpx.post(ep.url + "/_sim/fault", json={"fault": "dead"})
    assert httpx.get(ep.url + "/health").status_code == 503
    httpx.post(ep.url + "/_sim/fault", json={"fault": "hang"})
    with pytest.raises(httpx.ReadTimeout):
        httpx.get(ep.url + "/health", timeout=0.5)
    httpx.post(ep.url + "/_sim/fault", json={"fault": "none"})
    assert httpx.get(ep.url + "/health").status_code == 200


def test_crash_mid_stream(start_engine, rig):
    ep = start_engine(env={"APPLIANCE_SIM_FAULT": "crash_mid_stream", "APPLIANCE_SIM_CRASH_AFTER_TOKENS": "5"})
    got = []
    with pytest.raises(httpx.HTTPError):
        with httpx.stream("POST", ep.url + CHAT, timeout=10, json={
            "model": MODEL, "messages": [{"role": "user", "content": "x"}], "max_tokens": 50, "stream": True,
        }) as r:
            for line in r.iter_lines():
                if line.startswith("data: ") and line != "data: [DONE]":
                    got.append(json.loads(line[6:]))
    assert ep.wait_exit() == 1
    assert 1 <= len(got) <= 6
    assert rig.info(0).power_w == rig.gpus[0]["idle_w"]


def test_runtime_crash_switch(start_engine):
    ep = start_engine()
    httpx.post(ep.url + "/_sim/fault", json={"fault": "crash_mid_stream"})
    with pytest.raises(httpx.HTTPError):
        with httpx.stream("POST", ep.url + CHAT, timeout=10, json={
            "model": MODEL, "messages": [{"role": "user", "content": "x"}], "max_tokens": 40, "stream": True,
        }) as r:
            for _ in r.iter_lines():
                pass
    assert ep.wait_exit() == 1


# ------------------------------------------------------------------------------------------------ shutdown


def test_sigterm_exits_fast_and_gpu_returns_to_idle(start_engine, rig):
    ep = start_engine()
    with httpx.stream("POST", ep.url + CHAT, timeout=10, json={
        "model": MODEL, "messages": [{"role": "user", "content": "x"}], "max_tokens": 500, "stream": True,
    }) as r:
        it = r.iter_lines()
        next(it)
        deadline = time.monotonic() + 10  # the GPU draws when the loaded machine gets to it, not after a fixed sleep
        while (busy := rig.info(0)).power_w <= rig.gpus[0]["idle_w"] + 100:
            assert time.monotonic() < deadline, f"the GPU never drew under load: {busy}"
            time.sleep(0.02)
        assert busy.processes == (ep.proc.pid,) and busy.memory_used_bytes > 20 * 2**30
        ep.proc.terminate()
        assert ep.wait_exit(30) == 0
        # it ended the stream instead of finishing 500 tokens first (the exit is "fast" in tokens, not seconds)
        rest = [line for line in it if line.startswith("data: {")]
        assert len(rest) < 400, f"{len(rest)} more chunks streamed after SIGTERM"
    idle = rig.info(0)
    assert idle.power_w == rig.gpus[0]["idle_w"] and idle.memory_used_bytes == 0 and idle.processes == ()
    assert idle.throttle_reasons & 0x1
    assert "Application shutdown complete." in ep.output()


def test_cuda_visible_devices_picks_gpus(start_engine, rig):
    ep = start_engine("-tp", "2", env={"NVIDIA_VISIBLE_DEVICES": "1,2,3", "CUDA_VISIBLE_DEVICES": "1,2"})
    infos = rig.info_all()
    used = [i.index for i in infos if i.processes]
    assert used == [2, 3], [(i.index, i.processes) for i in infos]
    ep2 = start_engine("-tp", "4", env={"CUDA_VISIBLE_DEVICES": "0,1"}, wait=False)
    assert ep2.wait_exit() == 1
    assert "World size (4) is larger than the number of available GPUs (2) in this node." in ep2.output()


def test_free_port_helper():
    assert 1024 < free_port() < 65536


def test_api_key_reasoning_and_bad_parsers(start_engine):
    ep = start_engine("--api-key", "sekret", "--reasoning-parser", "qwen3")
    assert httpx.get(ep.url + "/v1/models").status_code == 401
    assert httpx.get(ep.url + "/health").status_code == 200
    r = httpx.post(ep.url + CHAT, headers={"Authorization": "Bearer sekret"}, timeout=10,
                   json={"model": MODEL, "messages": [{"role": "user", "content": "x"}], "max_tokens": 20})
    msg = r.json()["choices"][0]["message"]
    assert msg["reasoning"] and msg["content"]
    bad = start_engine("--enable-auto-tool-choice", "--tool-call-parser", "nope", wait=False)
    assert bad.wait_exit() == 1 and "KeyError: 'invalid tool call parser: nope (chose from {" in bad.output()
    bad = start_engine("--quantization", "int4", wait=False)
    assert bad.wait_exit() == 1 and "Unknown quantization method: int4. Must be one of" in bad.output()


def test_memory_check_can_be_turned_off(start_engine):
    ep = start_engine("--max-model-len", "1000000", env={"APPLIANCE_SIM_MEMORY_CHECK": "0"})
    assert httpx.get(ep.url + "/v1/models").json()["data"][0]["max_model_len"] == 1000000
