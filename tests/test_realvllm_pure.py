"""Pure pieces around the real engine: health states, cache_info, the real engine's environment and command."""

from __future__ import annotations

from appliance import metrics, realvllm
from appliance.phases import StartupTracker, health_state

CPU_LOG = """\
(Worker pid=7) INFO 11-29 18:38:40 [cpu_model_runner.py:68] Starting to load model /m/tiny-model...
(Worker pid=7) INFO 11-29 18:38:41 [default_loader.py:501] Loading weights took 0.05 seconds
(Worker pid=7) INFO 11-29 18:38:45 [cpu_worker.py:260] Explicitly set (0.06/9.09) GiB for KV cache on node 0.
(EngineCore pid=6) INFO 11-29 18:38:45 [kv_cache_utils.py:2327] CPU KV cache size: 131,072 tokens, Maximum \
concurrency for 2,048 tokens per request: 64.00x
INFO:     Application startup complete.""".splitlines()


def test_cpu_build_log_lines_drive_the_phases():
    tr = StartupTracker(0.0)
    for i, line in enumerate(CPU_LOG, start=1):
        tr.feed(line, float(i))
    assert tr.started["weights"] == 1.0 and tr.started["kv_graphs"] == 3.0 and not tr.ready
    assert "CPU KV cache size: 131,072 tokens" in tr.details


def test_health_state():
    assert health_state(True, None, 200, True) == "healthy"
    assert health_state(False, "refused", None, True) == "loading"  # a real vLLM while it loads
    assert health_state(False, "refused", None, False) == "down"
    assert health_state(False, "timeout", None, True) == "hung"  # accepted, never answered: not loading
    assert health_state(False, None, 503, True) == "unhealthy"


def _scrape(labels: str) -> metrics.Scrape:
    text = f'# TYPE vllm:cache_config_info gauge\nvllm:cache_config_info{{{labels}}} 1.0\n'
    return metrics.parse(text, 0.0, metrics.ENGINE_METRICS)


def test_cache_info_real_and_older_labels():
    real = _scrape('block_size="128",kv_cache_size_tokens="131072",num_gpu_blocks="1024",'
                   'kv_cache_memory_bytes="67108864",cache_dtype="auto",gpu_memory_utilization="0.92"')
    assert metrics.cache_info(real)["kv_cache_size_tokens"] == 131072
    assert metrics.cache_info(real)["kv_cache_memory_bytes"] == 67108864
    older = _scrape('block_size="16",num_gpu_blocks="1000",kv_cache_memory_bytes="None",cache_dtype="fp8"')
    info = metrics.cache_info(older)
    assert info["kv_cache_size_tokens"] == 16000 and info["kv_cache_memory_bytes"] is None
    assert metrics.cache_info(metrics.parse("", 0.0)) == {}


def test_engine_env_and_argv(tmp_path):
    env = realvllm.engine_env(tmp_path, {"HOME": "/h", "VLLM_ENABLE_V1_MULTIPROCESSING": "0",
                                         "APPLIANCE_SIM_DIR": "/x"})
    assert env["TMPDIR"] == str(tmp_path / "tmp") and (tmp_path / "tmp").is_dir()
    assert env["HF_HUB_OFFLINE"] == "1" and env["VLLM_NO_USAGE_STATS"] == "1" and env["DO_NOT_TRACK"] == "1"
    assert env["VLLM_CACHE_ROOT"].startswith(str(tmp_path)) and env["HF_HOME"].startswith(str(tmp_path))
    assert "VLLM_ENABLE_V1_MULTIPROCESSING" not in env and "APPLIANCE_SIM_DIR" not in env
    argv = realvllm.serve_argv("/v/bin/vllm", "/m", 8123, "--shutdown-timeout", "20")
    assert argv[:3] == ["/v/bin/vllm", "serve", "/m"] and argv[-2:] == ["--shutdown-timeout", "20"]
    assert argv[argv.index("--served-model-name") + 1: argv.index("--host")] == ["tiny", "local"]
    assert "--enforce-eager" in argv and argv[argv.index("--kv-cache-memory-bytes") + 1] == "64M"


def test_engine_tmpdir_stays_short_enough_for_zmq(tmp_path):
    deep = tmp_path / ("x" * 80)
    env = realvllm.engine_env(deep)
    assert len(env["TMPDIR"]) + 1 + 36 <= 107  # $TMPDIR/<uuid4> is vLLM's IPC socket path
    assert (deep / "tmp-path").read_text() == env["TMPDIR"]
    import shutil

    shutil.rmtree(env["TMPDIR"])
