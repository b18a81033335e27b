"""The tiny model is deterministic: a fresh build is byte-identical to the one `make real-vllm` made."""

from __future__ import annotations

import hashlib
import subprocess

from appliance import realvllm
from conftest import REPO, missing


def _hashes(d) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(d.iterdir()) if p.is_file()}


def test_two_builds_are_byte_identical(tmp_path):
    made, exe = realvllm.tiny_model_dir(), realvllm.vllm_executable()
    if made is None or exe is None:
        missing("the tiny test model", "run `make real-vllm`")
    python = exe.parent / "python"
    out = subprocess.run([str(python), str(REPO / "tools" / "build_tiny_model.py"), str(tmp_path / "again")],
                         capture_output=True, text=True, timeout=600, env=realvllm.engine_env(tmp_path / "env"))
    assert out.returncode == 0, out.stderr[-2000:]
    again = _hashes(tmp_path / "again")
    assert {"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"} <= set(again)
    assert again == _hashes(made)
    assert out.stdout.split()[0] == hashlib.sha256(b"".join(
        n.encode() + b"\0" + (made / n).read_bytes() + b"\0" for n in sorted(again))).hexdigest()
