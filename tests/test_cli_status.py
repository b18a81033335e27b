"""`appliance status` and `doctor` say the truth (issue #13, a new user's trial): a state.json that reads fine but
names a profile whose engines are gone is not trusted; `status --json` prints JSON even when the state cannot be
read; the text status shows today's hosted spend per alias with its unit."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from appliance.errors import RuntimeBoundaryError
from appliance.runtime.base import ServiceState
from appliance.stack.state import ProfileRef, RigState

PROFILE = "rtx4090-qwen25-14b-agent"


def _cli(args: list[str], home: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("APPLIANCE_")}
    env.update(APPLIANCE_HOME=str(home), LITELLM_LOCAL_MODEL_COST_MAP="True")
    return subprocess.run([sys.executable, "-m", "appliance", *args, "--sim", "--runtime", "process"],
                          capture_output=True, text=True, env=env, timeout=120, stdin=subprocess.DEVNULL)


def _state(home: Path, text: str) -> Path:
    f = home / "state" / "sim" / "state.json"
    f.parent.mkdir(parents=True)
    f.write_text(text)
    return f


STALE = json.dumps({"active": PROFILE, "last_good": PROFILE,
                    "proxy": {"host": "127.0.0.1", "port": 4000, "litellm_port": 4001}})


def test_status_does_not_trust_a_state_whose_engines_are_gone(tmp_path):
    home = tmp_path / "home"
    _state(home, STALE)  # the stack was stopped behind the appliance's back: nothing runs
    out = _cli(["status", "--window", "0.2"], home)
    assert out.returncode == 0, out.stderr
    head = out.stdout.splitlines()[0]
    assert f"profile {PROFILE} — NOT RUNNING" in head, out.stdout
    assert out.stdout.count(f"`appliance up {PROFILE}`") == 1 and "`appliance down`" in out.stdout
    assert "`appliance restore`" in out.stdout  # it brings the engines back as they were set
    js = _cli(["status", "--json", "--window", "0.2"], home)
    data = json.loads(js.stdout)
    assert any("not running" in w for w in data["warnings"])  # the TUI shows the sampler's warnings too
    assert data["ok"] is False and PROFILE in data["state_problem"] and "not running" in data["state_problem"]
    doc = _cli(["doctor"], home)
    assert doc.returncode == 1 and "STALE" in doc.stdout and f"appliance up {PROFILE}" in doc.stdout, doc.stdout
    assert "`appliance restore`" in doc.stdout


def test_status_json_prints_json_when_the_state_is_unreadable(tmp_path):
    home = tmp_path / "home"
    f = _state(home, '{"active": "rtx40')
    out = _cli(["status", "--json"], home)
    assert out.returncode == 1
    data = json.loads(out.stdout)  # valid JSON on stdout, whatever happened
    assert data["ok"] is False and str(f) in data["error"] and "appliance doctor" in data["hint"]
    assert out.stderr.startswith("error: ") and "appliance doctor" in out.stderr and "Traceback" not in out.stderr


class _Rig:
    def __init__(self, state: RigState, states=None, error: bool = False):
        self.state = SimpleNamespace(load=lambda: state)
        self._states, self._error = states or [], error
        self.runtime = SimpleNamespace(states=self._read)

    def _read(self, project):
        if self._error:
            raise RuntimeBoundaryError("docker is not running", "start it")
        assert project == "appliance-" + PROFILE
        return self._states


@pytest.mark.parametrize("states,starting,error,stale", [
    ([ServiceState("main", "running")], None, False, False),  # the truth
    ([ServiceState("main", "exited", exit_code=137)], None, False, True),  # containers left, stopped
    ([], None, False, True),  # containers gone
    ([], PROFILE, False, False),  # a start under way: its engines may not exist yet
    ([], None, True, False),  # the runtime cannot be asked: status shows that, not a guess
])
def test_stale_active(states, starting, error, stale):
    from appliance.doctor import stale_active

    rig = _Rig(RigState(active=ProfileRef(PROFILE), starting=starting), states, error)
    said = stale_active(rig)
    assert bool(said) == stale, said
    assert stale_active(_Rig(RigState())) is None  # nothing recorded as active: nothing to doubt


def test_status_text_shows_spend_per_alias_with_its_unit(capsys, tmp_path):
    from appliance.cli.agents import print_routes
    from appliance.profile import load_profile
    from appliance.render.plan import plan

    p = load_profile("rtx3090x4-two-tier")
    print_routes(plan(p), p, {"local-smart": 0.01234, "claude": 0.5, "gone-alias": 0.25}, with_spend=True)
    rows = {line.split()[1]: line for line in capsys.readouterr().out.splitlines()[2:] if line.startswith("#   ")}
    assert rows["local-smart"].endswith("$0.0123") and rows["claude"].endswith("$0.5000")
    assert rows["local-fast"].endswith("$0.0000")  # reaches a hosted model, nothing spent yet
    assert "(not served now)" in rows["gone-alias"] and rows["gone-alias"].endswith("$0.2500")
    print_routes(plan(p), p, None, with_spend=True)
    out = capsys.readouterr().out
    assert "hosted spend today: unknown" in out and "$" not in out
    b = load_profile(PROFILE)
    from appliance.settings import load_settings

    f = tmp_path / "settings.yaml"
    f.write_text("local_only: true\n")
    print_routes(plan(b, load_settings(f)), b, {}, with_spend=True)
    out = capsys.readouterr().out
    assert "local only" in out and "– (local)" in out and "hosted spend today: $0.0000 in all (USD" in out
