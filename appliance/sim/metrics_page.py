"""The stand-in engine's `/metrics` page: vLLM V1's families, help texts and labels. Stdlib only.

The family set and every family's label names are those of a real vLLM 0.32 (checked family by family against a
running one by tests/real/test_conformance.py); families that only make sense with features the stand-in does
not simulate (external KV transfer, multi-modal caches, admission limits, FLOPs estimates) are exported at zero,
as a real engine without those features does.
"""

from __future__ import annotations

from appliance.sim import physics, promtext

_ZERO = [([], 0)]


def _spec(w: promtext.Writer, self) -> None:
    drafts = int(self.spec_drafts)
    accepted = [int(a) for a in self.spec_accepted_pos]
    w.counter("vllm:spec_decode_num_drafts", "Number of spec decoding drafts.", [([], drafts)])
    w.counter("vllm:spec_decode_num_draft_tokens", "Number of draft tokens.", [([], drafts * self.spec.k)])
    w.counter("vllm:spec_decode_num_accepted_tokens", "Number of accepted tokens.", [([], sum(accepted))])
    w.counter("vllm:spec_decode_num_accepted_tokens_per_pos", "Accepted tokens per draft position.",
              [([("position", str(i))], a) for i, a in enumerate(accepted)])


def render(self) -> str:
    cfg = self.cfg
    w = promtext.Writer([("model_name", cfg.name), ("engine", "0")], self.created_wall)
    with self.lock:
        if self.spec:
            _spec(w, self)
        for what in ("flops", "read_bytes", "write_bytes"):
            w.counter(f"vllm:estimated_{what}_per_gpu", f"Estimated number of {what} per GPU (for Model Flops "
                      "Utilization calculations).", _ZERO)
        w.gauge("vllm:num_requests_running", "Number of requests in model execution batches.",
                [([], len(self.running))])
        w.gauge("vllm:num_requests_waiting", "Number of requests waiting to be processed.", [([], self.waiting)])
        w.gauge("vllm:num_requests_waiting_by_reason", "Number of waiting requests by reason.",
                [([("reason", "capacity")], self.waiting), ([("reason", "deferred")], 0)])
        w.gauge(
            "vllm:engine_sleep_state",
            "Engine sleep state; awake = 0 means engine is sleeping; awake = 1 means engine is awake; "
            "weights_offloaded = 1 means sleep level 1; discard_all = 1 means sleep level 2.",
            [([("sleep_state", "awake")], 1), ([("sleep_state", "weights_offloaded")], 0),
             ([("sleep_state", "discard_all")], 0)],
        )
        w.gauge("vllm:kv_cache_usage_perc", "KV-cache usage. 1 means 100 percent usage.", [([], self.kv_usage())])
        w.counter("vllm:prefix_cache_queries",
                  "Prefix cache queries, in terms of number of queried tokens.", [([], self.prefix_queries)])
        w.counter("vllm:prefix_cache_hits",
                  "Prefix cache hits, in terms of number of cached tokens.", [([], self.prefix_hits)])
        for cache in ("external_prefix_cache", "mm_cache"):
            w.counter(f"vllm:{cache}_queries", f"{cache} queries.", _ZERO)
            w.counter(f"vllm:{cache}_hits", f"{cache} hits.", _ZERO)
        w.counter("vllm:num_preemptions", "Cumulative number of preemption from the engine.", [([], 0)])
        w.counter("vllm:prompt_tokens", "Number of prefill tokens processed.", [([], self.prompt_tokens)])
        w.counter("vllm:prompt_tokens_by_source", "Number of prompt tokens by source.", [
            ([("source", "local_compute")], self.prompt_tokens - self.prefix_hits),
            ([("source", "local_cache_hit")], self.prefix_hits), ([("source", "external_kv_transfer")], 0)])
        w.counter("vllm:prompt_tokens_cached", "Number of cached prompt tokens (local + external).",
                  [([], self.prefix_hits)])
        w.counter("vllm:prompt_tokens_cached_by_source", "Prefix-cache hit tokens by the cache tier that supplied "
                  "them.", [([("source", "device")], self.prefix_hits)] + [
                      ([("source", tier)], 0) for tier in ("host", "p2p", "disk", "external_unspecified")])
        w.counter("vllm:generation_tokens", "Number of generation tokens processed.",
                  [([], self.generation_tokens)])
        w.counter("vllm:request_success", "Count of successfully processed requests.",
                  [([("finished_reason", r)], n) for r, n in self.success.items()])
        base, w.base = w.base, [("model_name", cfg.name)]  # the one family without an engine label
        w.counter("vllm:admission_rejections", "Number of admission attempts rejected by a queue limit, by reason.",
                  [([("reason", "max_num_queued_reqs")], 0), ([("reason", "max_num_queued_tokens")], 0)])
        w.base = base
        h = self.h
        w.histogram("vllm:request_prompt_tokens", "Number of prefill tokens processed.", h["prompt"])
        w.histogram("vllm:request_generation_tokens", "Number of generation tokens processed.", h["generation"])
        w.histogram("vllm:iteration_tokens_total", "Histogram of number of tokens per engine_step.", h["iteration"])
        w.histogram("vllm:request_max_num_generation_tokens",
                    "Histogram of maximum number of requested generation tokens.", h["max_tokens"])
        w.histogram("vllm:request_params_n", "Histogram of the n request parameter.", h["n"])
        w.histogram("vllm:request_params_max_tokens", "Histogram of the max_tokens request parameter.",
                    h["max_tokens"])
        w.histogram("vllm:time_to_first_token_seconds", "Histogram of time to first token in seconds.", h["ttft"])
        w.histogram("vllm:inter_token_latency_seconds", "Histogram of inter-token latency in seconds.", h["itl"])
        w.histogram("vllm:request_time_per_output_token_seconds",
                    "Histogram of time_per_output_token_seconds per request.", h["tpot"])
        w.histogram("vllm:e2e_request_latency_seconds", "Histogram of e2e request latency in seconds.", h["e2e"])
        w.histogram("vllm:request_queue_time_seconds",
                    "Histogram of time spent in WAITING phase for request.", h["queue"])
        w.histogram("vllm:request_inference_time_seconds",
                    "Histogram of time spent in RUNNING phase for request.", h["inference"])
        w.histogram("vllm:request_prefill_time_seconds",
                    "Histogram of time spent in PREFILL phase for request.", h["prefill"])
        w.histogram("vllm:request_decode_time_seconds",
                    "Histogram of time spent in DECODE phase for request.", h["decode"])
        w.histogram("vllm:request_num_preemptions", "Histogram of the number of times a request was preempted.",
                    h["preemptions"])
        w.histogram("vllm:request_prefill_kv_computed_tokens", "Histogram of new KV tokens computed during prefill "
                    "(excluding cached tokens).", h["prefill_kv"])
    w.info_gauge("vllm:cache_config_info", "Information of the LLMEngine CacheConfig", cache_config_labels(self))
    return w.text()


def cache_config_labels(self) -> list[tuple[str, str]]:
    """The labels of vLLM 0.32's cache_config_info (measured), with the stand-in's own cache facts."""
    cfg, plan = self.cfg, self.plan
    tokens = plan.kv_tokens if plan else 0
    info = {
        "_block_size_resolved": "True", "block_size": str(physics.BLOCK_SIZE), "cache_dtype": cfg.kv_cache_dtype,
        "cache_hit_alignment_tokens": "None", "effective_attention_block_size": str(physics.BLOCK_SIZE),
        "enable_mamba_shared_prefix_checkpoint": "False", "enable_prefix_caching": str(cfg.prefix_caching),
        "engine": "0", "gpu_memory_utilization": str(cfg.gpu_memory_utilization), "hash_block_size": "None",
        "is_attention_free": "False", "kv_cache_dtype_skip_layers": "[]", "kv_cache_layout": "None",
        "kv_cache_max_concurrency": str(round(plan.max_concurrency, 2)) if plan else "None",
        "kv_cache_memory_bytes": str(cfg.kv_cache_memory_bytes) if cfg.kv_cache_memory_bytes else "None",
        "kv_cache_size_tokens": str(tokens), "kv_offloading_backend": "native", "kv_offloading_size": "None",
        "kv_sharing_fast_prefill": "False", "mamba_block_size": "None", "mamba_cache_dtype": "auto",
        "mamba_cache_mode": "none", "mamba_page_size_padded": "None", "mamba_ssm_cache_dtype": "auto",
        "num_cpu_blocks": "None", "num_gpu_blocks": str(tokens // physics.BLOCK_SIZE) if plan else "None",
        "num_gpu_blocks_override": "None", "prefix_cache_retention_interval": "0",
        "prefix_caching_hash_algo": "sha256", "prefix_match_unit": "None", "replayssm_buffer_len": "16",
        "skip_page_size_padded": "None", "sliding_window": "None", "swa_bounded_replay": "True",
        "use_kda_recoverssm": "False", "use_replayssm": "False", "user_specified_block_size": "False",
    }
    return list(info.items())

