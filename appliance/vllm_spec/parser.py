"""`vllm serve`'s argument parser for one vLLM version, rebuilt from its Spec with argparse.

Mirrors the behaviour of vLLM's `FlexibleArgumentParser` (vllm/utils/argparse_utils.py) without copying it: the
simulated engine uses it to reject exactly what the real engine rejects, the profile check to validate values.
"""

from __future__ import annotations

import argparse
import json
import re
from collections.abc import Sequence

from appliance.vllm_spec.data import Flag, Spec

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
    "reasoning_parser": lambda s: "" if s.lower() == "none" else s,  # 0.32+ parse_reasoning_parser
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
    """`vllm serve` argument parsing with vLLM's FlexibleArgumentParser conveniences (0.19.0 through 0.33.0):

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


class _Bool(argparse.Action):
    """A bool flag with every negative spelling of its version: 0.19 has --no-x, 0.32+ also --disable-x for
    --enable-x (vllm/utils/argparse_utils.py EnableDisableAction). The value is False for a negative spelling."""

    def __init__(self, option_strings, dest, negatives=(), **kwargs):
        super().__init__(option_strings, dest, nargs=0, **kwargs)
        self.negatives = set(negatives)

    def __call__(self, parser, namespace, values, option_string=None):
        setattr(namespace, self.dest, option_string not in self.negatives)


def build_serve_parser(spec: Spec, prog: str = "vllm serve") -> ServeArgumentParser:
    """An argparse parser accepting exactly the options of `vllm serve` of spec.version."""
    parser = ServeArgumentParser(prog=prog, usage=f"{prog} [model_tag] [options]")
    parser.add_argument("model_tag", type=str, nargs="?", help="The model tag to serve")
    for flag in spec.flags.values():
        opts = [flag.name, *flag.aliases]
        kw: dict[str, object] = {"dest": flag.dest, "default": _runtime_default(flag)}
        if flag.kind == "bool":
            negatives = flag.negatives or (flag.negative,)
            opts += list(negatives)
            kw.update(action=_Bool, negatives=negatives)
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
    if d == argparse.SUPPRESS:  # 0.32+ --logging-config: no attribute unless given (must be argparse's object)
        return argparse.SUPPRESS
    if isinstance(d, tuple):
        return list(d)
    return d


def parse_serve_args(spec: Spec, argv: Sequence[str], prog: str = "vllm serve") -> argparse.Namespace:
    """Parse `vllm serve` arguments (without the leading `serve`); exits 2 on unknown flags like vLLM."""
    return build_serve_parser(spec, prog).parse_args(list(argv))
