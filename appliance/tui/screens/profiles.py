"""Profiles: the list (model, GPUs, power, fit verdict), a detail pane with the fit breakdown and the diff against
the active profile, and switching with confirmation."""

from __future__ import annotations

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.screen import Screen
from textual.widgets import DataTable, Static

from appliance.tui import fmt
from appliance.tui.diff import profile_diff
from appliance.tui.widgets.keybar import KeyBar
from appliance.tui.widgets.titlebar import TitleBar


def short_model(m: str) -> str:
    return m.split("/")[-1]


def fit_style(fr) -> str:
    if fr is None:
        return "bright_black"
    if not fr.fits:
        return "bold red"
    return "green" if all(e.full_concurrency_fits for e in fr.engines) else "yellow"


def short_of_gpus(p, fr) -> tuple[int, int] | None:
    """(GPUs the profile needs, GPUs this rig has) when the rig has too few: its fit here says nothing useful."""
    from appliance.editing.live import gpus_needed

    if p is None or fr is None:
        return None
    need, have = gpus_needed(p), len(fr.gpus)
    return (need, have) if need > have else None


def fit_word(fr, err, p=None) -> str:
    if err:
        return "error"
    if fr is None:
        return "…"
    short = short_of_gpus(p, fr)
    if short:
        return f"needs {short[0]} GPUs"
    if not fr.fits:
        return "no fit"
    return "fits" if all(e.full_concurrency_fits for e in fr.engines) else "KV-limited"  # fits, fewer seqs


def power_text(p) -> str:
    if p.power_limit_w is None:
        return "default"
    if isinstance(p.power_limit_w, int):
        return f"{p.power_limit_w} W"
    return ", ".join(f"{i}: {w} W" for i, w in sorted(p.power_limit_w.items()))


def gpus_text(p) -> str:
    return "all" if p.gpus == "all" else fmt.gpu_range(p.gpus)


def detail(entry, fr, fit_err, active) -> Group:
    parts = []
    if entry.profile is None:
        err = entry.error
        parts.append(Text(f"{entry.path.name} does not load", style="bold red"))
        parts.append(Text(err.message if err else "?"))
        if err and err.hint:
            parts.append(Text("fix: " + err.hint, style="bold"))
        return Group(*parts)
    p = entry.profile
    head = Text(p.name, style="bold")
    if active is not None and active.name == p.name:
        head.append("  ● active", style="bold green")
    parts.append(head)
    if p.description:
        parts.append(Text(p.description, style="italic"))
    parts.append(Text(f"{entry.path}", style="bright_black", overflow="ellipsis", no_wrap=True))
    parts.append(Text(f"card {p.card or '—'} · GPUs {gpus_text(p)} · power limit {power_text(p)}"))
    # fit breakdown
    parts.append(Text(""))
    if fit_err:
        parts.append(Text(f"fit check failed: {fit_err}", style="bold red"))
    elif fr is None:
        parts.append(Text("fit check …", style="italic"))
    elif short_of_gpus(p, fr):
        need, have = short_of_gpus(p, fr)
        parts.append(Text(f"needs {need} GPUs, this rig has {have}: it cannot start here", style="bold red"))
        parts.append(Text(f"fix: its fit on its own card: appliance check {p.name} --gpu "
                          f"{p.card or '3090'}x{need}; or e: edit it to use the GPUs this rig has",
                          style="bright_black"))
    else:
        parts.append(Text("fit: " + fit_word(fr, None), style=fit_style(fr)))
        for prob in fr.problems:
            parts.append(Text("  " + prob, style="red"))
        for e in fr.engines:
            parts.append(Text(f"{e.engine}: {short_model(e.model)} · TP {e.tensor_parallel_size} · GPU "
                              f"{fmt.gpu_range(e.gpus)}", style="bold"))
            parts.append(Text("  " + e.verdict, style="green" if e.full_concurrency_fits else
                              ("yellow" if e.fits else "bold red")))
            t = Table(box=None, padding=(0, 1), show_header=False)
            t.add_column(style="bright_black", no_wrap=True)
            t.add_column(justify="right", no_wrap=True)
            t.add_row("budget per GPU", f"{fmt.gib(e.budget_bytes_per_gpu)} GiB")
            t.add_row("weights per GPU", f"{fmt.gib(e.weights_bytes_per_gpu)} GiB")
            t.add_row("overhead per GPU", f"{fmt.gib(e.overhead_bytes_per_gpu)} GiB")
            t.add_row("KV available per GPU", f"{fmt.gib(e.available_kv_bytes)} GiB")
            t.add_row("KV per token", f"{e.kv_bytes_per_token / 1024:.1f} KiB ({e.kv_dtype})")
            t.add_row("KV tokens that fit", f"{e.kv_tokens:,} tok")
            t.add_row("max_model_len × seqs", f"{e.max_model_len:,} tok × {e.max_num_seqs}")
            t.add_row("concurrency at max len", f"{e.max_concurrency_at_max_len:.1f} ×")
            parts.append(t)
            for fix in e.fixes[:3]:
                parts.append(Text("  fix: " + fix, style="yellow"))
    # diff against the active profile
    parts.append(Text(""))
    if active is None:
        parts.append(Text("no active profile to compare with", style="bright_black"))
    elif active.name == p.name:
        parts.append(Text("this is the active profile", style="green"))
    else:
        rows = profile_diff(active, p)
        parts.append(Text(f"changes against {active.name} (active): {len(rows)}", style="bold"))
        for k, old, new in rows[:40]:
            line = Text("  ")
            line.append(k, style="bright_black")
            line.append("  ")
            line.append(fmt.DASH if old is None else str(old), style="red")
            line.append(" → ")
            line.append(fmt.DASH if new is None else str(new), style="green")
            parts.append(line)
        if len(rows) > 40:
            parts.append(Text(f"  … and {len(rows) - 40} more", style="bright_black"))
    return Group(*parts)


def _files_signature() -> tuple:
    """Which profile files there are and when each last changed."""
    from appliance.profile import available_files

    out = []
    for f in available_files():
        try:
            st = f.stat()
        except OSError:
            continue
        out.append((str(f), st.st_mtime_ns, st.st_size))
    return tuple(out)


class ProfilesScreen(Screen):
    BINDINGS = [
        Binding("s", "switch", "Switch"),
        Binding("e", "edit", "Edit"),
        Binding("n", "new", "New"),
        Binding("c", "duplicate", "Copy"),
        Binding("x,delete", "delete", "Delete"),
        Binding("t", "app.timeline", "Last switch", show=False),  # in the help; the footer fits 80 columns
        Binding("r", "reload", "Reload", show=False),
    ]

    def __init__(self, **kw) -> None:
        super().__init__(**kw)
        self.entries: list = []
        self._signature: tuple = ()  # the profile files as of the last read (_files_signature)
        self.fits: dict[str, tuple] = {}  # name → (FitReport | None, error | None)
        self.active = None

    def compose(self) -> ComposeResult:
        yield TitleBar("profiles")
        with Horizontal(id="profiles-body"):
            yield DataTable(id="profile-table", cursor_type="row", zebra_stripes=True)
            with VerticalScroll(id="profile-detail-scroll"):
                yield Static(id="profile-detail")
        yield KeyBar()

    def on_mount(self) -> None:
        t = self.query_one(DataTable)
        t.add_column("profile", key="name")
        t.add_column("model", key="model", width=26)
        t.add_column("GPUs", key="gpus")
        t.add_column("power", key="power")
        t.add_column("fit", key="fit")
        self._layout_classes()
        self.query_one(TitleBar).show(self.app)
        self.action_reload()

    def on_resize(self) -> None:
        self._layout_classes()

    def _layout_classes(self) -> None:
        self.set_class(self.app.size.width < 150, "-narrow")  # the list needs ~90 columns beside the detail

    def on_screen_resume(self) -> None:
        self.query_one(TitleBar).show(self.app)
        # back from the editor, a dialog, another screen or a shell (`appliance set`): read the files again if any
        # changed (a stat of each; the fits of every profile are not worked out again after every dialog)
        if self.entries and _files_signature() != self._signature:
            self._load()

    def refresh_view(self) -> None:
        self.query_one(TitleBar).show(self.app)
        # follow the rig: a switch (from here, the CLI or another TUI) moves the ● without `r`
        last = self.app.last.snapshot.profile if self.app.last else None
        shown = self.active.name if self.active is not None else None
        if last != shown and self.entries:
            self._load()

    def action_reload(self) -> None:
        self._load()

    @work(thread=True, exclusive=True, group="profiles", exit_on_error=False)
    def _load(self):
        backend = self.app.backend
        self._signature = _files_signature()
        entries = backend.profiles()
        active = backend.active_profile()
        self.app.call_from_thread(self._show_entries, entries, active)
        fits = {}
        for e in entries:
            if e.profile is None:
                continue
            try:
                fits[e.name] = (backend.fit(e.profile), None)
            except Exception as exc:  # noqa: BLE001 - one bad profile must not hide the others' fit
                fits[e.name] = (None, getattr(exc, "message", None) or f"{type(exc).__name__}: {exc}")
        self.app.call_from_thread(self._show_fits, fits)
        import appliance.tui.screens.editor  # noqa: F401 - warm: `e` then opens the editor without ~0.4 s of imports

    def _show_entries(self, entries, active) -> None:
        self.entries, self.active = entries, active
        self.app.profile_entries = entries
        t = self.query_one(DataTable)
        keep = t.cursor_row
        t.clear()
        for e in entries:
            p = e.profile
            mark = "● " if active is not None and p is not None and p.name == active.name else "  "
            name = Text(mark + e.name, style="bold green" if mark.strip() else ("red" if p is None else ""))
            if p is None:
                t.add_row(name, Text("does not load", style="red"), "", "", Text("error", style="red"), key=e.name)
                continue
            models = " + ".join(short_model(x.model) for x in p.engines)
            models = models if len(models) <= 26 else models[:25] + "…"
            fr, err = self.fits.get(e.name, (None, None))
            t.add_row(name, models, gpus_text(p), power_text(p), Text(fit_word(fr, err, p), style=fit_style(fr)),
                      key=e.name)
        if entries:
            t.move_cursor(row=min(keep, len(entries) - 1))
        self._show_detail()

    def _show_fits(self, fits) -> None:
        self.fits = fits
        t = self.query_one(DataTable)
        profiles = {e.name: e.profile for e in self.entries}
        for name, (fr, err) in fits.items():
            try:
                t.update_cell(name, "fit", Text(fit_word(fr, err, profiles.get(name)), style=fit_style(fr)),
                              update_width=True)
            except Exception:  # noqa: BLE001 - the row went away with a reload
                continue
        self._show_detail()

    def selected(self):
        t = self.query_one(DataTable)
        if not self.entries or t.cursor_row is None or t.cursor_row >= len(self.entries):
            return None
        return self.entries[t.cursor_row]

    def on_data_table_row_highlighted(self, _msg) -> None:
        self._show_detail()

    def on_data_table_row_selected(self, _msg) -> None:
        self.action_switch()

    def _show_detail(self) -> None:
        e = self.selected()
        box = self.query_one("#profile-detail", Static)
        if e is None:
            box.update(Text("no profiles found", style="italic"))
            return
        fr, err = self.fits.get(e.name, (None, None))
        box.update(detail(e, fr, err, self.active))

    def action_switch(self) -> None:
        e = self.selected()
        if e is None:
            return
        if e.profile is None:
            self.app.notify(f"{e.path.name} does not load: {e.error.message if e.error else '?'}",
                            severity="error")
            return
        fr, _ = self.fits.get(e.name, (None, None))
        self.app.ask_switch(e.profile, fr, self.active)

    # -- editing: new, duplicate, edit, delete (appliance.editing does the files) ----------------------------
    def open_editor(self, path, text: str | None = None) -> None:
        from appliance.tui.screens.editor import EditorScreen

        self.app.push_screen(EditorScreen(path, self.active, text=text))

    def _names(self) -> list[str]:
        return [e.name for e in self.entries]

    def action_edit(self) -> None:
        from appliance.editing import store
        from appliance.errors import ApplianceError

        e = self.selected()
        if e is None:
            return
        try:
            path, copied = store.editable(e.path if e.path.is_absolute() else e.path.stem, write=False)
        except ApplianceError as exc:
            self.app.notify(exc.message, severity="error")
            return
        if e.profile is None:  # the editor shows what is wrong at the field, if the YAML itself parses
            from appliance.editing import roundtrip

            try:
                ok = isinstance(roundtrip.load(store.text_to_edit(path, copied), str(path)), dict)
            except (ApplianceError, OSError):
                ok = False
            if not ok:
                self.app.notify(f"{path.name} is not a YAML mapping; fix it in a text editor: appliance edit "
                                f"{e.name}", severity="error", timeout=8)
                return
        if copied is not None:
            self.app.notify(f"{e.name} is shipped (read-only): saving makes your own copy of it", timeout=6)
        self.open_editor(path, store.text_to_edit(path, copied))

    def action_new(self, start: str | None = None, title: str = "New profile") -> None:
        from appliance.tui.screens.editor_dialogs import NewProfileDialog

        def done(path) -> None:
            if path is not None:
                self.action_reload()
                self.open_editor(path)

        self.app.push_screen(NewProfileDialog(self._names(), start, title, create=self._create), done)

    def action_duplicate(self) -> None:
        e = self.selected()
        if e is not None:
            self.action_new(e.name, f"Duplicate {e.name}")

    @staticmethod
    def _create(req):
        """The new file (ApplianceError: the dialog shows it and stays open)."""
        from appliance.editing import create

        return create.new_profile(req.name, req.from_profile, req.model, req.card, req.gpu_count)

    def action_delete(self) -> None:
        from appliance.editing import store
        from appliance.tui.screens.editor_dialogs import ConfirmDialog

        e = self.selected()
        if e is None:
            return
        if store.is_shipped(e.path):
            self.app.notify(f"{e.name} is a shipped profile (read-only); only your own profiles can be deleted",
                            severity="warning")
            return

        def answer(yes: bool | None) -> None:
            if yes:
                from appliance.errors import ApplianceError

                try:
                    store.delete(e.path)
                except ApplianceError as exc:
                    self.app.notify(exc.message, severity="error")
                    return
                self.app.notify(f"deleted {e.path.name} (its last version is in {store.HISTORY_DIR}/)")
                self.action_reload()

        self.app.push_screen(ConfirmDialog(f"Delete your profile {e.name} ({e.path})?", "Delete (y)"), answer)
