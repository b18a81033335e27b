"""YAML with line numbers: load a file into plain Python objects plus a map from path to source line.

PyYAML's `safe_load` forgets where a value came from and silently keeps the last of two duplicate keys; both
matter for error messages a user can act on, so the loader composes nodes and builds the objects itself.
Paths are tuples of keys and list indices, e.g. ("engines", 0, "kv_cache_dtype").
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import yaml

from appliance.errors import ProfileError

Path_ = tuple
# A profile is a few KB. Caps keep a hostile or broken file from hanging a command: the size read, and the nodes
# built — an alias is expanded where it is used, so a "billion laughs" file of 1 KB would otherwise build 10^9.
MAX_BYTES = 1 << 20
MAX_NODES = 200_000


class _Budget:
    def __init__(self, file: str):
        self.file = file
        self.left = MAX_NODES

    def spend(self) -> None:
        self.left -= 1
        if self.left < 0:
            raise ProfileError(f"{self.file}: expands to more than {MAX_NODES} values (YAML aliases used over and "
                               "over?)", "write the values out; a profile needs no aliases (&name / *name)")


@dataclass
class Source:
    file: str
    data: object
    lines: dict[tuple, int] = field(default_factory=dict)

    def line(self, path: tuple) -> int | None:
        """Line of `path`, or of its nearest ancestor that has one."""
        path = tuple(path)
        while True:
            if path in self.lines:
                return self.lines[path]
            if not path:
                return None
            path = path[:-1]

    def where(self, path: tuple) -> str:
        line = self.line(path)
        return f"{self.file}:{line}" if line else self.file


def format_path(path: tuple) -> str:
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out or "(top level)"


def _build(node: yaml.Node, path: tuple, lines: dict, file: str, budget: _Budget | None = None):
    budget = budget or _Budget(file)
    budget.spend()
    lines.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        out: dict = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                raise ProfileError(f"{file}:{key_node.start_mark.line + 1}: a key must be a plain name",
                                   "write `name: value` pairs")
            key = _scalar(key_node)
            if not isinstance(key, (str, int, bool)) or key is None:
                raise ProfileError(f"{file}:{key_node.start_mark.line + 1}: `{key_node.value}` cannot be a key",
                                   "write `name: value` pairs")
            if key in out:
                raise ProfileError(
                    f"{file}:{key_node.start_mark.line + 1}: {format_path(path + (key,))} is given twice "
                    f"(first on line {lines.get(path + (key,))})", "keep one of them")
            lines[path + (key,)] = key_node.start_mark.line + 1
            out[key] = _build(value_node, path + (key,), lines, file, budget)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_build(item, path + (i,), lines, file, budget) for i, item in enumerate(node.value)]
    return _scalar(node)


def _scalar(node: yaml.Node):
    """PyYAML's safe constructor resolves the tag (int, float, bool, null, str, timestamps)."""
    loader = yaml.SafeLoader("")
    try:
        return loader.construct_object(node, deep=True)
    finally:
        loader.dispose()


def load(text: str, file: str) -> Source:
    """Parse one YAML document; malformed YAML becomes a ProfileError naming the line."""
    try:
        nodes = list(yaml.compose_all(text, Loader=yaml.SafeLoader))
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = f":{mark.line + 1}" if mark else ""
        what = exc.problem or exc.context or "malformed YAML"
        raise ProfileError(f"{file}{line}: not valid YAML: {what}",
                           "check indentation and quoting near that line (YAML needs spaces, not tabs)") from None
    except yaml.YAMLError as exc:
        raise ProfileError(f"{file}: not valid YAML: {exc}", "check the file's syntax") from None
    except (ValueError, TypeError) as exc:  # e.g. bad timestamps, recursive aliases
        raise ProfileError(f"{file}: not valid YAML: {exc}", "check the file's syntax") from None
    except RecursionError:
        raise ProfileError(f"{file}: nested too deeply", "simplify the file") from None
    if len(nodes) != 1 or nodes[0] is None:
        if not nodes or nodes[0] is None:
            raise ProfileError(f"{file}: the file is empty", "start from one of the profiles in profiles/")
        raise ProfileError(f"{file}: holds {len(nodes)} YAML documents", "keep one profile per file")
    lines: dict = {}
    try:
        data = _build(nodes[0], (), lines, file)
    except RecursionError:
        raise ProfileError(f"{file}: nested too deeply", "simplify the file") from None
    except (yaml.YAMLError, ValueError, TypeError) as exc:
        raise ProfileError(f"{file}: not valid YAML: {exc}", "check the file's syntax") from None
    return Source(file, data, lines)


def read_text(path: Path, what: str = "profile") -> str:
    """A small UTF-8 text file, at most MAX_BYTES (a device like /dev/zero, a FIFO or a huge file is refused
    instead of read forever); every failure is a ProfileError naming the file."""
    import stat

    try:
        st = path.stat()
        if not stat.S_ISREG(st.st_mode):
            raise ProfileError(f"{path}: not a regular file", f"give the path of a {what} YAML file")
        with open(path, "rb") as f:
            raw = f.read(MAX_BYTES + 1)
    except FileNotFoundError:
        raise ProfileError(f"{path}: no such file", "give a profile name (see `appliance profiles`) or a path") from None
    except OSError as exc:
        raise ProfileError(f"{path}: cannot read ({exc.strerror})", "check the path and its permissions") from None
    if len(raw) > MAX_BYTES:
        raise ProfileError(f"{path}: larger than {MAX_BYTES // 1024} KiB", f"a {what} is a few KB; check the file")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ProfileError(f"{path}: not UTF-8 text", f"save the {what} as UTF-8 YAML") from None


def load_file(path: Path, what: str = "profile") -> Source:
    return load(read_text(Path(path), what), str(path))
