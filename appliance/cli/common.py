"""What the CLI commands share: the rig a command acts on, progress lines, the outcome of a start."""

from __future__ import annotations

import json
import sys

# --------------------------------------------------------------------------------------------- the running rig


def _rig(args, *, remember: bool = False):
    """The rig the command acts on: what --sim/--real and --runtime say, else the one the last `up`, `switch`
    or `demo` used (so `status` after `up --sim --runtime process` looks at that rig)."""
    from appliance.rig import from_args, last_used, remember_used

    sim, runtime = last_used()
    sim = sim if args.sim is None else args.sim
    runtime = runtime if args.runtime is None else args.runtime
    if remember:
        remember_used(sim=sim, runtime=runtime)
    return from_args(sim=sim, runtime=runtime)


class EventPrinter:
    """Progress of long operations on the terminal: one line per step, a live line while waiting."""

    def __init__(self, stream=None):
        import time

        self.stream = stream or sys.stdout
        self.tty = self.stream.isatty()
        self.t0 = time.time()
        self._live = False

    def _clear(self):
        if self._live:
            self.stream.write("\r\033[K")
            self._live = False

    def __call__(self, ev) -> None:
        import time

        el = f"[{time.time() - self.t0:6.1f} s]"
        if ev.kind == "wait":
            if self.tty:
                self._clear()
                self.stream.write(f"{el} … {ev.message}"[: 200])
                self._live = True
                self.stream.flush()
                return
            print(f"{el} … {ev.message}", file=self.stream, flush=True)
            return
        self._clear()
        mark = {"fail": "✗", "rollback": "↺", "done": "✓", "warn": "!", "power": "⚡", "phase": "→"}.get(ev.kind, "·")
        print(f"{el} {mark} {ev.message}", file=self.stream, flush=True)
        if ev.kind == "fail":
            for line in ev.data.get("lines") or []:
                print(f"           │ {line}", file=self.stream)
            if ev.data.get("fix"):
                print(f"           fix: {ev.data['fix']}", file=self.stream, flush=True)
        if ev.kind == "done" and ev.data.get("timelines"):
            for engine, phases in ev.data["timelines"].items():
                steps = " → ".join(f"{p['label']} {p['elapsed_s']:.1f} s" for p in phases if p["phase"] != "ready")
                print(f"           {engine}: {steps}", file=self.stream, flush=True)


def _start_result(result, args, route_changes: list[str] | None = None) -> int:
    if args.json:
        from dataclasses import asdict

        out = {"profile": result.profile, "ok": result.ok, "reason": result.reason,
               "failed_engine": result.failed_engine, "timelines": result.timelines,
               "diagnosis": asdict(result.diagnosis) if result.diagnosis else None}
        if route_changes is not None:
            out["route_changes"] = route_changes
        print(json.dumps(out, indent=2))
    return 0 if result.ok else 1


def _fmt(v, unit: str, nd: int = 0) -> str:
    if v is None:
        return "–"
    return f"{v:.{nd}f} {unit}" if unit else f"{v:.{nd}f}"


def _print_endpoint_hint(stack) -> None:
    proxy = stack.rig.state.load().proxy
    if proxy:
        print(f"\nagents: OPENAI_BASE_URL=http://127.0.0.1:{proxy.port}/v1 — `appliance endpoint` prints the "
              "key and the aliases")
