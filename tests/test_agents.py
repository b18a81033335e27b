"""One door for every coding agent (issue #13), through the REAL front door (HAProxy + LiteLLM) on the simulated
rig: every agent API with either key header, streaming and not, tool calls, fallbacks through LiteLLM, a long
prefill on LiteLLM's path served locally, a profile without fallbacks that never reaches a hosted model, the
endpoint for Claude Code, and the cost of hosted requests against LiteLLM's price map."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import httpx
import pytest

from appliance import load, secrets

from conftest import REPO
from rigutil import ENGINE_PORT, HOSTED_BASE, PROXY_PORT, rig_env

pytestmark = [pytest.mark.proxy, pytest.mark.shared_rig]
LOCAL = f"local:local@{ENGINE_PORT}"
HOSTED = "hosted:hosted-mini"
URL = f"http://127.0.0.1:{PROXY_PORT}"
TOOLS = {"name": "read_file", "description": "read a file",
         "schema": {"type": "object", "properties": {"path": {"type": "string"}}, "required": ["path"]}}


def write_profiles(d: Path) -> None:
    """`agents`: one engine with tool calling, a slowed-down prefill (a 30B model on one 4090: ~1k prompt tok/s)
    and short proxy timeouts (3 s of stream silence), a hosted fallback. `solo`: the same engine, no fallbacks."""
    d.mkdir(parents=True, exist_ok=True)
    engine = textwrap.dedent(f"""\
        engines:
          - name: main
            aliases: [local]
            port: {ENGINE_PORT}
            model: Qwen/Qwen2.5-7B-Instruct-AWQ
            max_model_len: 8192
            max_num_seqs: 16
            kv_cache_dtype: fp8
            gpu_memory_utilization: 0.9
            enable_auto_tool_choice: true
            tool_call_parser: hermes
            env: {{APPLIANCE_SIM_PARAMS_B: "30", APPLIANCE_SIM_MEMORY_CHECK: "0"}}
        """)
    timeouts = "timeouts: {request_s: 60, stream_s: 3, first_token_s: 3}"
    (d / "agents.yaml").write_text(textwrap.dedent(f"""\
        name: agents
        card: "4090"
        gpus: [0]
        proxy:
          port: {PROXY_PORT}
          cooldown_s: 5
          {timeouts}
          hosted:
            - {{name: hosted-mini, provider: openai, model: gpt-4o-mini, api_key_env: OPENAI_API_KEY,
               max_input_tokens: 128000}}
          fallbacks: {{local: [hosted-mini]}}
        """) + engine)
    (d / "solo.yaml").write_text(textwrap.dedent(f"""\
        name: solo
        card: "4090"
        gpus: [0]
        proxy:
          port: {PROXY_PORT}
          {timeouts}
        """) + engine)


@pytest.fixture(scope="module")
def rig(tmp_path_factory, litellm_bin):
    from appliance.profile import load_profile
    from appliance.rig import simulated_rig
    from appliance.stack import Stack

    tmp = tmp_path_factory.mktemp("agents-rig")
    write_profiles(tmp / "profiles")
    saved = dict(os.environ)
    os.environ.update(rig_env(tmp))
    os.environ["OPENAI_API_KEY"] = "sk-test-openai-unused"
    stack = Stack(simulated_rig(runtime="process"))
    try:
        assert stack.up(load_profile("agents")).ok
        yield stack
    finally:
        stack.down(all_=True)
        os.environ.clear()
        os.environ.update(saved)


def headers(kind: str, key: str) -> dict:
    return {"Authorization": f"Bearer {key}"} if kind == "bearer" else {"x-api-key": key}


def body_for(api: str, stream: bool, tools: bool = False, model: str = "local", prompt: str = "say hello") -> dict:
    if api in ("chat", "chat_bare"):
        b = {"model": model, "messages": [{"role": "user", "content": prompt}], "max_tokens": 12, "stream": stream}
        if tools:
            b["tools"] = [{"type": "function", "function": {"name": TOOLS["name"], "description": TOOLS["description"],
                                                            "parameters": TOOLS["schema"]}}]
        return b
    if api in ("completions", "completions_bare"):
        return {"model": model, "prompt": prompt, "max_tokens": 12, "stream": stream}
    if api == "responses":
        b = {"model": model, "input": prompt, "max_output_tokens": 12, "stream": stream}
        if tools:
            b["tools"] = [{"type": "function", "name": TOOLS["name"], "description": TOOLS["description"],
                           "parameters": TOOLS["schema"]}]
        return b
    b = {"model": model, "messages": [{"role": "user", "content": prompt}], "max_tokens": 12, "stream": stream}
    if tools:
        b["tools"] = [{"name": TOOLS["name"], "description": TOOLS["description"], "input_schema": TOOLS["schema"]}]
    return b


PATHS = {"chat": "/v1/chat/completions", "chat_bare": "/chat/completions", "completions": "/v1/completions",
         "completions_bare": "/completions", "responses": "/v1/responses", "messages": "/v1/messages"}


def post(path: str, body: dict, hdrs: dict, timeout: float = 60) -> tuple[int, dict, str]:
    """(status, response headers, body text) — streams read to the end."""
    with httpx.Client(timeout=timeout, trust_env=False) as c:
        with c.stream("POST", URL + path, json=body, headers=hdrs) as r:
            return r.status_code, dict(r.headers), "".join(r.iter_text())


def events(text: str) -> list[dict]:
    """The JSON payloads of an SSE stream (OpenAI `data:` lines and Anthropic / Responses `event:` + `data:`)."""
    out = []
    for line in text.splitlines():
        if line.startswith("data: ") and line[6:].strip() != "[DONE]":
            out.append(json.loads(line[6:]))
    return out


def check_answer(api: str, stream: bool, text: str, tool: bool = False) -> None:
    if not stream:
        data = json.loads(text)
        if api == "messages":
            assert data["type"] == "message" and data["usage"]["output_tokens"] > 0
            kinds = [b["type"] for b in data["content"]]
            assert kinds == (["tool_use"] if tool else ["text"]), data
            if tool:
                assert data["stop_reason"] == "tool_use" and data["content"][0]["input"] == {"path": "example"}
        elif api == "responses":
            assert data["object"] == "response" and data["usage"]["output_tokens"] > 0
            kinds = [o["type"] for o in data["output"]]
            assert ("function_call" in kinds) if tool else ("message" in kinds), data
            if tool:
                call = [o for o in data["output"] if o["type"] == "function_call"][0]
                assert json.loads(call["arguments"]) == {"path": "example"}
        else:
            choice = json.loads(text)["choices"][0]
            if tool:
                assert json.loads(choice["message"]["tool_calls"][0]["function"]["arguments"]) == {"path": "example"}
            else:
                assert (choice.get("message") or {}).get("content") or choice.get("text")
        return
    evs = events(text)
    assert evs, text
    if api == "messages":
        types = [e["type"] for e in evs]
        assert types[0] == "message_start" and types[-1] == "message_stop", types
        if tool:
            start = [e for e in evs if e["type"] == "content_block_start"][0]["content_block"]
            assert start["type"] == "tool_use" and start["name"] == "read_file"
            args = "".join(e["delta"].get("partial_json", "") for e in evs if e["type"] == "content_block_delta")
            assert json.loads(args) == {"path": "example"}
        else:
            assert any(e["type"] == "content_block_delta" and e["delta"].get("text") for e in evs)
    elif api == "responses":
        types = [e["type"] for e in evs]
        assert types[0] == "response.created" and types[-1] in ("response.completed", "response.incomplete"), types
        if tool:
            done = [e for e in evs if e["type"] == "response.output_item.done"][-1]["item"]
            assert done["type"] == "function_call" and json.loads(done["arguments"]) == {"path": "example"}
        else:
            assert any(e["type"] == "response.output_text.delta" for e in evs)
    else:
        if tool:
            args = "".join(tc["function"].get("arguments", "") for e in evs for ch in e["choices"]
                           for tc in (ch.get("delta") or {}).get("tool_calls") or [])
            assert json.loads(args) == {"path": "example"}
        else:
            assert any((ch.get("delta") or {}).get("content") or ch.get("text") for e in evs for ch in e["choices"])


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
@pytest.mark.parametrize("key_header", ["bearer", "x-api-key"])
@pytest.mark.parametrize("api", list(PATHS))
def test_every_api_with_either_key_is_served_by_the_engine_itself(rig, api, key_header, stream):
    code, hdrs, text = post(PATHS[api], body_for(api, stream), headers(key_header, secrets.master_key()))
    assert code == 200, text
    assert hdrs.get("x-appliance-route") == "local" and hdrs.get("x-litellm-model-id") == LOCAL  # the hot path
    check_answer(api, stream, text)


@pytest.mark.parametrize("key_header", ["bearer", "x-api-key"])
def test_count_tokens(rig, key_header):
    body = {"model": "local", "messages": [{"role": "user", "content": "one two three"}]}
    code, hdrs, text = post("/v1/messages/count_tokens", body, headers(key_header, secrets.master_key()))
    assert code == 200 and hdrs.get("x-appliance-route") == "local"
    assert json.loads(text)["input_tokens"] == 3 + 3  # three words + the stand-in's 3 per message


@pytest.mark.parametrize("path", list(PATHS.values()) + ["/v1/messages/count_tokens", "/v1/models", "/models",
                                                          "/metrics", "/anything"])
def test_a_wrong_or_missing_key_is_refused_the_same_way_everywhere(rig, path):
    for hdrs in ({}, {"Authorization": "Bearer sk-wrong"}, {"x-api-key": "sk-wrong"},
                 {"x-api-key": f"Bearer {secrets.master_key()}"}):
        code, h, text = post(path, body_for("chat", False), hdrs)
        assert code == 401, (path, hdrs, text)
        assert h["content-type"].startswith("application/json")
        err = json.loads(text)["error"]
        assert err["type"] == "authentication_error" and "x-api-key" in err["message"]


def test_models_list_works_with_x_api_key(rig):
    """LiteLLM answers /v1/models: it gets the Bearer form of the key whatever header the agent used."""
    for path in ("/v1/models", "/models"):
        with httpx.Client(trust_env=False, timeout=30) as c:
            r = c.get(URL + path, headers={"x-api-key": secrets.master_key()})
        assert r.status_code == 200, r.text
        assert {"local", "hosted-mini"} <= {m["id"] for m in r.json()["data"]}


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
@pytest.mark.parametrize("api", ["chat", "responses", "messages"])
def test_tool_calls(rig, api, stream):
    code, hdrs, text = post(PATHS[api], body_for(api, stream, tools=True), headers("x-api-key", secrets.master_key()))
    assert code == 200, text
    assert hdrs.get("x-litellm-model-id") == LOCAL
    check_answer(api, stream, text, tool=True)


def test_unknown_model_is_refused_with_the_served_list(rig):
    for api in ("chat", "responses", "messages"):
        code, _, text = post(PATHS[api], body_for(api, False, model="gpt-9"), headers("bearer", secrets.master_key()))
        assert code == 404, text
        msg = json.loads(text)["error"]["message"]
        assert "`gpt-9` is not served now (profile agents)" in msg and "served now: hosted-mini, local" in msg


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
@pytest.mark.parametrize("api", ["chat", "responses", "messages"])
def test_engine_failing_falls_back_through_litellm_for_every_api(rig, api, stream):
    """The engine answers 500: HAProxy marks it down and hands the same request to LiteLLM, which serves it from
    the profile's fallback (Messages translated by LiteLLM, Responses native)."""
    from rigutil import wait_local

    key = secrets.master_key()
    httpx.post(f"http://127.0.0.1:{ENGINE_PORT}/_sim/fault", json={"fault": "http500"})
    try:
        code, hdrs, text = post(PATHS[api], body_for(api, stream), headers("x-api-key", key))
    finally:
        httpx.post(f"http://127.0.0.1:{ENGINE_PORT}/_sim/fault", json={"fault": "none"})
    assert code == 200, text
    assert hdrs.get("x-litellm-model-id") == HOSTED, hdrs
    check_answer(api, stream, text)
    wait_local(key)


def test_long_prefill_on_litellm_path_is_served_locally(rig):
    """A prompt too large for the hot path (bytes > the context guard) goes through LiteLLM; its prefill takes
    longer than the 3 s the profile allows a silent stream — LiteLLM must still wait for the local engine (the
    front door's health checks, not a first-token timeout, decide that an engine is gone)."""
    import time

    prompt = load.synthetic_prompt(6000, 7)  # ~6,000 tokens, ~30 KB: over the guard's 8192 bytes, under 8192 tokens
    sim = httpx.get(f"http://127.0.0.1:{ENGINE_PORT}/_sim/state").json()
    assert 6000 / (20 * sim["r1"]) > 3.5, sim  # the stand-in's prefill rate is 20 × r1: this prompt takes > 3.5 s
    for stream in (True, False):
        t0 = time.time()
        code, hdrs, text = post("/v1/chat/completions", body_for("chat", stream, prompt=prompt),
                                headers("bearer", secrets.master_key()), timeout=120)
        assert code == 200, text
        assert hdrs.get("x-litellm-model-id") == LOCAL, hdrs  # LiteLLM's deployment of the local engine
        assert hdrs.get("x-appliance-route") is None  # not the hot path: LiteLLM answered
        assert time.time() - t0 > 3.0  # it really waited longer than the stream timeout
        check_answer("chat", stream, text)


def test_endpoint_prints_what_claude_code_needs(rig):
    out = subprocess.run([sys.executable, "-m", "appliance", "endpoint", "--json", "--sim", "--runtime", "process"],
                         capture_output=True, text=True, cwd=REPO, env=os.environ)
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    key = secrets.master_key()
    assert data["openai"] == {"OPENAI_BASE_URL": f"{URL}/v1", "OPENAI_API_KEY": key}
    assert data["claude_code"] == {"ANTHROPIC_BASE_URL": URL, "ANTHROPIC_AUTH_TOKEN": key, "ANTHROPIC_MODEL": "local",
                                   "ANTHROPIC_DEFAULT_HAIKU_MODEL": "local"}
    assert data["aliases"]["local"]["route"] == [f"local:{ENGINE_PORT}", "hosted:hosted-mini"]
    assert data["aliases"]["hosted-mini"]["route"] == ["hosted:hosted-mini"]
    text = subprocess.run([sys.executable, "-m", "appliance", "endpoint", "--sim", "--runtime", "process"],
                          capture_output=True, text=True, cwd=REPO, env=os.environ).stdout
    assert f"export ANTHROPIC_BASE_URL={URL}\n" in text and "export ANTHROPIC_MODEL=local" in text
    # what it prints works: the Messages API at ANTHROPIC_BASE_URL + /v1/messages with the token as Bearer
    code, _, body = post("/v1/messages", body_for("messages", False), {"Authorization": f"Bearer {key}"})
    assert code == 200, body


def test_hosted_cost_matches_the_price_map(rig):
    """A request served by the hosted model: its cost from LiteLLM's token counters × the bundled price map."""
    import time

    from appliance import costs, metrics
    from appliance.cli.agents import spend_today

    key = secrets.master_key()
    prompt = "count these seven words for the cost"
    code, _, text = post("/v1/chat/completions", {"model": "hosted-mini", "max_tokens": 40,
                                                  "messages": [{"role": "user", "content": prompt}]},
                         headers("bearer", key))
    assert code == 200, text
    usage = json.loads(text)["usage"]
    prices = json.loads(costs.price_map_path().read_text())  # the file inside the proxy venv's litellm
    want_one = usage["prompt_tokens"] * prices["gpt-4o-mini"]["input_cost_per_token"] + \
        usage["completion_tokens"] * prices["gpt-4o-mini"]["output_cost_per_token"]
    assert want_one > 0
    proxy = rig.rig.state.load().proxy
    deadline = time.time() + 15
    while True:
        r = httpx.get(f"http://127.0.0.1:{proxy.litellm_port}/metrics/", headers={"Authorization": f"Bearer {key}"})
        spent = costs.hosted_spend(metrics.parse(r.text, time.time()), {"hosted-mini": "openai/gpt-4o-mini"},
                                   costs.load_prices())
        mine = [s for s in spent if s.alias == "hosted-mini"]
        if mine or time.time() > deadline:
            break
        time.sleep(0.5)
    assert len(mine) == 1, spent
    s = mine[0]
    assert s.input_tokens >= usage["prompt_tokens"] and s.output_tokens >= usage["completion_tokens"]
    price_in, price_out = prices["gpt-4o-mini"]["input_cost_per_token"], prices["gpt-4o-mini"]["output_cost_per_token"]
    assert s.usd == pytest.approx(s.input_tokens * price_in + s.output_tokens * price_out)
    # LiteLLM's own spend counter (same price map, computed inside the proxy) agrees; fallbacks of earlier tests
    # (asked for `local`, answered by hosted-mini) are in it: LiteLLM labels them with the fallback's name
    scrape = metrics.parse(r.text, time.time())
    litellm_usd = sum(v for lab, v in scrape.series("litellm_spend_metric_total") if lab.get("model_id") == HOSTED)
    assert s.usd == pytest.approx(litellm_usd)
    assert s.input_tokens > usage["prompt_tokens"]
    today = spend_today(rig, rig.front_door.plan())
    assert today["hosted-mini"] == pytest.approx(s.usd)


def test_status_shows_todays_hosted_spend_per_alias(rig):
    """After the hosted request above: `status` (text and JSON) shows the same spend per alias as the ledger, in
    USD, and the route of each alias."""
    from appliance import routes
    from appliance.cli.agents import spend_today

    today = spend_today(rig, rig.front_door.plan())
    assert today.get("hosted-mini", 0) > 0, today
    args = [sys.executable, "-m", "appliance", "status", "--sim", "--runtime", "process", "--window", "0.2"]
    text = subprocess.run(args, capture_output=True, text=True, cwd=REPO, env=os.environ)
    assert text.returncode == 0, text.stderr
    rows = {ln.split()[1]: ln for ln in text.stdout.splitlines() if ln.startswith("#   ")}
    assert rows["hosted-mini"].endswith(routes.usd(today["hosted-mini"])), text.stdout
    assert "engine main → hosted hosted-mini" in rows["local"], text.stdout
    data = json.loads(subprocess.run(args + ["--json"], capture_output=True, text=True, cwd=REPO,
                                     env=os.environ).stdout)
    assert data["hosted_spend_today_usd"]["hosted-mini"] == pytest.approx(today["hosted-mini"])
    assert data["proxy"]["spend_usd"]["hosted-mini"] == pytest.approx(today["hosted-mini"])
    assert [h["kind"] for h in data["proxy"]["routes"]["local"]] == ["engine", "hosted"]


def test_profile_without_fallbacks_never_reaches_a_hosted_model(rig):
    """Last in this module: switches the rig to `solo` (no proxy fallbacks, no hosted models)."""
    from appliance.profile import load_profile
    from rigutil import wait_local

    key = secrets.master_key()
    hosted_before = _hosted_requests()
    assert rig.switch(load_profile("solo"), drain_s=5).ok
    wait_local(key, timeout=60)
    code, _, text = post("/v1/chat/completions", body_for("chat", False, model="hosted-mini"), headers("bearer", key))
    assert code == 404 and "served now: local" in json.loads(text)["error"]["message"]
    httpx.post(f"http://127.0.0.1:{ENGINE_PORT}/_sim/fault", json={"fault": "http500"})
    try:
        results = [post(PATHS[api], body_for(api, stream), headers("bearer", key))
                   for api in ("chat", "responses", "messages") for stream in (False, True)]
        long = post("/v1/chat/completions", body_for("chat", False, prompt=load.synthetic_prompt(9000, 3)),
                    headers("bearer", key))  # over the context: no context-window fallback either
    finally:
        httpx.post(f"http://127.0.0.1:{ENGINE_PORT}/_sim/fault", json={"fault": "none"})
    for code, hdrs, text in results + [long]:
        assert hdrs.get("x-litellm-model-id") != HOSTED
        assert code >= 400 or '"error"' in text, text  # refused or failed, never served elsewhere
    assert _hosted_requests() == hosted_before


def _hosted_requests() -> float:
    """Requests the hosted stand-in has finished (its own vLLM counters)."""
    from appliance import metrics

    with contextlib.suppress(httpx.HTTPError):
        r = httpx.get(f"http://127.0.0.1:{HOSTED_BASE}/metrics", timeout=5)
        return sum(v for _, v in metrics.parse(r.text, 0).series("vllm:request_success_total"))
    return -1.0
