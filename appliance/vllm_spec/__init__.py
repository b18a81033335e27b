"""What `vllm serve` of each known vLLM version accepts: every flag, the value lists, removed flags.

One spec per version, generated from the wheels by tools/extract_vllm_spec.py into appliance/vllm_specs/
(0.19.0 — what the shipped profiles pin —, the CPU build 0.32.0 and 0.33.0 so far). `spec_for(version)` gives
one (a `Spec`: flags, value lists, defaults, removed options with their replacement, and methods `to_cli_args`,
`lookup_option`, `unknown_options`); `build_serve_parser(prog, version=...)` the matching argparse parser.

The module-level names (FLAGS, REMOVED, QUANTIZATION_METHODS, to_cli_args, …) are the DEFAULT version's
(0.19.0), so code written before versions existed keeps working; pass `version=` or use `spec_for` for another.
Unknown versions (a tag with no spec file) are resolved to the nearest older spec by
`appliance.vllm_versions.resolve`, which also says so.

Stdlib only: the core uses it to validate profiles and render commands, and the simulated engine
(`appliance.sim`, which runs in a bare python image) uses `build_serve_parser` so it rejects exactly what the
real engine rejects.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterable, Mapping, Sequence

from appliance.vllm_spec import parser as _parser
from appliance.vllm_spec.data import (
    DEFAULT_VERSION,
    IMAGE_REPO,
    Flag,
    Spec,
    known_versions,
    load_spec,
    nearest_known,
    version_key,
)
from appliance.vllm_spec.parser import ServeArgumentParser, parse_human_int, parse_human_int_or_auto

__all__ = [
    "DEFAULT_VERSION", "IMAGE_REPO", "Flag", "Spec", "ServeArgumentParser", "known_versions", "nearest_known", "spec_for",
    "version_key", "build_serve_parser", "parse_serve_args", "to_cli_args", "lookup_option", "unknown_options",
    "parse_human_int", "parse_human_int_or_auto",
]


def spec_for(version: str | None = None) -> Spec:
    """The Spec of a version with a spec file (None: the default, 0.19.0). KeyError for other versions:
    `appliance.vllm_versions.resolve(version)` picks the nearest older one and explains the choice."""
    return load_spec(version or DEFAULT_VERSION)


_DEFAULT = spec_for()

VLLM_VERSION = _DEFAULT.version
VLLM_IMAGE = _DEFAULT.image
FLAGS: dict[str, Flag] = _DEFAULT.flags
REMOVED: dict[str, str] = _DEFAULT.removed
HARMFUL: dict[str, str] = _DEFAULT.harmful
KV_CACHE_DTYPES = _DEFAULT.kv_cache_dtypes
QUANTIZATION_METHODS = _DEFAULT.quantization_methods
DEPRECATED_QUANTIZATION = _DEFAULT.deprecated_quantization
DTYPES = _DEFAULT.dtypes
TOOL_CALL_PARSERS = _DEFAULT.tool_call_parsers
REASONING_PARSERS = _DEFAULT.reasoning_parsers
SPECULATIVE_METHODS = _DEFAULT.speculative_methods
MTP_ALIASES = _DEFAULT.mtp_aliases
SPECULATIVE_CONFIG_KEYS = _DEFAULT.speculative_config_keys
COMPILATION_CONFIG_KEYS = _DEFAULT.compilation_config_keys


def build_serve_parser(prog: str = "vllm serve", version: str | None = None) -> ServeArgumentParser:
    """An argparse parser accepting exactly the options of `vllm serve` of that version (default 0.19.0)."""
    return _parser.build_serve_parser(spec_for(version), prog)


def parse_serve_args(argv: Sequence[str], prog: str = "vllm serve", version: str | None = None) -> argparse.Namespace:
    """Parse `vllm serve` arguments (without the leading `serve`); exits 2 on unknown flags like vLLM."""
    return _parser.parse_serve_args(spec_for(version), argv, prog)


def lookup_option(option: str, version: str | None = None) -> Flag | None:
    """The Flag for an option spelling: '--max_model_len', '-tp', '--no-enable-prefix-caching', '--x=1'."""
    return spec_for(version).lookup_option(option)


def to_cli_args(options: Mapping[str, object], version: str | None = None) -> list[str]:
    """argv for `vllm serve` from a dest -> value mapping (see Spec.to_cli_args)."""
    return spec_for(version).to_cli_args(options)


def unknown_options(argv: Iterable[str], version: str | None = None) -> list[str]:
    """Option-looking words of argv that vLLM would reject (best effort, no value checking)."""
    return spec_for(version).unknown_options(argv)
