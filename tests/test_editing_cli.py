"""`appliance new/set/edit` as the shell runs them (through appliance.editing.commands.main, the same parser
entries the CLI registers): exit codes, what they print, and the file afterwards."""

from __future__ import annotations

import stat

from appliance import paths
from appliance.editing import commands


def test_new_set_and_a_refused_value(capsys):
    assert commands.main(["new", "agent", "--model", "Qwen/Qwen2.5-14B-Instruct-AWQ", "--card", "4090"]) == 0
    out = capsys.readouterr().out
    path = paths.user_profiles_dir() / "agent.yaml"
    assert f"created {path}" in out and "fit against the profile's card" in out and "FITS" in out
    before = path.read_bytes()
    assert commands.main(["set", "agent", "kv_cache_dtype=fp9"]) == 2
    err = capsys.readouterr().err
    assert f"error: {path}:" in err and "`fp9` is not a KV cache dtype" in err and "is unchanged" in err
    assert "fix: did you mean `fp8`?" in err
    assert path.read_bytes() == before
    assert commands.main(["set", "agent", "kv_cache_dtype=fp8", "max_model_len=16384"]) == 0
    out = capsys.readouterr().out
    assert "agent.yaml: engines.0.kv_cache_dtype: auto → fp8" in out
    assert "16,384" in out and "(fp8)" in out
    text = path.read_text()
    assert "    kv_cache_dtype: fp8     # fp8 holds twice the tokens\n" in text
    assert commands.main(["new", "agent", "--from", "rtx4090-qwen25-14b-agent"]) == 2
    assert "exists already" in capsys.readouterr().err


def test_set_on_a_shipped_profile_and_edit(tmp_path, monkeypatch, capsys):
    assert commands.main(["set", "rtx4060ti16-qwen25-7b", "max_num_seqs=4"]) == 0
    out = capsys.readouterr().out
    assert "is shipped (read-only): changed your copy" in out
    ed = tmp_path / "ed.sh"
    ed.write_text("#!/bin/sh\nsed -i 's/max_num_seqs: 4/max_num_seqs: 6/' \"$1\"\n")
    ed.chmod(ed.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("EDITOR", str(ed))
    monkeypatch.delenv("VISUAL", raising=False)
    assert commands.main(["edit", "rtx4060ti16-qwen25-7b"]) == 0
    out = capsys.readouterr().out
    assert "saved" in out and "FITS" in out
    assert "max_num_seqs: 6" in (paths.user_profiles_dir() / "rtx4060ti16-qwen25-7b.yaml").read_text()


def test_set_says_what_vllm_would_warn_about_and_stops_when_fixed(capsys):
    """`set` prints [7/8]'s advice for the new values (as `check` and the editor do), and nothing once fixed."""
    assert commands.main(["new", "awq", "--model", "Qwen/Qwen2.5-14B-Instruct-AWQ", "--card", "4090"]) == 0
    capsys.readouterr()
    assert commands.main(["set", "awq", "quantization=awq"]) == 0
    out = capsys.readouterr().out
    assert "[awq-marlin] warning" in out and "fix: write quantization: awq_marlin" in out
    assert commands.main(["set", "awq", "quantization=awq_marlin"]) == 0
    out = capsys.readouterr().out
    assert "FITS" in out and "[awq-marlin]" not in out
