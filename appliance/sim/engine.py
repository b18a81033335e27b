"""The simulated vLLM 0.19.0 engine: `python -m appliance.sim.engine serve MODEL [flags]` (or `main()`).

A real program, not a mock: it parses argv with vLLM 0.19.0's exact option set (appliance.vllm_spec), binds its
TCP port before the load phase (a port clash fails early, like vLLM) but listens only once it is ready — like the
real vLLM, it refuses connections while it loads and never answers 503 —, then
speaks the OpenAI API over HTTP/1.1 (keep-alive, chunked SSE streaming, TCP_NODELAY) with token rates from
appliance.sim.physics, exposes vLLM V1 `/metrics`, and reports its GPU use through the shared sim state
directory ($APPLIANCE_SIM_DIR, see README.md). Stdlib only: it runs in a bare python image and may import only
appliance.vllm_spec, appliance.cards and appliance.sim.
"""

from __future__ import annotations

import dataclasses
import errno
import os
import random
import signal
import socket
import sys
import threading
import time
import uuid
from pathlib import Path

from appliance import vllm_spec
from appliance.cards import CARDS, GIB
from appliance.sim import messages as M
from appliance.sim import localmodel, physics, state
from appliance.sim.config import (CORE_FRAMES, FAULTS, KV_FRAMES, SHUTDOWN, Config, StartupError, sim_spec, sim_version,
                                  core_failure, faults_from_env, traceback_text, validate, validate_model,
                                  visible_gpus)
from appliance.sim.core import Engine
from appliance.sim.server import Handler, Server


def _bind(cfg: Config) -> socket.socket:
    host = cfg.host if cfg.host is not None else ""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    # vLLM also sets SO_REUSEPORT; the sim does not, so a port clash fails loudly (README.md)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, cfg.port))
    except OSError as e:
        sock.close()
        if e.errno == errno.EADDRINUSE:
            raise StartupError(traceback_text(
                [("entrypoints/openai/api_server.py", 535, "setup_server", "sock = create_server_socket(sock_addr)"),
                 ("entrypoints/openai/api_server.py", 496, "create_server_socket", "sock.bind(addr)")],
                f"OSError: {M.ADDRESS_IN_USE}")) from None
        raise StartupError(f"OSError: {e}") from None
    return sock  # bound, not listening: connections are refused until _serve listens (real vLLM, measured)


def _with_local_facts(plan: physics.MemoryPlan, local: localmodel.LocalModel | None,
                      cfg: Config) -> physics.MemoryPlan:
    """A local model's own KV bytes per token and context length, and an explicit --kv-cache-memory-bytes, replace
    the physics guesses (what the real engine does with them)."""
    if local is None and not cfg.kv_cache_memory_bytes:
        return plan
    per_token = local.kv_bytes_per_token if local else plan.kv_bytes_per_token
    mml = plan.max_model_len
    if local and not (cfg.max_model_len_arg and cfg.max_model_len_arg > 0):
        mml = local.max_position
    available = cfg.kv_cache_memory_bytes or plan.kv_available_bytes
    return dataclasses.replace(plan, kv_bytes_per_token=per_token, max_model_len=mml, kv_available_bytes=available,
                               kv_needed_bytes=per_token * mml)


def _check_max_model_len(cfg: Config) -> None:
    """vLLM refuses a --max-model-len beyond the model's max_position_embeddings (unless explicitly allowed)."""
    local = localmodel.read(cfg.model)
    mml = cfg.max_model_len_arg
    if local is None or not mml or mml <= local.max_position or os.environ.get("VLLM_ALLOW_LONG_MAX_MODEL_LEN"):
        return
    raise StartupError(traceback_text(
        [("engine/arg_utils.py", 1596, "create_model_config", "return ModelConfig("),
         ("config/model.py", 2140, "get_and_verify_max_len", "raise ValueError(msg)")],
        "pydantic_core._pydantic_core.ValidationError: 1 validation error for ModelConfig\n  Value error, "
        + localmodel.TOO_LONG.format(mml=mml, pos=float(local.max_position))))


def _sleep(seconds: float) -> None:
    end = time.monotonic() + seconds
    while not SHUTDOWN.is_set():
        left = end - time.monotonic()
        if left <= 0:
            return
        time.sleep(min(left, 0.05))
    raise _Stop()


class _Stop(Exception):
    pass



class Runner:
    """The whole life of one engine process."""

    def __init__(self, argv: list[str]):
        self.argv = argv
        self.log = M.Log()

    def run(self) -> int:
        parser = vllm_spec.build_serve_parser("vllm serve", version=sim_spec().version)
        try:
            ns = parser.parse_args(self.argv)
        except ValueError as e:  # --served-model-name without a positional model
            print(traceback_text([("utils/argparse_utils.py", 217, "parse_args", "raise ValueError(")],
                             f"ValueError: {e}"), file=sys.stderr)
            return 1
        if ns.model is None:
            ns.model = sim_spec().flags["model"].default
        cfg = Config(ns, parser)
        for w in parser.warnings:
            self.log.api(M.MODEL_FLAG, level="WARNING")
        if cfg.enable_auto_tool_choice and not cfg.tool_call_parser:
            print(traceback_text([("entrypoints/cli/main.py", 73, "main", "args.dispatch_function(args)"),
                              ("entrypoints/cli/serve.py", 125, "validate", "validate_parsed_serve_args(args)"),
                              ("entrypoints/openai/cli_args.py", 364, "validate_parsed_serve_args",
                               'raise TypeError("Error: --enable-auto-tool-choice requires --tool-call-parser")')],
                             f"TypeError: {M.AUTO_TOOL_NEEDS_PARSER}"), file=sys.stderr)
            return 1
        if ns.enable_log_outputs and not ns.enable_log_requests:
            print(f"TypeError: {M.LOG_OUTPUTS_NEEDS_REQUESTS}", file=sys.stderr)
            return 1
        try:
            sim_dir = state.sim_dir_from_env()
            state.read_gpus(sim_dir)
        except state.SimDirError as e:
            print(f"appliance-sim: {e}", file=sys.stderr)
            return 1
        faults = faults_from_env()
        unknown = faults - FAULTS
        if unknown:
            print(f"appliance-sim: unknown APPLIANCE_SIM_FAULT {sorted(unknown)}; known: {sorted(FAULTS)}",
                  file=sys.stderr)
            return 1
        try:
            return self._run(cfg, sim_dir, faults)
        except StartupError as e:
            self.log.raw("APIServer", e.text)
            return 1

    def _run(self, cfg: Config, sim_dir: Path, faults: set[str]) -> int:
        log = self.log
        log.api(M.VERSION, sim_version(), cfg.model)
        log.api(M.NON_DEFAULT, cfg.non_default)
        validate(cfg)
        _check_max_model_len(cfg)
        sock = _bind(cfg)
        eng = Engine(cfg, sim_dir, faults, log)
        self.eng = eng
        try:
            return self._load_and_serve(cfg, eng, sock, faults)
        except _Stop:
            eng.write_state("stopped")
            sock.close()
            return 0
        except StartupError:
            eng.write_state("crashed")
            sock.close()
            raise

    def _load_and_serve(self, cfg: Config, eng: Engine, sock: socket.socket, faults: set[str]) -> int:
        log = self.log
        if cfg.speculative_config and str(cfg.speculative_config.get("method", "")).endswith("_mtp"):
            log.core(M.MTP_DEPRECATED, cfg.speculative_config["method"], level="WARNING")
        eng.write_state()  # "loading", no GPUs yet
        threading.Thread(target=eng.ticker, name="sim-ticker", daemon=True).start()
        if "hf_token_missing" in faults:
            rid = uuid.uuid4().hex[:24]
            raise StartupError(traceback_text(
                [("engine/arg_utils.py", 1380, "create_model_config", "return ModelConfig("),
                 ("transformers_utils/config.py", 586, "get_config", "config_dict, _ = PretrainedConfig.get_config_dict(")],
                "huggingface_hub.errors.GatedRepoError: " + M.GATED_REPO.format(model=cfg.model, rid=rid)))
        validate_model(cfg)
        visible = visible_gpus(list(eng.rows.values()))
        if len(visible) < cfg.tp:
            raise StartupError(traceback_text(
                [("config/parallel.py", 718, "__post_init__", "raise ValueError(")],
                "ValueError: " + M.WORLD_SIZE.format(world=cfg.tp, gpus=len(visible))))
        eng.gpus = visible[: cfg.tp]
        eng.refresh_limits()
        card = min((CARDS[eng.rows[i]["card"]] for i in eng.gpus), key=lambda c: c.memory_bytes)
        sc = cfg.speculative_config or {}
        spec_mtp = str(sc.get("method", "")) == "mtp" or str(sc.get("method", "")).endswith("_mtp")
        plan = physics.memory_plan(card, cfg.tp, eng.size, cfg.gpu_memory_utilization, cfg.kv_cache_dtype,
                                   cfg.max_model_len_arg, cfg.enforce_eager, cfg.max_num_seqs,
                                   cfg.ns.max_num_batched_tokens, spec_mtp, vllm_version=sim_version())
        plan = _with_local_facts(plan, localmodel.read(cfg.model, cfg.kv_cache_dtype), cfg)
        eng.plan = plan
        eng.max_model_len = plan.max_model_len
        from appliance import vllm_versions  # lazy: the engine's import stays stdlib + vllm_spec

        eng.max_num_seqs = cfg.max_num_seqs or int(vllm_versions.effective_serve_defaults(
            sim_version(), card.memory_bytes, card.name)["max_num_seqs"])

        # APPLIANCE_SIM_MEMORY_CHECK=0: no natural OOM/KV failures (stand-ins for hosted models with huge contexts)
        strict = os.environ.get("APPLIANCE_SIM_MEMORY_CHECK", "1") != "0"
        load_s = float(os.environ.get("APPLIANCE_SIM_LOAD_S", "3.0") or 3.0)
        if "slow_load" in faults:
            load_s *= 10
        shares = (0.6, 0.4, 0.0) if cfg.enforce_eager else (0.5, 0.2, 0.3)
        t_start = time.monotonic()

        # ---- weights
        log.core(M.START_LOAD, cfg.model)
        if "hang" in faults:
            while True:
                _sleep(3600)
        context = int(0.5 * GIB)
        weights_s = load_s * shares[0]
        steps = 10
        for k in range(1, steps + 1):
            _sleep(weights_s / steps)
            for i in eng.gpus:
                eng.memory[i] = context + plan.weight_bytes * k // steps
            too_big = strict and plan.weight_bytes + context > plan.total_bytes
            if "cuda_oom" in faults or too_big:
                if k >= steps // 2 or too_big:
                    free_mib = 20 + random.random() * 100
                    err = M.CUDA_OOM.format(alloc=0.5, gpu=0, total=plan.total_bytes / GIB, free=free_mib,
                                            used=plan.total_bytes / GIB - free_mib / 1024,
                                            alloc_torch=min(plan.weight_bytes, plan.total_bytes) / GIB * 0.98,
                                            reserved=40.0)
                    log.core(M.LOAD_FAILED_OOM, err, level="ERROR")
                    raise core_failure(log, "torch.OutOfMemoryError: " + err, CORE_FRAMES + [
                        ("v1/worker/gpu_model_runner.py", 4780, "load_model",
                         "self.model = model_loader.load_model(")])
        log.core(M.WEIGHTS_TOOK, weights_s * 0.9)
        log.core(M.MODEL_LOADING_TOOK, M.format_gib(plan.weight_bytes), weights_s)

        # ---- profile + KV cache
        _sleep(load_s * shares[1] / 2)
        for i in eng.gpus:
            eng.memory[i] = context + plan.weight_bytes + plan.activation_bytes
        available = plan.kv_available_bytes
        if "oom_at_start" in faults or (strict and available <= 0):
            raise core_failure(log, "ValueError: " + M.NO_KV_MEMORY, KV_FRAMES)
        needed = plan.kv_needed_bytes
        if "kv_too_small" in faults and needed <= available:
            available = int(needed * 0.6)
        if needed > available and (strict or "kv_too_small" in faults):
            est = max(0, available) // plan.kv_bytes_per_token // physics.BLOCK_SIZE * physics.BLOCK_SIZE
            estimated = M.KV_ESTIMATED.format(estimated=est) if est > 0 else ""
            raise core_failure(log, "ValueError: " + M.KV_TOO_SMALL.format(
                max_len=plan.max_model_len, needed=M.format_gib(needed), available=M.format_gib(available),
                estimated=estimated), KV_FRAMES)
        log.core(M.KV_AVAILABLE, M.format_gib(available))
        log.core(M.KV_SIZE, f"{plan.kv_tokens:,}")
        log.core(M.MAX_CONCURRENCY, f"{plan.max_model_len:,}", plan.max_concurrency)
        _sleep(load_s * shares[1] / 2)
        for i in eng.gpus:
            eng.memory[i] = min(plan.total_bytes, plan.requested_bytes)

        # ---- CUDA graphs
        if not cfg.enforce_eager:
            graphs_s = load_s * shares[2]
            for mode, n in (("mixed prefill-decode", "PIECEWISE"), ("decode", "FULL")):
                _sleep(graphs_s / 2)
                count = 51 if mode.startswith("mixed") else 35
                log.raw("EngineCore_DP0", f"{M.GRAPHS_BAR.format(mode, n)}: 100%|██████████| {count}/{count} "
                        f"[00:{int(graphs_s / 2):02d}<00:00, {count / max(graphs_s / 2, 0.01):.2f}it/s]")
            for i in eng.gpus:
                eng.memory[i] = min(plan.total_bytes, plan.requested_bytes + plan.cuda_graph_bytes)
            log.core(M.GRAPHS_DONE, graphs_s, plan.cuda_graph_bytes / GIB)
        log.core(M.INIT_ENGINE, time.monotonic() - t_start)

        # ---- serve
        return self._serve(cfg, eng, sock)

    def _serve(self, cfg: Config, eng: Engine, sock: socket.socket) -> int:
        log = self.log
        log.api(M.SUPPORTED_TASKS, ["generate"])
        addr = sock.getsockname()
        host = addr[0] or "0.0.0.0"
        host = f"[{host}]" if ":" in host else host
        log.api(M.STARTING_SERVER, f"http://{host}:{addr[1]}")
        handler = type("BoundHandler", (Handler,), {"engine": eng})
        server = Server(addr[:2], handler, bind_and_activate=False)
        server.socket.close()
        server.socket = sock
        server.server_address = sock.getsockname()
        pid = os.getpid()
        uvicorn = self.log.plain  # uvicorn's own lines carry no "(APIServer pid=N)" prefix (measured on 0.32)
        uvicorn(f"INFO:     Started server process [{pid}]")
        uvicorn("INFO:     Waiting for application startup.")
        uvicorn("INFO:     Application startup complete.")
        eng.state = "ready"
        eng.write_state()
        sock.listen(1024)
        thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        thread.start()
        while not SHUTDOWN.is_set():
            time.sleep(0.05)
        self._drain(cfg, eng)
        uvicorn("INFO:     Shutting down")
        server.shutdown()
        try:
            sock.close()
        except OSError:
            pass
        uvicorn("INFO:     Waiting for application shutdown.")
        uvicorn("INFO:     Application shutdown complete.")
        uvicorn(f"INFO:     Finished server process [{pid}]")
        eng.write_state("stopped")
        return 0

    def _drain(self, cfg: Config, eng: Engine) -> None:
        """SIGTERM, as vLLM 0.32 does it (measured): the server keeps answering (/health 200) while requests in
        flight finish for up to --shutdown-timeout seconds; new requests get HTTP 500. When the window runs out,
        streams end with an error event; without a window (0, the default) every request is aborted at once."""
        log = self.log
        log.api(M.SHUTDOWN_TRIGGERED)
        mode = "drain" if cfg.shutdown_timeout > 0 else "abort"
        log.api(M.SHUTDOWN_MODE, mode, cfg.shutdown_timeout)
        eng.stopping = mode
        if mode == "drain":
            log.core(M.SHUTDOWN_DRAINING, len(eng.running) + eng.waiting, cfg.shutdown_timeout)
            deadline = time.monotonic() + cfg.shutdown_timeout
            while eng.busy() and time.monotonic() < deadline:
                time.sleep(0.02)
            if eng.busy():
                eng.stopping = "expired"
        end = time.monotonic() + 2.0  # let the handlers write their last events
        while eng.busy() and time.monotonic() < end:
            time.sleep(0.02)
        log.core(M.SHUTDOWN_DONE)


def _on_sigterm(signum, frame):
    SHUTDOWN.set()


def main(argv: list[str] | None = None) -> None:
    """`vllm` entry point: `vllm serve MODEL [flags]`, `vllm --version`."""
    args = list(sys.argv[1:] if argv is None else argv)
    signal.signal(signal.SIGTERM, _on_sigterm)
    signal.signal(signal.SIGINT, _on_sigterm)
    if args and args[0] in ("-v", "--version"):
        print(sim_version())
        sys.exit(0)
    if not args or args[0] != "serve":
        choice = f"invalid choice: '{args[0]}' " if args else "the following arguments are required: subparser"
        print("usage: vllm [-h] [-v] {chat,complete,serve,bench,collect-env,run-batch} ...", file=sys.stderr)
        if args:
            print(f"vllm: error: argument subparser: {choice}(choose from chat, complete, serve, bench, "
                  "collect-env, run-batch)", file=sys.stderr)
        else:
            print(f"vllm: error: {choice}", file=sys.stderr)
        sys.exit(2)
    code = Runner(args[1:]).run()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)  # handler threads may still hold connections; they are daemons of a finished process


if __name__ == "__main__":
    main()
