"""Regenerate the data block of appliance/vllm_spec.py from an unpacked vLLM wheel. Run by hand only.

    python -m venv /tmp/vx && /tmp/vx/bin/pip install pydantic regex typing_extensions pyyaml msgspec \
        cachetools cloudpickle psutil
    mkdir /tmp/vllmfull && cd /tmp/vllmfull && unzip -q vllm-0.19.0-*.whl 'vllm/*.py'
    /tmp/vx/bin/python tools/extract_vllm_spec.py /tmp/vllmfull [--write]

How: vLLM builds `vllm serve`'s parser by introspecting its config dataclasses, so instead of re-implementing
that logic we import vLLM's own `make_arg_parser` with every heavy dependency it cannot find (torch,
transformers, numpy, …) replaced by a permissive stub module, build the real parser, and read its actions.
Parser lists (tool/reasoning), quantization, speculative and compilation keys are read from the same import.
Nothing from vLLM is copied into the project except names, choices and defaults.
"""

from __future__ import annotations

import argparse
import dataclasses
import enum
import importlib.abc
import importlib.machinery
import json
import pprint
import sys
import types
import typing
from pathlib import Path

BEGIN = "# BEGIN GENERATED (tools/extract_vllm_spec.py)"
END = "# END GENERATED"
NO_STUB = {"vllm", "_winapi", "msvcrt", "winreg", "nt", "_overlapped", "_wmi", "winsound", "java", "IPython"}


def install_stubs() -> set[str]:
    stubbed: set[str] = set()

    class _Meta(type):
        def __getattr__(cls, name):
            if name.startswith("__") and name.endswith("__"):
                raise AttributeError(name)
            return Stub

        def __getitem__(cls, item):
            return Stub

        def __or__(cls, other):
            return Stub

        __ror__ = __or__

        def __call__(cls, *a, **k):
            if len(a) == 1 and callable(a[0]) and not k:  # used as a decorator
                return a[0]
            return super().__call__()

        def __iter__(cls):
            return iter(())

        def __mro_entries__(cls, bases):
            return (object,)

    class Stub(metaclass=_Meta):
        @classmethod
        def __get_pydantic_core_schema__(cls, source, handler):
            from pydantic_core import core_schema

            return core_schema.any_schema()

        def __init__(self, *a, **k):
            pass

        def __getattr__(self, name):
            if name.startswith("__") and name.endswith("__"):
                raise AttributeError(name)
            return Stub

        def __call__(self, *a, **k):
            if len(a) == 1 and callable(a[0]) and not k:
                return a[0]
            return Stub()

        def __iter__(self):
            return iter(())

        def __bool__(self):
            return False

        def __int__(self):
            return 0

        __index__ = __int__

        def __float__(self):
            return 0.0

        def __lt__(self, other):
            return False

        __gt__ = __le__ = __ge__ = __lt__

        def __add__(self, other):
            return self

        __sub__ = __mul__ = __truediv__ = __radd__ = __rmul__ = __add__

    class StubModule(types.ModuleType):
        def __getattr__(self, name):
            if name.startswith("__") and name.endswith("__"):
                raise AttributeError(name)
            cls = type(name, (Stub,), {})
            setattr(self, name, cls)
            return cls

    class Finder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
        def find_spec(self, fullname, path, target=None):
            root = fullname.split(".")[0]
            if root in NO_STUB:
                return None
            if root not in stubbed and (
                root in sys.builtin_module_names or importlib.machinery.PathFinder.find_spec(root) is not None
            ):
                return None
            stubbed.add(root)
            return importlib.machinery.ModuleSpec(fullname, self, is_package=True)

        def create_module(self, spec):
            mod = StubModule(spec.name)
            mod.__path__ = []
            mod.__version__ = "2.9.0"
            return mod

        def exec_module(self, module):
            pass

    sys.meta_path.append(Finder())
    return stubbed


def _closure_value(fn, name):
    code = getattr(fn, "__code__", None)
    if code is None or not fn.__closure__:
        return None
    return dict(zip(code.co_freevars, (c.cell_contents for c in fn.__closure__))).get(name)


def describe_type(t) -> tuple[str | None, bool]:
    """(type name, nullable) for an argparse `type=` callable built by vLLM's get_kwargs."""
    if t is None:
        return None, False
    qual = getattr(t, "__qualname__", "")
    if qual.startswith("optional_type"):
        inner, _ = describe_type(_closure_value(t, "return_type"))
        return inner, True
    if qual.startswith("parse_type"):
        return describe_type(_closure_value(t, "return_type"))
    if qual.endswith("parse_dataclass"):
        return "json", False
    if qual == "union_dict_and_str":
        return "json_or_str", False
    if t is json.loads or qual == "loads":
        return "json", False
    if qual == "human_readable_int":
        return "human_int", False
    if qual == "human_readable_int_or_auto":
        return "human_int_or_auto", False
    if t in (int, float, str):
        return t.__name__, False
    if "<lambda>" in qual:  # --moe-backend lowercases and maps '-' to '_'
        return "str_lower", False
    raise ValueError(f"unknown argparse type {t!r}")


def simple_default(value):
    if isinstance(value, enum.Enum):  # e.g. OptimizationLevel.O2 -> 2
        value = value.value
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, tuple)) and all(isinstance(v, (bool, int, float, str)) for v in value):
        return tuple(value)
    return None


def extract(vllm_root: Path) -> dict:
    stubbed = install_stubs()
    sys.path.insert(0, str(vllm_root))
    from vllm.config.cache import CacheDType
    from vllm.config.compilation import CompilationConfig
    from vllm.config.model import ModelDType  # noqa: F401  (dtype choices come from the parser)
    from vllm.config.speculative import MTPModelTypes, SpeculativeConfig, SpeculativeMethod
    from vllm.entrypoints.openai.cli_args import make_arg_parser
    from vllm.model_executor.layers import quantization as q
    from vllm.reasoning import _REASONING_PARSERS_TO_REGISTER
    from vllm.tool_parsers import _TOOL_PARSERS_TO_REGISTER
    from vllm.utils.argparse_utils import FlexibleArgumentParser

    parser = make_arg_parser(FlexibleArgumentParser(prog="vllm serve"))
    # `vllm serve` (vllm/entrypoints/cli/serve.py) adds --grpc after make_arg_parser.
    parser.add_argument("--grpc", action="store_true", default=False)

    flags = {}
    for act in parser._actions:
        if isinstance(act, argparse._HelpAction) or not act.option_strings:
            continue  # -h and the positional model_tag (handled by build_serve_parser)
        longs = [o for o in act.option_strings if o.startswith("--")]
        name = next(o for o in longs if not o.startswith("--no-") or o == longs[0])
        aliases = tuple(o for o in act.option_strings if not o.startswith("--"))
        tname, nullable = describe_type(act.type)
        if isinstance(act, argparse.BooleanOptionalAction):
            kind = "bool"
        elif isinstance(act, argparse._StoreTrueAction):
            kind = "store_true"
        elif isinstance(act, argparse._AppendAction):
            kind = "append"
        elif act.nargs in ("+", "*"):
            kind = "multi"
        elif tname in ("json", "json_or_str"):
            kind = "json"
        else:
            kind = "value"
        if act.nargs == "?":  # --hf-token: bare flag means True, or a token string
            tname = "optional_bool"
        choices = tuple(str(c) for c in act.choices) if act.choices is not None else None
        flags[act.dest] = dict(
            name=name,
            dest=act.dest,
            kind=kind,
            type=tname,
            choices=choices,
            aliases=aliases,
            nullable=nullable,
            default=simple_default(act.default),
        )

    def lit(t):
        out = []
        for a in typing.get_args(t):
            out.extend(lit(a) if typing.get_origin(a) is typing.Literal else [a])
        return tuple(out)

    return dict(
        flags=flags,
        kv_cache_dtypes=lit(CacheDType),
        quantization=tuple(q.QUANTIZATION_METHODS),
        deprecated_quantization=tuple(q.DEPRECATED_QUANTIZATION_METHODS),
        dtypes=flags["dtype"]["choices"],
        tool_parsers=tuple(sorted(_TOOL_PARSERS_TO_REGISTER)),
        reasoning_parsers=tuple(sorted(_REASONING_PARSERS_TO_REGISTER)),
        speculative_methods=lit(SpeculativeMethod),
        mtp_aliases=tuple(m for m in lit(MTPModelTypes) if m != "mtp"),
        speculative_keys=tuple(f.name for f in dataclasses.fields(SpeculativeConfig) if f.init),
        compilation_keys=tuple(f.name for f in dataclasses.fields(CompilationConfig) if f.init),
        stubbed=sorted(stubbed),
    )


def render(data: dict) -> str:
    def fmt(obj):
        return pprint.pformat(obj, width=110, compact=True)

    lines = [BEGIN, "# fmt: off"]
    lines.append("_FLAG_ROWS: tuple[tuple, ...] = (")
    lines.append("    # (name, dest, kind, type, choices, aliases, nullable, default)")
    for f in data["flags"].values():
        row = (f["name"], f["dest"], f["kind"], f["type"], f["choices"], f["aliases"], f["nullable"], f["default"])
        lines.append(f"    {row!r},")
    lines.append(")")
    for key, var in [
        ("kv_cache_dtypes", "KV_CACHE_DTYPES"),
        ("quantization", "QUANTIZATION_METHODS"),
        ("deprecated_quantization", "DEPRECATED_QUANTIZATION"),
        ("dtypes", "DTYPES"),
        ("tool_parsers", "TOOL_CALL_PARSERS"),
        ("reasoning_parsers", "REASONING_PARSERS"),
        ("speculative_methods", "SPECULATIVE_METHODS"),
        ("mtp_aliases", "MTP_ALIASES"),
        ("speculative_keys", "SPECULATIVE_CONFIG_KEYS"),
        ("compilation_keys", "COMPILATION_CONFIG_KEYS"),
    ]:
        lines.append(f"{var}: tuple[str, ...] = {fmt(tuple(data[key]))}")
    lines.append("# fmt: on")
    lines.append(END)
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("vllm_root", type=Path, help="directory holding the unpacked vllm/ package")
    ap.add_argument("--write", action="store_true", help="replace the generated block in appliance/vllm_spec.py")
    args = ap.parse_args()
    data = extract(args.vllm_root)
    block = render(data)
    print(f"# stubbed modules: {', '.join(data['stubbed'])}", file=sys.stderr)
    if not args.write:
        print(block)
        return
    target = Path(__file__).resolve().parents[1] / "appliance" / "vllm_spec.py"
    text = target.read_text()
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    target.write_text(head + block + tail)
    print(f"wrote {target}", file=sys.stderr)


if __name__ == "__main__":
    main()
