"""A profile switch as it happens: phases per engine with elapsed times, info lines, the decisive log lines of
a failure and the rollback."""

from __future__ import annotations

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual.widgets import Static

from appliance.tui import fmt

PHASE_LABELS = {"created": "container created", "weights": "loading weights",
                "kv_graphs": "KV cache / graph capture", "ready": "ready"}
KIND_STYLE = {"info": "", "warn": "yellow", "power": "cyan", "wait": "bright_black", "fail": "bold red",
              "rollback": "bold magenta", "done": "bold green", "phase": ""}


class SwitchLog:
    """The model of one switch: every event in order, plus the result (kept by the app so the screen can be
    closed and reopened while the switch runs)."""

    def __init__(self, target: str, source: str | None):
        self.target = target
        self.source = source
        self.events: list = []
        self.result = None
        self.error: str | None = None
        self.running = True

    def add(self, event) -> None:
        if event.kind == "wait" and self.events and self.events[-1].kind == "wait":
            self.events[-1] = event  # heartbeats replace each other
        else:
            self.events.append(event)

    def finish(self, result, error: str | None) -> None:
        self.result, self.error, self.running = result, error, False

    def attempts(self) -> list[tuple[str, dict[str, list[list]]]]:
        """[(title, engine → [[phase label, started_s, took_s | None, done]])]: one attempt per started profile
        (the switch target, then the rollback when there is one), from the phase events."""
        out: list[tuple[str, dict]] = []
        title = self.target
        for ev in self.events:
            if ev.kind == "info" and ev.message.startswith("starting ") and not ev.message.startswith(
                    "starting the"):
                title = ev.message.split()[1]
                out.append((title, {}))
            elif ev.kind == "fail" and out:
                for rows in out[-1][1].values():
                    if rows and rows[-1][3] is False:
                        rows[-1][3] = "failed"
            elif ev.kind == "rollback":
                title = f"rollback to {ev.data.get('to', '?')}"
            elif ev.kind == "phase":
                if not out:
                    out.append((title, {}))
                if out[-1][0] != title and title.startswith("rollback"):
                    out.append((title, {}))
                rows = out[-1][1].setdefault(ev.data.get("engine", "?"), [])
                at = ev.data.get("elapsed_s") or 0.0
                if rows:
                    rows[-1][2] = round(at - rows[-1][1], 1)
                    rows[-1][3] = True
                phase = ev.data.get("phase")
                rows.append([PHASE_LABELS.get(phase, phase), at, None, phase == "ready"])
        r = self.result
        if r is not None and r.timelines:
            # the tracker's own timeline of the target is complete (events only report phase changes seen)
            rows = {eng: [[t["label"], t["started_s"], None if t["phase"] == "ready" else t["elapsed_s"],
                           t["done"]] for t in tl] for eng, tl in r.timelines.items()}
            if not r.ok and r.failed_engine in rows and rows[r.failed_engine]:
                rows[r.failed_engine][-1][3] = "failed"
            for i, (title, _) in enumerate(out):
                if title == r.profile:
                    out[i] = (title, rows)
                    break
            else:
                out.insert(0, (r.profile, rows))
        return out


def render_switch(log: SwitchLog) -> Group:
    parts = []
    head = Text()
    head.append(f"{log.source or 'nothing'} → {log.target}", style="bold")
    if log.running:
        head.append("   switching …", style="yellow")
    elif log.error:
        head.append(f"   error: {log.error}", style="bold red")
    elif log.result is not None and log.result.ok:
        head.append("   ✔ ready", style="bold green")
    elif log.result is not None:
        head.append(f"   ✘ failed: {log.result.reason}", style="bold red")
    parts.append(head)
    for title, engines in log.attempts():
        tab = Table(box=None, padding=(0, 1), show_edge=False, header_style="bold", title_justify="left",
                    title=Text(title, style="bold magenta" if title.startswith("rollback") else "bold"))
        tab.add_column("engine", no_wrap=True)
        tab.add_column("phase", no_wrap=True)
        tab.add_column("at", justify="right", no_wrap=True)
        tab.add_column("took", justify="right", no_wrap=True)
        tab.add_column("", no_wrap=True)
        for eng, rows in engines.items():
            for i, (label, at, took, done) in enumerate(rows):
                mark = (Text("✘ failed", style="bold red") if done == "failed" else
                        Text("✔", style="green") if done else Text("…", style="yellow"))
                tab.add_row(eng if i == 0 else "", label, f"+{at:.1f} s", fmt.num(took, "s", 1) if took is not None
                            else "", mark)
        parts.append(Text(""))
        parts.append(tab)
    parts.append(Text(""))
    for ev in log.events:
        if ev.kind == "phase":
            continue
        style = KIND_STYLE.get(ev.kind, "")
        mark = {"fail": "✘ ", "rollback": "↩ ", "done": "✔ ", "warn": "! "}.get(ev.kind, "· ")
        parts.append(Text(mark + ev.message, style=style))
        if ev.kind == "fail":
            for ln in ev.data.get("lines") or []:
                parts.append(Text("    │ " + ln, style="red", overflow="fold"))
            if ev.data.get("fix"):
                parts.append(Text("    fix: " + ev.data["fix"], style="bold"))
    return Group(*parts)


class SwitchView(Static):
    DEFAULT_CSS = """
    SwitchView { height: auto; padding: 0 1; }
    """

    def show(self, log: SwitchLog) -> None:
        self.update(render_switch(log))
