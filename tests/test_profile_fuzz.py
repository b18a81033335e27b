"""Random YAML thrown at the loader: only ApplianceErrors (or a valid profile) come out, never a traceback."""

from __future__ import annotations

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from appliance import profile as prof
from appliance import yamlsrc
from appliance.errors import ApplianceError

KEYS = ["name", "gpus", "power_limit_w", "engines", "proxy", "model", "aliases", "port", "max_model_len",
        "kv_cache_dtype", "tensor_parallel_size", "speculative_config", "hosted", "fallbacks", "extra_args",
        "env", "card", "quantization", "enable_auto_tool_choice", "tool_call_parser", "gpu_memory_utilization"]
scalars = st.one_of(st.none(), st.booleans(), st.integers(-10**6, 10**6), st.floats(allow_nan=True),
                    st.text(max_size=12), st.sampled_from(KEYS + ["fp8", "all", "auto", "mtp", "local"]))
values = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.one_of(st.sampled_from(KEYS), st.text(max_size=8)), inner,
                                                 max_size=5)), max_leaves=25)


def check(text: str) -> None:
    try:
        prof.validate(yamlsrc.load(text, "fuzz.yaml"))
    except ApplianceError as exc:
        assert exc.message and "fuzz.yaml" in exc.message


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(st.sampled_from(KEYS), values, max_size=6))
def test_random_structures(data):
    check(yaml.safe_dump(data, allow_unicode=True))


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.sampled_from(KEYS), values, max_size=4), st.lists(
    st.dictionaries(st.sampled_from(KEYS), values, max_size=6), max_size=3))
def test_random_engines(top, engines):
    data = dict(top)
    data.setdefault("name", "fuzz")
    data["engines"] = engines
    check(yaml.safe_dump(data, allow_unicode=True))


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("abc:-[]{},'\"\n\t #&*!|>%@`0123456789")), max_size=80))
def test_random_text(text):
    check(text)
