"""The profile editor: the knobs that matter, grouped, with the fit recomputed live as values change.

Every change goes into a round-trip YAML document (appliance.editing), so saving keeps the owner's comments,
key order and layout. The fit runs debounced (EDIT_DEBOUNCE_S after the last change) in a thread worker — the
UI never waits for it — through the backend's own `fit` (the rig's GPUs, or the profile's card). Validation
is the CLI's: errors show at the field they belong to. Save (ctrl+s) writes atomically with a backup, then
offers the switch through the app's usual confirm-and-switch flow.
"""

from __future__ import annotations

from pathlib import Path

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.screen import Screen
from textual.suggester import SuggestFromList
from textual.widgets import Input, Label, Select, Static

from appliance.editing import knobs, live, roundtrip, store
from appliance.errors import ApplianceError
from appliance.tui.screens import editor_save
from appliance.tui.widgets.fitview import diff_view, fit_view
from appliance.tui.widgets.keybar import KeyBar
from appliance.tui.widgets.titlebar import TitleBar

EDIT_DEBOUNCE_S = 0.3


def replay(saved: str, path: Path, edits: list, extra: list):
    """The saved file's document with the form's edits applied in order (values that do not parse are skipped:
    their field shows why)."""
    data = roundtrip.load(saved, str(path))
    for (eng, knob_id), raw in edits:
        try:
            knobs.apply(knobs.BY_ID[knob_id], data, eng, raw)
        except (ValueError, ApplianceError):
            continue
    for assignment in extra:
        try:
            store.apply_assignments(data, [assignment])
        except ApplianceError:
            continue
    return data


def _blank(value) -> str:
    return value if isinstance(value, str) else ""


class EditorScreen(Screen):
    AUTO_FOCUS = None  # focused after the first frame (on_mount): focusing restyles every field, the frame waits
    BINDINGS = [
        Binding("ctrl+s", "save", "Save", priority=True),
        Binding("escape", "back", "Back"),
        Binding("ctrl+n", "engine(1)", "Next engine", show=False),
        Binding("ctrl+z", "revert", "Revert", show=False),
    ]

    def __init__(self, path: Path, active=None, text: str | None = None, **kw) -> None:
        """`text`: what to start from when `path` is not written yet (a shipped profile's copy-to-be)."""
        super().__init__(**kw)
        self.path = Path(path)
        self.active = active
        self.saved = text if text is not None else self.path.read_text(encoding="utf-8")
        self.data = roundtrip.load(self.saved, str(self.path))
        self.eng = 0
        self.result: live.LiveFit | None = None
        self.measured = None
        self.fits_done = 0  # finished live fits (tests wait on it)
        self._timer = None
        self._leave_armed = False
        self._other_errors: list[str] = []  # validation errors of fields without a knob
        self.typing_errors: dict[str, str] = {}
        # the document to save is always the saved file with these edits replayed on it, so a field cleared
        # while retyping does not lose its key's place or comment (self.data only mirrors them for the form)
        self.edits: dict[tuple[int, str], str] = {}
        self.extra: list[str] = []  # advanced `engines.N.option=value` assignments
        self._first = self._first_fit()

    def _first_fit(self):
        """The saved file's fit, started while the screen is still being built (its many fields take a while to
        mount): the first fit worker picks it up instead of starting from scratch."""
        import threading
        from concurrent.futures import Future

        future: Future = Future()
        saved, fit = self.saved, self.app.backend.fit

        def run() -> None:
            try:
                future.set_result(self._compute(saved, [], [], fit))
            except BaseException as exc:  # noqa: BLE001 - handed to the worker, which reports it
                future.set_exception(exc)

        threading.Thread(target=run, name="editor-first-fit", daemon=True).start()
        return saved, future

    # -- layout ------------------------------------------------------------------------------------
    def compose(self) -> ComposeResult:
        yield TitleBar("editor")
        with Horizontal(id="editor-body"):
            with VerticalScroll(id="editor-form"):
                yield Static(id="editor-head")
                engines = self.data.get("engines") or []
                if len(engines) > 1:
                    yield from self._row("engine", Select(
                        [(str(e.get("name") or i), i) for i, e in enumerate(engines)], value=0, allow_blank=False,
                        compact=True, id="k-engine"))
                group = None
                for k in knobs.KNOBS:
                    if k.group != group:
                        group = k.group
                        yield Static(group, classes="knob-group")
                    yield from self._row(k.label, self._widget(k), k.id)
                yield Static("Advanced: any vLLM option", classes="knob-group")
                yield from self._row("option=value", Input(
                    placeholder="e.g. enforce_eager=true (Enter)", compact=True, id="k-advanced",
                    suggester=SuggestFromList(self._flag_names(), case_sensitive=False)), "advanced")
                yield Static(id="advanced-list")
            with VerticalScroll(id="editor-side"):
                yield Static(fit_view(None, None), id="editor-fit")  # "computing the fit …" in the first frame
                yield Static(id="editor-diff")
        yield KeyBar()

    @staticmethod
    def _flag_names() -> list[str]:
        from appliance import vllm_spec

        return sorted(f"{d}=" for d in vllm_spec.FLAGS if d not in vllm_spec.HARMFUL)

    def _row(self, label: str, widget, knob_id: str | None = None):
        # flat (no wrapper per knob): every widget of this screen costs mount and style time on opening it
        with Horizontal(classes="knob-row"):
            yield Label(label, classes="knob-label")
            yield widget
        if knob_id:
            yield Static(id=f"err-{knob_id}", classes="knob-error")

    def _widget(self, k: knobs.Knob):
        value = knobs.show(k, self.data, self.eng)
        wid = f"k-{k.id}"
        if k.kind in ("choice", "tri", "spec"):
            opts = list(k.choices) if k.kind != "tri" else ["on", "off"]
            if value and value not in opts:
                opts.insert(0, value)
            return Select([(o, o) for o in opts], value=value or Select.NULL, allow_blank=k.kind != "spec",
                          prompt="default", compact=True, id=wid)
        suggester = None
        if k.id == "model":
            from appliance import catalog

            suggester = SuggestFromList(catalog.known_models(), case_sensitive=False)
        return Input(value=value, placeholder=k.placeholder, compact=True, id=wid, suggester=suggester,
                     select_on_focus=False)

    def on_mount(self) -> None:
        self.query_one(TitleBar).show(self.app)
        self._layout_classes()
        self._show_head()
        self._show_advanced()
        self._schedule(0)
        self.call_after_refresh(self._focus_first)

    def _focus_first(self) -> None:
        if self.focused is None:
            self.focus_next()

    def on_resize(self) -> None:
        self._layout_classes()
        if self.result is not None:  # the bars are drawn for the panel's width
            self.call_after_refresh(self._render_fit)

    def _layout_classes(self) -> None:
        self.set_class(self.app.size.width < 110, "-narrow")

    def refresh_view(self) -> None:
        self.query_one(TitleBar).show(self.app)

    def _show_head(self) -> None:
        t = Text(no_wrap=True, overflow="ellipsis")
        name = str(self.data.get("name", self.path.stem))
        t.append(name, style="bold")
        where = "shipped (read-only)" if store.is_shipped(self.path) else "your profile"
        # the file's name only when it says something the profile's name does not (the path is in the list)
        t.append(f" · {where}" + (f" · {self.path.name}" if self.path.stem != name else ""), style="bright_black")
        self.query_one("#editor-head", Static).update(t)

    # -- changes -------------------------------------------------------------------------------------
    @on(Input.Changed)
    def _input_changed(self, event: Input.Changed) -> None:
        if event.input.id and event.input.id != "k-advanced":
            self._changed(event.input.id[2:], event.value)

    @on(Select.Changed)
    def _select_changed(self, event: Select.Changed) -> None:
        wid = event.select.id or ""
        if wid == "k-engine":
            if isinstance(event.value, int) and event.value != self.eng:
                self.eng = event.value
                self._reload_widgets()
            return
        self._changed(wid[2:], _blank(event.value))

    def _changed(self, knob_id: str, raw: str) -> None:
        knob = knobs.BY_ID.get(knob_id)
        if knob is None or raw == knobs.show(knob, self.data, self.eng):
            return
        err = self.query_one(f"#err-{knob_id}", Static)
        try:
            knobs.apply(knob, self.data, self.eng, raw)
        except (ValueError, ApplianceError) as exc:
            self.typing_errors[knob_id] = getattr(exc, "message", None) or str(exc)
            err.update(Text(self.typing_errors[knob_id], style="red"))
            err.display = True
            return
        self.typing_errors.pop(knob_id, None)
        self.edits[(self.eng, knob_id)] = raw
        err.display = False
        self._leave_armed = False
        if knob.kind == "spec":  # the tokens / draft model fields follow the method
            for other in ("spec_tokens", "spec_model"):
                w = self.query_one(f"#k-{other}", Input)
                w.value = knobs.show(knobs.BY_ID[other], self.data, self.eng)
        self._schedule()

    @on(Input.Submitted, "#k-advanced")
    def _advanced(self, event: Input.Submitted) -> None:
        text = event.value.strip()
        err = self.query_one("#err-advanced", Static)
        if not text:
            return
        assignment = f"engines.{self.eng}.{text}"
        try:
            store.apply_assignments(self.data, [assignment])
            self.extra.append(assignment)
        except ApplianceError as exc:
            err.update(Text(exc.message + (f" — {exc.hint}" if exc.hint else ""), style="red"))
            err.display = True
            return
        err.display = False
        event.input.value = ""
        self._show_advanced()
        self._schedule()

    def _show_advanced(self) -> None:
        opts = knobs.advanced_options(self.data, self.eng)
        t = Text()
        for k, v in opts.items():
            t.append(f"  {k}: ", style="bright_black")
            t.append(knobs.yaml_text(v) + "\n")
        if not opts:
            t.append("  (no other options; set one above, `name=null` removes it)", style="bright_black")
        self.query_one("#advanced-list", Static).update(t)

    def _reload_widgets(self) -> None:
        for k in knobs.KNOBS:
            w = self.query_one(f"#k-{k.id}")
            value = knobs.show(k, self.data, self.eng)
            if isinstance(w, Input):
                w.value = value
            elif isinstance(w, Select):
                w.value = value or (Select.NULL if w._allow_blank else "off")
        self._show_advanced()
        self._schedule(0)

    # -- live fit: debounced, in a worker --------------------------------------------------------------
    def _schedule(self, delay: float = EDIT_DEBOUNCE_S) -> None:
        if self._timer is not None:
            self._timer.stop()
        self._timer = self.set_timer(delay, self._kick) if delay else None
        if not delay:
            self._kick()

    def _kick(self) -> None:
        self._timer = None
        self._fit_worker(self.saved, list(self.edits.items()), list(self.extra))

    @work(thread=True, exclusive=True, group="editor-fit", exit_on_error=False)
    def _fit_worker(self, saved: str, edits: list, extra: list) -> None:
        first, self._first = self._first, None
        if first is not None and first[0] == saved and not edits and not extra:
            result, measured = first[1].result()
        else:
            result, measured = self._compute(saved, edits, extra, self.app.backend.fit)
        self.app.call_from_thread(self._show_fit, result, measured)

    def _compute(self, saved: str, edits: list, extra: list, fit):
        """(LiveFit, measured bench numbers or None) of the saved file with the edits replayed on it."""
        from appliance.editing import benchinfo

        data = replay(saved, self.path, edits, extra)
        result = live.live_fit(data, saved, self.path, fit=fit)
        measured = None
        if result.ok:
            try:
                measured = benchinfo.measured(result.profile)
            except (OSError, ApplianceError):
                measured = None
        return result, measured

    def _show_fit(self, result: live.LiveFit, measured) -> None:
        self.result, self.measured = result, measured
        self.fits_done += 1
        at, rest = knobs.errors_by_knob(result.field_errors, self.eng)
        at = {**at, **self.typing_errors}  # a value that could not even be read wins
        for k in knobs.KNOBS:
            err = self.query_one(f"#err-{k.id}", Static)
            err.display = k.id in at
            if k.id in at:
                err.update(Text(at[k.id], style="red"))
        self._other_errors = rest
        self._render_fit()
        self.query_one("#editor-diff", Static).update(diff_view(result.diff))
        self.set_class(bool(result.diff), "-dirty")

    def _render_fit(self) -> None:
        width = self.query_one("#editor-side").size.width or 40
        self.query_one("#editor-fit", Static).update(fit_view(self.result, self.measured, width - 3,
                                                              self._other_errors))

    # -- save, leave ---------------------------------------------------------------------------------------
    def action_save(self) -> None:
        r = self.result
        if r is None or self._timer is not None:
            self._schedule(0)
            self.app.notify("checking the profile … save again in a moment", timeout=2)
            return
        if not r.ok:
            self.app.notify(r.error.message.splitlines()[0] if r.error else "the profile does not load",
                            title="not saved", severity="error", timeout=8)
            return
        if editor_save.rebase_on_disk(self):
            return
        try:
            profile = store.save_text(self.path, r.text)
        except ApplianceError as exc:
            self.app.notify(exc.message, title="not saved", severity="error", timeout=8)
            return
        self.saved = r.text
        self.edits, self.extra = {}, []
        self.data = roundtrip.load(self.saved, str(self.path))
        self._schedule(0)
        self.app.notify(f"saved {self.path.name} (the previous version is in {store.HISTORY_DIR}/)", timeout=4)
        if self.active is not None and self.active.name == profile.name:
            editor_save.offer_apply(self, profile)
            return
        self.app.ask_switch(profile, r.report, self.active)

    def unsaved(self, key: str = "Esc") -> bool:
        """True — and says how to go on — the first time anything tries to leave (Esc here; q, d, p, l, b
        through the app) with edits that are not saved; the same key again leaves without saving."""
        if self.result is not None and self.result.diff and not self._leave_armed:
            self._leave_armed = True
            self.app.notify(f"unsaved changes: ctrl+s saves, {key} again leaves without saving",
                            severity="warning")
            return True
        return False

    def action_back(self) -> None:
        if not self.unsaved():
            self.app.pop_screen()

    def action_engine(self, step: int) -> None:
        engines = self.data.get("engines") or []
        if len(engines) > 1:
            self.query_one("#k-engine", Select).value = (self.eng + step) % len(engines)

    def action_revert(self) -> None:
        self.edits, self.extra = {}, []
        self.data = roundtrip.load(self.saved, str(self.path))
        self._reload_widgets()
