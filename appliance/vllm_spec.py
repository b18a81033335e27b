"""What `vllm serve` of the pinned engine (vLLM 0.19.0) accepts: every flag, the value lists, removed flags.

Stdlib only: the core uses it to validate profiles and render commands, and the simulated engine
(`appliance.sim`, which runs in a bare python image) uses `build_serve_parser` so it rejects exactly what the
real engine rejects.

The block between the GENERATED markers is produced by `tools/extract_vllm_spec.py`, which builds vLLM 0.19.0's
own argument parser (`vllm.entrypoints.openai.cli_args.make_arg_parser` plus `--grpc` from `vllm serve`) and
reads its actions; the value lists come from the same import (`CacheDType`, `QUANTIZATION_METHODS`,
`_TOOL_PARSERS_TO_REGISTER`, `_REASONING_PARSERS_TO_REGISTER`, `SpeculativeMethod`, `MTPModelTypes`, the fields
of `SpeculativeConfig` and `CompilationConfig`). Everything below the block is hand-written and mirrors the
behaviour of vLLM's `FlexibleArgumentParser` (vllm/utils/argparse_utils.py) without copying it.
"""

from __future__ import annotations

import argparse
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

VLLM_VERSION = "0.19.0"
VLLM_IMAGE = "vllm/vllm-openai:v0.19.0"

# BEGIN GENERATED (tools/extract_vllm_spec.py)
# fmt: off
_FLAG_ROWS: tuple[tuple, ...] = (
    # (name, dest, kind, type, choices, aliases, nullable, default)
    ('--headless', 'headless', 'store_true', None, None, (), False, False),
    ('--api-server-count', 'api_server_count', 'value', 'int', None, ('-asc',), False, None),
    ('--config', 'config', 'value', None, None, (), False, None),
    ('--lora-modules', 'lora_modules', 'multi', 'str', None, (), True, None),
    ('--chat-template', 'chat_template', 'value', 'str', None, (), True, None),
    ('--chat-template-content-format', 'chat_template_content_format', 'value', 'str', ('auto', 'openai', 'string'), (), False, 'auto'),
    ('--trust-request-chat-template', 'trust_request_chat_template', 'bool', None, None, (), False, False),
    ('--default-chat-template-kwargs', 'default_chat_template_kwargs', 'json', 'json', None, (), False, None),
    ('--response-role', 'response_role', 'value', 'str', None, (), False, 'assistant'),
    ('--return-tokens-as-token-ids', 'return_tokens_as_token_ids', 'bool', None, None, (), False, False),
    ('--enable-auto-tool-choice', 'enable_auto_tool_choice', 'bool', None, None, (), False, False),
    ('--exclude-tools-when-tool-choice-none', 'exclude_tools_when_tool_choice_none', 'bool', None, None, (), False, False),
    ('--tool-call-parser', 'tool_call_parser', 'value', 'str', None, (), True, None),
    ('--tool-parser-plugin', 'tool_parser_plugin', 'value', 'str', None, (), False, ''),
    ('--tool-server', 'tool_server', 'value', 'str', None, (), True, None),
    ('--log-config-file', 'log_config_file', 'value', 'str', None, (), True, None),
    ('--max-log-len', 'max_log_len', 'value', 'int', None, (), True, None),
    ('--enable-prompt-tokens-details', 'enable_prompt_tokens_details', 'bool', None, None, (), False, False),
    ('--enable-server-load-tracking', 'enable_server_load_tracking', 'bool', None, None, (), False, False),
    ('--enable-force-include-usage', 'enable_force_include_usage', 'bool', None, None, (), False, False),
    ('--enable-tokenizer-info-endpoint', 'enable_tokenizer_info_endpoint', 'bool', None, None, (), False, False),
    ('--enable-log-outputs', 'enable_log_outputs', 'bool', None, None, (), False, False),
    ('--enable-log-deltas', 'enable_log_deltas', 'bool', None, None, (), False, True),
    ('--log-error-stack', 'log_error_stack', 'bool', None, None, (), False, False),
    ('--tokens-only', 'tokens_only', 'bool', None, None, (), False, False),
    ('--host', 'host', 'value', 'str', None, (), True, None),
    ('--port', 'port', 'value', 'int', None, (), False, 8000),
    ('--uds', 'uds', 'value', 'str', None, (), True, None),
    ('--uvicorn-log-level', 'uvicorn_log_level', 'value', 'str', ('critical', 'debug', 'error', 'info', 'trace', 'warning'), (), False, 'info'),
    ('--disable-uvicorn-access-log', 'disable_uvicorn_access_log', 'bool', None, None, (), False, False),
    ('--disable-access-log-for-endpoints', 'disable_access_log_for_endpoints', 'value', 'str', None, (), True, None),
    ('--allow-credentials', 'allow_credentials', 'bool', None, None, (), False, False),
    ('--allowed-origins', 'allowed_origins', 'json', 'json', None, (), False, ('*',)),
    ('--allowed-methods', 'allowed_methods', 'json', 'json', None, (), False, ('*',)),
    ('--allowed-headers', 'allowed_headers', 'json', 'json', None, (), False, ('*',)),
    ('--api-key', 'api_key', 'multi', 'str', None, (), True, None),
    ('--ssl-keyfile', 'ssl_keyfile', 'value', 'str', None, (), True, None),
    ('--ssl-certfile', 'ssl_certfile', 'value', 'str', None, (), True, None),
    ('--ssl-ca-certs', 'ssl_ca_certs', 'value', 'str', None, (), True, None),
    ('--enable-ssl-refresh', 'enable_ssl_refresh', 'bool', None, None, (), False, False),
    ('--ssl-cert-reqs', 'ssl_cert_reqs', 'value', 'int', None, (), False, 0),
    ('--ssl-ciphers', 'ssl_ciphers', 'value', 'str', None, (), True, None),
    ('--root-path', 'root_path', 'value', 'str', None, (), True, None),
    ('--middleware', 'middleware', 'append', 'str', None, (), False, ()),
    ('--enable-request-id-headers', 'enable_request_id_headers', 'bool', None, None, (), False, False),
    ('--disable-fastapi-docs', 'disable_fastapi_docs', 'bool', None, None, (), False, False),
    ('--h11-max-incomplete-event-size', 'h11_max_incomplete_event_size', 'value', 'int', None, (), False, 4194304),
    ('--h11-max-header-count', 'h11_max_header_count', 'value', 'int', None, (), False, 256),
    ('--enable-offline-docs', 'enable_offline_docs', 'bool', None, None, (), False, False),
    ('--model', 'model', 'value', 'str', None, (), False, 'Qwen/Qwen3-0.6B'),
    ('--runner', 'runner', 'value', 'str', ('auto', 'draft', 'generate', 'pooling'), (), False, 'auto'),
    ('--convert', 'convert', 'value', 'str', ('auto', 'classify', 'embed', 'none'), (), False, 'auto'),
    ('--tokenizer', 'tokenizer', 'value', 'str', None, (), False, None),
    ('--tokenizer-mode', 'tokenizer_mode', 'value', 'str', None, (), False, 'auto'),
    ('--trust-remote-code', 'trust_remote_code', 'bool', None, None, (), False, False),
    ('--dtype', 'dtype', 'value', 'str', ('auto', 'bfloat16', 'float', 'float16', 'float32', 'half'), (), False, 'auto'),
    ('--seed', 'seed', 'value', 'int', None, (), False, 0),
    ('--hf-config-path', 'hf_config_path', 'value', 'str', None, (), True, None),
    ('--allowed-local-media-path', 'allowed_local_media_path', 'value', 'str', None, (), False, ''),
    ('--allowed-media-domains', 'allowed_media_domains', 'multi', 'str', None, (), True, None),
    ('--revision', 'revision', 'value', 'str', None, (), True, None),
    ('--code-revision', 'code_revision', 'value', 'str', None, (), True, None),
    ('--tokenizer-revision', 'tokenizer_revision', 'value', 'str', None, (), True, None),
    ('--max-model-len', 'max_model_len', 'value', 'human_int_or_auto', None, (), False, None),
    ('--quantization', 'quantization', 'value', 'str', None, ('-q',), True, None),
    ('--allow-deprecated-quantization', 'allow_deprecated_quantization', 'bool', None, None, (), False, False),
    ('--enforce-eager', 'enforce_eager', 'bool', None, None, (), False, False),
    ('--enable-return-routed-experts', 'enable_return_routed_experts', 'bool', None, None, (), False, False),
    ('--max-logprobs', 'max_logprobs', 'value', 'int', None, (), False, 20),
    ('--logprobs-mode', 'logprobs_mode', 'value', 'str', ('processed_logits', 'processed_logprobs', 'raw_logits', 'raw_logprobs'), (), False, 'raw_logprobs'),
    ('--disable-sliding-window', 'disable_sliding_window', 'bool', None, None, (), False, False),
    ('--disable-cascade-attn', 'disable_cascade_attn', 'bool', None, None, (), False, True),
    ('--skip-tokenizer-init', 'skip_tokenizer_init', 'bool', None, None, (), False, False),
    ('--enable-prompt-embeds', 'enable_prompt_embeds', 'bool', None, None, (), False, False),
    ('--served-model-name', 'served_model_name', 'multi', 'str', None, (), True, None),
    ('--config-format', 'config_format', 'value', 'str', None, (), False, 'auto'),
    ('--hf-token', 'hf_token', 'value', 'optional_bool', None, (), False, None),
    ('--hf-overrides', 'hf_overrides', 'json', 'json_or_str', None, (), False, None),
    ('--pooler-config', 'pooler_config', 'json', 'json', None, (), True, None),
    ('--generation-config', 'generation_config', 'value', 'str', None, (), False, 'auto'),
    ('--override-generation-config', 'override_generation_config', 'json', 'json', None, (), False, None),
    ('--enable-sleep-mode', 'enable_sleep_mode', 'bool', None, None, (), False, False),
    ('--model-impl', 'model_impl', 'value', 'str', None, (), False, 'auto'),
    ('--override-attention-dtype', 'override_attention_dtype', 'value', 'str', None, (), True, None),
    ('--logits-processors', 'logits_processors', 'multi', 'str', None, (), True, None),
    ('--io-processor-plugin', 'io_processor_plugin', 'value', 'str', None, (), True, None),
    ('--renderer-num-workers', 'renderer_num_workers', 'value', 'int', None, (), False, 1),
    ('--load-format', 'load_format', 'value', 'str', None, (), False, 'auto'),
    ('--download-dir', 'download_dir', 'value', 'str', None, (), True, None),
    ('--safetensors-load-strategy', 'safetensors_load_strategy', 'value', 'str', None, (), True, None),
    ('--model-loader-extra-config', 'model_loader_extra_config', 'json', 'json_or_str', None, (), False, None),
    ('--ignore-patterns', 'ignore_patterns', 'multi', 'str', None, (), False, ('original/**/*',)),
    ('--use-tqdm-on-load', 'use_tqdm_on_load', 'bool', None, None, (), False, True),
    ('--pt-load-map-location', 'pt_load_map_location', 'json', 'json_or_str', None, (), False, 'cpu'),
    ('--attention-backend', 'attention_backend', 'value', 'str', None, (), True, None),
    ('--reasoning-parser', 'reasoning_parser', 'value', 'str', None, (), False, ''),
    ('--reasoning-parser-plugin', 'reasoning_parser_plugin', 'value', 'str', None, (), False, ''),
    ('--distributed-executor-backend', 'distributed_executor_backend', 'value', 'str', None, (), True, None),
    ('--pipeline-parallel-size', 'pipeline_parallel_size', 'value', 'int', None, ('-pp',), False, 1),
    ('--master-addr', 'master_addr', 'value', 'str', None, (), False, '127.0.0.1'),
    ('--master-port', 'master_port', 'value', 'int', None, (), False, 29501),
    ('--nnodes', 'nnodes', 'value', 'int', None, ('-n',), False, 1),
    ('--node-rank', 'node_rank', 'value', 'int', None, ('-r',), False, 0),
    ('--distributed-timeout-seconds', 'distributed_timeout_seconds', 'value', 'int', None, (), True, None),
    ('--tensor-parallel-size', 'tensor_parallel_size', 'value', 'int', None, ('-tp',), False, 1),
    ('--decode-context-parallel-size', 'decode_context_parallel_size', 'value', 'int', None, ('-dcp',), False, 1),
    ('--dcp-comm-backend', 'dcp_comm_backend', 'value', 'str', ('a2a', 'ag_rs'), (), False, 'ag_rs'),
    ('--dcp-kv-cache-interleave-size', 'dcp_kv_cache_interleave_size', 'value', 'int', None, (), False, 1),
    ('--cp-kv-cache-interleave-size', 'cp_kv_cache_interleave_size', 'value', 'int', None, (), False, 1),
    ('--prefill-context-parallel-size', 'prefill_context_parallel_size', 'value', 'int', None, ('-pcp',), False, 1),
    ('--data-parallel-size', 'data_parallel_size', 'value', 'int', None, ('-dp',), False, 1),
    ('--data-parallel-rank', 'data_parallel_rank', 'value', 'int', None, ('-dpn',), False, None),
    ('--data-parallel-start-rank', 'data_parallel_start_rank', 'value', 'int', None, ('-dpr',), False, None),
    ('--data-parallel-size-local', 'data_parallel_size_local', 'value', 'int', None, ('-dpl',), False, None),
    ('--data-parallel-address', 'data_parallel_address', 'value', 'str', None, ('-dpa',), False, None),
    ('--data-parallel-rpc-port', 'data_parallel_rpc_port', 'value', 'int', None, ('-dpp',), False, None),
    ('--data-parallel-backend', 'data_parallel_backend', 'value', 'str', None, ('-dpb',), False, 'mp'),
    ('--data-parallel-hybrid-lb', 'data_parallel_hybrid_lb', 'bool', None, None, ('-dph',), False, False),
    ('--data-parallel-external-lb', 'data_parallel_external_lb', 'bool', None, None, ('-dpe',), False, False),
    ('--enable-expert-parallel', 'enable_expert_parallel', 'bool', None, None, ('-ep',), False, False),
    ('--enable-ep-weight-filter', 'enable_ep_weight_filter', 'bool', None, None, (), False, False),
    ('--all2all-backend', 'all2all_backend', 'value', 'str', ('allgather_reducescatter', 'deepep_high_throughput', 'deepep_low_latency', 'flashinfer_all2allv', 'flashinfer_nvlink_one_sided', 'flashinfer_nvlink_two_sided', 'mori', 'naive', 'nixl_ep', 'pplx'), (), False, 'allgather_reducescatter'),
    ('--enable-dbo', 'enable_dbo', 'bool', None, None, (), False, False),
    ('--ubatch-size', 'ubatch_size', 'value', 'int', None, (), False, 0),
    ('--enable-elastic-ep', 'enable_elastic_ep', 'bool', None, None, (), False, False),
    ('--dbo-decode-token-threshold', 'dbo_decode_token_threshold', 'value', 'int', None, (), False, 32),
    ('--dbo-prefill-token-threshold', 'dbo_prefill_token_threshold', 'value', 'int', None, (), False, 512),
    ('--disable-nccl-for-dp-synchronization', 'disable_nccl_for_dp_synchronization', 'bool', None, None, (), False, None),
    ('--enable-eplb', 'enable_eplb', 'bool', None, None, (), False, False),
    ('--eplb-config', 'eplb_config', 'json', 'json', None, (), False, None),
    ('--expert-placement-strategy', 'expert_placement_strategy', 'value', 'str', ('linear', 'round_robin'), (), False, 'linear'),
    ('--max-parallel-loading-workers', 'max_parallel_loading_workers', 'value', 'int', None, (), True, None),
    ('--ray-workers-use-nsight', 'ray_workers_use_nsight', 'bool', None, None, (), False, False),
    ('--disable-custom-all-reduce', 'disable_custom_all_reduce', 'bool', None, None, (), False, False),
    ('--worker-cls', 'worker_cls', 'value', 'str', None, (), False, 'auto'),
    ('--worker-extension-cls', 'worker_extension_cls', 'value', 'str', None, (), False, ''),
    ('--block-size', 'block_size', 'value', 'int', None, (), False, None),
    ('--gpu-memory-utilization', 'gpu_memory_utilization', 'value', 'float', None, (), False, 0.9),
    ('--kv-cache-memory-bytes', 'kv_cache_memory_bytes', 'value', 'human_int', None, (), True, None),
    ('--kv-cache-dtype', 'kv_cache_dtype', 'value', 'str', ('auto', 'bfloat16', 'float16', 'fp8', 'fp8_ds_mla', 'fp8_e4m3', 'fp8_e5m2', 'fp8_inc'), (), False, 'auto'),
    ('--num-gpu-blocks-override', 'num_gpu_blocks_override', 'value', 'int', None, (), True, None),
    ('--enable-prefix-caching', 'enable_prefix_caching', 'bool', None, None, (), False, None),
    ('--prefix-caching-hash-algo', 'prefix_caching_hash_algo', 'value', 'str', ('sha256', 'sha256_cbor', 'xxhash', 'xxhash_cbor'), (), False, 'sha256'),
    ('--calculate-kv-scales', 'calculate_kv_scales', 'bool', None, None, (), False, False),
    ('--kv-cache-dtype-skip-layers', 'kv_cache_dtype_skip_layers', 'multi', 'str', None, (), False, ()),
    ('--kv-sharing-fast-prefill', 'kv_sharing_fast_prefill', 'bool', None, None, (), False, False),
    ('--mamba-cache-dtype', 'mamba_cache_dtype', 'value', 'str', ('auto', 'float16', 'float32'), (), False, 'auto'),
    ('--mamba-ssm-cache-dtype', 'mamba_ssm_cache_dtype', 'value', 'str', ('auto', 'float16', 'float32'), (), False, 'auto'),
    ('--mamba-block-size', 'mamba_block_size', 'value', 'int', None, (), True, None),
    ('--mamba-cache-mode', 'mamba_cache_mode', 'value', 'str', ('align', 'all', 'none'), (), False, 'none'),
    ('--kv-offloading-size', 'kv_offloading_size', 'value', 'float', None, (), True, None),
    ('--kv-offloading-backend', 'kv_offloading_backend', 'value', 'str', ('lmcache', 'native'), (), False, 'native'),
    ('--offload-backend', 'offload_backend', 'value', 'str', ('auto', 'prefetch', 'uva'), (), False, 'auto'),
    ('--cpu-offload-gb', 'cpu_offload_gb', 'value', 'float', None, (), False, 0),
    ('--cpu-offload-params', 'cpu_offload_params', 'multi', 'str', None, (), False, None),
    ('--offload-group-size', 'offload_group_size', 'value', 'int', None, (), False, 0),
    ('--offload-num-in-group', 'offload_num_in_group', 'value', 'int', None, (), False, 1),
    ('--offload-prefetch-step', 'offload_prefetch_step', 'value', 'int', None, (), False, 1),
    ('--offload-params', 'offload_params', 'multi', 'str', None, (), False, None),
    ('--language-model-only', 'language_model_only', 'bool', None, None, (), False, False),
    ('--limit-mm-per-prompt', 'limit_mm_per_prompt', 'json', 'json', None, (), False, None),
    ('--enable-mm-embeds', 'enable_mm_embeds', 'bool', None, None, (), False, False),
    ('--media-io-kwargs', 'media_io_kwargs', 'json', 'json', None, (), False, None),
    ('--mm-processor-kwargs', 'mm_processor_kwargs', 'json', 'json', None, (), True, None),
    ('--mm-processor-cache-gb', 'mm_processor_cache_gb', 'value', 'float', None, (), False, 4),
    ('--mm-processor-cache-type', 'mm_processor_cache_type', 'value', 'str', ('lru', 'shm'), (), False, 'lru'),
    ('--mm-shm-cache-max-object-size-mb', 'mm_shm_cache_max_object_size_mb', 'value', 'int', None, (), False, 128),
    ('--mm-encoder-only', 'mm_encoder_only', 'bool', None, None, (), False, False),
    ('--mm-encoder-tp-mode', 'mm_encoder_tp_mode', 'value', 'str', ('data', 'weights'), (), False, 'weights'),
    ('--mm-encoder-attn-backend', 'mm_encoder_attn_backend', 'value', 'str', None, (), True, None),
    ('--interleave-mm-strings', 'interleave_mm_strings', 'bool', None, None, (), False, False),
    ('--skip-mm-profiling', 'skip_mm_profiling', 'bool', None, None, (), False, False),
    ('--video-pruning-rate', 'video_pruning_rate', 'value', 'float', None, (), True, None),
    ('--mm-tensor-ipc', 'mm_tensor_ipc', 'value', 'str', ('direct_rpc', 'torch_shm'), (), False, 'direct_rpc'),
    ('--enable-lora', 'enable_lora', 'bool', None, None, (), False, None),
    ('--max-loras', 'max_loras', 'value', 'int', None, (), False, 1),
    ('--max-lora-rank', 'max_lora_rank', 'value', 'int', ('1', '8', '16', '32', '64', '128', '256', '320', '512'), (), False, 16),
    ('--lora-dtype', 'lora_dtype', 'value', 'str', None, (), False, 'auto'),
    ('--enable-tower-connector-lora', 'enable_tower_connector_lora', 'bool', None, None, (), False, False),
    ('--max-cpu-loras', 'max_cpu_loras', 'value', 'int', None, (), True, None),
    ('--fully-sharded-loras', 'fully_sharded_loras', 'bool', None, None, (), False, False),
    ('--lora-target-modules', 'lora_target_modules', 'multi', 'str', None, (), True, None),
    ('--default-mm-loras', 'default_mm_loras', 'json', 'json', None, (), True, None),
    ('--specialize-active-lora', 'specialize_active_lora', 'bool', None, None, (), False, False),
    ('--show-hidden-metrics-for-version', 'show_hidden_metrics_for_version', 'value', 'str', None, (), True, None),
    ('--otlp-traces-endpoint', 'otlp_traces_endpoint', 'value', 'str', None, (), True, None),
    ('--collect-detailed-traces', 'collect_detailed_traces', 'multi', 'str', ('all', 'model', 'worker', 'None', 'model,worker', 'model,all', 'worker,model', 'worker,all', 'all,model', 'all,worker'), (), True, None),
    ('--kv-cache-metrics', 'kv_cache_metrics', 'bool', None, None, (), False, False),
    ('--kv-cache-metrics-sample', 'kv_cache_metrics_sample', 'value', 'float', None, (), False, 0.01),
    ('--cudagraph-metrics', 'cudagraph_metrics', 'bool', None, None, (), False, False),
    ('--enable-layerwise-nvtx-tracing', 'enable_layerwise_nvtx_tracing', 'bool', None, None, (), False, False),
    ('--enable-mfu-metrics', 'enable_mfu_metrics', 'bool', None, None, (), False, False),
    ('--enable-logging-iteration-details', 'enable_logging_iteration_details', 'bool', None, None, (), False, False),
    ('--max-num-batched-tokens', 'max_num_batched_tokens', 'value', 'human_int', None, (), False, None),
    ('--max-num-seqs', 'max_num_seqs', 'value', 'int', None, (), False, None),
    ('--max-num-partial-prefills', 'max_num_partial_prefills', 'value', 'int', None, (), False, 1),
    ('--max-long-partial-prefills', 'max_long_partial_prefills', 'value', 'int', None, (), False, 1),
    ('--long-prefill-token-threshold', 'long_prefill_token_threshold', 'value', 'int', None, (), False, 0),
    ('--scheduling-policy', 'scheduling_policy', 'value', 'str', ('fcfs', 'priority'), (), False, 'fcfs'),
    ('--enable-chunked-prefill', 'enable_chunked_prefill', 'bool', None, None, (), False, None),
    ('--disable-chunked-mm-input', 'disable_chunked_mm_input', 'bool', None, None, (), False, False),
    ('--scheduler-cls', 'scheduler_cls', 'value', 'str', None, (), True, None),
    ('--scheduler-reserve-full-isl', 'scheduler_reserve_full_isl', 'bool', None, None, (), False, True),
    ('--disable-hybrid-kv-cache-manager', 'disable_hybrid_kv_cache_manager', 'bool', None, None, (), False, None),
    ('--async-scheduling', 'async_scheduling', 'bool', None, None, (), False, None),
    ('--stream-interval', 'stream_interval', 'value', 'int', None, (), False, 1),
    ('--cudagraph-capture-sizes', 'cudagraph_capture_sizes', 'multi', 'int', None, (), False, None),
    ('--max-cudagraph-capture-size', 'max_cudagraph_capture_size', 'value', 'int', None, (), False, None),
    ('--enable-flashinfer-autotune', 'enable_flashinfer_autotune', 'bool', None, None, (), False, None),
    ('--moe-backend', 'moe_backend', 'value', 'str_lower', ('aiter', 'auto', 'cutlass', 'deep_gemm', 'flashinfer_cutedsl', 'flashinfer_cutlass', 'flashinfer_trtllm', 'marlin', 'triton'), (), False, 'auto'),
    ('--speculative-config', 'speculative_config', 'json', 'json', None, ('-sc',), True, None),
    ('--kv-transfer-config', 'kv_transfer_config', 'json', 'json', None, (), True, None),
    ('--kv-events-config', 'kv_events_config', 'json', 'json', None, (), True, None),
    ('--ec-transfer-config', 'ec_transfer_config', 'json', 'json', None, (), True, None),
    ('--compilation-config', 'compilation_config', 'json', 'json', None, ('-cc',), False, None),
    ('--attention-config', 'attention_config', 'json', 'json', None, ('-ac',), False, None),
    ('--reasoning-config', 'reasoning_config', 'json', 'json', None, (), True, None),
    ('--kernel-config', 'kernel_config', 'json', 'json', None, (), False, None),
    ('--additional-config', 'additional_config', 'json', 'json_or_str', None, (), False, None),
    ('--structured-outputs-config', 'structured_outputs_config', 'json', 'json', None, (), False, None),
    ('--profiler-config', 'profiler_config', 'json', 'json', None, (), False, None),
    ('--optimization-level', 'optimization_level', 'value', 'str', None, (), False, 2),
    ('--performance-mode', 'performance_mode', 'value', 'str', ('balanced', 'interactivity', 'throughput'), (), False, 'balanced'),
    ('--weight-transfer-config', 'weight_transfer_config', 'json', 'json', None, (), True, None),
    ('--disable-log-stats', 'disable_log_stats', 'store_true', None, None, (), False, False),
    ('--aggregate-engine-logging', 'aggregate_engine_logging', 'store_true', None, None, (), False, False),
    ('--fail-on-environ-validation', 'fail_on_environ_validation', 'bool', None, None, (), False, False),
    ('--shutdown-timeout', 'shutdown_timeout', 'value', 'int', None, (), False, 0),
    ('--gdn-prefill-backend', 'gdn_prefill_backend', 'value', None, ('flashinfer', 'triton'), (), False, None),
    ('--enable-log-requests', 'enable_log_requests', 'bool', None, None, (), False, False),
    ('--grpc', 'grpc', 'store_true', None, None, (), False, False),
)
KV_CACHE_DTYPES: tuple[str, ...] = ('auto', 'float16', 'bfloat16', 'fp8', 'fp8_e4m3', 'fp8_e5m2', 'fp8_inc', 'fp8_ds_mla')
QUANTIZATION_METHODS: tuple[str, ...] = ('awq', 'fp8', 'fbgemm_fp8', 'fp_quant', 'modelopt', 'modelopt_fp4', 'modelopt_mxfp8', 'modelopt_mixed',
 'gguf', 'gptq_marlin', 'awq_marlin', 'gptq', 'compressed-tensors', 'bitsandbytes', 'experts_int8', 'quark',
 'moe_wna16', 'torchao', 'inc', 'mxfp4', 'mxfp8', 'petit_nvfp4', 'cpu_awq')
DEPRECATED_QUANTIZATION: tuple[str, ...] = ('tpu_int8', 'fbgemm_fp8', 'fp_quant', 'experts_int8', 'petit_nvfp4')
DTYPES: tuple[str, ...] = ('auto', 'bfloat16', 'float', 'float16', 'float32', 'half')
TOOL_CALL_PARSERS: tuple[str, ...] = ('deepseek_v3', 'deepseek_v31', 'deepseek_v32', 'ernie45', 'functiongemma', 'gemma4', 'gigachat3', 'glm45',
 'glm47', 'granite', 'granite-20b-fc', 'granite4', 'hermes', 'hunyuan_a13b', 'internlm', 'jamba', 'kimi_k2',
 'llama3_json', 'llama4_json', 'llama4_pythonic', 'longcat', 'minimax', 'minimax_m2', 'mistral', 'olmo3',
 'openai', 'phi4_mini_json', 'pythonic', 'qwen3_coder', 'qwen3_xml', 'seed_oss', 'step3', 'step3p5', 'xlam')
REASONING_PARSERS: tuple[str, ...] = ('deepseek_r1', 'deepseek_v3', 'ernie45', 'gemma4', 'glm45', 'granite', 'holo2', 'hunyuan_a13b', 'kimi_k2',
 'minimax_m2', 'minimax_m2_append_think', 'mistral', 'nemotron_v3', 'olmo3', 'openai_gptoss', 'qwen3',
 'seed_oss', 'step3', 'step3p5')
SPECULATIVE_METHODS: tuple[str, ...] = ('ngram', 'medusa', 'mlp_speculator', 'draft_model', 'suffix', 'eagle', 'eagle3', 'extract_hidden_states',
 'deepseek_mtp', 'mimo_mtp', 'glm4_moe_mtp', 'glm4_moe_lite_mtp', 'glm_ocr_mtp', 'ernie_mtp',
 'nemotron_h_mtp', 'exaone_moe_mtp', 'qwen3_next_mtp', 'qwen3_5_mtp', 'longcat_flash_mtp', 'mtp',
 'pangu_ultra_moe_mtp', 'step3p5_mtp', 'ngram_gpu')
MTP_ALIASES: tuple[str, ...] = ('deepseek_mtp', 'mimo_mtp', 'glm4_moe_mtp', 'glm4_moe_lite_mtp', 'glm_ocr_mtp', 'ernie_mtp',
 'nemotron_h_mtp', 'exaone_moe_mtp', 'qwen3_next_mtp', 'qwen3_5_mtp', 'longcat_flash_mtp',
 'pangu_ultra_moe_mtp', 'step3p5_mtp')
SPECULATIVE_CONFIG_KEYS: tuple[str, ...] = ('enforce_eager', 'num_speculative_tokens', 'model', 'method', 'draft_tensor_parallel_size',
 'tensor_parallel_size', 'quantization', 'moe_backend', 'max_model_len', 'revision', 'code_revision',
 'disable_padded_drafter_batch', 'use_local_argmax_reduction', 'prompt_lookup_max', 'prompt_lookup_min',
 'speculative_token_tree', 'parallel_drafting', 'target_model_config', 'target_parallel_config',
 'draft_model_config', 'draft_parallel_config', 'suffix_decoding_max_tree_depth',
 'suffix_decoding_max_cached_requests', 'suffix_decoding_max_spec_factor', 'suffix_decoding_min_token_prob',
 'draft_load_config', 'rejection_sample_method', 'synthetic_acceptance_rate')
COMPILATION_CONFIG_KEYS: tuple[str, ...] = ('mode', 'debug_dump_path', 'cache_dir', 'compile_cache_save_format', 'backend', 'custom_ops',
 'splitting_ops', 'compile_mm_encoder', 'cudagraph_mm_encoder', 'encoder_cudagraph_token_budgets',
 'encoder_cudagraph_max_images_per_batch', 'compile_sizes', 'compile_ranges_endpoints',
 'inductor_compile_config', 'inductor_passes', 'cudagraph_mode', 'cudagraph_num_of_warmups',
 'cudagraph_capture_sizes', 'cudagraph_copy_inputs', 'cudagraph_specialize_lora',
 'use_inductor_graph_partition', 'pass_config', 'max_cudagraph_capture_size', 'dynamic_shapes_config',
 'fast_moe_cold_start')
# fmt: on
# END GENERATED


@dataclass(frozen=True)
class Flag:
    """One `vllm serve` option.

    kind: "bool" (BooleanOptionalAction: --x and --no-x), "store_true" (flag only), "value" (one value),
          "multi" (nargs="+": one or more values after the flag), "append" (the flag repeats, one value each),
          "json" (a JSON object/list; for type "json_or_str" a plain string is also accepted).
    type: "int", "float", "str", "human_int" (1k=1000, 1K=1024, 25.6k), "human_int_or_auto" (also -1/auto),
          "json", "json_or_str", "str_lower" (lower-cased, '-'->'_'), "optional_bool" (bare flag = True, or a
          string value: --hf-token), or None (a plain string, --config).
    nullable: the value "None" (or "") means None, as vLLM's `optional_type` does.
    default: vLLM's default when it is a plain value, else None.
    """

    name: str
    dest: str
    kind: str
    type: str | None
    choices: tuple[str, ...] | None
    aliases: tuple[str, ...] = ()
    nullable: bool = False
    default: object = None

    @property
    def negative(self) -> str | None:
        """The --no-x spelling of a bool flag."""
        return "--no-" + self.name[2:] if self.kind == "bool" else None

    @property
    def option_strings(self) -> tuple[str, ...]:
        neg = self.negative
        return (self.name, *((neg,) if neg else ()), *self.aliases)


FLAGS: dict[str, Flag] = {row[1]: Flag(*row) for row in _FLAG_ROWS}

_OPTIONS: dict[str, Flag] = {opt: f for f in FLAGS.values() for opt in f.option_strings}

# ---------------------------------------------------------------------------------------------------------------
# Flags an older command line may carry that vLLM 0.19.0 rejects ("unrecognized arguments", exit 2).
# Lists: techref §1.2 "Flags removed between versions" (0.6.6 -> 0.10.2 and 0.10.2 -> 0.19.0).


def _gone(since: str, how: str) -> str:
    return f"rejected by vLLM {VLLM_VERSION} (removed in {since}); {how}"


_SPEC = 'use --speculative-config \'{"model": ..., "num_speculative_tokens": N}\' (JSON keys of SpeculativeConfig)'
_EPLB = "use --eplb-config '{\"num_redundant_experts\": ..., \"window_size\": ..., \"step_interval\": ...}'"
_GUIDED = "use --structured-outputs-config '{\"backend\": \"xgrammar\", ...}'"

REMOVED: dict[str, str] = {
    # 0.6.6 -> 0.10.2
    "device": _gone("0.10.2", "the device is detected automatically; drop the flag"),
    "use_v2_block_manager": _gone("0.10.2", "the V1 engine has one block manager; drop the flag"),
    "num_scheduler_steps": _gone("0.10.2", "multi-step scheduling went with the V0 engine; drop the flag"),
    "multi_step_stream_outputs": _gone("0.10.2", "multi-step scheduling went with the V0 engine; drop the flag"),
    "speculative_model": _gone("0.10.2", _SPEC),
    "num_speculative_tokens": _gone("0.10.2", _SPEC),
    "ngram_prompt_lookup_max": _gone(
        "0.10.2", "use --speculative-config '{\"method\": \"ngram\", \"prompt_lookup_max\": N}'"
    ),
    "ngram_prompt_lookup_min": _gone(
        "0.10.2", "use --speculative-config '{\"method\": \"ngram\", \"prompt_lookup_min\": N}'"
    ),
    "speculative_draft_tensor_parallel_size": _gone("0.10.2", "use speculative_config key draft_tensor_parallel_size"),
    "speculative_max_model_len": _gone("0.10.2", "use speculative_config key max_model_len"),
    "speculative_disable_by_batch_size": _gone("0.10.2", "no equivalent in V1; drop the flag"),
    "speculative_model_quantization": _gone("0.10.2", "use speculative_config key quantization"),
    "speculative_disable_mqa_scorer": _gone("0.10.2", "no equivalent in V1; drop the flag"),
    "spec_decoding_acceptance_method": _gone("0.10.2", "use speculative_config key rejection_sample_method"),
    "typical_acceptance_sampler_posterior_threshold": _gone("0.10.2", "typical acceptance sampling is gone"),
    "typical_acceptance_sampler_posterior_alpha": _gone("0.10.2", "typical acceptance sampling is gone"),
    "disable_logprobs_during_spec_decoding": _gone("0.10.2", "no equivalent; drop the flag"),
    "tokenizer_pool_size": _gone("0.10.2", "tokenization runs in the API server; drop the flag"),
    "tokenizer_pool_type": _gone("0.10.2", "tokenization runs in the API server; drop the flag"),
    "tokenizer_pool_extra_config": _gone("0.10.2", "tokenization runs in the API server; drop the flag"),
    "worker_use_ray": _gone("0.10.2", "use --distributed-executor-backend ray"),
    "override_neuron_config": _gone("0.10.2", "Neuron support is gone; drop the flag"),
    "long_lora_scaling_factors": _gone("0.10.2", "long-context LoRA is gone; drop the flag"),
    "enable_prompt_adapter": _gone("0.10.2", "prompt adapters are gone; drop the flag"),
    "prompt_adapters": _gone("0.10.2", "prompt adapters are gone; drop the flag"),
    "max_prompt_adapters": _gone("0.10.2", "prompt adapters are gone; drop the flag"),
    "max_prompt_adapter_token": _gone("0.10.2", "prompt adapters are gone; drop the flag"),
    "qlora_adapter_name_or_path": _gone("0.10.2", "serve the adapter with --enable-lora --lora-modules name=path"),
    "quantization_param_path": _gone("0.10.2", "KV-cache scales are read from the checkpoint; drop the flag"),
    "enable_reasoning": _gone("0.10.2", "--reasoning-parser NAME alone turns reasoning output on"),
    # 0.10.2 -> 0.19.0
    "swap_space": _gone("0.19.0", "the V1 engine does not swap to CPU; drop the flag (CPU KV offload: --kv-offloading-size)"),
    "preemption_mode": _gone("0.19.0", "V1 always preempts by recomputation; drop the flag"),
    "task": _gone("0.19.0", "use --runner generate|pooling and --convert embed|classify"),
    "guided_decoding_backend": _gone("0.19.0", _GUIDED),
    "guided_decoding_disable_fallback": _gone("0.19.0", _GUIDED),
    "guided_decoding_disable_any_whitespace": _gone(
        "0.19.0", "use --structured-outputs-config '{\"disable_any_whitespace\": true}'"
    ),
    "guided_decoding_disable_additional_properties": _gone(
        "0.19.0", "use --structured-outputs-config '{\"disable_additional_properties\": true}'"
    ),
    "disable_log_requests": f"rejected by vLLM {VLLM_VERSION} (deprecated in 0.10.2); request logging is off by "
    "default, use enable_log_requests to turn it on",
    "max_seq_len_to_capture": _gone("0.19.0", "use --max-cudagraph-capture-size"),
    "disable_frontend_multiprocessing": _gone("0.19.0", "drop the flag"),
    "disable_async_output_proc": _gone("0.19.0", "V0-only; drop the flag"),
    "disable_mm_preprocessor_cache": _gone("0.19.0", "use --mm-processor-cache-gb 0"),
    "cuda_graph_sizes": _gone("0.19.0", "use --cudagraph-capture-sizes"),
    "num_lookahead_slots": _gone("0.19.0", "V0-only; drop the flag"),
    "scheduler_delay_factor": _gone("0.19.0", "V0-only; drop the flag"),
    "rope_scaling": _gone("0.19.0", "use --hf-overrides '{\"rope_scaling\": {...}}'"),
    "rope_theta": _gone("0.19.0", "use --hf-overrides '{\"rope_theta\": ...}'"),
    "override_pooler_config": _gone("0.19.0", "use --pooler-config"),
    "enable_lora_bias": _gone("0.19.0", "LoRA bias is gone; drop the flag"),
    "lora_extra_vocab_size": _gone("0.19.0", "drop the flag"),
    "logits_processor_pattern": _gone("0.19.0", "use --logits-processors"),
    "enable_multimodal_encoder_data_parallel": _gone("0.19.0", "use --mm-encoder-tp-mode data"),
    "num_redundant_experts": _gone("0.19.0", _EPLB),
    "eplb_window_size": _gone("0.19.0", _EPLB),
    "eplb_step_interval": _gone("0.19.0", _EPLB),
    "eplb_log_balancedness": _gone("0.19.0", "use --eplb-config '{\"log_balancedness\": true}'"),
}

# Accepted by 0.19.0 but harmful for this appliance.
HARMFUL: dict[str, str] = {
    "disable_log_stats": "turns off every vllm:* Prometheus metric (the stat loggers, Prometheus included, are only "
    "created when log_stats is on), so telemetry and bench go blind; leave it out",
}

# ---------------------------------------------------------------------------------------------------------------
# Value parsers (behaviour of vLLM's human_readable_int, optional_type, union_dict_and_str).

_HUMAN = re.compile(r"(\d+(?:\.\d+)?)([kKmMgGtT])")
_DEC = {"k": 10**3, "m": 10**6, "g": 10**9, "t": 10**12}
_BIN = {"K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}


def parse_human_int(value: str) -> int:
    """'1k' -> 1000, '1K' -> 1024, '25.6k' -> 25600, '4096' -> 4096 (decimals only with k/m/g/t)."""
    value = value.strip()
    m = _HUMAN.fullmatch(value)
    if m:
        number, suffix = m.groups()
        if suffix in _DEC:
            return int(float(number) * _DEC[suffix])
        if "." in number:
            raise argparse.ArgumentTypeError(
                f"Decimals are not allowed with binary suffixes like {suffix}. "
                f"Did you mean to use {number}{suffix.lower()} instead?"
            )
        return int(number) * _BIN[suffix]
    return int(value)


def parse_human_int_or_auto(value: str) -> int:
    """As parse_human_int, plus '-1'/'auto' -> -1 (pick the largest length that fits)."""
    if value.strip() in ("-1",) or value.strip().lower() == "auto":
        return -1
    return parse_human_int(value)


def _json(value: str):
    try:
        return json.loads(value)
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"Value {value} cannot be converted to {json.loads}.") from e


def _json_or_str(value: str):
    if re.match(r"(?s)^\s*{.*}\s*$", value):
        return _json(value)
    return value


def _typed(func, label):
    def convert(value: str):
        try:
            return func(value)
        except argparse.ArgumentTypeError:
            raise
        except ValueError as e:
            raise argparse.ArgumentTypeError(f"Value {value} cannot be converted to {label}.") from e

    convert.__name__ = getattr(func, "__name__", label)
    return convert


_CONVERTERS = {
    None: str,
    "str": str,
    "optional_bool": str,
    "int": _typed(int, "<class 'int'>"),
    "float": _typed(float, "<class 'float'>"),
    "human_int": _typed(parse_human_int, "human_readable_int"),
    "human_int_or_auto": _typed(parse_human_int_or_auto, "human_readable_int_or_auto"),
    "json": _json,
    "json_or_str": _json_or_str,
    "str_lower": lambda s: s.lower().replace("-", "_"),
}


def _converter(flag: Flag):
    base = _CONVERTERS[flag.type]
    if not flag.nullable:
        return base

    def optional(value: str):
        if value == "" or value == "None":
            return None
        return base(value)

    optional.__name__ = getattr(base, "__name__", "optional")
    return optional


def _choices(flag: Flag):
    if flag.choices is None:
        return None
    out: list[object] = []
    for c in flag.choices:
        if c == "None" and flag.nullable:
            out.append(None)
        elif flag.type == "int":
            out.append(int(c))
        else:
            out.append(c)
    return out


# ---------------------------------------------------------------------------------------------------------------
# The parser


class ServeArgumentParser(argparse.ArgumentParser):
    """`vllm serve` argument parsing with vLLM 0.19's FlexibleArgumentParser conveniences:

    - `--model X` is moved to the positional model (with vLLM's deprecation warning, kept in `.warnings`);
    - `--served-model-name` without a positional model raises vLLM's ValueError;
    - underscores and dashes are interchangeable in option names (`--max_model_len`);
    - `-O3`, `-O 3`, `-O=3` become `--optimization-level 3`;
    - dotted keys set JSON fields (`--compilation-config.mode 3`, `-cc.cudagraph_capture_sizes+ 1,2`);
    - unknown flags: argparse error, exit 2, "unrecognized arguments: ...".
    After parsing, `ns.model` holds the model (positional or --model).
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.warnings: list[str] = []

    def _preprocess(self, args: list[str]) -> list[str]:
        args = list(args)
        model_idx = next((i for i, a in enumerate(args) if re.match(r"^--model(=.+|$)", a)), None)
        if model_idx is not None:
            self.warnings.append(
                "With `vllm serve`, you should provide the model as a positional argument or in a config file "
                "instead of via the `--model` option. The `--model` option will be removed in v0.13."
            )
            if args[model_idx] == "--model" and model_idx + 1 < len(args):
                tag, rest = args[model_idx + 1], model_idx + 2
            else:
                tag, rest = args[model_idx].removeprefix("--model="), model_idx + 1
            args = [tag, *args[:model_idx], *args[rest:]]
        if (
            args
            and args[0].startswith("-")
            and not any(re.match(r"^--config(=.+|$)", a) for a in args)
            and any(re.match(r"^--served[-_]model[-_]name(=.+|$)", a) for a in args)
        ):
            raise ValueError(
                "`model` should be provided as the first positional argument when using `vllm serve`. "
                "i.e. `vllm serve <model> --<arg> <value>`."
            )

        def dashes(key: str) -> str:
            head, dot, tail = key[2:].partition(".")
            return "--" + head.replace("_", "-") + dot + tail

        out: list[str] = []
        for i, arg in enumerate(args):
            if arg.startswith("--"):
                if "=" in arg:
                    key, value = arg.split("=", 1)
                    out.append(f"{dashes(key)}={value}")
                else:
                    out.append(dashes(arg))
            elif arg.startswith("-O") and arg != "-O":
                out += ["--optimization-level", arg[3:] if arg[2] == "=" else arg[2:]]
            elif arg == "-O" and i + 1 < len(args) and args[i + 1] in {"0", "1", "2", "3"}:
                out.append("--optimization-level")
            else:
                out.append(arg)

        # dotted JSON keys -> one JSON value per flag
        merged: dict[str, dict] = {}
        keep: list[str] = []
        skip = False
        for i, arg in enumerate(out):
            if skip:
                skip = False
                continue
            if not (arg.startswith("-") and "." in arg.split("=", 1)[0]):
                keep.append(arg)
                continue
            if "=" in arg:
                key, raw = arg.split("=", 1)
            else:
                if i + 1 >= len(out):
                    keep.append(arg)
                    continue
                key, raw = arg, out[i + 1]
                skip = True
            if key.endswith("+"):
                key, raw = key[:-1], json.dumps(raw.split(","))
            try:
                value = json.loads(raw)
            except ValueError:
                value = raw
            root, *path = key.split(".")
            node = merged.setdefault(root, {})
            for part in path[:-1]:
                node = node.setdefault(part, {})
            leaf = path[-1]
            if isinstance(value, list) and isinstance(node.get(leaf), list):
                node[leaf] += value
            else:
                node[leaf] = value
        for root, value in merged.items():
            keep += [root, json.dumps(value)]
        return keep

    def parse_known_args(self, args=None, namespace=None):
        import sys

        argv = sys.argv[1:] if args is None else list(args)
        ns, extra = super().parse_known_args(self._preprocess(argv), namespace)
        if getattr(ns, "model_tag", None) is not None:
            ns.model = ns.model_tag
        return ns, extra


def build_serve_parser(prog: str = "vllm serve") -> ServeArgumentParser:
    """An argparse parser accepting exactly the options of `vllm serve` 0.19.0 (see ServeArgumentParser)."""
    parser = ServeArgumentParser(prog=prog, usage=f"{prog} [model_tag] [options]")
    parser.add_argument("model_tag", type=str, nargs="?", help="The model tag to serve")
    for flag in FLAGS.values():
        opts = [flag.name, *flag.aliases]
        kw: dict[str, object] = {"dest": flag.dest, "default": _runtime_default(flag)}
        if flag.kind == "bool":
            kw["action"] = argparse.BooleanOptionalAction
        elif flag.kind == "store_true":
            kw["action"] = "store_true"
            kw["default"] = False
        elif flag.kind == "append":
            kw["action"] = "append"
            kw["type"] = _converter(flag)
        else:
            kw["type"] = _converter(flag)
            if flag.kind == "multi":
                kw["nargs"] = "+"
            if flag.type == "optional_bool":
                kw["nargs"] = "?"
                kw["const"] = True
            choices = _choices(flag)
            if choices is not None:
                kw["choices"] = choices
        parser.add_argument(*opts, **kw)
    return parser


def _runtime_default(flag: Flag):
    d = flag.default
    if isinstance(d, tuple):
        return list(d)
    return d


def parse_serve_args(argv: Sequence[str], prog: str = "vllm serve") -> argparse.Namespace:
    """Parse `vllm serve` arguments (without the leading `serve`); exits 2 on unknown flags like vLLM."""
    return build_serve_parser(prog).parse_args(list(argv))


# ---------------------------------------------------------------------------------------------------------------
# Options -> argv


def lookup_option(option: str) -> Flag | None:
    """The Flag for an option spelling: '--max_model_len', '-tp', '--no-enable-prefix-caching', '--x=1'."""
    key = option.split("=", 1)[0]
    if key.startswith("--"):
        key = "--" + key[2:].split(".", 1)[0].replace("_", "-")
    return _OPTIONS.get(key)


def _scalar(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list, tuple)):
        return json.dumps(value, separators=(",", ":"))
    return str(value)


def to_cli_args(options: Mapping[str, object]) -> list[str]:
    """argv for `vllm serve` from a dest -> value mapping, in the mapping's order (the model, if given, first
    and positional). bool flags: True -> --x, False -> --no-x; store_true: False omitted; None omitted;
    json kinds: dicts/lists as compact JSON keeping key order; multi: the flag then each value; append: the
    flag repeated. Raises KeyError for a dest vLLM 0.19.0 does not have (the message says why for removed ones).
    """
    argv: list[str] = []
    if options.get("model") is not None:
        argv.append(str(options["model"]))
    for dest, value in options.items():
        if dest == "model":
            continue
        flag = FLAGS.get(dest)
        if flag is None:
            why = REMOVED.get(dest, f"vLLM {VLLM_VERSION} has no option {dest!r}")
            raise KeyError(f"{dest}: {why}")
        if value is None:
            continue
        if flag.kind == "bool":
            argv.append(flag.name if value else flag.negative)
        elif flag.kind == "store_true":
            if value:
                argv.append(flag.name)
        elif flag.type == "optional_bool":
            if value is True:
                argv.append(flag.name)
            elif value is not False:
                argv += [flag.name, str(value)]
        elif flag.kind == "multi":
            values = value if isinstance(value, (list, tuple)) else [value]
            argv += [flag.name, *(_scalar(v) for v in values)]
        elif flag.kind == "append":
            for v in value if isinstance(value, (list, tuple)) else [value]:
                argv += [flag.name, _scalar(v)]
        elif flag.kind == "json":
            argv += [flag.name, value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))]
        else:
            argv += [flag.name, _scalar(value)]
    return argv


def unknown_options(argv: Iterable[str]) -> list[str]:
    """Option-looking words of argv that vLLM 0.19.0 would reject (best effort, no value checking)."""
    bad = []
    for word in argv:
        if word.startswith("-") and not re.fullmatch(r"-\d+(\.\d+)?", word):
            if word.startswith("-O") and word != "-O" or word == "-O":
                continue
            if lookup_option(word) is None and word not in ("-h", "--help"):
                bad.append(word)
    return bad
