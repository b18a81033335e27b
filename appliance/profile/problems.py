"""One problem found in a profile, and the message built from all of them.

Checks collect Problems (path into the YAML, what is wrong, how to fix it) instead of raising at the first one,
so the owner sees every mistake of a file at once, each with its file:line (load.py formats them).
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from appliance import yamlsrc
from appliance.profile.model import Engine, Hosted, Profile, Proxy, Timeouts


@dataclass
class Problem:
    path: tuple
    message: str
    hint: str | None = None


def _closest(word: str, options) -> str | None:
    match = difflib.get_close_matches(str(word), list(options), n=1, cutoff=0.5)
    return match[0] if match else None


def _choices_text(choices, limit: int = 12) -> str:
    items = list(choices)
    head = ", ".join(items[:limit])
    return head + (f", … ({len(items)} in all)" if len(items) > limit else "")


def _pydantic_problems(exc: ValidationError, data) -> list[Problem]:
    out = []
    for err in exc.errors():
        loc = tuple(err["loc"])
        # pydantic puts union member names in loc; keep only keys/indices that exist in the data
        clean: list = []
        node = data
        for part in loc:
            if isinstance(node, dict) and part in node:
                clean.append(part)
                node = node[part]
            elif isinstance(node, (list, tuple)) and isinstance(part, int) and part < len(node):
                clean.append(part)
                node = node[part]
            elif err["type"] in ("extra_forbidden", "missing") and part is loc[-1]:
                clean.append(part)
            else:
                continue
        path = tuple(clean)
        field = yamlsrc.format_path(path)
        value = err.get("input")
        etype = err["type"]
        if etype == "extra_forbidden":
            from appliance.profile.owned import OWNED_ARGS, TOP_LEVEL_OWNED

            parent = _model_for(path[:-1])
            near = _closest(path[-1], parent.model_fields) if parent else None
            owned = TOP_LEVEL_OWNED.get(path[-1]) or OWNED_ARGS.get(path[-1])
            out.append(Problem(path, f"`{path[-1]}` is not a field of {yamlsrc.format_path(path[:-1])}" +
                               (" (the appliance sets it)" if owned else ""),
                               owned or (f"did you mean `{near}`?" if near else
                                         ("valid fields: " + ", ".join(parent.model_fields) if parent else None))))
        elif etype == "missing":
            out.append(Problem(path, f"`{field}` is required", f"add `{path[-1]}:`"))
        elif etype in ("literal_error", "enum"):
            expected = err.get("ctx", {}).get("expected", "")
            out.append(Problem(path, f"`{field}: {value!r}` is not allowed", f"use {expected}"))
        elif etype in ("greater_than", "greater_than_equal", "less_than", "less_than_equal"):
            ctx = err.get("ctx", {})
            bound = ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in ctx.items())
            out.append(Problem(path, f"`{field}: {value!r}` is out of range (must be {bound})", None))
        elif etype == "value_error":  # a grammar check (grammar.py): its text says what is wrong and what fits
            out.append(Problem(path, f"`{field}`: {err.get('ctx', {}).get('error', err['msg'])}", None))
        elif etype in ("finite_number",):
            out.append(Problem(path, f"`{field}: {value!r}` must be a finite number", None))
        elif etype == "too_short":
            out.append(Problem(path, f"`{field}` must not be empty", "add at least one entry"))
        else:
            want = {"int_type": "a whole number", "float_type": "a number", "string_type": "text",
                    "bool_type": "true or false", "dict_type": "a mapping", "tuple_type": "a list",
                    "model_type": "a mapping", "int_from_float": "a whole number"}.get(etype, err["msg"].lower())
            out.append(Problem(path, f"`{field}: {value!r}` must be {want}", None))
    # one problem per path is enough (unions report each member); "must not be empty" is not shown next to the
    # problem of an entry inside it (a list whose only entry is wrong is reported as that entry's problem)
    inner = {p.path[:k] for p in out for k in range(1, len(p.path))}
    out = [p for p in out if not (p.message.endswith("must not be empty") and p.path in inner)]
    seen, uniq = set(), []
    for p in out:
        if p.path not in seen:
            seen.add(p.path)
            uniq.append(p)
    return uniq


def _model_for(path: tuple):
    model: Any = Profile
    for part in path:
        if isinstance(part, int):
            continue
        field = model.model_fields.get(part) if hasattr(model, "model_fields") else None
        if field is None:
            return None
        ann = field.annotation
        for cand in (Engine, Proxy, Hosted, Timeouts):
            if cand is ann or cand.__name__ in str(ann):
                model = cand
                break
        else:
            return None
    return model


def _format(src: yamlsrc.Source, problems: list[Problem]) -> tuple[str, str | None]:
    problems = sorted(problems, key=lambda p: src.line(p.path) or 0)
    first = problems[0]
    lines = [f"{src.where(first.path)}: {first.message}"]
    hint = first.hint
    for extra in problems[1:8]:
        lines.append(f"{src.where(extra.path)}: {extra.message}" + (f" ({extra.hint})" if extra.hint else ""))
    if len(problems) > 8:
        lines.append(f"… and {len(problems) - 8} more")
    return "\n".join(lines), hint
