"""The CLI starts fast: no litellm, textual, pydantic or docker import on `appliance --help`; the core imports
without textual (only appliance/tui/ may import it)."""

from __future__ import annotations

import subprocess
import sys

from conftest import REPO

HEAVY = ("litellm", "textual", "docker", "httpx", "pydantic", "prometheus_client", "pynvml", "yaml")


def loaded_after(code: str) -> set[str]:
    probe = code + "\nimport sys, json; print(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=REPO)
    assert out.returncode == 0, out.stderr
    import json

    return set(json.loads(out.stdout.strip().splitlines()[-1]))


def test_help_imports_nothing_heavy():
    mods = loaded_after("import sys\nfrom appliance.cli import main\ntry:\n    main(['--help'])\n"
                        "except SystemExit:\n    pass")
    assert not {m.split(".")[0] for m in mods} & set(HEAVY)


def test_subcommand_help_imports_nothing_heavy():
    mods = loaded_after("from appliance.cli import main\ntry:\n    main(['check', '--help'])\n"
                        "except SystemExit:\n    pass")
    assert not {m.split(".")[0] for m in mods} & set(HEAVY)


def test_core_imports_without_textual():
    core = ["appliance.profile", "appliance.fit", "appliance.catalog", "appliance.render.compose",
            "appliance.render.litellm", "appliance.cli", "appliance.gpu.nvml", "appliance.vllm_spec"]
    mods = loaded_after("\n".join(f"import {m}" for m in core))
    assert "textual" not in mods and "litellm" not in mods


def test_only_tui_imports_textual():
    offenders = []
    for path in (REPO / "appliance").rglob("*.py"):
        if "tui" in path.relative_to(REPO / "appliance").parts:
            continue
        text = path.read_text()
        if "import textual" in text or "from textual" in text:
            offenders.append(str(path))
    assert not offenders


def test_help_lists_commands():
    out = subprocess.run([sys.executable, "-m", "appliance", "--help"], capture_output=True, text=True, cwd=REPO)
    assert out.returncode == 0
    for cmd in ("check", "profiles", "render"):
        assert cmd in out.stdout
