"""The sampler reads LiteLLM's price map (~2 MB, ~100 ms of CPU) only once a hosted model has answered
(appliance/telemetry.py `proxy_routes`): the same spend either way, without the read while nothing was priced."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from appliance import costs, metrics, telemetry

PAGE_LOCAL = ('litellm_input_tokens_metric_total{model_id="local:fast@0",requested_model="local"} 120\n'
              'litellm_output_tokens_metric_total{model_id="local:fast@0",requested_model="local"} 40\n')
PAGE_HOSTED = PAGE_LOCAL + (
    'litellm_input_tokens_metric_total{model_id="hosted:mini",requested_model="local"} 1000\n'
    'litellm_output_tokens_metric_total{model_id="hosted:mini",requested_model="local"} 500\n')


class Door:
    def __init__(self, plan):
        self._plan = plan

    def serving(self):
        return None

    def running_plan(self, profile):
        return self._plan, None


def stack(tmp_path):
    plan = SimpleNamespace(hosted={"mini": SimpleNamespace(litellm_model="openai/gpt-4o-mini")}, local_only=False)
    return SimpleNamespace(front_door=Door(plan), rig=SimpleNamespace(dir=tmp_path))


def test_no_hosted_tokens_no_price_map_and_no_spend(tmp_path, monkeypatch):
    monkeypatch.setattr(costs, "load_prices",
                        lambda *a, **k: pytest.fail("the price map was read with nothing to price"))
    monkeypatch.setattr("appliance.routes.alias_routes", lambda pl, profile: {})
    snap = telemetry.proxy_routes(telemetry.ProxySnap("u", "running", True), stack(tmp_path),
                                  metrics.parse(PAGE_LOCAL, 1.0))
    assert snap.spend_usd == {}


def test_hosted_tokens_are_priced(tmp_path, monkeypatch):
    prices = {"gpt-4o-mini": {"input_cost_per_token": 1e-6, "output_cost_per_token": 4e-6}}
    monkeypatch.setattr(costs, "load_prices", lambda *a, **k: prices)
    monkeypatch.setattr("appliance.routes.alias_routes", lambda pl, profile: {})
    snap = telemetry.proxy_routes(telemetry.ProxySnap("u", "running", True), stack(tmp_path),
                                  metrics.parse(PAGE_HOSTED, 1.0))
    assert snap.spend_usd == {"local": pytest.approx(1000 * 1e-6 + 500 * 4e-6)}
