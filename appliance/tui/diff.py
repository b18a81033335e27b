"""Pure: what changes between two profiles, as (key, old, new) — flattened dotted keys, engines by position."""

from __future__ import annotations


def _flat(value, prefix: str, out: dict) -> None:
    if isinstance(value, dict):
        for k, v in value.items():
            _flat(v, f"{prefix}.{k}" if prefix else str(k), out)
    elif isinstance(value, (list, tuple)) and value and all(isinstance(v, dict) for v in value):
        for i, v in enumerate(value):
            _flat(v, f"{prefix}[{i}]", out)
    else:
        out[prefix] = value


def flatten(profile) -> dict:
    # defaults included: a profile that leaves `port` at its default 8000 runs on 8000 — left out, the diff
    # against a profile on 8001 read "port 8001 → —" (both sides carry every field; only differences are shown)
    data = profile.model_dump(mode="json", exclude={"source_file"})
    engines = data.pop("engines", [])
    out: dict = {}
    _flat(data, "", out)
    for i, e in enumerate(engines):
        _flat(e, f"engines[{i}]", out)  # by position: most profiles have one engine, named differently
    return out


SKIP = ("description", "name")


def profile_diff(active, other) -> list[tuple[str, object, object]]:
    a, b = flatten(active), flatten(other)
    rows = []
    keys = list(dict.fromkeys([*a, *b]))
    keys.sort(key=lambda k: not k.startswith("engines"))  # engines first, then power, gpus, proxy
    for k in keys:
        if k in SKIP:
            continue
        if a.get(k) != b.get(k):
            rows.append((k, _show(a.get(k)), _show(b.get(k))))
    return rows


def _show(v):
    if isinstance(v, list):
        return ", ".join(map(str, v))
    return v
