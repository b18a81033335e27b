"""`keys` and `endpoint`: what agents and hosted fallbacks need."""

from __future__ import annotations

import json
import sys


def cmd_keys(args) -> int:
    from appliance import secrets

    if args.action == "set":
        if not args.provider:
            from appliance.errors import ApplianceError

            raise ApplianceError("`appliance keys set` needs a provider",
                                 "one of " + ", ".join(secrets.PROVIDERS) + ", or an env var name")
        name = secrets.env_name(args.provider)
        if args.stdin or not sys.stdin.isatty():
            value = sys.stdin.readline()
        else:
            import getpass

            value = getpass.getpass(f"{name} (input hidden): ")
        secrets.set_key(name, value)
        print(f"stored {name} in {secrets.secrets_file()} (mode 0600)")
        from types import SimpleNamespace

        from appliance.cli.common import EventPrinter, _rig
        from appliance.errors import ApplianceError
        from appliance.stack import Stack

        try:
            used = Stack(_rig(SimpleNamespace(sim=None, runtime=None)), EventPrinter()).front_door.rotate()
        except ApplianceError as exc:
            print(f"the running front door could not take it now ({exc.message}); `appliance restore` retries")
            return 1
        print("the front door uses it now (no restart)" if used else "the front door takes it when it starts")
        return 0
    if args.action == "rm":
        name = secrets.env_name(args.provider)
        print(f"removed {name}" if secrets.remove_key(name) else f"{name} was not in the secrets file")
        return 0
    rows = secrets.status()
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    print(f"secrets file: {secrets.secrets_file()}")
    for r in rows:
        print(f"  {r['name']:<22} {'set (' + r['source'] + ')' if r['set'] else 'not set'}")
    return 0


def claude_code_alias(profile) -> str | None:
    """The alias to set as Claude Code's model: the first alias of the first engine that can call tools (Claude
    Code always sends tools), else the first alias."""
    if profile is None:
        return None
    engines = sorted(profile.engines, key=lambda e: not (e.enable_auto_tool_choice and e.tool_call_parser))
    return next((e.aliases[0] for e in engines if e.aliases), None)


def tools_warning(profile, alias: str | None) -> str | None:
    """Claude Code always sends tools (see `claude_code_alias`): when even the alias chosen for it is served by
    an engine without a tool-call parser, vLLM answers every one of its requests 400 — say so where the alias is
    printed, with the fix."""
    engine = profile.aliases.get(alias) if profile is not None and alias else None
    if engine is None or (engine.enable_auto_tool_choice and engine.tool_call_parser):
        return None
    return (f"{alias} (engine {engine.label} of {profile.name}) has no tool-call parser: Claude Code always sends "
            "tools and vLLM refuses them (400); set `enable_auto_tool_choice: true` and `tool_call_parser` (hermes "
            "for Qwen2.5, qwen3_coder for Qwen3.x, llama3_json for Llama 3) on that engine, then `appliance apply "
            f"{profile.name}`")


def routes_by_alias(pl) -> dict[str, dict]:
    """Per model name the front door serves: where its requests can go, in order (`local:<port>`, then
    `hosted:<name>`), and whether any of that costs money."""
    return {a: {"route": pl.where(a), "hosted": pl.reaches_hosted(a)} for a in pl.served()}


def print_routes(pl, profile=None, spend: dict[str, float] | None = None, *, with_spend: bool = False) -> None:
    """The per-alias table `endpoint` and `status` print (`#` lines: `endpoint`'s output can be sourced).
    `with_spend`: a column with today's hosted spend per alias (USD; `spend` None: the counters were not read)."""
    from appliance import routes

    print(f"# where requests go (profile {pl.profile or 'none running'}"
          + (", local only: no hosted model" if pl.local_only else "") + "):")
    table = routes.alias_routes(pl, profile)
    if not table:
        print("#   (nothing: start a profile with `appliance up PROFILE`)")
    width = max([len(a) for a in table] + [14]) + 2
    texts = {a: routes.route_text(r) for a, r in table.items()}
    rw = max([len(t) for t in texts.values()] + [5]) + 2
    if with_spend and table:
        print(f"#   {'ALIAS':<{width}}{'ROUTE':<{rw}}HOSTED TODAY")
    for a, r in table.items():
        cost = ""
        if with_spend:
            cost = (routes.usd((spend or {}).get(a, 0.0)) if spend is not None else "unknown") \
                if routes.reaches_hosted(r) or (spend or {}).get(a) else "– (local)"
        print(f"#   {a:<{width}}{texts[a]:<{rw}}{cost}".rstrip())
    if not with_spend:
        return
    for a in sorted(set(spend or {}) - set(table)):  # spent earlier today under a profile that ran then
        print(f"#   {a:<{width}}{'(not served now)':<{rw}}{routes.usd(spend[a])}")
    if spend is None:
        print("# hosted spend today: unknown (LiteLLM's counters could not be read)")
    else:
        print(f"# hosted spend today: {routes.usd(sum(spend.values()))} in all (USD: LiteLLM's token counts × its "
              "bundled price map; requests a fallback answered count under the hosted model's name)")


def cmd_endpoint(args) -> int:
    """What an agent needs: base URLs, the key, which alias to ask for, and where each alias's requests go."""
    from appliance import secrets
    from appliance.cli.common import _rig
    from appliance.errors import StackError
    from appliance.stack import Stack

    stack = Stack(_rig(args))
    proxy = stack.rig.state.load().proxy
    if not proxy:
        raise StackError("the proxy has not been started on this rig", "`appliance up PROFILE` starts it")
    host = "127.0.0.1" if proxy.host in ("127.0.0.1", "0.0.0.0") else proxy.host
    root = f"http://{host}:{proxy.port}"
    key = secrets.master_key()
    profile = stack.active_profile()
    pl, drift = stack.front_door.running_plan(profile)  # what the door serves, not what settings.yaml says now
    model = claude_code_alias(profile)
    aliases = {}
    for a, r in routes_by_alias(pl).items():
        engine = profile.aliases.get(a) if profile else None
        aliases[a] = {**r, "local": engine.model if engine else None, "engine": engine.label if engine else None,
                      "fallbacks": pl.fallbacks.get(a) or pl.global_aliases.get(a) or []}
    warnings = [w for w in (tools_warning(profile, model), drift) if w]
    claude = {"ANTHROPIC_BASE_URL": root, "ANTHROPIC_AUTH_TOKEN": key, "ANTHROPIC_MODEL": model,
              "ANTHROPIC_DEFAULT_HAIKU_MODEL": model}
    if args.json:
        print(json.dumps({"base_url": f"{root}/v1", "api_key": key, "profile": profile.name if profile else None,
                          "local_only": pl.local_only,
                          "openai": {"OPENAI_BASE_URL": f"{root}/v1", "OPENAI_API_KEY": key},
                          "claude_code": claude, "key_headers": ["Authorization: Bearer <key>", "x-api-key: <key>"],
                          "apis": ["/v1/chat/completions", "/v1/completions", "/v1/responses", "/v1/messages",
                                   "/v1/messages/count_tokens", "/v1/models"],
                          "aliases": aliases, "warnings": warnings}, indent=2))
        return 0
    print("# OpenAI-style clients (OpenAI SDKs, Codex, aider, …): chat, completions and the Responses API")
    print(f"export OPENAI_BASE_URL={root}/v1")
    print(f"export OPENAI_API_KEY={key}")
    print()
    print("# Claude Code (and Anthropic SDKs): Messages API; the key goes as `Authorization: Bearer`")
    print(f"export ANTHROPIC_BASE_URL={root}")
    print(f"export ANTHROPIC_AUTH_TOKEN={key}")
    print("unset ANTHROPIC_API_KEY   # a set ANTHROPIC_API_KEY wins over the token (it is sent as x-api-key, which "
          "works too)")
    shown = model or "<an alias below>"
    print(f"export ANTHROPIC_MODEL={shown}")
    print(f"export ANTHROPIC_DEFAULT_HAIKU_MODEL={shown}   # Claude Code's background model: otherwise it asks "
          "for a claude-haiku name the front door does not serve")
    if tools_warning(profile, model):
        print(f"# ! {tools_warning(profile, model)}")
    print()
    print_routes(pl, profile)
    if drift:
        print(f"# ! {drift}")
    return 0


def spend_today(stack, pl) -> dict[str, float]:
    """Today's hosted spend per alias (USD, from LiteLLM's token counters and its bundled price map); {} when the
    proxy does not answer."""
    import time

    from appliance import costs, http, metrics, secrets

    proxy = stack.rig.state.load().proxy
    if not proxy:
        return {}
    with http.client(timeout_s=3.0) as c:
        r = http.get(c, f"http://127.0.0.1:{proxy.litellm_port}/metrics/",
                     headers={"Authorization": f"Bearer {secrets.master_key()}"})
    if not r.ok:
        return {}
    scrape = metrics.parse(r.body or "", time.time())
    hosted = {name: h.litellm_model for name, h in pl.hosted.items()}
    return costs.today_by_alias(scrape, hosted, costs.ledger_for(stack.rig))
