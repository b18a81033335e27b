"""Dialogs of the profile editor: a new profile (from a profile or a model), a duplicate's name, a delete."""

from __future__ import annotations

from dataclasses import dataclass

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.suggester import SuggestFromList
from textual.widgets import Button, Input, Label, Select, Static

from appliance.errors import ApplianceError

FROM_MODEL = "__model__"


@dataclass(frozen=True)
class NewRequest:
    name: str
    from_profile: str | None = None
    model: str | None = None
    card: str | None = None
    gpu_count: int = 1


def model_suggestions() -> list[str]:
    """Catalog models and the ids of models in the local Hugging Face cache."""
    from appliance import catalog
    from appliance.profile import available_files

    out = set(catalog.known_models())
    for f in available_files():  # the ids the profiles use, spelled as on Hugging Face
        try:
            out.update(ln.split("model:", 1)[1].strip() for ln in f.read_text().splitlines()
                       if ln.strip().startswith("model:"))
        except OSError:
            continue
    for cache in catalog.hf_cache_dirs():
        if cache.is_dir():
            out.update(d.name[len("models--"):].replace("--", "/") for d in cache.glob("models--*"))
    return sorted(out)


class NewProfileDialog(ModalScreen):
    """Name, and what to start from: one of the profiles, or a model (catalog, HF cache, folder, models.yaml).
    `create(NewRequest)` makes the file; its error stays in the dialog so the user can correct the input."""

    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, profile_names: list[str], start: str | None = None, title: str = "New profile",
                 create=None, **kw):
        super().__init__(**kw)
        self.create = create or (lambda req: req)
        self.profile_names = profile_names
        self.start = start
        self.title_text = title

    def compose(self) -> ComposeResult:
        from appliance import cards

        options = [(f"profile {n}", n) for n in self.profile_names] + [("a model …", FROM_MODEL)]
        with Vertical(id="dialog", classes="new-profile"):
            yield Static(Text(self.title_text, style="bold"))
            with Horizontal(classes="dlg-row"):
                yield Label("name", classes="dlg-label")
                yield Input(placeholder="lowercase, e.g. my-rig", id="new-name", compact=True,
                            restrict=r"[a-z0-9_-]*")
            with Horizontal(classes="dlg-row"):
                yield Label("start from", classes="dlg-label")
                yield Select(options, value=self.start or FROM_MODEL, allow_blank=False, compact=True, id="new-from")
            with Horizontal(classes="dlg-row", id="model-row"):
                yield Label("model", classes="dlg-label")
                yield Input(placeholder="org/name, or a folder with a config.json", id="new-model", compact=True,
                            suggester=SuggestFromList(model_suggestions(), case_sensitive=False))
            with Horizontal(classes="dlg-row", id="card-row"):
                yield Label("card × count", classes="dlg-label")
                yield Select([(c, c) for c in cards.CARDS], value="4090", allow_blank=False, compact=True,
                             id="new-card")
                yield Input(value="1", id="new-count", compact=True, restrict=r"[0-9]*")
            yield Static(id="new-error")
            with Horizontal(classes="buttons"):
                yield Button("Create", variant="primary", id="create")
                yield Button("Cancel", id="cancel")

    def on_mount(self) -> None:
        self._toggle()
        self.query_one("#new-name", Input).focus()

    def on_select_changed(self, _event) -> None:
        self._toggle()

    def _toggle(self) -> None:
        model = self.query_one("#new-from", Select).value == FROM_MODEL
        self.query_one("#model-row").display = model
        self.query_one("#card-row").display = model

    def on_input_submitted(self, _event) -> None:
        self._create()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "create":
            self._create()
        else:
            self.dismiss(None)

    def _create(self) -> None:
        name = self.query_one("#new-name", Input).value.strip()
        source = self.query_one("#new-from", Select).value
        err = self.query_one("#new-error", Static)
        if not name:
            err.update(Text("give the new profile a name", style="red"))
            return
        if source != FROM_MODEL:
            req = NewRequest(name, from_profile=str(source))
        else:
            model = self.query_one("#new-model", Input).value.strip()
            if not model:
                err.update(Text("type a model id (→ completes) or a folder", style="red"))
                return
            count = int(self.query_one("#new-count", Input).value or "1")
            req = NewRequest(name, model=model, card=str(self.query_one("#new-card", Select).value),
                             gpu_count=max(1, count))
        try:
            result = self.create(req)
        except ApplianceError as exc:
            err.update(Text(exc.message + (f"\nfix: {exc.hint}" if exc.hint else ""), style="red"))
            return
        self.dismiss(result)

    def action_cancel(self) -> None:
        self.dismiss(None)


class ConfirmDialog(ModalScreen[bool]):
    BINDINGS = [Binding("y", "answer(True)", "Yes"), Binding("n,escape", "answer(False)", "No")]

    def __init__(self, question: str, yes: str = "Yes (y)", **kw) -> None:
        super().__init__(**kw)
        self.question, self.yes = question, yes

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Static(self.question)
            with Horizontal(classes="buttons"):
                yield Button(self.yes, variant="error", id="yes")
                yield Button("No (n)", id="no")

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "yes")

    def action_answer(self, yes: bool) -> None:
        self.dismiss(yes)
