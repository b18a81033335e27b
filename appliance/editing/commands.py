"""`appliance new`, `appliance set`, `appliance edit`: ready to hang into the CLI's argument parser.

    from appliance.editing import commands
    commands.register(sub, gpus_for=_gpus_for)   # sub: the CLI's subparsers; gpus_for(profile, spec) -> (gpus, source)

Errors are ApplianceErrors (the CLI's main prints `error:` / `fix:` and exits with their code: 2 for a bad
value or name, the file untouched). Only the standard library is imported at the top: the CLI starts fast.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable


def _print_fit(profile, gpu_spec: str | None, gpus_for: Callable | None) -> bool:
    from appliance.editing import live
    from appliance.errors import ApplianceError

    try:
        gpus, source = gpus_for(profile, gpu_spec) if gpus_for else (live.gpus_for(profile), "the profile's card")
    except ApplianceError as exc:
        print(f"fit: not checked ({exc.message})")
        return True
    report = live.fit_for(profile, gpus)
    print(f"fit against {source}:")
    for line in live.summary(report):
        print("  " + line)
    _print_advice(profile)
    return report.fits


def _print_advice(profile) -> None:
    """What vLLM would warn about (or refuse) with the new values, and the fix — as `check` and the editor say."""
    from appliance.engine_checks import check_engines, print_checks

    checks = check_engines(profile)
    if any(c.advice or c.warning for c in checks):
        print_checks(checks, sys.stdout)


def cmd_new(args, gpus_for: Callable | None = None) -> int:
    from appliance.editing import create, store

    path = create.new_profile(args.name, args.from_profile, args.model, args.card, args.gpus or 1)
    print(f"created {path}")
    _print_fit(store.validate_text(path.read_text(), path), args.gpu, gpus_for)
    print(f"next: `appliance set {args.name} key=value …`, `appliance edit {args.name}`, `appliance up {args.name}`")
    return 0


def cmd_set(args, gpus_for: Callable | None = None) -> int:
    from appliance.editing import store

    r = store.set_values(args.profile, args.assignments)
    if r.copied_from is not None:
        print(f"{r.copied_from.stem} is shipped (read-only): changed your copy {r.path}")
    for field, old, new in r.changes:
        print(f"{r.path.name}: {field}: {'(unset)' if old is None else old} → {'(unset)' if new is None else new}")
    _print_fit(r.profile, args.gpu, gpus_for)
    return 0


def cmd_edit(args, gpus_for: Callable | None = None) -> int:
    from appliance.editing import edit, store

    r = edit.edit(args.profile)
    if not r.changed:  # a shipped profile left unchanged: no copy was made
        print(f"{r.copied_from or r.path}: no changes")
        return 0
    if r.copied_from is not None:
        print(f"{r.copied_from.stem} is shipped (read-only): your changes are in your copy {r.path}")
    print(f"saved {r.path} (the previous version is in {r.path.parent / store.HISTORY_DIR})")
    _print_fit(store.validate_text(r.path.read_text(), r.path), None, gpus_for)
    return 0


def register(sub, gpus_for: Callable | None = None) -> None:
    """Add the three commands to the CLI's subparsers."""
    p = sub.add_parser("new", help="create a profile from a profile or a model (sized to fit the card)",
                       description="Writes <config>/profiles/NAME.yaml: a copy of PROFILE (comments kept), or a "
                                   "commented profile for model ID (catalog, Hugging Face cache, a local folder "
                                   "with config.json, or models.yaml) with its context sized to fit.")
    p.add_argument("name", metavar="NAME")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--from", dest="from_profile", metavar="PROFILE", help="start from this profile")
    src.add_argument("--model", metavar="ID", help="start from a model")
    p.add_argument("--card", metavar="CARD", help="with --model: the GPU model (4090, 3090, …; default 4090)")
    p.add_argument("--gpus", type=int, metavar="N", help="with --model: how many GPUs (tensor parallel, default 1)")
    p.add_argument("--gpu", metavar="CARD", help="print the fit against this card instead of the detected GPUs")
    p.set_defaults(func=lambda a: cmd_new(a, gpus_for))

    p = sub.add_parser("set", help="change values of a profile (validated, keeps its comments), print the new fit "
                       "and what vLLM would warn about",
                       description="KEY is a dotted path (engines.0.max_model_len, power_limit_w.1); on a "
                                   "one-engine profile engine keys can be given alone (max_model_len=16384). VALUE "
                                   "is YAML (16384, fp8, true, [local, coder], {method: mtp, "
                                   "num_speculative_tokens: 2}); null removes the key. A bad value changes nothing "
                                   "(exit 2). Shipped profiles are copied into your profiles first.",
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("profile", metavar="PROFILE")
    p.add_argument("assignments", nargs="+", metavar="KEY=VALUE")
    p.add_argument("--gpu", metavar="CARD", help="print the fit against this card instead of the detected GPUs")
    p.set_defaults(func=lambda a: cmd_set(a, gpus_for))

    p = sub.add_parser("edit", help="open a profile in $EDITOR; validated on close, reopened with the error",
                       description="Like `crontab -e`: the profile opens in $VISUAL/$EDITOR; when it does not load "
                                   "it opens again with the error as a comment on top; closing without a change "
                                   "cancels (the profile stays as it was).")
    p.add_argument("profile", metavar="PROFILE")
    p.set_defaults(func=lambda a: cmd_edit(a, gpus_for))


def main(argv: list[str] | None = None) -> int:
    """Stand-alone entry (tests, and until the CLI wires `register`)."""
    from appliance.errors import ApplianceError

    parser = argparse.ArgumentParser(prog="appliance")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except ApplianceError as exc:  # as the CLI prints it: `error: message` and `  fix: hint`
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
