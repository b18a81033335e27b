"""`appliance --sim` (a new user's first try): the bare command opens the simulated rig's dashboard; before a rig
command the option applies to it; where it means nothing the CLI says so instead of ignoring it."""

from __future__ import annotations

import sys

import pytest

import appliance.cli as cli
import appliance.cli.parser as parser_mod


@pytest.fixture
def calls(monkeypatch):
    """Every command function replaced by a recorder of the args it was called with."""
    seen: list = []

    def recorder():  # one function per command: main tells the dashboard's apart by identity
        def record(args):
            seen.append(args)
            return 0
        return record

    for name in ("cmd_status", "cmd_up", "cmd_render", "cmd_check", "cmd_demo"):
        monkeypatch.setattr(parser_mod, name, recorder())
    tui = recorder()
    monkeypatch.setattr(parser_mod, "cmd_tui", tui)
    monkeypatch.setattr(cli, "cmd_tui", tui)
    return seen


def on_terminal(monkeypatch, yes: bool = True) -> None:
    monkeypatch.setattr(sys.stdout, "isatty", lambda: yes)
    monkeypatch.setattr(sys.stdin, "isatty", lambda: yes)


def test_bare_sim_opens_the_simulated_dashboard(calls, monkeypatch):
    on_terminal(monkeypatch)
    assert cli.main(["--sim"]) == 0
    assert calls[-1].sim is True and calls[-1].runtime is None
    assert cli.main(["--sim", "--runtime", "process"]) == 0
    assert calls[-1].sim is True and calls[-1].runtime == "process"
    assert cli.main([]) == 0
    assert calls[-1].sim is None  # the remembered rig


def test_sim_before_a_rig_command_applies_to_it_and_the_commands_own_wins(calls, monkeypatch):
    on_terminal(monkeypatch)
    assert cli.main(["--sim", "tui"]) == 0 and calls[-1].sim is True
    assert cli.main(["--sim", "status", "--json"]) == 0 and calls[-1].sim is True and calls[-1].json
    assert cli.main(["--sim", "--runtime", "process", "up", "p"]) == 0
    assert (calls[-1].sim, calls[-1].runtime) == (True, "process")
    assert cli.main(["--sim", "up", "p", "--runtime", "docker"]) == 0
    assert (calls[-1].sim, calls[-1].runtime) == (True, "docker")
    assert cli.main(["--real", "status"]) == 0 and calls[-1].sim is False
    assert cli.main(["--sim", "render", "--all"]) == 0 and calls[-1].sim is True
    assert cli.main(["--sim", "demo"]) == 0  # always simulated


def test_sim_where_it_means_nothing_is_refused_with_the_fix(calls, monkeypatch, capsys):
    on_terminal(monkeypatch)
    assert cli.main(["--sim", "check", "p"]) == 2
    err = capsys.readouterr().err
    assert "`check` takes no --sim" in err and "fix: leave --sim out" in err
    assert cli.main(["--runtime", "process", "render", "--all"]) == 2
    assert "takes no --runtime" in capsys.readouterr().err
    assert not calls


def test_bare_sim_off_a_terminal_says_the_dashboard_needs_one(calls, monkeypatch, capsys):
    on_terminal(monkeypatch, False)
    assert cli.main(["--sim"]) == 2
    err = capsys.readouterr().err
    assert "needs a terminal" in err and "appliance status --sim" in err
    assert cli.main([]) == 0 and "usage: appliance" in capsys.readouterr().out  # plain: the help, as before
    assert not calls


def test_help_names_the_top_level_sim():
    out = " ".join(parser_mod.build_parser().format_help().split())
    assert "--sim" in out and "`appliance --sim` opens its dashboard" in out
    assert "appliance --sim" in parser_mod.EPILOG
