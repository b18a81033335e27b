"""What does the front door cost? Streaming requests through each candidate front door vs directly to the engine,
measured side by side in one run on the simulated engine (every stream paced at 100 tok/s, 256 tokens).

    .venv/bin/python benchmarks/proxy_tax.py [--seconds 8] [--streams 1,8,16,32] [--only frontdoor,...]

Candidates:
  direct            the stand-in engine itself (the baseline)
  litellm-stock     LiteLLM 1.106.2, one worker, defaults (LITELLM_LOCAL_MODEL_COST_MAP only)
  litellm-tuned     the same with the appliance's settings (GC threshold, logging off)
  frontdoor         the appliance's front door as rendered: HAProxy → engine (LiteLLM behind it, unused here)

Reported per candidate × streams: TTFT p50/p99 and what the front door adds to them, aggregate streamed tok/s and
its ratio to direct, the worst gap between two tokens of a stream, and the front door's CPU time per streamed
token (its processes' user+system time / tokens). Loopback only; every process started here is stopped here.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from appliance import http, load  # noqa: E402

KEY = "sk-proxy-tax-benchmark-0123456789abcdef"
TOKENS = 256


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, timeout: float = 60, headers=None) -> None:
    import httpx

    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            if httpx.get(url, timeout=1, headers=headers).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"{url} did not come up")


def cpu_seconds(pids: list[int]) -> float:
    total = 0.0
    tick = os.sysconf("SC_CLK_TCK")
    for pid in pids:
        for p in [pid] + children(pid):
            try:
                fields = open(f"/proc/{p}/stat").read().rsplit(")", 1)[1].split()
                total += (int(fields[11]) + int(fields[12])) / tick
            except OSError:
                pass
    return total


def children(pid: int) -> list[int]:
    out = []
    try:
        for t in os.listdir(f"/proc/{pid}/task"):
            for c in open(f"/proc/{pid}/task/{t}/children").read().split():
                out.append(int(c))
                out += children(int(c))
    except OSError:
        pass
    return out


class Procs:
    def __init__(self):
        self.procs: list[subprocess.Popen] = []

    def start(self, argv, env, log: Path) -> subprocess.Popen:
        p = subprocess.Popen(argv, env=env, stdout=open(log, "wb"), stderr=subprocess.STDOUT,
                             stdin=subprocess.DEVNULL, start_new_session=True)
        self.procs.append(p)
        return p

    def stop(self, p: subprocess.Popen) -> None:
        if p.poll() is None:
            try:
                os.killpg(p.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait(5)

    def stop_all(self) -> None:
        for p in reversed(self.procs):
            self.stop(p)


async def measure(base: str, key: str | None, streams: int, seconds: float) -> dict:
    results: list[load.RequestResult] = []
    stop = time.monotonic() + seconds
    async with http.async_client(timeout_s=120) as client:
        async def worker(i):
            n = 0
            while time.monotonic() < stop:
                n += 1
                results.append(await load.stream_chat(client, base, key, "local", load.synthetic_prompt(32, i * 97 + n),
                                                       TOKENS))
        t0 = time.monotonic()
        await asyncio.gather(*(worker(i) for i in range(streams)))
        wall = time.monotonic() - t0
    ok = [r for r in results if r.ok]
    ttft = sorted(r.ttft_s for r in ok if r.ttft_s is not None)
    gaps = [g for r in ok for g in r.itl_s]
    pick = lambda xs, q: xs[min(len(xs) - 1, int(q * len(xs)))] if xs else float("nan")  # noqa: E731
    return {"requests": len(results), "failed": len(results) - len(ok),
            "tokens": sum(r.output_tokens for r in ok), "tok_s": sum(r.output_tokens for r in ok) / wall,
            "ttft_p50_ms": pick(ttft, 0.5) * 1000, "ttft_p99_ms": pick(ttft, 0.99) * 1000,
            "worst_gap_ms": max(gaps) * 1000 if gaps else float("nan")}


def litellm_config(tmp: Path, engine_port: int, litellm_port: int, tuned: bool) -> Path:
    cfg = tmp / f"litellm-{'tuned' if tuned else 'stock'}.yaml"
    extra = "  turn_off_message_logging: true\n" if tuned else ""
    cfg.write_text(textwrap.dedent(f"""\
        model_list:
          - model_name: local
            litellm_params: {{model: hosted_vllm/local, api_base: "http://127.0.0.1:{engine_port}/v1",
                              max_retries: 0}}
            model_info: {{id: "local:local@{engine_port}"}}
        general_settings:
          master_key: os.environ/LITELLM_MASTER_KEY
        litellm_settings:
          drop_params: true
        """) + extra)
    return cfg


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=8)
    ap.add_argument("--streams", default="1,8,16,32")
    ap.add_argument("--only", default="direct,litellm-stock,litellm-tuned,frontdoor")
    args = ap.parse_args()
    from appliance.proxyenv import litellm_executable
    from appliance.sim.gpu import SimGPUs

    litellm = litellm_executable()
    haproxy = shutil.which("haproxy")
    wanted = args.only.split(",")
    procs = Procs()
    rows = []
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        SimGPUs.create(tmp / "sim", ["h200"])
        engine_port = free_port()
        env = dict(os.environ, APPLIANCE_SIM_DIR=str(tmp / "sim"), APPLIANCE_SIM_LOAD_S="0.2",
                   APPLIANCE_SIM_STREAM_TOK_S="100", NVIDIA_VISIBLE_DEVICES="0", LITELLM_LOCAL_MODEL_COST_MAP="True",
                   LITELLM_MASTER_KEY=KEY)
        procs.start([sys.executable, "-m", "appliance.sim.engine", "serve", "Qwen/Qwen2.5-7B-Instruct-AWQ",
                     "--served-model-name", "Qwen/Qwen2.5-7B-Instruct-AWQ", "local", "--host", "127.0.0.1",
                     "--port", str(engine_port), "--max-num-seqs", "512", "--max-model-len", "8192"],
                    env, tmp / "engine.log")
        wait_http(f"http://127.0.0.1:{engine_port}/health")
        try:
            candidates = []
            if "direct" in wanted:
                candidates.append(("direct", f"http://127.0.0.1:{engine_port}/v1", None, lambda: []))
            for name, tuned in (("litellm-stock", False), ("litellm-tuned", True)):
                if name not in wanted or litellm is None:
                    continue
                port = free_port()
                lenv = dict(env)
                if tuned:
                    lenv.update(PYTHON_GC_THRESHOLD="20000,50,100", LITELLM_LOG="ERROR")
                p = procs.start([str(litellm), "--config", str(litellm_config(tmp, engine_port, port, tuned)),
                                 "--host", "127.0.0.1", "--port", str(port)], lenv, tmp / f"{name}.log")
                wait_http(f"http://127.0.0.1:{port}/health/liveliness", 120)
                candidates.append((name, f"http://127.0.0.1:{port}/v1", KEY, (lambda p=p: [p.pid])))
            if "frontdoor" in wanted and haproxy and litellm:
                from appliance import frontdoor, yamlsrc
                from appliance.profile import validate
                from appliance.render.frontdoor import FrontDoorSettings, render_haproxy

                prof = validate(yamlsrc.load(textwrap.dedent(f"""\
                    name: bench
                    gpus: [0]
                    proxy: {{hosted: [{{name: mini, provider: openai, model: gpt-4o-mini, api_key_env: X}}],
                             fallbacks: {{local: [mini]}}}}
                    engines: [{{model: Qwen/Qwen2.5-7B-Instruct-AWQ, aliases: [local], port: {engine_port},
                               max_model_len: 8192}}]
                    """), "bench.yaml"))
                port, lport = free_port(), free_port()
                fd = FrontDoorSettings(port=port, litellm_port=lport, fallback_base_port=free_port(),
                                       socket_path=str(tmp / "fd.sock"))
                (tmp / "haproxy.cfg").write_text(render_haproxy([prof], prof, fd))
                procs.start([str(litellm), "--config", str(litellm_config(tmp, engine_port, lport, True)), "--host",
                             "127.0.0.1", "--port", str(lport)], dict(env, PYTHON_GC_THRESHOLD="20000,50,100"),
                            tmp / "fd-litellm.log")
                hp = procs.start([haproxy, "-W", "-db", "-f", str(tmp / "haproxy.cfg")], env, tmp / "haproxy.log")
                frontdoor.wait_ready(Path(fd.socket_path))
                frontdoor.set_state(Path(fd.socket_path), "alias_local", "ready")
                frontdoor.admin(Path(fd.socket_path), "set server alias_local/local health up")
                wait_http(f"http://127.0.0.1:{port}/health/liveliness", 120)
                candidates.append(("frontdoor", f"http://127.0.0.1:{port}/v1", KEY, (lambda hp=hp: [hp.pid])))
            for name, base, key, pids in candidates:
                asyncio.run(measure(base, key, 2, 1.0))  # warm-up
                for n in [int(x) for x in args.streams.split(",")]:
                    c0 = cpu_seconds(pids())
                    r = asyncio.run(measure(base, key, n, args.seconds))
                    cpu = cpu_seconds(pids()) - c0
                    r.update(name=name, streams=n, cpu_us_per_token=(cpu / r["tokens"] * 1e6) if pids() and
                             r["tokens"] else None)
                    rows.append(r)
                    print(f"  measured {name} × {n}: {r['tok_s']:.0f} tok/s", file=sys.stderr, flush=True)
        finally:
            procs.stop_all()
    direct = {r["streams"]: r for r in rows if r["name"] == "direct"}
    print(f"\nfront door cost, streaming {TOKENS} tokens per request at 100 tok/s per stream, {args.seconds:.0f} s per row"
          " (client, engine and front door share this machine's cores)")
    print(f"{'front door':<15}{'streams':>8}{'reqs':>6}{'fail':>5}{'TTFT p50':>10}{'p99':>9}{'+p50':>8}{'+p99':>8}"
          f"{'tok/s':>9}{'vs direct':>10}{'worst gap':>10}{'CPU µs/tok':>11}")
    for r in rows:
        base = direct.get(r["streams"])
        add50 = r["ttft_p50_ms"] - base["ttft_p50_ms"] if base else float("nan")
        add99 = r["ttft_p99_ms"] - base["ttft_p99_ms"] if base else float("nan")
        ratio = r["tok_s"] / base["tok_s"] if base and base["tok_s"] else float("nan")
        cpu = f"{r['cpu_us_per_token']:.1f}" if r["cpu_us_per_token"] is not None else "–"
        print(f"{r['name']:<15}{r['streams']:>8}{r['requests']:>6}{r['failed']:>5}{r['ttft_p50_ms']:>8.1f}ms"
              f"{r['ttft_p99_ms']:>7.1f}ms{add50:>+7.1f}{add99:>+8.1f}{r['tok_s']:>9.0f}{ratio:>10.3f}"
              f"{r['worst_gap_ms']:>8.0f}ms{cpu:>11}")


if __name__ == "__main__":
    main()
