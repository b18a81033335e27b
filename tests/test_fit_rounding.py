"""Capacity claims round down, once, and every place that prints them agrees: 1.25 requests is "1.2" in the
verdict, the table and --json; at util 0.97 "hold 2.0 requests" never sits next to "max_num_seqs to 1"."""

from __future__ import annotations

import re

import pytest
import yaml

from appliance import cards
from appliance.fit import GPU, fit_profile
from appliance.profile import load_profile


def engine(tmp_path, **e):
    spec = {"name": "p", "gpus": [0], "engines": [{"aliases": ["local"], "model": "meta-llama/Llama-3.1-8B-Instruct",
                                                    **e}]}
    f = tmp_path / "p.yaml"
    f.write_text(yaml.safe_dump(spec))
    return fit_profile(load_profile(f), [GPU.from_card(0, cards.CARDS["4090"])], use_hf_cache=False).engines[0]


@pytest.mark.parametrize("util", [0.9, 0.93, 0.95, 0.97])
@pytest.mark.parametrize("seqs", [4, 16])
def test_concurrency_rounds_down_and_agrees_with_the_fix(tmp_path, util, seqs):
    base = engine(tmp_path, gpu_memory_utilization=util, max_model_len=4096, max_num_seqs=seqs)
    # a max_model_len whose ratio lands just under a whole number, and one on a .x5 boundary
    for max_len in (base.kv_tokens // 2 + 16, base.kv_tokens * 4 // 5, base.kv_tokens * 2 // 5 + 1):
        e = engine(tmp_path, gpu_memory_utilization=util, max_model_len=max_len, max_num_seqs=seqs)
        exact = e.kv_tokens / max_len
        assert e.max_concurrency_at_max_len <= exact and exact - e.max_concurrency_at_max_len < 0.1
        shown = re.search(r"([\d.]+) requests of max_model_len", e.verdict).group(1)
        assert shown == f"{e.max_concurrency_at_max_len:.1f}"
        said = [f for f in e.fixes if "max_num_seqs to" in f]
        if said:
            assert int(said[0].split()[-1]) == int(float(shown)), (e.verdict, said)
