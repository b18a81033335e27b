"""Loading profiles: find one by name or path, parse it, validate it; list the ones there are.

Every error names file:line, the field, the bad value and what to do, and is a ProfileError (exit 2).
"""

from __future__ import annotations

from pathlib import Path

from pydantic import ValidationError

from appliance import paths, yamlsrc
from appliance.errors import ProfileError
from appliance.profile.checks import _semantic_problems
from appliance.profile.model import Profile
from appliance.profile.normalize import _pre_normalize
from appliance.profile.problems import Problem, _closest, _format, _pydantic_problems


def load_profile(ref: str | Path) -> Profile:
    """Load and validate a profile by name (searched in the profile dirs) or by path."""
    path = resolve(ref)
    src = yamlsrc.load_file(path)
    return validate(src)


def resolve(ref: str | Path) -> Path:
    ref_s = str(ref)
    if len(ref_s) > 4096 or "\0" in ref_s:
        raise ProfileError(f"`{ref_s[:60]}…` is not a profile name or path", "see `appliance profiles`")
    candidate = Path(ref_s).expanduser()
    if candidate.suffix in (".yaml", ".yml") or "/" in ref_s or _is_file(candidate):
        return candidate
    for d in paths.profile_dirs():
        for ext in (".yaml", ".yml"):
            f = d / f"{ref_s}{ext}"
            if _is_file(f):
                return f
    names = available_names()
    near = _closest(ref_s, names)
    raise ProfileError(f"no profile called `{ref_s}`",
                       (f"did you mean `{near}`? " if near else "") + "see `appliance profiles` (searched: " +
                       ", ".join(str(d) for d in paths.profile_dirs()) + ")")


def _is_file(p: Path) -> bool:
    """is_file() that says no instead of raising (a name too long for the file system, …)."""
    try:
        return p.is_file()
    except (OSError, ValueError):
        return False


def available_files() -> list[Path]:
    """One file per profile name, the first directory of `paths.profile_dirs()` winning."""
    seen: dict[str, Path] = {}
    for d in paths.profile_dirs():
        if d.is_dir():
            for f in sorted(d.glob("*.y*ml")):
                seen.setdefault(f.stem, f)
    return [seen[k] for k in sorted(seen)]


def available_names() -> list[str]:
    return [f.stem for f in available_files()]


def validate(src: yamlsrc.Source) -> Profile:
    data = src.data
    if not isinstance(data, dict):
        raise ProfileError(f"{src.file}:1: a profile is a mapping (name:, engines:, …), not a "
                           f"{type(data).__name__}", "start from one of the profiles in profiles/")
    problems: list[Problem] = []
    if "source_file" in data:
        problems.append(Problem(("source_file",), "`source_file` is not a field", "remove it"))
    normalized = _pre_normalize(data, problems)
    profile = None
    try:
        profile = Profile.model_validate(normalized)
    except ValidationError as exc:
        problems.extend(_pydantic_problems(exc, normalized))
    if profile is not None and not problems:
        problems.extend(_semantic_problems(profile))
    if problems:
        raise ProfileError(*_format(src, problems))
    return profile.model_copy(update={"source_file": src.file})
