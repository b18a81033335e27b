"""`appliance edit PROFILE`: the file in $EDITOR, validated on close, like `crontab -e` / `kubectl edit`.

A copy is edited (in a temporary folder, under the profile's own file name so the editor picks YAML mode).
When the result does not load, the editor opens again on it with the error as a comment block at the top; the
block is removed again before saving. Closing the editor without changing anything ends the edit: the profile
stays as it was, and the text with the failed edit is kept in a file named in the message.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from appliance.editing import store
from appliance.errors import ProfileError

MARK = "# appliance edit:"  # lines of our error block start with this; they are removed before saving


@dataclass
class EditResult:
    path: Path
    changed: bool
    rounds: int  # how many times the editor was opened
    copied_from: Path | None = None


def editor_command() -> list[str]:
    for var in ("VISUAL", "EDITOR"):
        value = os.environ.get(var, "").strip()
        if value:
            return shlex.split(value)
    for name in ("sensible-editor", "editor", "nano", "vi"):
        from shutil import which

        if which(name):
            return [name]
    raise ProfileError("no editor found", "set EDITOR, e.g. export EDITOR=nano")


def run_editor(file: Path) -> None:
    cmd = editor_command()
    try:
        rc = subprocess.call([*cmd, str(file)])
    except OSError as exc:
        raise ProfileError(f"cannot start the editor `{' '.join(cmd)}` ({exc.strerror})",
                           "set EDITOR to an editor that is installed") from None
    if rc != 0:
        raise ProfileError(f"the editor `{' '.join(cmd)}` exited with status {rc}; nothing was saved", None)


def strip_block(text: str) -> str:
    lines = text.splitlines(keepends=True)
    while lines and lines[0].startswith(MARK):
        lines.pop(0)
    return "".join(lines)


def error_block(exc: ProfileError, path: Path, offset: int = 0) -> str:
    """The error as comment lines; `path:LINE` references are shifted by the block's own length."""
    rows = ["this file did not load; fix it and save (close without changes to cancel):"]
    for row in exc.message.splitlines():
        rows.append(re.sub(rf"^{re.escape(str(path))}:(\d+):",
                           lambda m: f"line {int(m.group(1)) + offset}:", row))
    if exc.hint:
        rows.append(f"fix: {exc.hint}")
    return "".join(f"{MARK} {r}\n" for r in rows)


def edit(ref: str | Path, run: Callable[[Path], None] = run_editor, max_rounds: int = 50) -> EditResult:
    """Edit a profile in an editor until it loads (or the user gives up). Shipped profiles are copied first."""
    from appliance.profile import resolve

    src = resolve(ref)
    copied = None
    if store.is_shipped(src):
        src, copied = store.editable(src, write=False)  # the copy is written only with a change
    saved = store.text_to_edit(src, copied)
    with tempfile.TemporaryDirectory(prefix="appliance-edit-") as tmpdir:
        work = Path(tmpdir) / src.name
        work.write_text(saved, encoding="utf-8")
        for rounds in range(1, max_rounds + 1):
            shown = work.read_text(encoding="utf-8")
            run(work)
            after = work.read_text(encoding="utf-8")
            if after == shown:
                if rounds == 1:
                    return EditResult(src, False, rounds, copied)
                kept = _keep(src, after)
                raise ProfileError(f"edit of {src.name} cancelled: the profile is unchanged",
                                   f"your last attempt is in {kept}")
            text = strip_block(after)
            try:
                store.save_text(src, text)
            except ProfileError as exc:
                first = error_block(exc, src)
                block = error_block(exc, src, offset=first.count("\n"))
                work.write_text(block + text, encoding="utf-8")
                continue
            return EditResult(src, text != saved, rounds, copied)
    raise ProfileError(f"gave up after {max_rounds} attempts; {src} is unchanged", None)


def _keep(src: Path, text: str) -> Path:
    from appliance import paths

    kept = paths.ensure_private_dir(src.parent / store.HISTORY_DIR) / f"{src.name}.rejected"
    kept.write_text(text, encoding="utf-8")
    return kept
