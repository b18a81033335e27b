"""Fit numbers against hand-computed values and the seeds' own figures."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from appliance import cards, catalog
from appliance.fit import GPU, fit_profile, kv_bytes_per_token
from appliance.profile import load_profile

from conftest import REPO

GIB = 2**30


def gpus(card: str, n: int):
    c = cards.CARDS[card]
    return [GPU(i, c.name, c.memory_bytes) for i in range(n)]


def test_4090_agent_seed_figures():
    """Seed 000: "KV at 8k context per session and 8 active sessions costs ~6 GB; the 14B AWQ base sits at
    10.2 GB"."""
    p = load_profile("rtx4090-qwen25-14b-agent")
    e = fit_profile(p, gpus("4090", 1)).engines[0]
    # 2 × 48 layers × 8 KV heads × 128 head dim × 1 byte (fp8) = 98,304 B per token
    assert e.kv_bytes_per_token == 2 * 48 * 8 * 128 * 1 == 98304
    assert 8192 * 8 * e.kv_bytes_per_token == 6 * GIB
    assert abs(e.weights_bytes / 1e9 - 10.2) / 10.2 < 0.03
    assert e.kv_cache_needed_bytes == 16384 * 32 * 98304  # the requirement, not the cache vLLM allocates
    assert e.kv_cache_allocated_bytes == e.kv_tokens * e.kv_bytes_per_token <= e.available_kv_bytes
    assert e.fits and not e.full_concurrency_fits  # 32 × 16k does not fit; vLLM starts and queues
    assert 7 <= e.max_concurrency_at_max_len < 9  # the seed: "sustains roughly 8-10 active agent sessions"


def test_qwen35_hybrid_mtp_on_four_3090s():
    p = load_profile("rtx3090x4-qwen35-27b")
    r = fit_profile(p, gpus("3090", 4))
    e = r.engines[0]
    # 16 full-attention layers + 1 MTP layer; 4 KV heads over TP 4 = 1 per rank; head dim 256; fp8
    assert e.kv_bytes_per_token == 2 * 17 * 1 * 256 * 1
    assert e.gpus == [0, 1, 2, 3]
    assert e.fits and not e.full_concurrency_fits
    assert 4 < e.max_concurrency_at_max_len < 12
    assert r.fits


def test_kv_heads_are_replicated_when_tp_exceeds_them():
    arch = catalog.ARCHS["qwen2.5-7b-instruct"]  # 4 KV heads
    assert kv_bytes_per_token(arch, 8, "fp8") == kv_bytes_per_token(arch, 4, "fp8")


def test_kv_limited_fixes_are_right(tmp_path):
    """Applying the suggested max_model_len (or max_num_seqs) makes max_num_seqs full-length requests fit."""
    p = load_profile("rtx4090-llama31-8b-chat")
    e = fit_profile(p, gpus("4090", 1)).engines[0]
    assert not e.full_concurrency_fits
    fix_len = int(e.fixes[0].split()[-1])
    fix_seqs = int(e.fixes[1].split()[-1])
    src = (REPO / "profiles" / "rtx4090-llama31-8b-chat.yaml").read_text()
    for old, new in [("max_model_len: 65536", f"max_model_len: {fix_len}"),
                     ("max_num_seqs: 32", f"max_num_seqs: {fix_seqs}")]:
        f = tmp_path / "fixed.yaml"
        f.write_text(src.replace(old, new).replace("name: rtx4090-llama31-8b-chat", "name: fixed"))
        fixed = fit_profile(load_profile(f), gpus("4090", 1)).engines[0]
        assert fixed.full_concurrency_fits, (old, new, fixed.verdict)


def test_does_not_fit_unquantized_14b_on_a_4090(tmp_path):
    f = tmp_path / "big.yaml"
    f.write_text("name: big\ngpus: [0]\nengines:\n  - model: Qwen/Qwen2.5-14B-Instruct\n    aliases: [local]\n"
                 "    max_model_len: 32768\n")
    r = fit_profile(load_profile(f), gpus("4090", 1))
    e = r.engines[0]
    assert not r.fits and not e.fits
    assert e.weights_bytes > 29e9  # 14.77 B params × 2 bytes
    assert "does not fit" in e.verdict and "No available memory for the cache blocks" in e.verdict
    assert any("quantized" in fx for fx in e.fixes)


def test_max_len_too_long_for_kv_names_estimated_length(tmp_path):
    f = tmp_path / "long.yaml"
    f.write_text("name: long\ngpus: [0]\nengines:\n  - model: Qwen/Qwen2.5-7B-Instruct-AWQ\n    aliases: [local]\n"
                 "    max_model_len: 32768\n    gpu_memory_utilization: 0.6\n")
    e = fit_profile(load_profile(f), gpus("3060", 1)).engines[0]
    assert not e.fits
    assert "estimated maximum model length" in e.verdict
    assert e.fixes[0].startswith("lower max_model_len to ")
    assert int(e.fixes[0].split()[-1]) <= e.kv_tokens


def test_small_profile_fits_a_16gb_card():
    r = fit_profile(load_profile("rtx4060ti16-qwen25-7b"), gpus("4060-ti-16", 1))
    assert r.fits and r.engines[0].full_concurrency_fits


def test_other_processes_memory_counts():
    p = load_profile("rtx4060ti16-qwen25-7b")
    c = cards.CARDS["4060-ti-16"]
    r = fit_profile(p, [GPU(0, c.name, c.memory_bytes, used_bytes=4 * GIB)])
    assert not r.fits
    assert "in use by other processes" in " ".join(r.engines[0].notes)


def test_hf_cache_config_is_read(tmp_path, monkeypatch):
    snap = tmp_path / "hub" / "models--acme--tiny-llm" / "snapshots" / "abc"
    snap.mkdir(parents=True)
    (snap / "config.json").write_text(json.dumps({
        "model_type": "llama", "num_hidden_layers": 4, "num_attention_heads": 8, "num_key_value_heads": 2,
        "hidden_size": 512, "intermediate_size": 1024, "vocab_size": 1000, "max_position_embeddings": 4096,
        "torch_dtype": "bfloat16"}))
    (snap / "model.safetensors.index.json").write_text(json.dumps({"metadata": {"total_size": 123456789}}))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    ck = catalog.lookup("acme/tiny-llm")
    assert ck and ck.arch.kv_heads == 2 and ck.arch.head_dim == 64 and catalog.weights_bytes(ck) == 123456789
    assert kv_bytes_per_token(ck.arch, 1, "auto") == 2 * 4 * 2 * 64 * 2


@pytest.mark.parametrize("profile", ["rtx4090-qwen25-14b-agent", "rtx3090x4-two-tier"])
def test_check_json_keys(profile):
    out = subprocess.run([sys.executable, "-m", "appliance", "check", profile, "--json"], capture_output=True,
                         text=True, cwd=REPO)
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert data["fits"] is True
    for e in data["engines"]:
        for key in ("kv_bytes_per_token", "weights_bytes", "kv_cache_needed_bytes", "kv_cache_allocated_bytes",
                    "available_kv_bytes", "kv_tokens", "max_concurrency_at_max_len", "fits"):
            assert key in e
        # the old ambiguous name is gone: it held the requirement, and new users read it as the allocation
        assert "kv_cache_bytes" not in e
        assert e["kv_cache_allocated_bytes"] == e["kv_tokens"] * e["kv_bytes_per_token"]
        assert e["kv_cache_needed_bytes"] == e["max_model_len"] * e["max_num_seqs"] * e["kv_bytes_per_token"]


def test_check_gpu_argument_and_exit_code():
    # 8 GiB cards: the calibrated overhead (issue 15) lets 4 × 12 GiB hold one 262k request (299k tokens of KV),
    # so the "does not fit" leg of this test needs a card that really is too small.
    out = subprocess.run([sys.executable, "-m", "appliance", "check", "rtx3090x4-qwen35-27b", "--gpu", "8"],
                         capture_output=True, text=True, cwd=REPO)
    assert out.returncode == 1 and "DOES NOT FIT" in out.stdout
    out = subprocess.run([sys.executable, "-m", "appliance", "check", "rtx3090x4-qwen35-27b", "--gpu", "h200x4"],
                         capture_output=True, text=True, cwd=REPO)
    assert out.returncode == 0 and "FITS" in out.stdout
    out = subprocess.run([sys.executable, "-m", "appliance", "check", "rtx3090x4-qwen35-27b", "--gpu", "gtx9090"],
                         capture_output=True, text=True, cwd=REPO)
    assert out.returncode == 2 and "unknown card" in out.stderr


@pytest.mark.parametrize("gpu,count,name", [("4090", 4, "RTX 4090"), ("rtx4090", 4, "RTX 4090"),
                                            ("RTX 4090", 4, "RTX 4090"), ("3090x4", 4, "RTX 3090"),
                                            ("4x3090", 4, "RTX 3090"), ("24GiB", 4, "24 GiB"),
                                            ("2x24GB", 2, "24 GB")])
def test_check_reads_gpu_as_owners_type_it(gpu, count, name):
    """The README's own `appliance check PROFILE --gpu 4090` (once broken: "4090 GiB is not a GPU memory size")."""
    out = subprocess.run([sys.executable, "-m", "appliance", "check", "rtx3090x4-qwen35-27b", "--gpu", gpu, "--json"],
                         capture_output=True, text=True, cwd=REPO)
    assert out.returncode in (0, 1), out.stderr
    data = json.loads(out.stdout)
    assert data["gpu_source"].startswith(f"--gpu {gpu}")
    assert len(data["gpus"]) == count and all(name in g["name"] for g in data["gpus"])
