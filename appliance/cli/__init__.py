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


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        if not (sys.stdout.isatty() and sys.stdin.isatty()):
            parser.print_help()
            return 0
        args.func = cmd_tui
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
