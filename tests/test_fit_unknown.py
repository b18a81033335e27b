"""A model nothing is known about is not "does not fit": `check` says the model is unknown, shows how to describe
it in models.yaml at its real path, and exits 3 (documented in `check --help`); described, it is checked."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from appliance.catalog_user import EXAMPLE

from conftest import REPO

PROFILE = "name: u\ngpus: [0]\nengines:\n  - model: acme/unknown-9b\n    aliases: [local]\n    max_model_len: 4096\n"


def check(tmp_path, *args: str) -> subprocess.CompletedProcess:
    f = tmp_path / "u.yaml"
    f.write_text(PROFILE)
    return subprocess.run([sys.executable, "-m", "appliance", "check", str(f), "--gpu", "4090", *args],
                          capture_output=True, text=True, cwd=REPO, env=dict(os.environ))


def models_yaml() -> str:
    return os.path.join(os.environ["APPLIANCE_HOME"], "config", "models.yaml")


def test_unknown_model_has_its_own_verdict_and_exit_code(tmp_path):
    out = check(tmp_path)
    assert out.returncode == 3, (out.returncode, out.stdout, out.stderr)
    assert "UNKNOWN MODEL" in out.stdout and "DOES NOT FIT" not in out.stdout
    assert "<config dir>" not in out.stdout and f"describe the model in {models_yaml()}" in out.stdout
    assert "acme/unknown-9b:" in out.stdout and "num_key_value_heads" in out.stdout
    data = json.loads(check(tmp_path, "--json").stdout)
    assert data["verdict"] == "unknown model" and data["unknown_models"] == ["acme/unknown-9b"]
    assert any(models_yaml() in p for p in data["problems"])


def test_the_example_once_filled_in_is_checked(tmp_path):
    os.makedirs(os.path.dirname(models_yaml()), exist_ok=True)
    with open(models_yaml(), "w") as fh:
        fh.write(EXAMPLE.format(model="acme/unknown-9b"))
    out = check(tmp_path, "--json")
    assert out.returncode in (0, 1), out.stderr
    assert json.loads(out.stdout)["verdict"] in ("fits", "does not fit")


def test_a_profile_that_does_not_fit_anyway_says_so(tmp_path):
    """Unknown model next to an engine that does not fit: the known failure decides (exit 1)."""
    f = tmp_path / "two.yaml"
    f.write_text("name: two\ngpus: [0]\nengines:\n  - model: acme/unknown-9b\n    aliases: [a]\n    gpus: [0]\n"
                 "    gpu_memory_utilization: 0.45\n  - name: big\n    model: Qwen/Qwen2.5-14B-Instruct\n"
                 "    aliases: [b]\n    port: 8002\n    gpus: [0]\n    gpu_memory_utilization: 0.45\n")
    out = subprocess.run([sys.executable, "-m", "appliance", "check", str(f), "--gpu", "4090"], capture_output=True,
                         text=True, cwd=REPO)
    assert out.returncode == 1 and "DOES NOT FIT" in out.stdout, (out.stdout, out.stderr)


def test_help_documents_the_exit_codes_and_per_gpu_fields():
    out = subprocess.run([sys.executable, "-m", "appliance", "check", "--help"], capture_output=True, text=True,
                         cwd=REPO, env=dict(os.environ, COLUMNS="200")).stdout
    assert "3 when a model is unknown" in out and "per GPU" in out
