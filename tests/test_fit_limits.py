"""`check` names the known limits of its memory model when they apply to the model (README "The fit check"):
sliding-window layers, hybrid / linear attention, multimodal encoders, mixture of experts — in "how sure" and in
--json `notes`; a plain decoder gets none."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import yaml

from appliance import cards, catalog
from appliance.fit import GPU, fit_profile
from appliance.profile import load_profile

from conftest import REPO


def engine(tmp_path, model: str, card: str = "h100-80", n: int = 1, **extra):
    spec = {"name": "p", "gpus": list(range(n)), "engines": [{"aliases": ["local"], "model": model,
                                                                "tensor_parallel_size": n, **extra}]}
    f = tmp_path / "p.yaml"
    f.write_text(yaml.safe_dump(spec))
    c = cards.CARDS[card]
    return fit_profile(load_profile(f), [GPU.from_card(i, c) for i in range(n)], use_hf_cache=True).engines[0]


@pytest.mark.parametrize("model,n,limit", [
    ("google/gemma-2-9b-it", 1, "sliding-window layers"),
    ("mistralai/Mixtral-8x7B-Instruct-v0.1", 2, "mixture of experts"),
    ("cyankiwi/Qwen3.5-27B-AWQ-BF16-INT8", 1, "hybrid / linear-attention layers"),
    ("cyankiwi/Qwen3.5-27B-AWQ-BF16-INT8", 1, "multimodal"),
])
def test_a_limit_that_applies_is_named(tmp_path, model, n, limit):
    e = engine(tmp_path, model, n=n, max_model_len=4096)
    assert any(x.startswith(limit + ":") for x in e.notes), e.notes
    assert "known limits: " in e.confidence and limit in e.confidence


def test_a_plain_decoder_has_no_limit(tmp_path):
    e = engine(tmp_path, "meta-llama/Llama-3.1-8B-Instruct", max_model_len=4096)
    assert e.notes == [] and "known limits" not in e.confidence


def test_limits_come_from_a_config_too(tmp_path, monkeypatch):
    """A Gemma 3 style config (sliding_window, a vision tower) read from the Hugging Face cache."""
    snap = tmp_path / "hub" / "models--acme--vision-sw" / "snapshots" / "abc"
    snap.mkdir(parents=True)
    text = {"model_type": "gemma3_text", "num_hidden_layers": 12, "num_attention_heads": 8, "num_key_value_heads": 4,
            "hidden_size": 1024, "head_dim": 128, "intermediate_size": 4096, "vocab_size": 32000,
            "max_position_embeddings": 32768, "sliding_window": 1024, "sliding_window_pattern": 6}
    (snap / "config.json").write_text(json.dumps({"model_type": "gemma3", "text_config": text, "vision_config": {
        "hidden_size": 1152, "intermediate_size": 4304, "num_hidden_layers": 27}, "torch_dtype": "bfloat16"}))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    arch = catalog.lookup("acme/vision-sw").arch
    assert arch.sliding_layers == 10 and arch.multimodal
    e = engine(tmp_path, "acme/vision-sw", max_model_len=4096)
    assert "sliding-window layers" in e.confidence and "multimodal" in e.confidence


def test_json_notes_and_text_name_the_limits():
    out = subprocess.run([sys.executable, "-m", "appliance", "check", "rtx3090x4-qwen35-27b", "--gpu", "3090",
                          "--json"], capture_output=True, text=True, cwd=REPO)
    notes = json.loads(out.stdout)["engines"][0]["notes"]
    assert any(n.startswith("multimodal:") and "−9 %" in n for n in notes)
    text = subprocess.run([sys.executable, "-m", "appliance", "check", "rtx3090x4-qwen35-27b", "--gpu", "3090"],
                          capture_output=True, text=True, cwd=REPO).stdout
    assert "how sure:" in text and "known limits: hybrid / linear-attention layers, multimodal" in text
