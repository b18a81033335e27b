"""Profile files as things a person edits: new, duplicate, set values, save, delete — never losing a version.

Shipped profiles (the repository's profiles/) are read-only: changing one first copies it into the user's
profile directory under the same name, where it takes precedence (delete the copy to get the shipped one back).
Every write is validated with the loader the CLI uses (profile.validate over the exact text to be written),
is atomic (a temporary file renamed over the old one), and first puts the previous version into
`<profile dir>/.history/` (the last HISTORY_KEEP versions of each profile are kept).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from appliance import paths, yamlsrc
from appliance.editing import roundtrip
from appliance.errors import ProfileError

HISTORY_KEEP = 20
HISTORY_DIR = ".history"
TOP_LEVEL = ("name", "description", "gpus", "card", "power_limit_w", "engines", "proxy")
# where a new engine key goes: the order the shipped profiles use (model facts, then sizing, then features)
ENGINE_ORDER = ("name", "aliases", "port", "image", "gpus", "model", "served_model_name", "quantization",
                "tensor_parallel_size", "pipeline_parallel_size", "max_model_len", "max_num_seqs",
                "max_num_batched_tokens", "gpu_memory_utilization", "dtype", "kv_cache_dtype",
                "enable_prefix_caching", "enable_chunked_prefill", "enable_auto_tool_choice", "tool_call_parser",
                "reasoning_parser", "speculative_config", "env")


def is_shipped(path: Path) -> bool:
    return Path(path).resolve().parent == paths.SHIPPED_PROFILES_DIR.resolve()


def _stamp() -> str:
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())


def validate_text(text: str, path: Path):
    """The CLI's own validation of `text` as if it were the file at `path`: a Profile or a ProfileError."""
    from appliance.profile import validate

    return validate(yamlsrc.load(text, str(path)))


def _check_name(name: str) -> None:
    from appliance.profile import NAME_RE

    if not NAME_RE.match(name):
        raise ProfileError(f"`{name}` cannot be a profile name",
                           "use lowercase letters, digits, - and _ (it becomes the compose project name)")


# ------------------------------------------------------------------------------------------- writing


def history(path: Path) -> list[Path]:
    """Earlier versions of a profile file, oldest first."""
    d = Path(path).parent / HISTORY_DIR
    return sorted(d.glob(f"{Path(path).stem}.*.yaml")) if d.is_dir() else []


def backup(path: Path) -> Path | None:
    if not path.is_file():
        return None
    d = paths.ensure_private_dir(path.parent / HISTORY_DIR)
    dest = d / f"{path.stem}.{time.strftime('%Y%m%d-%H%M%S', time.gmtime())}-{time.time_ns() % 10**9:09d}.yaml"
    dest.write_bytes(path.read_bytes())
    for old in history(path)[:-HISTORY_KEEP]:
        old.unlink(missing_ok=True)
    return dest


def write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(text, encoding="utf-8")
        if path.exists():
            os.chmod(tmp, path.stat().st_mode & 0o777)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def save_text(path: Path, text: str):
    """Validate, back up the previous version, write atomically. Returns the Profile. Refuses shipped files."""
    path = Path(path)
    if is_shipped(path):
        raise ProfileError(f"{path} is a shipped profile (read-only)",
                           f"edit your own copy: `appliance edit {path.stem}` makes one")
    profile = validate_text(text, path)
    if path.is_file() and path.read_text(encoding="utf-8") == text:
        return profile
    backup(path)
    write_atomic(path, text)
    return profile


def restore(path: Path, version: Path | None = None):
    """Undo: put back an earlier version (the latest by default); the current one goes into the history too."""
    versions = history(path)
    if not versions:
        raise ProfileError(f"{path}: no earlier version is kept", None)
    chosen = Path(version) if version else versions[-1]
    return save_text(path, chosen.read_text(encoding="utf-8"))


# ------------------------------------------------------------------------------------------- files


def editable(ref: str | Path, write: bool = True) -> tuple[Path, Path | None]:
    """The file to change for `ref`, and the shipped file it was copied from (None when it is the user's own).
    `write=False`: the copy is not made yet (`copy_text` is what it would hold): an editor writes it on save, so
    looking at a shipped profile in an editor and leaving leaves no copy that hides later versions of it."""
    from appliance.profile import resolve

    path = resolve(ref)
    if not is_shipped(path):
        return path, None
    target = paths.user_profiles_dir() / path.name
    if write and not target.exists():
        paths.ensure_private_dir(target.parent)
        write_atomic(target, copy_text(path))
    return target, path


def copy_text(shipped: Path) -> str:
    """The user's copy of a shipped profile: its text under a header that says what it is."""
    return (f"# Your copy of the shipped profile {shipped.name} ({_stamp()}); it takes precedence over the\n"
            f"# shipped one. Delete this file to go back to it.\n") + shipped.read_text(encoding="utf-8")


def text_to_edit(path: Path, copied_from: Path | None) -> str:
    """What an editor starts from: the file, or — a shipped profile not copied yet — the copy it would be."""
    if copied_from is not None and not path.exists():
        return copy_text(copied_from)
    return path.read_text(encoding="utf-8")


def user_path(name: str) -> Path:
    return paths.user_profiles_dir() / f"{name}.yaml"


def _free_name(name: str) -> Path:
    from appliance.profile import available_files

    _check_name(name)
    target = user_path(name)
    taken = {f.stem: f for f in available_files()}
    if target.exists() or name in taken:
        where = taken.get(name, target)
        raise ProfileError(f"a profile called `{name}` exists already ({where})",
                           f"pick another name, or change it with `appliance edit {name}`")
    return target


def duplicate(source: str | Path, name: str) -> Path:
    """Copy a profile (shipped or the user's) under a new name, comments and all."""
    from appliance.profile import resolve

    src = resolve(source)
    target = _free_name(name)
    original = src.read_text(encoding="utf-8")
    data = roundtrip.load(original, str(src))
    if not isinstance(data, dict):
        raise ProfileError(f"{src}: not a profile", "start from one of the profiles in profiles/")
    data["name"] = name
    text = (f"# {name}: made from {src.stem} ({_stamp()}).\n" + roundtrip.render(original, data))
    save_text(target, text)
    return target


def delete(ref: str | Path) -> Path:
    """Delete a user profile (its last version stays in the history). Shipped profiles cannot be deleted."""
    from appliance.profile import resolve

    path = resolve(ref)
    if is_shipped(path):
        raise ProfileError(f"{path.stem} is a shipped profile (read-only): it cannot be deleted",
                           "only your own profiles (in " + str(paths.user_profiles_dir()) + ") can be deleted")
    if not path.is_file():
        raise ProfileError(f"{path}: no such file", "see `appliance profiles`")
    backup(path)
    path.unlink()
    return path


# ------------------------------------------------------------------------------------------- set


@dataclass
class SetResult:
    path: Path
    profile: object  # appliance.profile.Profile
    changes: list[tuple[str, object, object]] = field(default_factory=list)  # (field, old, new); None = absent
    copied_from: Path | None = None  # a shipped profile copied into the user's directory first
    text: str = ""


def engine_path(data, parts: list) -> list:
    """`max_model_len` → engines.0.max_model_len on a one-engine profile; `engines.fast.x` → engines.<index>.x."""
    engines = data.get("engines") if isinstance(data, dict) else None
    if parts[0] not in TOP_LEVEL and isinstance(engines, list):
        if len(engines) == 1:
            return ["engines", 0] + parts
        labels = ", ".join(str(e.get("name", i)) for i, e in enumerate(engines) if isinstance(e, dict))
        raise ProfileError(f"`{parts[0]}` is not a top-level field and the profile has {len(engines)} engines",
                           f"say which: engines.0.{'.'.join(map(str, parts))} (engines: {labels})")
    if parts[0] == "engines" and len(parts) > 1 and isinstance(parts[1], str) and isinstance(engines, list):
        for i, e in enumerate(engines):
            if isinstance(e, dict) and e.get("name") == parts[1]:
                return ["engines", i] + parts[2:]
    return parts


def apply_assignments(data, assignments: list[str]) -> list[tuple[str, object, object]]:
    """Apply `path=value` strings to a round-trip document in place; returns what changed."""
    changes = []
    for item in assignments:
        if "=" not in item:
            raise ProfileError(f"`{item}` is not key=value", "e.g. max_model_len=16384 or engines.0.kv_cache_dtype=fp8")
        key, raw = item.split("=", 1)
        parts = engine_path(data, roundtrip.split_path(key.strip()))
        value = roundtrip.parse_value(raw)
        old = roundtrip.get_path(data, parts)
        order = TOP_LEVEL if len(parts) == 1 else ENGINE_ORDER if len(parts) == 3 and parts[0] == "engines" else ()
        roundtrip.set_path(data, parts, value, order)
        changes.append((".".join(map(str, parts)), old, None if value is roundtrip.REMOVE else value))
    return changes


def set_values(ref: str | Path, assignments: list[str]) -> SetResult:
    """Change values of a profile, keeping its comments, key order and formatting. Nothing is written (and a
    shipped profile is not copied) unless the result loads; the error names the file, field, value and fix."""
    from appliance.profile import resolve

    src = resolve(ref)
    original = src.read_text(encoding="utf-8")
    data = roundtrip.load(original, str(src))
    if not isinstance(data, dict):
        raise ProfileError(f"{src}:1: a profile is a mapping (name:, engines:, …)", "fix the file with `appliance edit`")
    changes = apply_assignments(data, assignments)
    text = roundtrip.render(original, data)
    try:
        validate_text(text, src)
    except ProfileError as exc:
        raise ProfileError(f"{exc.message}\n{src} is unchanged.", exc.hint) from None
    path, copied = editable(src) if is_shipped(src) else (src, None)
    if copied is not None:  # the copy got a header comment: apply the same change to it
        original = path.read_text(encoding="utf-8")
        data = roundtrip.load(original, str(path))
        apply_assignments(data, assignments)
        text = roundtrip.render(original, data)
    profile = save_text(path, text)
    return SetResult(path, profile, changes, copied, text)
