"""`--gpu TEXT` → the GPUs the fit check judges against. One pure function, so every command reads it alike.

Owners type what is on the box or the invoice: `4090`, `rtx4090`, `RTX 4090`, `3090x4`, `4x3090`, `24GiB`,
`2x24GB`, `4x24`, or a comma list of those (`4090,3090`). The rules (GPU_HELP, shown by `--help`):
  - a bare number is a card model when it names one (3060, 3090, 4090, 5090), otherwise a size in GiB;
  - `GiB` is binary (2**30 bytes), `GB` decimal (10**9 bytes); a bare `G` is refused as ambiguous;
  - a count goes on either side of `x` (`3090x4` = `4x3090`); with two bare numbers that are not cards the
    count comes first (`4x24` = four 24 GiB GPUs), so `24x4` asks for 24 GPUs and is refused with the fix.
Anything else is an ApplianceError naming the value and what to type; never a traceback.

Stdlib only at import time: the CLI reads GPU_HELP for `--help`, which must not import pydantic (appliance.fit
imports the profile models), so fit.GPU is imported where the GPUs are built.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from appliance import cards
from appliance.errors import ApplianceError

MAX_GPUS = 16  # one workstation; more is a typo (`24x100000000`), not a rig this tool runs
MIN_BYTES = cards.GIB  # smaller than any GPU that can hold a model
MAX_BYTES = 1024 * cards.GIB  # larger than any single GPU made

GPU_HELP = ("GPUs to judge against: a card (4090, rtx4090, 'RTX 4090', a100-80), a count on either side of x "
            "(3090x4 = 4x3090), or a size (24GiB binary, 24GB decimal, 2x24GB); a comma list mixes them "
            "(4090,3090). A bare number is a card when it names one (3060, 3090, 4090, 5090), otherwise GiB: "
            "24 = 24GiB, 4x24 = four 24 GiB GPUs. A count is exact (1x3090 is one GPU); one card or size without a "
            "count stands for as many GPUs as the profile uses, and the check says so.")

_EXAMPLES = "a card like 4090 or rtx4090, a count like 3090x4 or 4x3090, or a size like 24GiB, 24GB or 2x24GB"
_NUMBER = r"[0-9]+(?:\.[0-9]+)?"  # ASCII digits only: no `nan`, `inf`, `1e9` or Arabic-Indic digits
_SIZE = re.compile(rf"({_NUMBER})\s*(gib|gb|g|mib|mb|tib|tb|t|m)?", re.IGNORECASE)
_COUNT_FIRST = re.compile(r"([-+]?[0-9]+)\s*[x×*]\s*(.+)", re.IGNORECASE)
_COUNT_LAST = re.compile(r"(.+?)\s*[x×*]\s*([-+]?[0-9]+)", re.IGNORECASE)


@dataclass(frozen=True)
class _One:
    """One GPU as written: its name and memory, and whether the text said so outright (a card or a unit)."""

    name: str
    memory_bytes: int
    explicit: bool


def parse_gpu_arg(text: str, needed: int = 1) -> list:
    """`--gpu TEXT` → list of fit.GPU indexed 0.. (see parse_gpu_arg_noted)."""
    return parse_gpu_arg_noted(text, needed)[0]


def parse_gpu_arg_noted(text: str, needed: int = 1) -> tuple[list, str | None]:
    """`--gpu TEXT` → (list of fit.GPU indexed 0.., what was assumed or None). `needed` is how many GPUs the
    profile uses: one card or size written without a count is repeated that many times (`--gpu 4090` for a 4-GPU
    profile means four 4090s, and the note says so), but a count is what the owner has: `1x3090` is one GPU,
    so a 4-GPU profile is judged against one and does not fit."""
    from appliance.fit import GPU  # here, not at the top: see the module docstring

    parts = [p.strip() for p in str(text).split(",")]
    if not any(parts):
        raise ApplianceError(f"--gpu {_show(text)!r}: no GPU given", f"type {_EXAMPLES}")
    if not all(parts):
        raise ApplianceError(f"--gpu {_show(text)}: an empty item between commas", "write the list like 4090,3090")
    found: list[tuple[_One, int, bool]] = [_counted(part, text) for part in parts]
    total = sum(n for _, n, _ in found)
    if total > MAX_GPUS:
        raise ApplianceError(f"--gpu {_show(text)}: {total} GPUs in all; this checks one machine",
                             f"give at most {MAX_GPUS} GPUs")
    gpus = [one for one, n, _ in found for _ in range(n)]
    note = None
    if len(found) == 1 and not found[0][2] and needed > 1:
        gpus = gpus * min(needed, MAX_GPUS)
        short = gpus[0].name.removeprefix("NVIDIA ").removeprefix("GeForce ")
        note = f"assuming {len(gpus)} × {short}, as the profile uses"
    return [GPU(i, g.name, g.memory_bytes) for i, g in enumerate(gpus)], note


def _counted(part: str, whole: str) -> tuple[_One, int, bool]:
    """One comma item → (GPU, count, whether a count was written). The item as a whole wins (`rtx4090` holds an
    x), then `NxGPU`, `GPUxN`."""
    try:
        return _one(part, whole), 1, False
    except ApplianceError as exc:
        first_error = exc
    readings: list[tuple[_One, str]] = []
    for pattern, gpu_group, count_group in ((_COUNT_FIRST, 2, 1), (_COUNT_LAST, 1, 2)):
        m = pattern.fullmatch(part)
        if not m:
            continue
        try:
            readings.append((_one(m.group(gpu_group), whole), m.group(count_group)))
        except ApplianceError as exc:
            if pattern is _COUNT_FIRST:  # `2xfoo`: say `foo` is unknown, not `2xfoo`
                first_error = exc
    if not readings:  # `gtx9090` must not be reported as the card `gt`
        raise first_error
    explicit = [r for r in readings if r[0].explicit]
    if len(explicit) == 2 and explicit[0][0] != explicit[1][0]:
        raise ApplianceError(f"--gpu {_show(whole)}: `{_show(part)}` names two cards",
                             "give one card and a count, like 3090x4 or 4x3090")
    one, count_text = (explicit or readings)[0]  # a card or a unit beats a bare number; else count first
    digits = count_text.lstrip("+-").lstrip("0")
    count = int(count_text) if len(digits) <= 6 else (-1 if count_text.startswith("-") else MAX_GPUS + 1)
    if count < 1:
        raise ApplianceError(f"--gpu {_show(whole)}: {_show(count_text)} GPUs in `{_show(part)}`",
                             "a count is 1 or more, like 3090x4")
    if count > MAX_GPUS:
        hint = f"give at most {MAX_GPUS} GPUs"
        if cards.lookup(count_text):
            hint += f"; `{count_text}` is read as a count here: a card takes a whole count, like 2x{count_text}"
        elif not one.explicit:
            hint += "; with two bare numbers the count comes first: 4x24 is four 24 GiB GPUs"
        raise ApplianceError(f"--gpu {_show(whole)}: {_show(count_text)} GPUs in `{_show(part)}`; this checks "
                             "one machine", hint)
    return one, count, True


def _show(text: str) -> str:
    """The value as typed, cut short: a message must stay one readable line even for 5000 pasted digits."""
    return text if len(text) <= 40 else text[:37] + "..."


def _one(text: str, whole: str) -> _One:
    """One GPU: a card name, or a size with an optional unit. Raises ApplianceError naming the value."""
    text = text.strip()
    card = cards.lookup(text) if text else None
    if card is not None:
        return _One(card.name, card.memory_bytes, True)
    m = _SIZE.fullmatch(text)
    if m is None:
        raise ApplianceError(f"--gpu {_show(whole)}: unknown card `{_show(text)}`",
                             f"one of {', '.join(cards.CARDS)}; or {_EXAMPLES}")
    number, unit = m.group(1), (m.group(2) or "").lower()
    if unit == "g":
        raise ApplianceError(f"--gpu {_show(whole)}: `{_show(text)}` could be GiB or GB",
                             f"say which: {_show(number)}GiB (binary, as NVML reports) or {_show(number)}GB (decimal)")
    if unit not in ("", "gib", "gb"):
        raise ApplianceError(f"--gpu {_show(whole)}: `{_show(text)}` has a unit this does not take",
                             "give GPU memory in GiB (binary) or GB (decimal), like 24GiB or 24GB")
    value = float(number) if len(number) < 12 else float("inf")  # `1` × 5000 must not reach round()
    size = round(value * (10**9 if unit == "gb" else cards.GIB)) if value < 10**6 else MAX_BYTES + 1
    label = f"{value:g} GB GPU" if unit == "gb" else f"{value:g} GiB GPU"
    if not MIN_BYTES <= size <= MAX_BYTES:
        said = f"{_show(number)} {'GB' if unit == 'gb' else 'GiB'}"
        raise ApplianceError(f"--gpu {_show(whole)}: {said} is not a GPU memory size",
                             f"give a size between 1 and 1024 GiB, or a card name like 4090 ({_EXAMPLES})")
    return _One(label, size, bool(unit))
