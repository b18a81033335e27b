"""The strict grammar of every profile value that reaches a rendered file (haproxy.cfg, compose.yaml, litellm.yaml)
or a command line.

Why a grammar and not only escaping: HAProxy's config has no quoting that survives a newline, `%` starts a
log-format expression and `${X}` inside double quotes is expanded from the environment (where the master key
lives); Compose interpolates `$` in every string; YAML treats U+0085/U+2028 as line breaks; LiteLLM resolves any
parameter written `os.environ/NAME`. A name that can only be letters, digits and a few separators cannot carry any
of that, so the renderers stay simple and a review can check one table. Free text (env values, extra_args) cannot
have a grammar: it may not hold control or line-break characters, has a size cap, and the renderers escape `$`.

Each function returns None when the value is fine, else the problem (one sentence), so pydantic validators and
the cross-field checks can both use it.
"""

from __future__ import annotations

import re
import unicodedata

ALIAS_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,63}")
# Hugging Face repo ids (org/name, name) and absolute local paths; `@`/`+`/`:` for revisions and tags.
MODEL_ID_RE = re.compile(r"/?[A-Za-z0-9_][A-Za-z0-9._/:@+-]{0,254}")
PROVIDER_MODEL_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/:@+-]{0,199}")
IMAGE_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/:@-]{0,254}")
URL_RE = re.compile(r"https?://[\x21-\x7e]{1,2000}")
MAX_TEXT = 4096  # an env value
MAX_ARG = 1024  # one extra_args item
MAX_ARGS = 64
MAX_DESCRIPTION = 2000
ALIAS_CHARS = "letters, digits, . _ : - (at most 64, starting with a letter or digit)"
MODEL_CHARS = "a Hugging Face id (org/name) or an absolute path: letters, digits, . _ / : @ + -"


def _bad_char(text: str) -> str | None:
    """The first control, format (zero-width, bidi) or line/paragraph-separator character, described."""
    for ch in text:
        if unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp", "Cs", "Co", "Cn"):
            return f"U+{ord(ch):04X} ({unicodedata.name(ch, 'control character').lower()})"
    return None


def alias_problem(value: str, what: str = "alias") -> str | None:
    if not ALIAS_RE.fullmatch(value):
        return f"{what} `{_show(value)}` has characters the front door cannot route; use {ALIAS_CHARS}"
    return None


def model_id_problem(value: str, what: str = "model") -> str | None:
    if not MODEL_ID_RE.fullmatch(value) or "//" in value or "/../" in f"/{value}/":
        return f"{what} `{_show(value)}` is not {MODEL_CHARS}"
    return None


def provider_model_problem(value: str) -> str | None:
    if not PROVIDER_MODEL_RE.fullmatch(value) or value.startswith("os.environ/"):
        return f"model `{_show(value)}` is not a provider's model id (letters, digits, . _ / : @ + -)"
    return None


def image_problem(value: str) -> str | None:
    if not IMAGE_RE.fullmatch(value):
        return f"image `{_show(value)}` is not an image reference (registry/name:tag)"
    return None


def url_problem(value: str) -> str | None:
    if not URL_RE.fullmatch(value):
        return f"`{_show(value)}` is not an http(s) URL of printable ASCII without spaces"
    return None


def text_problem(value: str, what: str, limit: int = MAX_TEXT) -> str | None:
    """Free text that reaches a rendered file or a command line: no control/line-break/zero-width characters."""
    if len(value) > limit:
        return f"{what} is {len(value)} characters long (at most {limit})"
    bad = _bad_char(value)
    if bad:
        return f"{what} holds {bad}, which a rendered file cannot carry safely"
    return None


def description_problem(value: str) -> str | None:
    if len(value) > MAX_DESCRIPTION:
        return f"description is {len(value)} characters long (at most {MAX_DESCRIPTION})"
    return None


def extra_args_problem(args) -> str | None:
    if len(args) > MAX_ARGS:
        return f"extra_args has {len(args)} items (at most {MAX_ARGS})"
    for i, a in enumerate(args):
        p = text_problem(a, f"extra_args[{i}]", MAX_ARG)
        if p:
            return p
    return None


def _show(value: str, limit: int = 60) -> str:
    """A value safe to print in one error line: escapes visible, long values cut."""
    r = value.encode("unicode_escape").decode("ascii")
    return r if len(r) <= limit else r[:limit] + "…"
