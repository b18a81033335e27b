"""What does the front door cost? Streaming requests through each candidate front door vs directly to the engine,
measured side by side in one run on the simulated engine (every stream paced at 100 tok/s, 256 tokens).

    .venv/bin/python benchmarks/proxy_tax.py [--seconds 8] [--streams 1,8,16,32] [--only frontdoor,...] [--keepalive]
                                             [--tokens 256]

The rig is the product's own: `Stack(simulated_rig(runtime="process"))` starts a one-engine profile (the stand-in
engine as a local process, its own key) and the real front door (HAProxy with its keys file, hold.lua and the
rendered haproxy.cfg, LiteLLM behind it) exactly as `appliance up --sim --runtime process` does, in a state dir
and on free loopback ports of its own.

Candidates:
  direct            the stand-in engine itself with the engine key (the baseline; kept-alive connections)
  litellm-stock     LiteLLM (.venv-proxy), one worker, defaults (LITELLM_LOCAL_MODEL_COST_MAP only), → the engine
  litellm-tuned     the same with the appliance's settings (render/litellm.py PROXY_ENV, message logging off)
  frontdoor         the appliance's front door as the Stack started it: HAProxy → engine (`option httpclose`:
                    a new TCP connection per request on both sides)
  frontdoor-keepalive  (only with --keepalive; FOR MEASUREMENT ONLY, not a product setting) the same front door
                    after the rendered haproxy.cfg lost its `option httpclose` line and HAProxy reloaded: isolates
                    what one connection per request costs

Reported per candidate × streams: TTFT p50/p99 and what the front door adds to them, aggregate streamed tok/s and
its ratio to direct, the worst gap between two tokens of a stream, and the front door's CPU time per streamed
token (its processes' user+system time / tokens: HAProxy master + worker for the front door, not its supervisor).
Loopback only; everything started here is stopped here (the Stack by `down`, the LiteLLM candidates by pid).
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


def cpu_seconds(pids: list[int]) -> dict[int, float]:
    """user+system seconds of each of the processes and their descendants, by pid (subtract two with `spent`:
    a process that exits in between, e.g. an old HAProxy worker after a reload, must not count negative)."""
    out = {}
    tick = os.sysconf("SC_CLK_TCK")
    for pid in pids:
        for p in [pid] + children(pid):
            try:
                fields = open(f"/proc/{p}/stat").read().rsplit(")", 1)[1].split()
                out[p] = (int(fields[11]) + int(fields[12])) / tick
            except OSError:
                pass
    return out


def spent(before: dict[int, float], after: dict[int, float]) -> float:
    return sum(after[p] - before.get(p, 0.0) for p in after)


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
                              api_key: os.environ/APPLIANCE_ENGINE_KEY, max_retries: 0}}
            model_info: {{id: "local:local@{engine_port}"}}
        general_settings:
          master_key: os.environ/LITELLM_MASTER_KEY
        litellm_settings:
          drop_params: true
        """) + extra)
    return cfg


def free_block(n: int) -> int:
    """A port p with p … p+n-1 all free on loopback (the front door uses proxy port + 1 … + 3 too)."""
    from appliance.netcheck import port_free

    for _ in range(200):
        p = free_port()
        if p + n < 65535 and all(port_free(p + i) for i in range(n)):
            return p
    raise SystemExit("no block of free loopback ports found")


def bench_profile(d: Path, proxy_port: int, engine_port: int) -> None:
    """One engine serving `local` on one simulated RTX 4090, with a hosted fallback as the shipped profiles have
    (so the hot path is the one they get: no hold script on it). max_num_seqs 64: 32 streams never queue."""
    d.mkdir(parents=True, exist_ok=True)
    (d / "bench.yaml").write_text(textwrap.dedent(f"""\
        name: bench
        card: "4090"
        gpus: [0]
        proxy:
          port: {proxy_port}
          hosted:
            - {{name: hosted-mini, provider: openai, model: gpt-4o-mini, api_key_env: OPENAI_API_KEY,
               max_input_tokens: 128000}}
          fallbacks: {{local: [hosted-mini]}}
          context_window_fallbacks: {{local: [hosted-mini]}}
        engines:
          - name: main
            aliases: [local]
            port: {engine_port}
            model: Qwen/Qwen2.5-7B-Instruct-AWQ
            max_model_len: 8192
            max_num_seqs: 64
            kv_cache_dtype: fp8
            gpu_memory_utilization: 0.9
        """))


def keepalive(stack, profile) -> None:
    """FOR MEASUREMENT ONLY: drop `option httpclose` from the running door's haproxy.cfg and reload HAProxy the
    way the Stack does (seamless reload, then the routed engines enabled in the new worker)."""
    from appliance import frontdoor

    cfg = stack.rig.rendered / "proxy" / "haproxy.cfg"
    text = cfg.read_text()
    lines = [ln for ln in text.splitlines(keepends=True) if ln.strip() != "option httpclose"]
    if len(lines) != len(text.splitlines()) - 1:
        raise SystemExit(f"{cfg}: no single `option httpclose` line to remove")
    cfg.write_text("".join(lines))
    sock = Path(stack.rig.state.load().proxy.socket)
    stack.front_door.reload(sock)
    stack.front_door.enable(profile)
    frontdoor.wait_ready(sock)


def haproxy_pids(stack) -> list[int]:
    from appliance.render.litellm import PROXY_PROJECT

    return [s.pid for s in stack.rig.proxy_runtime.states(PROXY_PROJECT) if s.service == "frontdoor" and s.pid]


def door_conns(stack) -> tuple[float, float, float]:
    """(agents' connections, agents' requests, connections to the engine) the current HAProxy worker counted:
    shows that `option httpclose` (or its absence in the keep-alive run) is what the numbers measure."""
    from appliance import frontdoor

    conns = reqs = engine = 0.0
    for row in frontdoor.stats(Path(stack.rig.state.load().proxy.socket)):
        if row.get("pxname") == "agents" and row.get("svname") == "FRONTEND":
            conns, reqs = float(row.get("conn_tot") or 0), float(row.get("req_tot") or 0)
        if row.get("pxname", "").startswith("alias_") and row.get("svname") == "local":
            engine += float(row.get("connect") or 0)
    return conns, reqs, engine


def main() -> None:
    global TOKENS
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=8)
    ap.add_argument("--streams", default="1,8,16,32")
    ap.add_argument("--only", default="direct,litellm-stock,litellm-tuned,frontdoor")
    ap.add_argument("--tokens", type=int, default=TOKENS,
                    help="output tokens per request (fewer: the per-request costs, e.g. a connect, weigh more)")
    ap.add_argument("--keepalive", action="store_true",
                    help="also measure the front door without `option httpclose` (measurement only)")
    args = ap.parse_args()
    TOKENS = args.tokens
    os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"
    from appliance.proxyenv import litellm_executable
    from appliance.render.litellm import PROXY_ENV

    litellm = litellm_executable()
    wanted = args.only.split(",") + (["frontdoor-keepalive"] if args.keepalive else [])
    procs = Procs()
    rows = []
    idle: dict[str, float] = {}  # front door → ms of CPU per second with no traffic
    saved = dict(os.environ)
    tmp = Path(tempfile.mkdtemp(prefix="appliance-proxy-tax-"))
    proxy_port, engine_port, hosted_base = free_block(6), free_port(), free_block(4)
    bench_profile(tmp / "profiles", proxy_port, engine_port)
    os.environ.update(APPLIANCE_HOME=str(tmp / "home"), APPLIANCE_PROFILES=str(tmp / "profiles"),
                      APPLIANCE_PROFILES_ONLY="1", APPLIANCE_HOSTED_BASE_PORT=str(hosted_base),
                      APPLIANCE_SIM_LOAD_S="0.5", APPLIANCE_SIM_STREAM_TOK_S="100")
    os.environ.pop("APPLIANCE_SECRETS_FILE", None)
    os.environ.pop("LITELLM_MASTER_KEY", None)
    from appliance import secrets
    from appliance.profile import load_profile
    from appliance.rig import simulated_rig
    from appliance.stack import Stack

    stack = Stack(simulated_rig(runtime="process", cards=["4090"], root=tmp / "rig"),
                  lambda e: print(f"  [{e.kind}] {e.message}", file=sys.stderr) if e.kind in ("fail", "warn") else None)
    profile = load_profile("bench")
    try:
        if not stack.up(profile).ok:
            raise SystemExit("could not start the benchmark rig (see the lines above)")
        master, engine_key = secrets.master_key(), secrets.engine_key()
        env = dict(os.environ, LITELLM_MASTER_KEY=master, APPLIANCE_ENGINE_KEY=engine_key)
        candidates = []
        if "direct" in wanted:
            candidates.append(("direct", f"http://127.0.0.1:{engine_port}/v1", engine_key, lambda: []))
        for name, tuned in (("litellm-stock", False), ("litellm-tuned", True)):
            if name not in wanted or litellm is None:
                continue
            port = free_port()
            lenv = dict(env, **PROXY_ENV) if tuned else dict(env)
            p = procs.start([str(litellm), "--config", str(litellm_config(tmp, engine_port, port, tuned)),
                             "--host", "127.0.0.1", "--port", str(port)], lenv, tmp / f"{name}.log")
            wait_http(f"http://127.0.0.1:{port}/health/liveliness", 120)
            candidates.append((name, f"http://127.0.0.1:{port}/v1", master, (lambda p=p: [p.pid])))
        front = f"http://127.0.0.1:{proxy_port}/v1"
        if "frontdoor" in wanted:
            candidates.append(("frontdoor", front, master, lambda: haproxy_pids(stack)))
        if "frontdoor-keepalive" in wanted:
            candidates.append(("frontdoor-keepalive", front, master, lambda: haproxy_pids(stack)))
        for name, base, key, pids in candidates:
            if name == "frontdoor-keepalive":
                keepalive(stack, profile)
            if name.startswith("frontdoor"):  # its fixed cost: health checks, timers, with no traffic at all
                c0 = cpu_seconds(pids())
                time.sleep(5)
                idle[name] = spent(c0, cpu_seconds(pids())) / 5 * 1000
            warm = asyncio.run(measure(base, key, 2, 1.0))
            if warm["failed"] or not warm["requests"]:
                raise SystemExit(f"{name}: the warm-up requests failed ({base})")
            for n in [int(x) for x in args.streams.split(",")]:
                door = name.startswith("frontdoor")
                k0, c0 = door_conns(stack) if door else None, cpu_seconds(pids())
                r = asyncio.run(measure(base, key, n, args.seconds))
                cpu = spent(c0, cpu_seconds(pids()))
                if door:
                    k1 = door_conns(stack)
                    reqs = max(1.0, k1[1] - k0[1])
                    r["conns_per_req"] = ((k1[0] - k0[0]) / reqs, (k1[2] - k0[2]) / reqs)
                r.update(name=name, streams=n, cpu_us_per_token=(cpu / r["tokens"] * 1e6) if pids() and
                         r["tokens"] else None)
                rows.append(r)
                print(f"  measured {name} × {n}: {r['tok_s']:.0f} tok/s, {r['failed']} failed", file=sys.stderr,
                      flush=True)
    finally:
        procs.stop_all()
        stack.down(all_=True)
        os.environ.clear()
        os.environ.update(saved)
        shutil.rmtree(tmp, ignore_errors=True)
    direct = {r["streams"]: r for r in rows if r["name"] == "direct"}
    print(f"\nfront door cost, streaming {TOKENS} tokens per request at 100 tok/s per stream, {args.seconds:.0f} s per row"
          " (client, engine and front door share this machine's cores)")
    print(f"{'front door':<20}{'streams':>8}{'reqs':>6}{'fail':>5}{'TTFT p50':>10}{'p99':>9}{'+p50':>8}{'+p99':>8}"
          f"{'tok/s':>9}{'vs direct':>10}{'worst gap':>10}{'CPU µs/tok':>11}{'conns/req in/out':>17}")
    for r in rows:
        base = direct.get(r["streams"])
        add50 = r["ttft_p50_ms"] - base["ttft_p50_ms"] if base else float("nan")
        add99 = r["ttft_p99_ms"] - base["ttft_p99_ms"] if base else float("nan")
        ratio = r["tok_s"] / base["tok_s"] if base and base["tok_s"] else float("nan")
        cpu = f"{r['cpu_us_per_token']:.1f}" if r["cpu_us_per_token"] is not None else "–"
        conns = "%.1f/%.1f" % r["conns_per_req"] if "conns_per_req" in r else "–"
        print(f"{r['name']:<20}{r['streams']:>8}{r['requests']:>6}{r['failed']:>5}{r['ttft_p50_ms']:>8.1f}ms"
              f"{r['ttft_p99_ms']:>7.1f}ms{add50:>+7.1f}{add99:>+8.1f}{r['tok_s']:>9.0f}{ratio:>10.3f}"
              f"{r['worst_gap_ms']:>8.0f}ms{cpu:>11}{conns:>17}")
    for name, ms in idle.items():
        print(f"{name} with no traffic: {ms:.1f} ms of CPU per second")


if __name__ == "__main__":
    main()
