"""Round-trip YAML: change a profile's values and keep everything else of the file exactly as its owner wrote it.

ruamel.yaml keeps comments and key order, but re-emits some things its own way (a flow mapping the owner broke
over two lines, the indentation of sequences). So a change is made in three steps: O (the file), B = dump(load(O))
(ruamel's rendering of the unchanged file) and N = dump(changed). The edits that turn B into N are applied to O
line by line; every line the change does not touch stays byte for byte. When a change falls inside a region
ruamel re-rendered (rare), N is used whole — still with the comments and key order.

Assignments are `path=value`: the path is dotted (`engines.0.max_model_len`, `power_limit_w.1`), the value is
YAML (`16384`, `fp8`, `true`, `[local, coder]`, `{method: mtp, num_speculative_tokens: 2}`); `null` or `~`
removes the key (every optional field then falls back to its default).
"""

from __future__ import annotations

import difflib
import functools
import io
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import YAMLError
from ruamel.yaml.scalarstring import DoubleQuotedScalarString, SingleQuotedScalarString
from ruamel.yaml.util import load_yaml_guess_indent

from appliance.errors import ProfileError

REMOVE = object()  # value of an assignment that deletes the key


@functools.lru_cache(maxsize=16)
def _indent(text: str) -> tuple[int, int, int]:
    """(mapping, sequence, offset) indentation of a text; cached, the editor renders the same file often."""
    indent, offset = 2, 2
    if text.strip():
        try:
            _, guessed, bsi = load_yaml_guess_indent(text)
            indent, offset = guessed or 2, bsi if bsi is not None else 0
        except YAMLError:
            pass
    mapping = indent - offset if offset and indent > offset else indent
    return mapping, max(indent, offset + 2), offset


def _yaml(text: str = "") -> YAML:
    """A round-trip YAML instance set up like the text it will write (indentation guessed from the text)."""
    y = YAML()
    y.preserve_quotes = True
    y.width = 4096  # never fold a long line the owner kept on one line
    mapping, sequence, offset = _indent(text)
    y.indent(mapping=mapping, sequence=sequence, offset=offset)
    return y


@functools.lru_cache(maxsize=16)
def _base(original: str) -> str:
    return dump(load(original), original) if original.strip() else ""


def load(text: str, file: str = "<profile>") -> Any:
    try:
        return _yaml(text).load(text)
    except YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{file}:{mark.line + 1}" if mark else file
        raise ProfileError(f"{where}: not valid YAML: {getattr(exc, 'problem', None) or exc}",
                           "check indentation and quoting near that line") from None


def dump(data: Any, like: str = "") -> str:
    out = io.StringIO()
    _yaml(like).dump(data, out)
    return out.getvalue()


def render(original: str, data: Any) -> str:
    """The text of `data` with every line `original` has and the change leaves alone kept as it was."""
    base = _base(original)
    new = dump(data, original)
    return merge(original, base, new)


def merge(orig: str, base: str, new: str) -> str:
    """Apply the line edits base → new onto orig (base is ruamel's rendering of orig). Falls back to `new`."""
    if base == orig or not orig:
        return new
    o, b, n = orig.splitlines(keepends=True), base.splitlines(keepends=True), new.splitlines(keepends=True)
    bmap: dict[int, int] = {}
    for tag, i1, i2, j1, _j2 in difflib.SequenceMatcher(None, b, o, autojunk=False).get_opcodes():
        if tag == "equal":
            bmap.update({i1 + k: j1 + k for k in range(i2 - i1)})
    edits: list[tuple[int, int, list[str]]] = []
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(None, b, n, autojunk=False).get_opcodes():
        if tag == "equal":
            continue
        if i2 > i1:
            span = [bmap.get(k) for k in range(i1, i2)]
            if None in span or span != list(range(span[0], span[0] + len(span))):
                return new  # the change touches lines ruamel re-rendered
            start, end = span[0], span[-1] + 1
        elif i1 > 0 and i1 - 1 in bmap:
            start = end = bmap[i1 - 1] + 1
        elif i1 in bmap:
            start = end = bmap[i1]
        elif i1 == len(b):
            start = end = len(o)
        else:
            return new
        if edits and start < edits[-1][1]:
            return new
        edits.append((start, end, n[j1:j2]))
    out, pos = [], 0
    for start, end, lines in edits:
        out += o[pos:start] + lines
        pos = end
    out += o[pos:]
    merged = "".join(out)
    if merged and not merged.endswith("\n"):
        merged += "\n"
    return merged if _same(merged, new) else new


def _same(a: str, b: str) -> bool:
    """Both texts mean the same data (libyaml when there: this runs on every keystroke of the editor)."""
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    try:
        return yaml.load(a, Loader=loader) == yaml.load(b, Loader=loader)
    except yaml.YAMLError:
        return False


# ------------------------------------------------------------------------------------------- assignments


def parse_value(text: str) -> Any:
    """A YAML value as written after `=`; `null`/`~` means remove the key."""
    stripped = text.strip()
    if stripped in ("null", "~", "Null", "NULL"):
        return REMOVE
    if stripped == "":
        return ""
    try:
        value = YAML().load(stripped)
    except YAMLError as exc:
        raise ProfileError(f"`{text}` is not a YAML value ({getattr(exc, 'problem', None) or exc})",
                           "quote text with special characters, e.g. key='a: b'") from None
    return REMOVE if value is None else value


def split_path(path: str) -> list[str | int]:
    parts: list[str | int] = []
    for part in path.split("."):
        if part == "":
            raise ProfileError(f"`{path}` is not a field path", "write fields like engines.0.max_model_len")
        parts.append(int(part) if part.lstrip("-").isdigit() else part)
    return parts


def _fmt(parts) -> str:
    return ".".join(str(p) for p in parts)


def get_path(data: Any, parts: list) -> Any:
    node = data
    for p in parts:
        if isinstance(node, dict) and p in node:
            node = node[p]
        elif isinstance(node, list) and isinstance(p, int) and -len(node) <= p < len(node):
            node = node[p]
        else:
            return None
    return node


def set_path(data: CommentedMap, parts: list, value: Any, order: tuple = ()) -> None:
    """Set (or with REMOVE delete) one value in place; missing mappings on the way are created. A new key named
    in `order` goes before the first existing key that `order` puts after it (else at the end)."""
    node: Any = data
    for depth, p in enumerate(parts[:-1]):
        here = _fmt(parts[: depth + 1])
        if isinstance(node, list):
            if not isinstance(p, int) or not -len(node) <= p < len(node):
                raise ProfileError(f"`{here}`: there is no item {p} (the list has {len(node)})",
                                   f"use an index from 0 to {len(node) - 1}")
            node = node[p]
            continue
        if not isinstance(node, dict):
            raise ProfileError(f"`{_fmt(parts[:depth])}` is a single value, not a mapping", f"set `{here}` whole")
        if p not in node or node[p] is None:
            if value is REMOVE:
                return
            node[p] = CommentedMap()
        node = node[p]
    last = parts[-1]
    if isinstance(node, list):
        if not isinstance(last, int) or not -len(node) <= last < len(node):
            raise ProfileError(f"`{_fmt(parts)}`: the list has {len(node)} items", "use an existing index")
        if value is REMOVE:
            del node[last]
        else:
            node[last] = value
        return
    if not isinstance(node, dict):
        raise ProfileError(f"`{_fmt(parts[:-1])}` is a single value, not a mapping", f"set `{_fmt(parts[:-1])}` whole")
    if value is REMOVE:
        node.pop(last, None)
        return
    if last not in node and last in order and isinstance(node, CommentedMap):
        later = set(order[order.index(last) + 1:])
        pos = next((i for i, k in enumerate(node) if k in later), None)
        if pos is not None:
            node.insert(pos, last, value)
            return
    old = node.get(last)
    if isinstance(old, (DoubleQuotedScalarString, SingleQuotedScalarString)) and \
            isinstance(value, (str, int, float)) and not isinstance(value, bool):
        value = type(old)(str(value))  # the owner quoted it: text stays text (card: "3090"), quoted the same way
    node[last] = value


def flow(value: Any) -> Any:
    """Lists and small mappings written inline ({a: 1}, [x, y]), as the shipped profiles do."""
    if isinstance(value, list) and not isinstance(value, CommentedSeq):
        seq = CommentedSeq(flow(v) for v in value)
        seq.fa.set_flow_style()
        return seq
    if isinstance(value, dict) and not isinstance(value, CommentedMap):
        m = CommentedMap((k, flow(v)) for k, v in value.items())
        m.fa.set_flow_style()
        return m
    return value
