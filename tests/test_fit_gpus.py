"""`--gpu` means the GPUs given: a count is exact, only a bare card stands for "as many as the profile uses" (and
the check says it assumed so); messages about a rig given on the command line do not call it "this machine"."""

from __future__ import annotations

import json
import subprocess
import sys

from appliance import cards
from appliance.gpu_arg import parse_gpu_arg, parse_gpu_arg_noted

from conftest import REPO


def check(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "appliance", "check", *args], capture_output=True, text=True,
                          cwd=REPO)


def test_an_explicit_count_of_one_is_one_gpu():
    assert len(parse_gpu_arg("1x3090", needed=4)) == 1
    assert len(parse_gpu_arg("3090x1", needed=4)) == 1
    gpus, note = parse_gpu_arg_noted("3090", needed=4)
    assert len(gpus) == 4 and note == "assuming 4 × RTX 3090, as the profile uses"
    assert parse_gpu_arg_noted("3090x4", needed=4)[1] is None
    assert parse_gpu_arg_noted("3090", needed=1)[1] is None  # nothing assumed: the profile uses one


def test_one_3090_does_not_fit_a_four_gpu_profile():
    out = check("rtx3090x4-two-tier", "--gpu", "1x3090", "--json")
    assert out.returncode == 1, out.stdout
    data = json.loads(out.stdout)
    assert data["fits"] is False and len(data["gpus"]) <= 1 and data["problems"]
    assert not any("this machine" in p for p in data["problems"])
    assert any("--gpu 1x3090 gives 1 GPU(s)" in p for p in data["problems"])


def test_two_3090s_are_the_given_rig_not_this_machine():
    out = check("rtx3090x4-two-tier", "--gpu", "2x3090")
    assert out.returncode == 1
    assert "this machine" not in out.stdout and "--gpu 2x3090 gives 2 GPU(s) (0–1)" in out.stdout


def test_a_bare_card_says_what_it_assumed():
    out = check("rtx3090x4-two-tier", "--gpu", "3090")
    assert out.returncode == 0, out.stdout
    assert "GPUs from --gpu 3090 (assuming 4 × RTX 3090, as the profile uses)" in out.stdout


def test_profiles_with_one_gpu_do_not_show_four_gpu_profiles_as_fitting():
    out = subprocess.run([sys.executable, "-m", "appliance", "profiles", "--gpu", "1x3090", "--json"],
                         capture_output=True, text=True, cwd=REPO)
    rows = {r["name"]: r for r in json.loads(out.stdout)}
    assert rows["rtx3090x4-two-tier"]["fit"] == "does not fit"


def test_card_memory_from_the_table_is_not_called_measured():
    out = check("rtx4090-llama31-8b-chat", "--gpu", "4090", "--json")
    e = json.loads(out.stdout)["engines"][0]
    assert e["inputs"]["card_memory"] == cards.PUBLISHED
    assert "measured" not in e["inputs"]["card_memory"]
