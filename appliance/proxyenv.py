"""Where the LiteLLM proxy's own environment lives (see requirements-proxy.txt for why it is separate)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from appliance import paths


def litellm_executable() -> Path | None:
    """The `litellm` console script: $APPLIANCE_LITELLM, the repo's .venv-proxy, or PATH."""
    env = os.environ.get("APPLIANCE_LITELLM")
    if env and Path(env).is_file():
        return Path(env)
    local = paths.REPO_DIR / ".venv-proxy" / "bin" / "litellm"
    if local.is_file():
        return local
    found = shutil.which("litellm")
    return Path(found) if found else None


def proxy_environment(extra: dict[str, str] | None = None) -> dict[str, str]:
    """Environment for a LiteLLM process: never fetch the price list from the internet."""
    from appliance.render.litellm import PROXY_ENV

    env = dict(os.environ)
    env.update(PROXY_ENV)
    env.update(extra or {})
    return env
