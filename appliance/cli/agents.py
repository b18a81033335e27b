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
        print(f"stored {name} in {secrets.secrets_file()} (mode 0600); restart the proxy to use it: "
              "`appliance up` / `switch` do that when the config changes, or `appliance down --all` then `up`")
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


def cmd_endpoint(args) -> int:
    """What an agent needs: base URL, key, aliases and the model behind each right now."""
    from appliance import secrets
    from appliance.cli.common import _rig
    from appliance.errors import StackError
    from appliance.stack import Stack

    stack = Stack(_rig(args))
    proxy = stack.rig.state.load().proxy
    if not proxy:
        raise StackError("the proxy has not been started on this rig", "`appliance up PROFILE` starts it")
    host = "127.0.0.1" if proxy.host in ("127.0.0.1", "0.0.0.0") else proxy.host
    base = f"http://{host}:{proxy.port}/v1"
    key = secrets.master_key()
    profile = stack.active_profile()
    aliases: dict[str, dict] = {}
    profiles = stack.front_door.profiles(profile)
    for p in profiles:
        for e in p.engines:
            for a in e.aliases:
                aliases.setdefault(a, {"local": None, "fallbacks": list(p.proxy.fallbacks.get(a, ()))})
        for h in p.proxy.hosted:
            aliases.setdefault(h.name, {"local": None, "hosted": h.litellm_model, "fallbacks": []})
    if profile:
        for e in profile.engines:
            for a in e.aliases:
                aliases[a]["local"] = e.model
                aliases[a]["engine"] = e.label
    if args.json:
        print(json.dumps({"base_url": base, "api_key": key, "profile": profile.name if profile else None,
                          "aliases": aliases}, indent=2))
        return 0
    print(f"export OPENAI_BASE_URL={base}")
    print(f"export OPENAI_API_KEY={key}")
    print()
    print(f"# aliases (profile {profile.name if profile else 'none running'}):")
    for a, info in sorted(aliases.items()):
        now = info.get("local") or info.get("hosted") or "(no local engine now: served by its fallbacks)"
        fb = f"  → fallbacks: {', '.join(info['fallbacks'])}" if info.get("fallbacks") else ""
        print(f"#   {a:<14} {now}{fb}")
    return 0
