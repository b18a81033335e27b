"""A damaged state file is a loud, explained error (exit 1, never a traceback, never a silent reset); the owner's
original power limits survive it in their own file; `appliance doctor` rebuilds the record from the live rig."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from appliance.stack.state import ProxyRecord, StateError, StateStore

GOOD = {"active": "alpha", "active_file": None, "last_good": "alpha", "last_good_file": None, "lan": False,
        "power_saved": {"0": 350.0}, "previous": None, "proxy": {"host": "127.0.0.1", "litellm_port": 4001,
                                                                 "port": 4000, "socket": None},
        "routed": None, "routed_file": None, "starting": None}
CORRUPT = {
    "empty": b"",
    "truncated": json.dumps(GOOD).encode()[:40],
    "not-json": b"hello",
    "list": b"[1, 2]",
    "null": b"null",
    "string": b'"alpha"',
    "non-utf8": b'{"active": "\xff\xfe"}',
    "deep": b"[" * 100000 + b"]" * 100000,
    "bad-port": json.dumps({**GOOD, "proxy": {"host": "127.0.0.1", "port": "4000"}}).encode(),
    "bad-watts": json.dumps({**GOOD, "power_saved": {"0": "lots"}}).encode(),
    "nan-watts": b'{"power_saved": {"0": NaN}}',
    "bad-gpu": json.dumps({**GOOD, "power_saved": {"x": 300}}).encode(),
    "bad-lan": json.dumps({**GOOD, "lan": "yes"}).encode(),
    "bad-active": json.dumps({**GOOD, "active": 7}).encode(),
    "proxy-list": json.dumps({**GOOD, "proxy": [1]}).encode(),
}


@pytest.mark.parametrize("kind", CORRUPT)
def test_corrupt_state_is_an_explained_error(kind, tmp_path):
    store = StateStore(tmp_path / "state.json")
    store.path.write_bytes(CORRUPT[kind])
    with pytest.raises(StateError) as exc:
        store.load()
    assert str(store.path) in exc.value.message and "appliance doctor" in exc.value.hint
    assert exc.value.exit_code == 1
    assert store.path.read_bytes() == CORRUPT[kind]  # nothing was reset


def test_good_state_round_trips(tmp_path):
    store = StateStore(tmp_path / "state.json")
    store.path.write_text(json.dumps(GOOD))
    st = store.load()
    assert st.active.name == "alpha" and st.power_saved == {0: 350.0} and st.proxy.port == 4000


def test_originals_survive_a_lost_state_file(tmp_path):
    store = StateStore(tmp_path / "state.json")
    store.update(power_saved={0: 350.0, 1: 300.0})
    assert json.loads(store.originals_path.read_text()) == {"0": 350.0, "1": 300.0}
    store.path.write_bytes(b"")  # truncated by a crash or a full disk
    with pytest.raises(StateError):
        store.load()
    assert store.originals() == {0: 350.0, 1: 300.0}
    store.path.unlink()  # deleted: the originals are still known
    assert store.load().power_saved == {0: 350.0, 1: 300.0}
    # the first value recorded is the owner's; a later `remember` of the appliance's own limit does not replace it
    store.update(power_saved={0: 200.0, 1: 300.0})
    assert store.originals() == {0: 350.0, 1: 300.0}
    store.update(power_saved={})  # restored
    assert store.originals() == {} and store.load().power_saved == {}


def test_doctor_rebuilds_from_the_live_rig(tmp_path, monkeypatch):
    from appliance.doctor import examine
    from appliance.rig import simulated_rig

    rig = simulated_rig(runtime="process")
    rig.state.update(power_saved={0: 450.0}, proxy=ProxyRecord("127.0.0.1", 4000, 4001))
    rig.state.path.write_bytes(b'{"active": "alph')
    diag = examine(rig)
    assert diag.state_error and "not a valid record" in diag.state_error
    assert diag.kept and Path(diag.kept).read_bytes() == b'{"active": "alph'
    st = rig.state.load()  # readable again
    assert st.power_saved == {0: 450.0} and st.active is None and st.proxy is None
    assert any("rollback" in line for line in diag.lost)
    assert any("450 W" in line for line in diag.recovered)


def _cli(args: list[str], home: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("APPLIANCE_")}
    env.update(APPLIANCE_HOME=str(home), LITELLM_LOCAL_MODEL_COST_MAP="True")
    return subprocess.run([sys.executable, "-m", "appliance", *args], capture_output=True, text=True, env=env,
                          timeout=120, stdin=subprocess.DEVNULL)


@pytest.mark.parametrize("kind", ["empty", "truncated", "non-utf8", "bad-watts"])
@pytest.mark.parametrize("cmd", [["status", "--json"], ["endpoint"], ["down", "--all"],
                                 ["up", "rtx4090-qwen25-14b-agent"]])
def test_commands_refuse_a_corrupt_state(cmd, kind, tmp_path):
    home = tmp_path / "home"
    state = home / "state" / "sim" / "state.json"
    state.parent.mkdir(parents=True)
    state.write_bytes(CORRUPT[kind])
    (state.parent / "power-originals.json").write_text('{"0": 450.0}')
    out = _cli([*cmd, "--sim", "--runtime", "process"], home)
    assert "Traceback" not in out.stderr, out.stderr
    assert out.returncode == 1, (out.returncode, out.stdout, out.stderr)
    assert "appliance doctor" in out.stderr and str(state) in out.stderr
    assert state.read_bytes() == CORRUPT[kind]
    assert json.loads((state.parent / "power-originals.json").read_text()) == {"0": 450.0}


def test_doctor_command(tmp_path):
    home = tmp_path / "home"
    state = home / "state" / "sim" / "state.json"
    state.parent.mkdir(parents=True)
    state.write_bytes(b"")
    out = _cli(["doctor", "--sim", "--runtime", "process"], home)
    assert out.returncode == 0 and "DAMAGED" in out.stdout and "✗" in out.stdout, out.stdout + out.stderr
    again = _cli(["doctor", "--sim", "--runtime", "process"], home)
    assert again.returncode == 0 and "state: fine" in again.stdout
