"""The owner's settings: one small YAML in the config dir that holds for every profile.

Why a file of its own: a profile says what runs on the GPUs and which hosted models ITS aliases may fall back to;
some choices are the owner's whatever runs — "never send anything to a hosted model", or "if the local model is
down, use Claude" — and must not have to be repeated in every profile (nor leak from one profile into another:
the front door serves the ACTIVE profile's fallbacks plus these, nothing else).

    # ~/.config/appliance/settings.yaml
    local_only: false          # true: no request ever reaches a hosted model (fallbacks and hosted aliases off)
    hosted:                    # hosted models every profile may use (same fields as a profile's proxy.hosted)
      - {name: claude, provider: anthropic, model: claude-sonnet-4-6, api_key_env: ANTHROPIC_API_KEY}
    fallbacks:                 # alias → chain, after the profile's own chain
      "*": [claude]            # every alias the running profile serves
      coder: [claude]          # an alias the running profile lacks is served by its chain

A missing file means the defaults (no global fallbacks, hosted models allowed where the profile names them).
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, ValidationError

from appliance import paths, yamlsrc
from appliance.errors import ProfileError
from appliance.profile import Hosted, Strict

FILE_NAME = "settings.yaml"
EVERY_ALIAS = "*"


class UserSettings(Strict):
    local_only: bool = Field(default=False, description="no request ever reaches a hosted model")
    hosted: tuple[Hosted, ...] = ()
    fallbacks: dict[str, tuple[str, ...]] = Field(default_factory=dict)

    # not from the file
    source_file: str = Field(default="", exclude=True)

    def hosted_by_name(self) -> dict[str, Hosted]:
        return {h.name: h for h in self.hosted}


def settings_file() -> Path:
    return paths.config_dir() / FILE_NAME


def _where(src: yamlsrc.Source, loc: tuple) -> str:
    line = src.line(loc)
    return f"{src.file}:{line}" if line else src.file


def load_settings(path: Path | None = None) -> UserSettings:
    """The owner's settings (defaults when the file does not exist). Every mistake names file:line, the field,
    the value and the fix."""
    path = path or settings_file()
    if not path.is_file():
        return UserSettings()
    src = yamlsrc.load_file(path)
    data = src.data if src.data is not None else {}
    if not isinstance(data, dict):
        raise ProfileError(f"{path}: the settings must be a mapping (local_only, hosted, fallbacks)",
                           f"see `appliance endpoint --help`; or delete {path} to use the defaults")
    try:
        s = UserSettings.model_validate({**data, "source_file": str(path)}, strict=False)  # YAML lists → tuples
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = tuple(err["loc"])
        field = ".".join(str(x) for x in loc) or "(top level)"
        value = err.get("input")
        fix = {"extra_forbidden": "known fields: local_only, hosted, fallbacks",
               "missing": f"add `{field}`"}.get(err["type"], "see \"Point your agent here\" in the README (settings.yaml: local_only, hosted, fallbacks)")
        raise ProfileError(f"{_where(src, loc)}: `{field}`: {err['msg']} (value: {value!r})", fix) from None
    names = s.hosted_by_name()
    for alias, chain in s.fallbacks.items():
        for j, target in enumerate(chain):
            if target == alias:
                raise ProfileError(f"{_where(src, ('fallbacks', alias, j))}: `fallbacks.{alias}`: `{alias}` falls "
                                   "back to itself", "remove it from its own list")
    if len(names) != len(s.hosted):
        dup = [h.name for h in s.hosted if [x.name for x in s.hosted].count(h.name) > 1][0]
        raise ProfileError(f"{_where(src, ('hosted',))}: `hosted`: the name `{dup}` is used twice",
                           "give every hosted model its own name")
    return s
