"""The `appliance` command. Every TUI action exists here too, with --json where the output is data.

Start-up must stay fast: these modules import only the standard library at the top; each command imports what
it needs (never litellm; textual only for the TUI). User errors print one clear message and exit 2.
Layout: parser.py (every command's options), fitcheck.py (check/profiles/render), rigcmds.py (up/switch/down/
status/logs), agents.py (keys/endpoint), benchcmd.py, demo.py (demo and the dashboard), common.py.
"""

from __future__ import annotations

import sys

from appliance.cli.demo import cmd_tui
from appliance.cli.parser import build_parser


def _top_rig_options(args) -> bool:
    """`appliance --sim COMMAND …` means `appliance COMMAND --sim …` for every command that acts on a rig (the
    command's own option wins); a command that has no rig says so instead of ignoring it."""
    if args.func is cmd_tui and not hasattr(args, "sim"):
        args.sim, args.runtime = args.top_sim, args.top_runtime
        return True
    if args.command == "demo":  # always simulated, always local processes
        return True
    given = [o for o, on in (("--sim", args.top_sim), ("--real", args.top_sim is False),
                             ("--runtime", args.top_runtime is not None)) if on]
    missing = [o for o in given if not hasattr(args, "runtime" if o == "--runtime" else "sim")]
    if missing:
        opt = " ".join(missing)
        print(f"error: `appliance {opt} {args.command}`: `{args.command}` takes no {opt}\n  fix: leave {opt} "
              f"out (`appliance {args.command} --help` lists its options)", file=sys.stderr)
        return False
    if args.top_sim is not None and (args.sim is None or (args.command == "render" and not args.sim)):
        args.sim = args.top_sim
    if args.top_runtime is not None and args.runtime is None:
        args.runtime = args.top_runtime
    return True


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    rig_given = args.top_sim is not None or args.top_runtime is not None
    if not getattr(args, "func", None):
        if not (sys.stdout.isatty() and sys.stdin.isatty()):
            if rig_given:  # asked for the dashboard, where it cannot be drawn
                print("error: the dashboard needs a terminal\n  fix: run `appliance --sim` in a terminal, or "
                      "`appliance status --sim` for one snapshot as text", file=sys.stderr)
                return 2
            parser.print_help()
            return 0
        args.func = cmd_tui
    if rig_given and not _top_rig_options(args):
        return 2
    if args.func is cmd_tui:
        args.sim = getattr(args, "sim", None)
        args.runtime = getattr(args, "runtime", None)
    from appliance.errors import ApplianceError

    try:
        return int(args.func(args) or 0)
    except ApplianceError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        if exc.hint:
            print(f"  fix: {exc.hint}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
