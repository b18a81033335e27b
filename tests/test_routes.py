"""Per-alias routes and what a switch changes about them (appliance/routes.py): pure, on the shipped profiles and
hand-made settings — aliases that go away or appear, a fallback to a hosted model added or removed, local-only
mode, an engine renamed (not a change), and the same routes ("routes unchanged")."""

from __future__ import annotations

import textwrap

from appliance.profile import load_profile
from appliance.render.plan import plan
from appliance.routes import UNCHANGED, Hop, alias_routes, describe, route_changes, route_text, usd
from appliance.settings import load_settings

from test_agents_plan import CLAUDE, bare


def settings(tmp_path, text: str):
    f = tmp_path / "settings.yaml"
    f.write_text(textwrap.dedent(text))
    return load_settings(f)


def routes(profile, s=None):
    return alias_routes(plan(profile, s), profile)


def test_a_route_is_the_engine_then_its_fallbacks_in_order():
    r = routes(load_profile("rtx3090x4-two-tier"))
    assert r["local-fast"] == (Hop("engine", "fast", "Qwen/Qwen2.5-32B-Instruct-AWQ"), Hop("alias", "local-smart"),
                               Hop("hosted", "claude", "anthropic/claude-sonnet-4-6"))
    assert route_text(r["local-fast"]) == "engine fast → local local-smart → hosted claude"
    assert r["claude"] == (Hop("hosted", "claude", "anthropic/claude-sonnet-4-6"),)  # callable by its name


def test_same_profile_means_routes_unchanged():
    p = load_profile("rtx3090x4-two-tier")
    assert route_changes(routes(p), routes(p)) == []
    assert describe(route_changes(routes(p), routes(p))) == [UNCHANGED]


def test_switch_to_a_profile_without_fallbacks_says_each_hosted_fallback_goes(tmp_path):
    agent = load_profile("rtx4090-qwen25-14b-agent")  # local, coder → openai-mini
    lines = describe(route_changes(routes(agent), routes(bare(tmp_path))))  # bare: chat, local; nothing hosted
    assert lines == [
        "chat: new: engine llama31-8b",
        "coder: gone (was engine qwen25-14b → hosted openai-mini): refused after the switch",
        "local: answered by engine qwen25-14b (Qwen/Qwen2.5-14B-Instruct-AWQ) → "
        "engine llama31-8b (meta-llama/Llama-3.1-8B-Instruct)",
        "local: fallback hosted openai-mini (openai/gpt-4o-mini) → none — stays local",
        "openai-mini: gone (was hosted openai-mini): refused after the switch",
    ]


def test_a_fallback_added_says_it_costs_money(tmp_path):
    b = bare(tmp_path)
    s = settings(tmp_path, f"""\
        hosted: [{CLAUDE}]
        fallbacks: {{local: [claude]}}
        """)
    lines = describe(route_changes(routes(b), routes(b, s)))
    assert "local: fallback none → hosted claude (anthropic/claude-sonnet-4-6) — costs money" in lines
    assert "claude: new: hosted claude — costs money" in lines
    assert not any(line.startswith("chat:") for line in lines)  # its route did not change


def test_local_only_mode_hides_every_hosted_route(tmp_path):
    """With local_only on, a switch to a profile full of hosted fallbacks changes nothing hosted: the dialog must
    not promise fallbacks the front door will not use."""
    s = settings(tmp_path, f"""\
        local_only: true
        hosted: [{CLAUDE}]
        fallbacks: {{"*": [claude], coder: [claude]}}
        """)
    agent, b = load_profile("rtx4090-qwen25-14b-agent"), bare(tmp_path)
    new = routes(agent, s)
    assert not any(h.hosted for r in new.values() for h in r)
    assert set(new) == {"coder", "local"}  # no global `coder` chain, no hosted names
    lines = describe(route_changes(routes(b, s), new))
    assert lines and not any("hosted" in line or "money" in line for line in lines), lines
    # and without local-only the same switch does reach hosted models
    off = route_changes(routes(b), routes(agent))
    assert any(c.money == "costs money" for c in off)


def test_global_alias_that_the_target_serves_locally(tmp_path):
    """`coder` is served by a global hosted chain under a profile that lacks it; the target serves it locally
    (and keeps the global chain after its own)."""
    s = settings(tmp_path, f"""\
        hosted: [{CLAUDE}]
        fallbacks: {{coder: [claude]}}
        """)
    old, new = routes(bare(tmp_path), s), routes(load_profile("rtx4090-qwen25-14b-agent"), s)
    assert old["coder"] == (Hop("hosted", "claude", "anthropic/claude-sonnet-4-6"),)
    lines = [line for line in describe(route_changes(old, new)) if line.startswith("coder:")]
    assert lines == ["coder: answered by hosted claude (anthropic/claude-sonnet-4-6) → "
                     "engine qwen25-14b (Qwen/Qwen2.5-14B-Instruct-AWQ)",
                     "coder: fallback none → hosted openai-mini (openai/gpt-4o-mini), hosted claude "
                     "(anthropic/claude-sonnet-4-6)"]  # hosted before and after: no money note


def test_an_engine_renamed_with_the_same_model_is_no_change():
    a = {"local": (Hop("engine", "main", "org/m"), Hop("hosted", "x", "openai/gpt-4o-mini"))}
    b = {"local": (Hop("engine", "renamed", "org/m"), Hop("hosted", "x", "openai/gpt-4o-mini"))}
    assert route_changes(a, b) == []
    c = {"local": (Hop("engine", "main", "org/m"), Hop("hosted", "x", "openai/gpt-4.1"))}  # same name, other model
    assert describe(route_changes(a, c)) == [
        "local: fallback hosted x (openai/gpt-4o-mini) → hosted x (openai/gpt-4.1)"]


def test_nothing_running_to_a_profile():
    changes = route_changes({}, routes(load_profile("rtx3090x4-two-tier")))
    assert [c.alias for c in changes] == ["claude", "local-fast", "local-smart"]
    assert all(c.what.startswith("new: ") and c.money == "costs money" for c in changes)


def test_dollars_carry_their_unit():
    assert usd(0.0123456) == "$0.0123" and usd(0.0) == "$0.0000" and usd(0.00001) == "<$0.0001" and usd(None) == "–"
