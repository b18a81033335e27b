"""The editing core behind `appliance new/set/edit` and the TUI editor: a user's comments, key order and layout
survive every change; a bad value is refused with the file untouched; shipped profiles are never written."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from appliance import catalog, paths
from appliance.editing import benchinfo, create, edit, live, roundtrip, store
from appliance.errors import ProfileError

USER_PROFILE = """\
# my rig: the 14B agent model, tuned by hand
name: mine
description: my agent box   # shown in `appliance profiles`
card: "4090"
gpus: [0]
power_limit_w: 300      # found with appliance bench
engines:
  - name: agent
    aliases: [local, coder]
    # keep the port fixed: my agents point at it
    port: 8000
    model: Qwen/Qwen2.5-14B-Instruct-AWQ
    quantization: awq
    max_model_len: 16384
    kv_cache_dtype: fp8     # twice the tokens
    max_num_seqs: 16
    gpu_memory_utilization: 0.92
proxy:
  port: 4000
"""


@pytest.fixture
def mine() -> Path:
    d = paths.user_profiles_dir()
    d.mkdir(parents=True)
    p = d / "mine.yaml"
    p.write_text(USER_PROFILE)
    return p


def changed_lines(before: str, after: str) -> list[tuple[str, str]]:
    a, b = before.splitlines(), after.splitlines()
    assert len(a) == len(b), "a value change must not add or drop lines"
    return [(x, y) for x, y in zip(a, b) if x != y]


def test_set_keeps_comments_key_order_and_reports_the_new_fit(mine):
    before_fit = live.fit_for(store.validate_text(USER_PROFILE, mine)).engines[0]
    r = store.set_values("mine", ["max_model_len=32768", "kv_cache_dtype=auto", "engines.agent.max_num_seqs=4"])
    after = mine.read_text()
    # exactly three lines changed, each keeping its trailing comment (in its column); the rest byte for byte
    assert changed_lines(USER_PROFILE, after) == [
        ("    max_model_len: 16384", "    max_model_len: 32768"),
        ("    kv_cache_dtype: fp8     # twice the tokens", "    kv_cache_dtype: auto    # twice the tokens"),  # comment column kept
        ("    max_num_seqs: 16", "    max_num_seqs: 4")]
    assert r.changes[0] == ("engines.0.max_model_len", 16384, 32768)
    assert r.copied_from is None
    fit = live.fit_for(r.profile).engines[0]
    assert fit.max_model_len == 32768 and fit.kv_dtype == "auto"
    assert fit.kv_tokens < before_fit.kv_tokens  # bf16 KV holds about half the tokens of fp8
    text = "\n".join(live.summary(live.fit_for(r.profile)))
    assert "32,768" in text and ("FITS" in text)
    # the previous version is kept
    assert [h.read_text() for h in store.history(mine)] == [USER_PROFILE]


def test_set_adds_and_removes_keys_and_keeps_quoting(mine):
    store.set_values("mine", ["speculative_config={method: ngram, num_speculative_tokens: 3, prompt_lookup_max: 4}",
                              "card=3090", "power_limit_w=null"])
    after = mine.read_text()
    assert 'card: "3090"' in after  # quoted like the owner quoted it
    assert "power_limit_w" not in after and "# found with appliance bench" not in after
    assert "    speculative_config: {method: ngram, num_speculative_tokens: 3, prompt_lookup_max: 4}\n" in after
    assert after.startswith("# my rig: the 14B agent model, tuned by hand\n")
    assert "    # keep the port fixed: my agents point at it\n" in after


@pytest.mark.parametrize("assignment, field, fix", [
    ("kv_cache_dtype=fp9", "fp9", "did you mean `fp8`?"),
    ("max_model_len=-5", "max_model_len", None),
    ("gpu_memory_utilization=1.5", "gpu_memory_utilization", None),
    ("engines.0.max_model_len=100000", "max_model_len 100000", "lower it to 32768"),
    ("power_limit_w=5000", "power_limit_w: 5000", "between 50 and 1000"),
])
def test_set_refuses_a_bad_value_and_leaves_the_file_byte_identical(mine, assignment, field, fix):
    before = mine.read_bytes()
    mtime = mine.stat().st_mtime_ns
    with pytest.raises(ProfileError) as exc:
        store.set_values("mine", [assignment])
    msg = str(exc.value)
    assert str(mine) in msg and field in msg and "is unchanged" in msg
    if fix:
        assert fix in msg
    assert mine.read_bytes() == before and mine.stat().st_mtime_ns == mtime
    assert store.history(mine) == []


def test_set_on_a_shipped_profile_writes_a_user_copy_only(monkeypatch):
    shipped = paths.SHIPPED_PROFILES_DIR / "rtx4090-qwen25-14b-agent.yaml"
    before = shipped.read_bytes()
    with pytest.raises(ProfileError):
        store.set_values("rtx4090-qwen25-14b-agent", ["kv_cache_dtype=nope"])
    assert not (paths.user_profiles_dir() / shipped.name).exists()  # a refused change copies nothing
    r = store.set_values("rtx4090-qwen25-14b-agent", ["max_model_len=8192"])
    assert r.copied_from == shipped and r.path == paths.user_profiles_dir() / shipped.name
    assert shipped.read_bytes() == before
    from appliance.profile import load_profile, resolve

    assert resolve("rtx4090-qwen25-14b-agent") == r.path  # the copy takes precedence
    assert load_profile("rtx4090-qwen25-14b-agent").engines[0].max_model_len == 8192
    copy = r.path.read_text()
    assert copy.startswith("# Your copy of the shipped profile")
    assert before.decode().replace("max_model_len: 16384", "max_model_len: 8192") in copy
    with pytest.raises(ProfileError, match="read-only"):
        store.save_text(shipped, before.decode())
    with pytest.raises(ProfileError, match="shipped"):
        store.delete(shipped)


def test_shipped_profiles_round_trip_byte_for_byte():
    for f in sorted(paths.SHIPPED_PROFILES_DIR.glob("*.yaml")):
        text = f.read_text()
        assert roundtrip.render(text, roundtrip.load(text)) == text, f.name


def test_change_inside_a_reflowed_flow_mapping_still_keeps_comments():
    text = (paths.SHIPPED_PROFILES_DIR / "rtx3090x4-qwen35-27b.yaml").read_text()
    data = roundtrip.load(text)
    data["engines"][0]["override_generation_config"]["temperature"] = 0.7
    out = roundtrip.render(text, data)
    assert "temperature: 0.7" in out
    assert out.splitlines()[:10] == text.splitlines()[:10]  # the header comment block
    import yaml

    assert yaml.safe_load(out)["engines"][0]["override_generation_config"]["top_k"] == 20


def test_new_from_a_shipped_profile():
    p = create.new_profile("agent2", from_profile="rtx4090-qwen25-14b-agent")
    assert p == paths.user_profiles_dir() / "agent2.yaml"
    text = p.read_text()
    assert text.startswith("# agent2: made from rtx4090-qwen25-14b-agent")
    assert "\nname: agent2\n" in text and "# The RTX 4090 agent workhorse" in text
    from appliance.profile import load_profile

    assert load_profile("agent2").engines[0].model == "Qwen/Qwen2.5-14B-Instruct-AWQ"
    with pytest.raises(ProfileError, match="exists already"):
        create.new_profile("agent2", from_profile="rtx4090-qwen25-14b-agent")
    with pytest.raises(ProfileError, match="exists already"):
        create.new_profile("rtx3090x4-two-tier", model="Qwen/Qwen2.5-7B-Instruct-AWQ")
    with pytest.raises(ProfileError, match="cannot be a profile name"):
        create.new_profile("Bad Name", from_profile="agent2")


def test_new_from_a_catalog_model_is_sized_to_fit():
    p = create.new_profile("big", model="Qwen/Qwen2.5-32B-Instruct-AWQ", card="4090")
    text = p.read_text()
    assert text.startswith("# big: Qwen/Qwen2.5-32B-Instruct-AWQ on 1 × 4090")
    profile = store.validate_text(text, p)
    e = profile.engines[0]
    assert e.quantization == "awq" and profile.card == "4090"
    assert e.max_model_len < 32768  # lowered from the start value until one request of it fits
    assert live.fit_for(profile).fits
    small = store.validate_text(create.new_profile("small", model="Qwen/Qwen2.5-7B-Instruct-AWQ").read_text(), p)
    assert small.engines[0].max_model_len == 32768
    with pytest.raises(ProfileError, match="nothing is known about model `acme/unknown-7b`") as exc:
        create.new_profile("x", model="acme/unknown-7b")
    assert "models.yaml" in exc.value.hint
    assert not store.user_path("x").exists()
    # a family name the fit knows is not a model vLLM can download: refused, not written (found by a trial:
    # `new --model deepseek-r1-distill-qwen-32b` wrote a profile whose engine could never start)
    assert catalog.lookup("deepseek-r1-distill-qwen-32b") is not None
    with pytest.raises(ProfileError, match="not a Hugging Face id") as exc:
        create.new_profile("y", model="deepseek-r1-distill-qwen-32b")
    assert "deepseek-ai/DeepSeek-R1-Distill-Qwen-32B" in exc.value.hint
    assert not store.user_path("y").exists()
    fam = store.validate_text(create.new_profile("fam", model="deepseek-ai/DeepSeek-R1-Distill-Qwen-32B",
                                                 card="4090").read_text(), p)
    assert fam.engines[0].model == "deepseek-ai/DeepSeek-R1-Distill-Qwen-32B"


def test_new_from_a_local_model_folder(tmp_path):
    import json

    folder = tmp_path / "my-model"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({
        "model_type": "llama", "num_hidden_layers": 16, "num_attention_heads": 32, "num_key_value_heads": 8,
        "hidden_size": 2048, "intermediate_size": 8192, "vocab_size": 128256, "max_position_embeddings": 8192}))
    p = create.new_profile("local", model=str(folder), card="3090")
    profile = store.validate_text(p.read_text(), p)
    assert profile.engines[0].model == str(folder) and profile.engines[0].max_model_len == 8192


EDITOR = """#!/bin/sh
# round 1 writes a bad value, round 2 a good one; each round's view is kept for the test
n=$(cat "$EDIT_COUNT" 2>/dev/null || echo 0); n=$((n + 1)); echo "$n" > "$EDIT_COUNT"
cp "$1" "$EDIT_SEEN.$n"
case "$n" in
  1) sed -i 's/kv_cache_dtype: fp8 /kv_cache_dtype: fp9 /' "$1" ;;
  2) sed -i 's/kv_cache_dtype: fp9 /kv_cache_dtype: fp8_e5m2 /' "$1" ;;
esac
"""


def scripted_editor(tmp_path, monkeypatch, script: str = EDITOR) -> Path:
    ed = tmp_path / "editor.sh"
    ed.write_text(script)
    ed.chmod(ed.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("EDITOR", str(ed))
    monkeypatch.delenv("VISUAL", raising=False)
    monkeypatch.setenv("EDIT_COUNT", str(tmp_path / "count"))
    monkeypatch.setenv("EDIT_SEEN", str(tmp_path / "seen"))
    return tmp_path / "seen"


def test_edit_reopens_once_with_the_error_as_a_comment(mine, tmp_path, monkeypatch):
    seen = scripted_editor(tmp_path, monkeypatch)
    r = edit.edit("mine")
    assert r.rounds == 2 and r.changed and r.path == mine
    first, second = Path(f"{seen}.1").read_text(), Path(f"{seen}.2").read_text()
    assert first == USER_PROFILE
    block = [ln for ln in second.splitlines() if ln.startswith(edit.MARK)]
    assert block and "did not load" in block[0]
    assert any("`fp9` is not a KV cache dtype" in ln for ln in block)
    assert any("did you mean `fp8`?" in ln for ln in block)
    # the line number in the comment points at the bad line as the editor shows it
    line_no = int(next(ln for ln in block if "fp9" in ln).split("line ", 1)[1].split(":", 1)[0])
    assert "kv_cache_dtype: fp9" in second.splitlines()[line_no - 1]
    saved = mine.read_text()
    assert edit.MARK not in saved
    assert changed_lines(USER_PROFILE, saved) == [("    kv_cache_dtype: fp8     # twice the tokens",
                                                  "    kv_cache_dtype: fp8_e5m2     # twice the tokens")]
    assert not Path(f"{seen}.3").exists()


def test_edit_cancelled_leaves_the_profile_untouched(mine, tmp_path, monkeypatch):
    script = EDITOR.replace("2) sed -i 's/kv_cache_dtype: fp9 /kv_cache_dtype: fp8_e5m2 /' \"$1\" ;;", "")
    scripted_editor(tmp_path, monkeypatch, script)
    with pytest.raises(ProfileError, match="cancelled") as exc:
        edit.edit("mine")
    assert mine.read_text() == USER_PROFILE
    kept = Path(exc.value.hint.split(" in ", 1)[1])
    assert "fp9" in kept.read_text()
    from appliance.profile import available_names

    assert available_names().count("mine") == 1 and all(".rejected" not in n for n in available_names())


def test_edit_without_changes_and_of_a_shipped_profile(tmp_path, monkeypatch):
    scripted_editor(tmp_path, monkeypatch, "#!/bin/sh\nexit 0\n")
    r = edit.edit("rtx4090-llama31-8b-chat")
    assert not r.changed and r.rounds == 1 and r.copied_from is not None
    assert r.path.parent == paths.user_profiles_dir()
    assert not r.path.exists()  # closed without a change: no copy that would hide the shipped profile
    scripted_editor(tmp_path, monkeypatch, "#!/bin/sh\nsed -i 's/max_num_seqs: [0-9]*/max_num_seqs: 3/' \"$1\"\n")
    r = edit.edit("rtx4090-llama31-8b-chat")
    assert r.changed and r.path.read_text().startswith("# Your copy of the shipped profile")
    assert "max_num_seqs: 3" in r.path.read_text()
    scripted_editor(tmp_path, monkeypatch, "#!/bin/sh\nexit 3\n")
    with pytest.raises(ProfileError, match="exited with status 3"):
        edit.edit("rtx4090-llama31-8b-chat")


def test_delete_and_restore(mine):
    store.set_values("mine", ["max_num_seqs=2"])
    store.delete("mine")
    assert not mine.exists()
    with pytest.raises(ProfileError, match="no profile called `mine`"):
        store.set_values("mine", ["max_num_seqs=3"])
    versions = store.history(mine)
    assert len(versions) == 2 and "max_num_seqs: 2" in versions[-1].read_text()
    store.restore(mine)
    assert "max_num_seqs: 2" in mine.read_text()
    assert os.stat(mine).st_size > 0


def test_live_fit_maps_errors_to_fields_and_diffs_against_the_saved_file(mine):
    data = roundtrip.load(USER_PROFILE)
    data["engines"][0]["max_model_len"] = -1
    data["engines"][0]["kv_cache_dtype"] = "fp9"
    lf = live.live_fit(data, USER_PROFILE, mine)
    assert not lf.ok and lf.report is None
    assert "engines.0.kv_cache_dtype" in lf.field_errors or "engines.0.max_model_len" in lf.field_errors
    data["engines"][0]["max_model_len"] = 8192
    lf = live.live_fit(data, USER_PROFILE, mine)
    assert "fp9" in lf.field_errors["engines.0.kv_cache_dtype"]
    data["engines"][0]["kv_cache_dtype"] = "fp8"
    lf = live.live_fit(data, USER_PROFILE, mine)
    assert lf.ok and lf.report.fits and lf.field_errors == {}
    assert "-    max_model_len: 16384" in lf.diff and "+    max_model_len: 8192" in lf.diff
    assert mine.read_text() == USER_PROFILE  # nothing written


def test_measured_numbers_of_a_recorded_bench(mine):
    from appliance import bench

    def cell(w, c, tps, tpj):
        return bench.Cell(w, c, 30, 10, 0, tps, 100, tps / c, tps / c, 0.2, 0.3, 0.02, {"0": w}, w, w * 30, tpj,
                          None, 0.5, "counters")

    run = bench.BenchRun("20261129-1200", 0, "mine", "agent", "Qwen/Qwen2.5-14B-Instruct-AWQ", ["RTX 4090"], {}, {},
                         [cell(250, 4, 120, 0.50), cell(300, 4, 140, 0.47), cell(300, 1, 50, 0.2)])
    run.recommendation = bench.recommend(run)
    bench.save(run)
    m = benchinfo.measured(store.validate_text(USER_PROFILE, mine))
    assert m.exact and m.power_limit_w == 300 and m.concurrency == 4 and m.gen_tps == 140
    assert "0.470 tok/J" in m.text() and "300 W" in m.text()
    store.set_values("mine", ["power_limit_w=260"])
    m = benchinfo.measured(store.validate_text(mine.read_text(), mine))
    assert not m.exact and m.power_limit_w == 250 and "nearest measured" in m.text()
