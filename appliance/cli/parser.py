"""The argument parser of `appliance`: every command, its options and --help texts."""

from __future__ import annotations

import argparse

from appliance.cli.agents import cmd_endpoint, cmd_keys
from appliance.cli.benchcmd import cmd_bench
from appliance.cli.argtypes import seconds
from appliance.cli.doctor import cmd_doctor
from appliance.cli.demo import DEMO_PROFILE, cmd_demo, cmd_tui
from appliance.cli.fitcheck import cmd_check, cmd_measurements, cmd_profiles, cmd_render
from appliance.cli.rigcmds import cmd_down, cmd_logs, cmd_status, cmd_switch, cmd_up
from appliance.cli.upkeep import cmd_apply, cmd_restore, cmd_service

EPILOG = """\
quick start:
  appliance                           the dashboard of this machine's rig (`appliance --sim`: the simulated one)
  appliance demo                      the whole thing on a simulated rig (no GPU needed)
  appliance profiles                  list profiles with their fit verdict
  appliance check PROFILE --gpu 4090  will it fit? weights, KV cache, concurrency, fixes
  appliance render --all              write compose/ and the proxy config from profiles/
exit codes: 0 ok · 1 did not fit / failed · 2 bad input (the message says what to fix)
"""


def build_parser() -> argparse.ArgumentParser:
    from appliance import __version__
    from appliance.gpu_arg import GPU_HELP  # stdlib only: --help stays fast

    parser = argparse.ArgumentParser(
        prog="appliance", formatter_class=argparse.RawDescriptionHelpFormatter, epilog=EPILOG,
        description="Turn one GPU workstation into a well-run local LLM service: vLLM engines from profiles, a "
                    "front door for agents (HAProxy to the engines, LiteLLM for hosted fallbacks), live telemetry and "
                    "power-limit benchmarks.")
    parser.add_argument("--version", action="version", version=f"appliance {__version__}")
    # `appliance --sim` opens the dashboard of the simulated rig (the bare `appliance` is the dashboard); before a
    # COMMAND these apply to it as if given after it (other dests: a subcommand's default would overwrite them)
    parser.add_argument("--sim", dest="top_sim", action="store_true", default=None,
                        help="the simulated rig (no GPU needed): `appliance --sim` opens its dashboard")
    parser.add_argument("--real", dest="top_sim", action="store_false", help="this machine's GPUs (the default)")
    parser.add_argument("--runtime", dest="top_runtime", choices=("docker", "process"), default=None,
                        help="engines under docker (default) or as local processes")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("check", help="will a profile fit the GPUs? (VRAM, KV cache, concurrency, fixes)",
                       description="Fit check: weights, KV cache per token, KV for max_model_len × max_num_seqs, "
                                   "tokens of KV that fit, concurrency at full context, and a fix when it does not "
                                   "fit. GPUs come from NVML, else from --gpu, else from the profile's `card`. "
                                   "KV figures (kv_cache_needed_bytes, kv_cache_allocated_bytes, available_kv_bytes, "
                                   "kv_bytes_per_token) are per GPU: with tensor parallelism each GPU holds that "
                                   "much. Exit 0 when it fits, 1 when it does not, 2 for a mistake in the input, 3 "
                                   "when a model is unknown (nothing in the built-in catalog, the Hugging Face cache "
                                   "or models.yaml: describe it in models.yaml and check again).")
    p.add_argument("profile", metavar="PROFILE_OR_PATH")
    p.add_argument("--gpu", metavar="GPUS", help=GPU_HELP)
    p.add_argument("--json", action="store_true", help="machine-readable report")
    p.add_argument("--vllm", metavar="VERSION", help="what happens if the engines' image is upgraded to this vLLM "
                   "version: removed flags and values, changed defaults, advice")
    p.add_argument("--strict", action="store_true", help="advice (warnings vLLM would log) counts as a failure")
    p.set_defaults(func=cmd_check)

    p = sub.add_parser("measurements", help="what vLLM measured at each start on this rig (KV cache, weights)",
                       description="Every successful start records what vLLM logged and reported in "
                                   "cache_config_info; `check` shows it next to its prediction and learns from it.")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_measurements)

    p = sub.add_parser("profiles", help="list profiles with model, GPUs, power and fit verdict")
    p.add_argument("--gpu", metavar="GPUS", help=GPU_HELP + " Instead of the detected GPUs.")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_profiles)

    p = sub.add_parser("render", help="write the compose files and the LiteLLM config from profiles",
                       description="Writes OUT/<profile>/compose.yaml (the engine project) and OUT/proxy/compose.yaml"
                                   " + OUT/proxy/litellm.yaml (the proxy project, from every profile).")
    p.add_argument("profile", nargs="?", metavar="PROFILE")
    p.add_argument("--all", action="store_true", help="every profile")
    p.add_argument("--out", metavar="DIR", help="output directory (default: the repository's compose/)")
    p.add_argument("--sim", action="store_true", help="render for the simulated rig (local image, no GPU reservation)")
    p.add_argument("--check", action="store_true", help="write nothing; exit 1 if any file is stale")
    p.set_defaults(func=cmd_render)

    def rig_opts(p):
        p.add_argument("--sim", action="store_true", default=None,
                       help="the simulated rig (no GPU, no vLLM image needed); remembered for later commands")
        p.add_argument("--real", dest="sim", action="store_false", help="this machine's GPUs (the default)")
        p.add_argument("--runtime", choices=("docker", "process"), default=None,
                       help="run engines under docker (default) or as local processes; remembered")

    p = sub.add_parser("tui", help="the dashboard (also: `appliance` with no command, on a terminal)")
    rig_opts(p)
    p.set_defaults(func=cmd_tui)

    p = sub.add_parser("up", help="start a profile: fit check, power limits, engines, proxy; follow the startup",
                       description="Fit check (refuses with the fix when it does not fit; --force overrides), power "
                                   "limits (the previous ones are remembered for `down`), render, start the engine "
                                   "project and the proxy, then follow the startup phase by phase. Exit 1 if an "
                                   "engine fails; the decisive log lines and a fix are shown.")
    p.add_argument("profile", metavar="PROFILE")
    p.add_argument("--force", action="store_true", help="start even if the fit check says it does not fit")
    p.add_argument("--timeout", type=seconds(1, 86400), default=1800, metavar="S",
                   help="give up after S seconds (1800)")
    p.add_argument("--json", action="store_true", help="print the result as JSON (progress goes to stderr)")
    p.add_argument("--lan", action="store_true", default=None,
                   help="the proxy listens on 0.0.0.0 (reachable from your LAN; default 127.0.0.1)")
    p.add_argument("--no-lan", dest="lan", action="store_false", help="the proxy listens on 127.0.0.1 only")
    rig_opts(p)
    p.add_argument("--strict", action="store_true", help="refuse to start when vLLM would warn about the profile (advice)")
    p.set_defaults(func=cmd_up)

    p = sub.add_parser("switch", help="replace the running profile; the proxy keeps serving; rolls back on failure",
                       description="Drains the running engines (requests in flight finish, bounded by --drain), "
                                   "stops them, starts PROFILE, and if it does not become healthy (crash, OOM, "
                                   "stuck, timeout) starts the last known good profile again and says why.")
    p.add_argument("profile", metavar="PROFILE")
    p.add_argument("--force", action="store_true")
    p.add_argument("--timeout", type=seconds(1, 86400), default=1800, metavar="S")
    p.add_argument("--drain", type=seconds(0, 3600), default=60, metavar="S",
                   help="requests in flight on the old engines get S s to finish (60)")
    p.add_argument("--json", action="store_true")
    p.add_argument("--lan", action="store_true", default=None, help="the proxy listens on 0.0.0.0")
    p.add_argument("--no-lan", dest="lan", action="store_false", help="the proxy listens on 127.0.0.1 only")
    rig_opts(p)
    p.add_argument("--strict", action="store_true", help="refuse to start when vLLM would warn about the profile (advice)")
    p.set_defaults(func=cmd_switch)

    p = sub.add_parser("apply", help="apply edits of the running profile: changed engines drain and restart one "
                       "at a time", description="Compares the profile file with what runs, restarts only the engines "
                       "whose settings changed (each drains first: requests in flight finish, new ones take the "
                       "fallback or wait), applies power limits after the drain; a failed engine starts again as it "
                       "was. `switch` to the running profile does the same.")
    p.add_argument("profile", metavar="PROFILE")
    p.add_argument("--drain", type=float, default=60, metavar="S", help="grace for requests in flight (60)")
    p.add_argument("--timeout", type=float, default=1800, metavar="S", help="give up starting after S seconds")
    p.add_argument("--json", action="store_true")
    rig_opts(p)
    p.set_defaults(func=cmd_apply)

    p = sub.add_parser("restore", help="after a reboot, a docker restart or a killed front door: power limits, "
                       "front door, engines back as they were set", description="Re-applies the active profile's "
                       "power limits, starts the front door if it is gone and routes the aliases to the engines "
                       "again, starts the engines if they are gone, and finishes (or rolls back) a start that was "
                       "interrupted. Run at boot by `appliance service install`.")
    p.add_argument("--timeout", type=float, default=1800, metavar="S", help="give up starting after S seconds")
    rig_opts(p)
    p.set_defaults(func=cmd_restore)

    p = sub.add_parser("service", help="`service install`: a systemd unit that runs `appliance restore` at boot")
    p.add_argument("action", choices=("install",))
    p.add_argument("--dir", default="/etc/systemd/system", help="where to write appliance.service")
    p.add_argument("--print", action="store_true", help="print the unit instead of writing it")
    rig_opts(p)
    p.set_defaults(func=cmd_service)

    p = sub.add_parser("down", help="stop the engines (--all: and the proxy); restore the power limits")
    p.add_argument("--all", action="store_true", help="also stop the proxy")
    rig_opts(p)
    p.set_defaults(func=cmd_down)

    p = sub.add_parser("doctor", help="check the rig's state file; rebuild a damaged one from the live rig")
    p.add_argument("--dry-run", action="store_true", help="only say what would be rebuilt")
    rig_opts(p)
    p.set_defaults(func=cmd_doctor)

    p = sub.add_parser("status", help="one snapshot: profile, engines, GPUs (power, energy), tokens/s, queue, KV")
    p.add_argument("--json", action="store_true")
    p.add_argument("--window", type=seconds(0.2, 3600), default=1.0, metavar="S", help="rates over S seconds (1)")
    rig_opts(p)
    p.set_defaults(func=cmd_status)

    p = sub.add_parser("logs", help="an engine's (or the proxy's) log")
    p.add_argument("engine", nargs="?", metavar="ENGINE", help="engine name, or `proxy` (default: the first engine)")
    p.add_argument("--follow", "-f", action="store_true")
    p.add_argument("--tail", type=int, default=200, metavar="N")
    rig_opts(p)
    p.set_defaults(func=cmd_logs)

    p = sub.add_parser("demo", help="run a profile on a simulated rig with the real proxy and live numbers",
                       description="No GPU needed: stand-in vLLM engines on simulated GPUs as local processes, the "
                                   "real LiteLLM proxy in front, hosted fallbacks served by local stand-ins (on "
                                   "127.0.0.1 from port 4100 up; APPLIANCE_HOSTED_BASE_PORT moves them), and a "
                                   "few background agents so the numbers move. Ctrl-C stops it all.")
    p.add_argument("--profile", default=DEMO_PROFILE, metavar="PROFILE", help=f"default: {DEMO_PROFILE}")
    p.add_argument("--agents", type=int, default=3, metavar="N", help="background streams through the proxy (3)")
    p.add_argument("--no-traffic", action="store_true", help="no background traffic")
    p.add_argument("--duration", type=seconds(0.1, 7 * 86400), metavar="S", help="stop after S seconds")
    p.add_argument("--keep", action="store_true", help="leave the simulated rig running on exit")
    p.add_argument("--real-vllm", action="store_true", help="a REAL vLLM (CPU build, tiny model; `make real-vllm`) "
                   "instead of the stand-in engine, on a simulated 4090 whose power follows its load")
    p.add_argument("--no-tui", dest="tui", action="store_false",
                   help="plain live lines instead of the dashboard (the default when not on a terminal)")
    p.set_defaults(func=cmd_demo, tui=None)

    p = sub.add_parser("keys", help="store hosted API keys and the HF token (mode 0600, never printed)",
                       description="`keys set PROVIDER` asks for the key without echo (or reads one line from "
                                   "stdin) and stores it in the secrets file; `keys` lists which are set.")
    p.add_argument("action", nargs="?", choices=("list", "set", "rm"), default="list")
    p.add_argument("provider", nargs="?", metavar="PROVIDER",
                   help="openai, anthropic, openrouter, huggingface, or an env var name")
    p.add_argument("--stdin", action="store_true", help="read the key from standard input")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_keys)

    p = sub.add_parser("endpoint", help="what an agent needs: base URLs, the key, which alias to ask for, and where "
                       "each alias's requests go (export lines, or --json)",
                       description="Export lines for OpenAI-style clients (OPENAI_BASE_URL, OPENAI_API_KEY) and for "
                                   "Claude Code (ANTHROPIC_BASE_URL, ANTHROPIC_AUTH_TOKEN, ANTHROPIC_MODEL), then per "
                                   "alias the route the RUNNING front door serves. settings.yaml (in the config dir: "
                                   "~/.config/appliance/, or $APPLIANCE_HOME/config/) is applied at up, switch, apply "
                                   "and restore; an edit made since is named as a warning.")
    p.add_argument("--json", action="store_true",
                   help="keys: base_url, api_key, profile, local_only, openai, claude_code, key_headers, apis, "
                        "aliases (route, hosted, local, engine, fallbacks), warnings")
    rig_opts(p)
    p.set_defaults(func=cmd_endpoint)

    p = sub.add_parser("bench", help="sweep concurrency × power limit: tokens/s, tokens per joule, a recommendation",
                       formatter_class=argparse.RawDescriptionHelpFormatter,
                       description="appliance bench [PROFILE] [options]   run a sweep (PROFILE: started if nothing "
                                   "runs)\nappliance bench show [RUN]          print a saved run's tables and plots"
                                   "\nappliance bench apply [RUN]         write its recommended power limit into "
                                   "the profile\nappliance bench list                saved runs\n\nPower limits are "
                                   "restored afterwards, also on Ctrl-C. Results (JSON, CSV, SVG) live in the "
                                   "state dir. The recommendation needs two or more --power limits: the most "
                                   "tokens per joule among those that keep 90% of the best per-request speed.")
    p.add_argument("words", nargs="*", metavar="PROFILE | show RUN | apply RUN | list")
    p.add_argument("--concurrency", default="1,2,4,8", metavar="LIST", help="concurrent streams (1,2,4,8)")
    p.add_argument("--power", metavar="LIST", help="power limits in W, e.g. 200,250,300 (default: leave as is)")
    p.add_argument("--duration", type=seconds(0.1, 86400), default=30, metavar="S",
                   help="measured seconds per cell (30)")
    p.add_argument("--requests", type=int, metavar="N", help="instead of --duration: N finished requests per cell")
    p.add_argument("--prompt-tokens", type=int, default=256, metavar="N")
    p.add_argument("--max-tokens", type=int, default=256, metavar="N")
    p.add_argument("--target", choices=("proxy", "engine"), default="proxy")
    p.add_argument("--engine", metavar="NAME", help="which engine of the profile (default: the first)")
    p.add_argument("--dataset", metavar="JSONL", help='real prompts, one {"prompt": …} per line')
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--warmup", type=int, default=2, metavar="N", help="warm-up requests per stream (2)")
    p.add_argument("--at-concurrency", type=int, metavar="N", help="the concurrency you care about (recommendation)")
    p.add_argument("--no-plot", action="store_true")
    p.add_argument("--json", action="store_true")
    rig_opts(p)
    p.set_defaults(func=cmd_bench)
    from appliance.cli.fitcheck import _gpus_for
    from appliance.editing import commands as editing

    editing.register(sub, gpus_for=_gpus_for)  # new, set, edit
    return parser
