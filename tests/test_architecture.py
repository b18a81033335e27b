"""The layout rules of docs/architecture.md, checked on the source: simulation only behind the rig assembly,
the Stack only through the runtime protocol, files a newcomer can read."""

from __future__ import annotations

import ast
from pathlib import Path

from conftest import REPO

PKG = REPO / "appliance"
ASSEMBLY = PKG / "rig.py"  # the one module outside appliance/sim/ that may know simulation exists
MAX_LINES = 400
GENERATED: set = set()  # generated data is JSON (appliance/vllm_specs/, tools/extract_vllm_spec.py)


def _imports(path: Path) -> set[str]:
    """Every module a file imports, at the top or inside a function (`from appliance import sim` → appliance.sim)."""
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            out.add(node.module)
            out |= {f"{node.module}.{a.name}" for a in node.names}
    return out


def _sources(under: Path = PKG):
    return sorted(p for p in under.rglob("*.py") if "__pycache__" not in p.parts)


def test_simulation_is_imported_only_by_the_rig_assembly():
    offenders = {}
    for path in _sources():
        if path == ASSEMBLY or (PKG / "sim") in path.parents:
            continue
        sim = sorted(m for m in _imports(path) if m == "appliance.sim" or m.startswith("appliance.sim."))
        if sim:
            offenders[str(path.relative_to(REPO))] = sim
    assert not offenders, f"simulation code imported outside appliance/sim/ and appliance/rig.py: {offenders}"


def test_nothing_outside_the_assembly_names_the_simulated_rig_environment():
    """The stand-in engine is chosen by the assembly (an injected command), not by an environment variable that
    runtimes or renderers look for."""
    offenders = [str(p.relative_to(REPO)) for p in _sources()
                 if p != ASSEMBLY and (PKG / "sim") not in p.parents and "APPLIANCE_SIM_DIR" in p.read_text()]
    assert not offenders


def test_the_stack_uses_only_the_runtime_protocol():
    """No docker SDK, no signals, no subprocesses from the Stack: those live behind appliance/runtime/."""
    offenders = {}
    for path in _sources(PKG / "stack"):
        text = path.read_text()
        bad = sorted({m for m in _imports(path) if m.split(".")[0] in ("docker", "subprocess", "signal")})
        bad += [s for s in ("os.kill", "._containers", ".client.") if s in text]
        if bad:
            offenders[path.name] = bad
    assert not offenders


def test_the_render_plan_has_no_import_cycle():
    assert "appliance.render.frontdoor" not in _imports(PKG / "render" / "litellm.py")
    assert "appliance.render.litellm" not in _imports(PKG / "render" / "plan.py")


def test_every_module_is_readable_in_one_sitting():
    """~400 lines at most (generated data lives in JSON files, appliance/vllm_specs/)."""
    long = {str(p.relative_to(REPO)): n for p in _sources() if p not in GENERATED
            and (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert not long, long
