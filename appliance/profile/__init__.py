"""Profiles: strict models for profiles/*.yaml and the loader that explains every mistake.

A profile names the GPUs it uses and their power limit, one or more vLLM engines, and what the proxy answers
for. The package is split by job, one direction of imports (model ← problems ← normalize/checks ← load):
  model.py      the pydantic models (Profile, Engine, Proxy, Hosted, Timeouts) and their constants
  problems.py   Problem (path, message, fix) and the one message built from all problems of a file
  normalize.py  raw YAML → the shape the models take (vLLM options sorted into `vllm_options`)
  checks.py     checks across fields: what vLLM, Compose or LiteLLM would reject
  load.py       load_profile / resolve / available_files / validate
Import from `appliance.profile`; the names below are the whole API.
"""

from appliance.profile.load import available_files, available_names, load_profile, resolve, validate
from appliance.profile.model import (
    APPLIANCE_ENGINE_KEYS,
    DEFAULT_PROXY_PORT,
    ENV_NAME_RE,
    NAME_RE,
    PINNED_IMAGE,
    RESERVED_VLLM,
    Engine,
    Hosted,
    Profile,
    Proxy,
    Strict,
    Timeouts,
)
from appliance.profile.problems import Problem

__all__ = [
    "APPLIANCE_ENGINE_KEYS", "DEFAULT_PROXY_PORT", "ENV_NAME_RE", "NAME_RE", "PINNED_IMAGE", "RESERVED_VLLM",
    "Engine", "Hosted", "Problem", "Profile", "Proxy", "Strict", "Timeouts",
    "available_files", "available_names", "load_profile", "resolve", "validate",
]
