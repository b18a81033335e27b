"""What the front door serves (render/plan.py) under the owner's settings (appliance/settings.py): only the active
profile's aliases and fallbacks, the global ones from the settings, local-only mode, clear errors — and the
rendered HAProxy/LiteLLM configs that follow from it. Pure: no rig."""

from __future__ import annotations

import textwrap

import pytest

from appliance.errors import ProfileError
from appliance.profile import load_profile
from appliance.render.frontdoor import FrontDoorSettings, render_haproxy
from appliance.render.litellm import render_litellm_config
from appliance.render.plan import plan
from appliance.settings import load_settings

CLAUDE = ("{name: claude, provider: anthropic, model: claude-sonnet-4-6, api_key_env: ANTHROPIC_API_KEY, "
          "max_input_tokens: 200000}")  # the shipped two-tier profile's claude, exactly


def settings(tmp_path, text: str):
    f = tmp_path / "settings.yaml"
    f.write_text(textwrap.dedent(text))
    return load_settings(f)


def bare(tmp_path):
    """The shipped chat profile without its proxy section (aliases `chat` and `local`, no hosted model)."""
    from conftest import REPO

    text = (REPO / "profiles" / "rtx4090-llama31-8b-chat.yaml").read_text().split("\nproxy:")[0] + "\n"
    f = tmp_path / "bare.yaml"
    f.write_text(text.replace("name: rtx4090-llama31-8b-chat", "name: bare"))
    return load_profile(f)


def test_a_profile_without_fallbacks_reaches_no_hosted_model(tmp_path):
    """The old rule merged every profile's fallbacks: a profile without a proxy section fell back to gpt-4.1."""
    pl = plan(bare(tmp_path))
    assert pl.hosted == {} and pl.fallbacks == {} and pl.ctx_fallbacks == {}
    assert not any(pl.reaches_hosted(a) for a in pl.served())
    cfg = render_litellm_config(pl)
    assert [m["model_name"] for m in cfg["model_list"]] == sorted(pl.alias_port)
    assert "fallbacks" not in cfg["router_settings"]


def test_only_the_active_profiles_fallbacks_in_a_stable_order():
    pl = plan(load_profile("rtx3090x4-two-tier"))
    assert pl.fallbacks == {"local-fast": ["local-smart", "claude"], "local-smart": ["claude"]}
    assert pl.where("local-fast") == ["local:8001", "local:local-smart", "hosted:claude"]
    assert list(pl.hosted) == ["claude"] and pl.served() == ["claude", "local-fast", "local-smart"]
    assert render_litellm_config(pl) == render_litellm_config(plan(load_profile("rtx3090x4-two-tier")))


def test_global_fallbacks_hold_for_every_profile(tmp_path):
    s = settings(tmp_path, f"""\
        hosted:
          - {CLAUDE}
        fallbacks:
          "*": [claude]
          coder: [claude]
        """)
    pl = plan(bare(tmp_path), s)  # serves `chat` and `local`, no `coder`
    assert pl.fallbacks == {"chat": ["claude"], "local": ["claude"]}
    assert pl.global_aliases == {"coder": ["claude"]}  # an alias the profile lacks, served by its global chain
    assert pl.where("coder") == ["hosted:claude"] and "coder" in pl.served()
    groups = {m["model_name"]: m for m in render_litellm_config(pl)["model_list"]}
    assert groups["coder"]["litellm_params"]["model"] == "anthropic/claude-sonnet-4-6"
    # the profile's own chain first, then the global one
    pl2 = plan(load_profile("rtx3090x4-two-tier"), s)
    assert pl2.fallbacks["local-fast"] == ["local-smart", "claude"]


def test_local_only_is_one_setting(tmp_path):
    s = settings(tmp_path, f"""\
        local_only: true
        hosted: [{CLAUDE}]
        fallbacks: {{"*": [claude], coder: [claude]}}
        """)
    pl = plan(load_profile("rtx3090x4-two-tier"), s)
    assert pl.hosted == {} and pl.global_aliases == {}
    assert pl.fallbacks == {"local-fast": ["local-smart"]}  # local to local stays
    assert not any(pl.reaches_hosted(a) for a in pl.served())
    cfg = render_litellm_config(pl)
    assert not [m for m in cfg["model_list"] if not m["litellm_params"]["model"].startswith("hosted_vllm/")]


def test_unknown_names_are_refused_with_the_served_list(tmp_path):
    pl = plan(load_profile("rtx3090x4-two-tier"))
    text = render_haproxy(pl, None, FrontDoorSettings(socket_path=str(tmp_path / "s")))
    assert 'acl served var(txn.model) -m str "claude" "local-fast" "local-smart"' in text
    assert "served now: claude, local-fast, local-smart" in text


@pytest.mark.parametrize("text,where,fix", [
    ("fallbacks: {'*': [nowhere]}\n", "names `nowhere`", "define `nowhere` under `hosted:`"),
    ("local_only: maybe\n", "`local_only`", "in the README (settings.yaml"),
    ("fallback: {}\n", "`fallback`", "known fields: local_only, hosted, fallbacks"),
    ("hosted: [{name: x, provider: openai, model: m, api_key_env: sk-abc}]\nfallbacks: {a: [a]}\n",
     "falls back to itself", "remove it"),
])
def test_settings_mistakes_name_file_field_value_and_fix(tmp_path, text, where, fix):
    f = tmp_path / "settings.yaml"
    f.write_text(text)
    with pytest.raises(ProfileError) as exc:
        plan(load_profile("rtx4090-llama31-8b-chat"), load_settings(f))
    assert str(f) in exc.value.message and where in exc.value.message
    if fix:
        assert fix in (exc.value.hint or "")


def test_no_settings_file_means_defaults(tmp_path):
    s = load_settings(tmp_path / "missing.yaml")
    assert not s.local_only and not s.hosted and not s.fallbacks


def test_a_star_fallback_to_a_local_alias_is_no_self_loop(tmp_path):
    """`"*": [local]` (a new user's trial): every other alias falls back to `local`; `local` itself does not fall
    back to itself (it was `local → hosted … → local local`)."""
    from appliance import routes

    prof = load_profile("rtx3090x4-two-tier")
    f = tmp_path / "settings.yaml"
    f.write_text("fallbacks: {'*': [local-fast]}\n")
    pl = plan(prof, load_settings(f))
    assert "local-fast" not in pl.fallbacks.get("local-fast", [])
    assert "local local-fast" not in routes.route_text(routes.alias_routes(pl, prof)["local-fast"])
    assert "local-fast" in pl.fallbacks["local-smart"]
