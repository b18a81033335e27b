"""The master key's minimum strength, and which secret each role's file holds."""

from __future__ import annotations

import pytest

from appliance import secrets
from appliance.errors import SecretsError


@pytest.mark.parametrize("weak", ["a", "sk-1234", "aaaaaaaaaaaaaaaaaaaaaaaaaaaa", "short key with spaces 123456"])
def test_weak_master_key_refused_everywhere(weak, monkeypatch):
    with pytest.raises(SecretsError, match="too weak"):
        secrets.set_key("LITELLM_MASTER_KEY", weak)
    secrets.secrets_file().parent.mkdir(parents=True, exist_ok=True)
    secrets.secrets_file().write_text(f"LITELLM_MASTER_KEY={weak}\n")
    with pytest.raises(SecretsError, match="too weak") as exc:
        secrets.master_key()
    assert str(secrets.secrets_file()) in exc.value.message
    secrets.secrets_file().unlink()
    monkeypatch.setenv("LITELLM_MASTER_KEY", weak)
    with pytest.raises(SecretsError, match="environment"):
        secrets.master_key()


def test_generated_and_strong_keys_pass():
    key = secrets.master_key()
    assert len(key) >= secrets.MIN_MASTER_KEY_LEN
    secrets.set_key("LITELLM_MASTER_KEY", "sk-my-own-key-abcdefghijklmnop-42")
    assert secrets.master_key() == "sk-my-own-key-abcdefghijklmnop-42"


def test_role_files():
    secrets.set_key("openai", "sk-openai-test-0123456789")
    secrets.set_key("hf", "hf_token_test_0123456789")
    master = secrets.master_key()
    engine_key = secrets.engine_key()
    from appliance.runtime.process import read_env_file

    def read(role):
        return read_env_file(secrets.role_file(role))

    assert read("engine") == {"HF_TOKEN": "hf_token_test_0123456789", "VLLM_API_KEY": engine_key}
    assert read("frontdoor") == {"LITELLM_MASTER_KEY": master, "APPLIANCE_ENGINE_KEY": engine_key}
    lite = read("litellm")
    assert lite["OPENAI_API_KEY"] == "sk-openai-test-0123456789" and lite["LITELLM_MASTER_KEY"] == master
    assert "HF_TOKEN" not in lite
    for role in secrets.ROLES:
        assert secrets.role_file(role).stat().st_mode & 0o077 == 0


def test_scrub_environ():
    env = {"PATH": "/bin", "HOME": "/root", "OPENAI_API_KEY": "x", "MY_TOKEN": "y", "GH_SECRET": "z",
           "LITELLM_MASTER_KEY": "m", "DB_PASSWORD": "p", "LANG": "C"}
    assert secrets.scrub_environ(env) == {"PATH": "/bin", "HOME": "/root", "LANG": "C"}
