"""What runs, not what the files say now (issue #13, a new user's trial): settings.yaml edited while the rig
runs is not applied to the running front door, so `status`, `endpoint` and the dashboard's warnings show the
routes the door serves and say that `appliance restore` applies the edit; a power limit back at its original is
nothing to warn about."""

from __future__ import annotations

import contextlib
import io

import pytest

from appliance.settings import settings_file
from appliance.stack.front_door import DRIFT

from rigutil import apply_env, rig_env, running_rig, write_profiles


@pytest.mark.proxy
def test_settings_edited_while_the_door_runs_are_shown_as_not_applied(tmp_path, litellm_bin):
    from types import SimpleNamespace

    from appliance.cli.agents import cmd_endpoint
    from appliance.telemetry import Sampler

    with running_rig(tmp_path) as stack:
        assert stack.front_door.running_plan()[1] is None  # nothing edited: no warning
        assert DRIFT not in stack.warnings()
        before = stack.front_door.running_plan()[0]
        assert before.reaches_hosted("local") and not before.local_only
        settings_file().parent.mkdir(parents=True, exist_ok=True)
        settings_file().write_text("local_only: true\n")
        pl, drift = stack.front_door.running_plan()
        assert drift == DRIFT and not pl.local_only and pl.reaches_hosted("local")  # the door still falls back
        assert stack.front_door.plan().local_only  # what the next up/restore renders
        assert DRIFT in stack.warnings()
        sampler = Sampler(stack)
        try:
            snap = sampler.sample()
        finally:
            sampler.close()
        assert DRIFT in snap.warnings and snap.proxy is not None and not snap.proxy.local_only
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            cmd_endpoint(SimpleNamespace(sim=True, runtime="process", json=False))
        text = out.getvalue()
        assert "local only" not in text and "hosted hosted-mini" in text and DRIFT in text
        stack.front_door.ensure(None)  # what `appliance restore` does to the door
        pl, drift = stack.front_door.running_plan()
        assert drift is None and pl.local_only and DRIFT not in stack.warnings()


def test_a_power_limit_back_at_its_original_is_no_warning(tmp_path, monkeypatch):
    """An earlier run saved the original (450 W) and died; the limit is 450 W now: nothing differs."""
    from appliance.profile import load_profile
    from appliance.rig import simulated_rig
    from appliance.stack import Stack

    write_profiles(tmp_path / "profiles")
    apply_env(monkeypatch, rig_env(tmp_path))
    rig = simulated_rig(runtime="process")
    stack = Stack(rig)
    rig.gpu_source.prepare(rig, load_profile("alpha"), False, stack.emit)
    assert rig.gpus().read(0).power_limit_w == 450
    rig.state.update(power_saved={0: 450.0})
    again = Stack(simulated_rig(runtime="process"))
    assert not [w for w in again.warnings() if "power limits" in w]
    stack.power.apply(load_profile("alpha"))  # 300 W now: that one differs
    assert [w for w in Stack(simulated_rig(runtime="process")).warnings()
            if "power limits changed by an earlier run are still applied (originals: GPU 0: 450 W)" in w]


@pytest.mark.proxy
def test_cli_switch_prints_the_route_changes(tmp_path, litellm_bin):
    """The TUI's switch dialog says what a switch changes about the routes; the CLI said nothing."""
    import json
    import os
    import subprocess
    import sys

    with running_rig(tmp_path):
        run = subprocess.run([sys.executable, "-m", "appliance", "switch", "beta", "--sim", "--runtime", "process",
                              "--json"], capture_output=True, text=True, env=dict(os.environ), timeout=300,
                             stdin=subprocess.DEVNULL)
        assert run.returncode == 0, run.stderr
        out = json.loads(run.stdout)
        assert out["route_changes"] == ["local: answered by engine main (Qwen/Qwen2.5-7B-Instruct-AWQ) → engine main "
                                        "(Qwen/Qwen2.5-14B-Instruct-AWQ)"], out
        assert "routes: local: answered by engine main" in run.stderr
        run = subprocess.run([sys.executable, "-m", "appliance", "switch", "beta", "--sim", "--runtime", "process"],
                             capture_output=True, text=True, env=dict(os.environ), timeout=300,
                             stdin=subprocess.DEVNULL)
        assert run.returncode == 0 and "\nroutes unchanged\n" in run.stdout, run.stdout + run.stderr


@pytest.mark.proxy
def test_doctor_does_not_call_a_rig_with_a_hung_engine_fine(tmp_path, litellm_bin):
    """SIGSTOP: the engine accepts TCP and never answers; `status` says hung, `doctor --dry-run` said `state: fine`."""
    import os
    import signal
    import subprocess
    import sys

    with running_rig(tmp_path) as stack:
        pid = [s for s in stack.rig.runtime.states("appliance-alpha")][0].pid
        os.kill(pid, signal.SIGSTOP)
        try:
            run = subprocess.run([sys.executable, "-m", "appliance", "doctor", "--dry-run", "--sim", "--runtime",
                                  "process"], capture_output=True, text=True, env=dict(os.environ), timeout=120,
                                 stdin=subprocess.DEVNULL)
        finally:
            os.kill(pid, signal.SIGCONT)
        assert run.returncode == 1, run.stdout + run.stderr
        assert "engine main: hung — not healthy" in run.stdout, run.stdout


@pytest.mark.parametrize("profile,warned", [("rtx4090-llama31-8b-chat", True), ("rtx4090-qwen25-14b-agent", False)])
def test_endpoint_warns_when_claude_codes_alias_cannot_call_tools(tmp_path, profile, warned):
    """Claude Code always sends tools; an engine without a tool-call parser answers each of its requests 400."""
    import json
    import os
    import subprocess
    import sys

    home = tmp_path / "home"
    f = home / "state" / "sim" / "state.json"
    f.parent.mkdir(parents=True)
    f.write_text(json.dumps({"active": profile, "last_good": profile,
                             "proxy": {"host": "127.0.0.1", "port": 4000, "litellm_port": 4001}}))
    env = {k: v for k, v in os.environ.items() if not k.startswith("APPLIANCE_")}
    env.update(APPLIANCE_HOME=str(home), LITELLM_LOCAL_MODEL_COST_MAP="True")

    def run(*extra):
        return subprocess.run([sys.executable, "-m", "appliance", "endpoint", *extra, "--sim", "--runtime",
                               "process"], capture_output=True, text=True, env=env, timeout=120,
                              stdin=subprocess.DEVNULL)

    text, js = run(), run("--json")
    assert text.returncode == 0 and js.returncode == 0, text.stderr + js.stderr
    said = [w for w in json.loads(js.stdout)["warnings"] if "no tool-call parser" in w]
    assert bool(said) == warned and ("# ! local (engine" in text.stdout) == warned, text.stdout
    if warned:
        assert "tool_call_parser" in said[0] and "Claude Code always sends tools" in said[0]
    # `endpoint --help` lists the --json keys: the list is what --json prints (it said three stale ones)
    import re

    from appliance.cli.parser import build_parser

    sub = next(a for a in build_parser()._actions if a.dest == "command" or getattr(a, "choices", None)
               and "endpoint" in (a.choices or {}))
    flag = next(a for a in sub.choices["endpoint"]._actions if "--json" in a.option_strings)
    listed = set(re.sub(r"\([^)]*\)", "", flag.help.split("keys:", 1)[1]).replace(" ", "").split(","))
    assert listed == set(json.loads(js.stdout)), (listed, set(json.loads(js.stdout)))
