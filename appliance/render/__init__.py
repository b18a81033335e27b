"""Rendered files: the engine project per profile, the proxy project for the active profile, written as YAML with a
header that says where they came from."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import yaml

from appliance import paths


class _Dumper(yaml.SafeDumper):
    pass


def _repr_list(dumper: yaml.SafeDumper, data: list):
    flow = all(isinstance(x, (str, int, float, bool)) for x in data) and len(data) <= 6 and \
        sum(len(str(x)) for x in data) < 70
    return dumper.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=flow)


def _repr_str(dumper: yaml.SafeDumper, data: str):
    return dumper.represent_scalar("tag:yaml.org,2002:str", data)


_Dumper.add_representer(list, _repr_list)
_Dumper.add_representer(tuple, _repr_list)
_Dumper.add_representer(str, _repr_str)


def dump(data: dict) -> str:
    return yaml.dump(data, Dumper=_Dumper, sort_keys=False, width=120, allow_unicode=True)


def display_path(path: str | Path) -> str:
    p = Path(path).resolve()
    try:
        return str(p.relative_to(paths.REPO_DIR))
    except ValueError:
        return str(p)


def comment_text(text: str) -> str:
    """`text` made safe for a one-line `#` comment in YAML and HAProxy files: a file name may hold a newline (which
    would end the comment and inject config), U+0085/U+2028 (line breaks to YAML) or zero-width characters; each
    such character becomes its `\\uXXXX` escape."""
    import unicodedata

    return "".join(ch.encode("unicode_escape").decode("ascii") if unicodedata.category(ch) in
                   ("Cc", "Cf", "Zl", "Zp", "Cs", "Co", "Cn") else ch for ch in text)


def header(sources: list[str], what: str, comment: str = "#") -> str:
    """What the file is and where it came from, as comments of its language (`#`; `--` for Lua)."""
    src = comment_text(", ".join(display_path(s) for s in sources))
    what = comment_text(what)
    return (f"{comment} {what}\n{comment} Generated from {src} by `appliance render`.\n"
            f"{comment} Edit the profile, not this file: it is rewritten on every render, up and switch.\n")


@dataclass
class Rendered:
    path: Path
    text: str

    def write(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_text(self.text)
        os.replace(tmp, self.path)

    def is_current(self) -> bool:
        try:
            return self.path.read_text() == self.text
        except OSError:
            return False

    def same_text(self) -> bool:
        """Equal but for the header lines (which list the source files)."""
        strip = lambda t: "\n".join(ln for ln in t.splitlines() if not ln.startswith("# "))  # noqa: E731
        try:
            return strip(self.path.read_text()) == strip(self.text)
        except OSError:
            return False

    def same_as(self, other: Path) -> bool:
        """Equal as data to the file `other` (the header, which lists source files, may differ)."""
        try:
            return yaml.safe_load(Path(other).read_text()) == yaml.safe_load(self.text)
        except (OSError, yaml.YAMLError):
            return False

    def same_content(self) -> bool:
        """Equal as data (the header, which lists source files, may differ)."""
        try:
            return yaml.safe_load(self.path.read_text()) == yaml.safe_load(self.text)
        except (OSError, yaml.YAMLError):
            return False


def render_engine_files(profile, out_dir: Path, settings=None) -> list[Rendered]:
    from appliance.render.compose import RenderSettings, render_engine_project

    data = render_engine_project(profile, settings or RenderSettings())
    text = header([profile.source_file or profile.name],
                  f"Engine project for profile `{profile.name}` (vLLM, one service per engine).") + dump(data)
    return [Rendered(out_dir / profile.name / "compose.yaml", text)]


def render_proxy_files(profile, out_dir: Path, *, lan: bool | None = None,
                       hosted_overrides: dict[str, str] | None = None, frontdoor=None,
                       active=None, user_settings=None) -> list[Rendered]:
    """The proxy project for `profile` (the one the front door serves: its aliases and fallbacks plus the owner's
    global ones from `user_settings`): compose.yaml (HAProxy front door + LiteLLM), litellm.yaml, and haproxy.cfg
    routing the aliases of `active` (the profile whose engines run now; None: everything through LiteLLM)."""
    from appliance.render.frontdoor import (
        HOLD_LUA,
        FrontDoorSettings,
        render_frontdoor_compose,
        render_haproxy,
    )
    from appliance.render.litellm import (
        LITELLM_IMAGE,
        engine_base_port,
        proxy_settings,
        render_litellm_config,
    )
    from appliance.render.plan import plan

    pl = plan(profile, user_settings)
    settings = proxy_settings(profile, lan=lan)
    fd = frontdoor or FrontDoorSettings(host=settings.host, port=settings.port, litellm_port=settings.port + 1,
                                        engine_base_port=engine_base_port(settings.port),
                                        stream_s=settings.stream_timeout_s,
                                        request_s=settings.request_timeout_s, hold_s=settings.hold_s)
    sources = [s for s in ((profile.source_file or profile.name) if profile else None,
                           user_settings.source_file if user_settings else None) if s]
    config = render_litellm_config(pl, settings, hosted_overrides)
    compose = render_frontdoor_compose(fd, LITELLM_IMAGE)
    routed = f"routing the aliases of `{active.name}`" if active else "no profile running: all through LiteLLM"
    serves = f"`{profile.name}`" if profile else "no profile"
    return [
        Rendered(out_dir / "proxy" / "compose.yaml",
                 header(sources, "Proxy project: HAProxy front door + LiteLLM.") + dump(compose)),
        Rendered(out_dir / "proxy" / "litellm.yaml",
                 header(sources, f"LiteLLM proxy config for {serves}: one model group per alias, its fallbacks.") +
                 dump(config)),
        Rendered(out_dir / "proxy" / "hold.lua",
                 header(sources, "HAProxy Lua: requests for an alias without a fallback wait for its engine.", "--")
                 + HOLD_LUA),
        Rendered(out_dir / "proxy" / "haproxy.cfg",
                 header(sources, f"HAProxy front door ({routed}).") + render_haproxy(pl, active, fd)),
    ]
