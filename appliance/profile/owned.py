"""The engine settings the appliance owns, and how a profile is kept from setting them another way.

Why: the front door's guarantees (engines only on 127.0.0.1, a key of their own, the served names HAProxy routes,
the metrics the telemetry reads) hold only if nothing in a profile overrides the flags the appliance renders.
`extra_args` reach `vllm serve` last, so argparse would let them win; vLLM also reads some settings from the
environment (VLLM_API_KEY). A profile that tries gets an error naming the appliance setting to use instead.

`extra_args` are read with the pinned vLLM's own parser (vllm_spec), so every spelling it accepts is caught:
`--host=0.0.0.0`, `--host 0.0.0.0`, `--host_`… and argparse's abbreviations (`--hos`), because the parser
itself resolves them to the option's dest.
"""

from __future__ import annotations

import argparse
import contextlib
import io

from appliance.profile.model import RESERVED_VLLM

# dest → the appliance setting to use instead (for options a profile may not set through extra_args)
OWNED_ARGS = {
    **{k: v for k, v in RESERVED_VLLM.items()},
    "port": "set the engine's `port:` key (the appliance passes it to vLLM and to the front door)",
    "served_model_name": "set the engine's `served_model_name:` and `aliases:` keys (the front door routes them)",
    "model": "set the engine's `model:` key",
    "model_tag": "set the engine's `model:` key",
}
# keys a profile may try at the top level or under `proxy:` for what the appliance decides
TOP_LEVEL_OWNED = {
    "host": "`proxy.lan: true` (or `appliance up --lan`) opens the front door to the LAN; engines stay on 127.0.0.1",
    "bind": "`proxy.lan: true` (or `appliance up --lan`) opens the front door to the LAN",
    "master_key": "the master key lives in the secrets file: `appliance keys set LITELLM_MASTER_KEY`",
    "api_key": "keys live in the secrets file (`appliance keys set PROVIDER`); hosted models name theirs with "
               "`api_key_env`",
}
# environment variables an engine's `env:` may not set
OWNED_ENV = {
    "VLLM_API_KEY": "the appliance gives every engine a key of its own (`appliance keys`), unknown to agents",
    "HF_TOKEN": "store it with `appliance keys set hf` (kept in the secrets file, never in a rendered file)",
    "HUGGING_FACE_HUB_TOKEN": "store the token with `appliance keys set hf`",
    "CUDA_VISIBLE_DEVICES": "set the engine's `gpus:` key",
    "NVIDIA_VISIBLE_DEVICES": "set the engine's `gpus:` key",
    "LITELLM_MASTER_KEY": "the master key belongs to the front door only (`appliance keys`)",
}


class _Recording(argparse.Namespace):
    """A namespace that remembers which dests the parser assigned. Every dest is present beforehand, so argparse
    writes no defaults into it and each recorded assignment comes from an argument."""

    def __init__(self, dests):
        object.__setattr__(self, "_assigned", [])
        super().__init__(**{d: None for d in dests})
        self._assigned.clear()

    def __setattr__(self, key, value):
        self._assigned.append(key)
        super().__setattr__(key, value)


def owned_in_args(args, parser) -> list[tuple[str, str]]:
    """(dest, what to use instead) for every owned option `args` set, in order; [] if the parser rejects args
    (that error is reported on its own)."""
    dests = {a.dest for a in parser._actions if a.dest != argparse.SUPPRESS}
    ns = _Recording(dests)
    with contextlib.redirect_stderr(io.StringIO()):
        try:
            parser.parse_known_args(["model"] + list(args), ns)
        except (SystemExit, ValueError):
            return []
    assigned = list(ns._assigned)
    if assigned[-1:] == ["model"]:  # the parser copies the positional model into `model` at the end
        assigned.pop()
    if assigned[:1] == ["model_tag"]:  # our own placeholder
        assigned.pop(0)
    out: list[tuple[str, str]] = []
    if any(a == "--model" or a.startswith("--model=") for a in args):  # moved to the positional by the parser
        out.append(("model", OWNED_ARGS["model"]))
    for dest in assigned:
        if dest in OWNED_ARGS and dest not in (d for d, _ in out):
            out.append((dest, OWNED_ARGS[dest]))
    return out
