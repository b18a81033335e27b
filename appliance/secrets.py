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
ENGINE_KEY = "APPLIANCE_ENGINE_KEY"  # the engines' own key (vLLM's VLLM_API_KEY); agents never see it
MIN_MASTER_KEY_LEN = 24  # a generated key has 61 characters; anything a person can guess in a day is refused
# Who gets which secret (least privilege): each role has its own env file beside the secrets file,
# `<secrets file>.<role>`, rewritten from it whenever a key changes and before anything starts. Engines may run
# a model's own code (trust_remote_code): they get the Hugging Face token only. HAProxy checks the master key.
# LiteLLM calls the hosted providers: every key but the Hugging Face token.
ROLES = ("engine", "frontdoor", "litellm")
_HAPROXY_WORD = re.compile(r"[A-Za-z0-9._~+/=:-]{1,512}")  # a key HAProxy's config can carry as one word
_SECRETISH = re.compile(r"(KEY|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL)", re.I)
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
    text = "# appliance secrets: each process gets only its part (secrets.env.<role>). Mode 0600. Do not commit.\n"
    _write_private(path, text + "".join(f"{k}={v}\n" for k, v in sorted(values.items())))
    write_role_files(values)


def _write_private(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


def role_values(role: str, values: dict[str, str]) -> dict[str, str]:
    """The secrets one kind of process gets, from the secrets file's values."""
    if role == "engine":  # vLLM reads its key from VLLM_API_KEY (off the command line, out of `ps`)
        out = {k: values[k] for k in ("HF_TOKEN",) if k in values}
        if values.get(ENGINE_KEY):
            out["VLLM_API_KEY"] = values[ENGINE_KEY]
        return out
    if role == "frontdoor":
        return {k: values[k] for k in (MASTER_KEY, ENGINE_KEY) if k in values}
    if role == "litellm":
        return {k: v for k, v in values.items() if k not in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN")}
    raise ValueError(role)


def role_file(role: str, base: Path | None = None) -> Path:
    base = base or secrets_file()
    return base.with_name(f"{base.name}.{role}")


def write_role_files(values: dict[str, str] | None = None) -> None:
    """(Re)write `<secrets file>.<role>` for every role (0600). Called on every change of the secrets file and
    before services start (an edit by hand is picked up then)."""
    values = load() if values is None else values
    if not values.get(ENGINE_KEY):  # every engine has a key: generated before the first start
        values = {**values, ENGINE_KEY: "sk-engine-" + _random.token_hex(24)}
        _write(values)
        return
    path = secrets_file()
    paths.ensure_private_dir(path.parent)
    for role in ROLES:
        text = f"# appliance secrets for the {role} processes only (from {path.name}). Mode 0600.\n"
        _write_private(role_file(role, path), text + "".join(f"{k}={v}\n" for k, v in
                                                              sorted(role_values(role, values).items())))
    keys_cfg = frontdoor_keys_cfg(path)
    paths.ensure_private_dir(keys_cfg.parent)
    _write_private(keys_cfg, "# the front door's keys, read on every start and reload (mode 0600)\nglobal\n" + "".join(
        f"    setenv {k} {v}\n" for k, v in sorted(role_values("frontdoor", values).items()) if _HAPROXY_WORD.fullmatch(v)))


def frontdoor_keys_cfg(base: Path | None = None) -> Path:
    """An HAProxy config fragment that only sets the front door's keys (`global` + `setenv`), given to HAProxy
    before haproxy.cfg (`-f keys.cfg -f haproxy.cfg`). Why: HAProxy expands `${LITELLM_MASTER_KEY}` when it
    parses its config, and a reload re-parses every file but keeps the master process's environment — so a key
    from the environment only changes with a restart, a key from this file with a seamless reload. In a
    directory of its own so a container can mount it (a file mount would keep the old inode after a rewrite)."""
    base = base or secrets_file()
    return base.with_name(f"{base.name}.frontdoor.d") / "keys.cfg"


def role_of_env_file(path: str) -> str | None:
    """The role an env file (as rendered: `…secrets.env.engine`) stands for."""
    for role in ROLES:
        if path.endswith(f".{role}"):
            return role
    return None


def scrub_environ(env: dict[str, str], keep: set[str] = frozenset()) -> dict[str, str]:
    """`env` without anything that looks like a secret (a name of the secrets file, a provider's key, *KEY*,
    *TOKEN*, *SECRET*, …): engines and HAProxy must not inherit the keys of the shell that started them."""
    known = set(PROVIDERS.values()) | {MASTER_KEY, ENGINE_KEY} | set(load())
    return {k: v for k, v in env.items() if k in keep or not (k in known or _SECRETISH.search(k))}


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
    if name == MASTER_KEY:
        check_master_key(value, "the new master key")
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


def check_master_key(key: str, where: str) -> None:
    """Refuse a master key anyone could guess: it is the only thing between the LAN (with --lan) and the GPUs."""
    if len(key) < MIN_MASTER_KEY_LEN or len(set(key)) < 8 or not _HAPROXY_WORD.fullmatch(key):
        raise SecretsError(f"{where} is too weak or unusable: a master key needs at least {MIN_MASTER_KEY_LEN} "
                           "characters, 8 of them different, only letters, digits and . _ ~ + / = : -",
                           f"remove {MASTER_KEY} from {secrets_file()} and the environment (a strong key is "
                           "generated), or `appliance keys set LITELLM_MASTER_KEY` with a longer one")


def ensure_role_files() -> None:
    """Rewrite the role files if one is missing or older than the secrets file (a key set by hand). Cheap when
    they are current: the sampler asks for the master key every second."""
    path = secrets_file()
    try:
        newest = path.stat().st_mtime
    except FileNotFoundError:
        newest = 0.0
    for f in [role_file(r, path) for r in ROLES] + [frontdoor_keys_cfg(path)]:
        try:
            if f.stat().st_mtime < newest:
                break
        except FileNotFoundError:
            break
    else:
        if newest:
            return
    write_role_files()


def master_key() -> str:
    """The proxy's master key, generated on first use (LiteLLM refuses unset, empty or well-known keys); a weak
    one from the environment or the secrets file is refused (SecretsError). The role files are made current
    here too: everything that starts the front door or engines asks for the master key first."""
    ensure_role_files()
    values = load()
    if os.environ.get(MASTER_KEY):
        check_master_key(os.environ[MASTER_KEY], f"{MASTER_KEY} in the environment")
        return os.environ[MASTER_KEY]
    if values.get(MASTER_KEY):
        check_master_key(values[MASTER_KEY], f"{MASTER_KEY} in {secrets_file()}")
        return values[MASTER_KEY]
    key = "sk-appliance-" + _random.token_hex(24)
    values[MASTER_KEY] = key
    _write(values)
    return key


def engine_key() -> str:
    """The engines' own key, generated on first use; only HAProxy and LiteLLM are given it."""
    values = load()
    if values.get(ENGINE_KEY):
        return values[ENGINE_KEY]
    values[ENGINE_KEY] = "sk-engine-" + _random.token_hex(24)
    _write(values)
    return values[ENGINE_KEY]


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
