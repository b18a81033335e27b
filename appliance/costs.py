"""What hosted models cost: today's spend per alias, estimated offline from LiteLLM's bundled price map.

Why this way: every request a hosted model serves is money the owner did not plan for (issue #13), so `status`
shows it per alias. The token counts come from LiteLLM's own Prometheus metrics (`litellm_input_tokens_metric`,
`litellm_output_tokens_metric`, labelled with the alias asked for and the deployment that answered); the prices
from the JSON that ships inside the litellm package (`model_prices_and_context_window_backup.json`), read at run
time from the proxy's venv — the appliance's own venv has no litellm, nothing is copied, nothing is fetched.
Counters restart with the proxy, so a small ledger in the state dir turns them into "today".
"""

from __future__ import annotations

import datetime as dt
import json
import os
from dataclasses import dataclass
from pathlib import Path

PRICE_FILE = "model_prices_and_context_window_backup.json"
HOSTED_PREFIX = "hosted:"


def price_map_path() -> Path | None:
    """The price map inside the proxy venv's litellm package (None when LiteLLM is not installed here)."""
    from appliance.proxyenv import litellm_executable

    exe = litellm_executable()
    if exe is None:
        return None
    for lib in sorted((exe.resolve().parent.parent / "lib").glob("python*/site-packages/litellm/" + PRICE_FILE)):
        return lib
    return None


_PRICES: dict[str, dict] = {}


def load_prices(path: Path | None = None) -> dict:
    """model → its price entry ({} when there is no price map); cached per file."""
    path = path or price_map_path()
    if path is None:
        return {}
    key = str(path)
    if key not in _PRICES:
        try:
            _PRICES[key] = json.loads(Path(path).read_text())
        except (OSError, ValueError):
            _PRICES[key] = {}
    return _PRICES[key]


def price_of(prices: dict, litellm_model: str) -> tuple[float, float] | None:
    """(USD per input token, USD per output token) of a LiteLLM model name (`openai/gpt-4o-mini`: the map keys
    OpenAI and Anthropic models without their provider prefix, OpenRouter ones with it)."""
    for key in (litellm_model, litellm_model.split("/", 1)[-1]):
        entry = prices.get(key)
        if isinstance(entry, dict) and "input_cost_per_token" in entry:
            return float(entry["input_cost_per_token"]), float(entry.get("output_cost_per_token") or 0.0)
    return None


def cost_usd(prices: dict, litellm_model: str, input_tokens: float, output_tokens: float) -> float | None:
    p = price_of(prices, litellm_model)
    return None if p is None else input_tokens * p[0] + output_tokens * p[1]


@dataclass(frozen=True)
class Spend:
    alias: str
    hosted: str  # the hosted model's name in the profile / settings
    input_tokens: float
    output_tokens: float
    usd: float | None  # None: the model is not in the price map


def hosted_spend(scrape, hosted_models: dict[str, str], prices: dict) -> list[Spend]:
    """Tokens and USD per (alias asked for, hosted model that answered) since the proxy started, from a parsed
    LiteLLM /metrics page (appliance.metrics.Scrape). `hosted_models`: hosted name → LiteLLM model
    (`ProxyPlan.hosted[name].litellm_model`)."""
    tokens: dict[tuple[str, str], list[float]] = {}
    for metric, i in (("litellm_input_tokens_metric_total", 0), ("litellm_output_tokens_metric_total", 1)):
        for labels, v in scrape.series(metric):
            mid = labels.get("model_id", "")
            if not mid.startswith(HOSTED_PREFIX):
                continue
            name = mid[len(HOSTED_PREFIX):].split("#", 1)[0]  # `hosted:claude#coder`: claude answering as coder
            key = (labels.get("requested_model", "") or name, name)
            tokens.setdefault(key, [0.0, 0.0])[i] += v
    out = []
    for (alias, name), (tin, tout) in sorted(tokens.items()):
        model = hosted_models.get(name)
        out.append(Spend(alias, name, tin, tout, cost_usd(prices, model, tin, tout) if model else None))
    return out


class SpendLedger:
    """Today's spend per alias from counters that restart with the proxy: a small JSON in the state dir
    ({day, last counter value per alias, today's sum per alias}); a counter lower than last time means the proxy
    restarted, so all of it is new. Before the first reading of a day, what the counters already hold counts
    as today's."""

    def __init__(self, path: Path):
        self.path = Path(path)

    def update(self, cumulative: dict[str, float], today: dt.date | None = None) -> dict[str, float]:
        day = (today or dt.date.today()).isoformat()
        try:
            data = json.loads(self.path.read_text())
        except (OSError, ValueError):
            data = {}
        last = data.get("last", {})
        spent = data.get("today", {}) if data.get("day") == day else {}
        for alias, value in cumulative.items():
            before = last.get(alias, 0.0)
            delta = value - before if value >= before else value
            spent[alias] = spent.get(alias, 0.0) + delta
        new = {"day": day, "last": dict(cumulative), "today": spent}
        if new == data:  # the sampler asks every few seconds: write only when the counters moved
            return dict(spent)
        data = new
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_text(json.dumps(data, indent=1, sort_keys=True))
        os.replace(tmp, self.path)
        return dict(spent)


def ledger_for(rig) -> SpendLedger:
    """The rig's ledger: beside its state (the simulated rig and the real one count apart)."""
    from appliance import paths

    return SpendLedger((rig.dir if hasattr(rig, "dir") else paths.state_dir()) / "spend.json")


def today_by_alias(scrape, hosted_models: dict[str, str], ledger: SpendLedger, prices: dict | None = None
                   ) -> dict[str, float]:
    """USD spent on hosted models today, per alias asked for (models missing from the price map count 0)."""
    prices = load_prices() if prices is None else prices
    cumulative: dict[str, float] = {}
    for s in hosted_spend(scrape, hosted_models, prices):
        cumulative[s.alias] = cumulative.get(s.alias, 0.0) + (s.usd or 0.0)
    return ledger.update(cumulative)
