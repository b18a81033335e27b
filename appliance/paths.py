"""Where things live: the repository's profiles/ and compose/, and the user's config and state dirs.

`APPLIANCE_HOME` puts config and state under one directory (tests, CI, several rigs on one machine);
otherwise platformdirs picks the usual places (~/.config/appliance, ~/.local/state/appliance).
`APPLIANCE_PROFILES` adds directories of profiles searched before the shipped ones
(`APPLIANCE_PROFILES_ONLY=1`: only those).
"""

from __future__ import annotations

import os
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
REPO_DIR = PACKAGE_DIR.parent
SHIPPED_PROFILES_DIR = REPO_DIR / "profiles"
COMPOSE_DIR = REPO_DIR / "compose"


def _home() -> Path | None:
    value = os.environ.get("APPLIANCE_HOME")
    return Path(value).expanduser() if value else None


def config_dir() -> Path:
    home = _home()
    if home:
        return home / "config"
    import platformdirs

    return Path(platformdirs.user_config_dir("appliance", appauthor=False))


def state_dir() -> Path:
    home = _home()
    if home:
        return home / "state"
    import platformdirs

    return Path(platformdirs.user_state_dir("appliance", appauthor=False))


def user_profiles_dir() -> Path:
    return config_dir() / "profiles"


def profile_dirs() -> list[Path]:
    """Directories searched for `NAME.yaml`, first match wins."""
    dirs: list[Path] = []
    extra = os.environ.get("APPLIANCE_PROFILES")
    if extra:
        dirs.extend(Path(p).expanduser() for p in extra.split(os.pathsep) if p)
    if os.environ.get("APPLIANCE_PROFILES_ONLY") == "1":  # tests: only the directories given
        return dirs
    dirs.append(user_profiles_dir())
    dirs.append(SHIPPED_PROFILES_DIR)
    return dirs


def ensure_private_dir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    return path
