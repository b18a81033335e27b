"""Secrets: the proxy master key and hosted API keys, in one env file in the user config dir (mode 0600).

Rendered files only ever name the variables (`os.environ/OPENAI_API_KEY`, `env_file: …`); the values live here
or in the environment. Nothing in this module prints a value.
"""

from __future__ import annotations

import os
import re
import secrets as _random
import stat
from pathlib import Path

from appliance import paths
from appliance.errors import SecretsError

MASTER_KEY = "LITELLM_MASTER_KEY"
PROVIDERS = {
    "openai": "OPENAI_API_KEY",
    "anthropic": "ANTHROPIC_API_KEY",
    "openrouter": "OPENROUTER_API_KEY",
    "huggingface": "HF_TOKEN",
    "hf": "HF_TOKEN",
}
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def secrets_file() -> Path:
    return Path(os.environ.get("APPLIANCE_SECRETS_FILE") or paths.config_dir() / "secrets.env")


def _read(path: Path) -> dict[str, str]:
    from appliance.runtime.process import read_env_file

    return read_env_file(path)


def ensure_private(path: Path) -> None:
    """The secrets file must be readable by its owner only; fix it if it is not."""
    if path.exists():
        mode = stat.S_IMODE(path.stat().st_mode)
        if mode & 0o077:
            os.chmod(path, 0o600)


def load() -> dict[str, str]:
    path = secrets_file()
    ensure_private(path)
    return _read(path)


def _write(values: dict[str, str]) -> None:
    path = secrets_file()
    paths.ensure_private_dir(path.parent)
    for k, v in values.items():
        if "\n" in v or "\r" in v:
            raise SecretsError(f"the value for {k} contains a line break", "paste the key on one line")
    text = "# appliance secrets: read by the proxy and the engines via env_file. Mode 0600. Do not commit.\n"
    text += "".join(f"{k}={v}\n" for k, v in sorted(values.items()))
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


def env_name(provider_or_name: str) -> str:
    name = PROVIDERS.get(provider_or_name.lower(), provider_or_name)
    if not _NAME.match(name):
        raise SecretsError(f"`{provider_or_name}` is neither a provider ({', '.join(PROVIDERS)}) nor an "
                           "environment variable name", "e.g. `appliance keys set openai`")
    return name


def set_key(provider_or_name: str, value: str) -> str:
    name = env_name(provider_or_name)
    value = value.strip()
    if not value:
        raise SecretsError(f"empty value for {name}", "paste the key when asked")
    values = load()
    values[name] = value
    _write(values)
    return name


def remove_key(provider_or_name: str) -> bool:
    name = env_name(provider_or_name)
    values = load()
    if name not in values:
        return False
    del values[name]
    _write(values)
    return True


def lookup(name: str) -> str | None:
    """A secret's value: the environment first, then the secrets file."""
    return os.environ.get(name) or load().get(name)


def master_key() -> str:
    """The proxy's master key, generated on first use (LiteLLM refuses unset, empty or well-known keys)."""
    values = load()
    key = os.environ.get(MASTER_KEY) or values.get(MASTER_KEY)
    if key:
        return key
    key = "sk-appliance-" + _random.token_hex(24)
    values[MASTER_KEY] = key
    _write(values)
    return key


def redact(text: str, extra: list[str] | None = None) -> str:
    """Replace every known secret value in `text` (logs shown to the user pass through here)."""
    values = [v for v in load().values() if len(v) >= 8] + [v for v in (extra or []) if v and len(v) >= 8]
    for name in list(PROVIDERS.values()) + [MASTER_KEY]:
        v = os.environ.get(name)
        if v and len(v) >= 8:
            values.append(v)
    for v in sorted(set(values), key=len, reverse=True):
        text = text.replace(v, "•••")
    return text


def status() -> list[dict]:
    """Which keys are set and where (never the values)."""
    file_values = load()
    names = sorted(set(PROVIDERS.values()) | {MASTER_KEY} | set(file_values))
    out = []
    for n in names:
        where = "environment" if os.environ.get(n) else ("secrets file" if n in file_values else None)
        out.append({"name": n, "set": where is not None, "source": where})
    return out
