"""Each startup failure, the same cause given to the stand-in and to the real vLLM: the exit code, the decisive line,
and appliance.diagnose's diagnosis and fix — made from the REAL output."""

from __future__ import annotations

import socket

import pytest

from appliance.diagnose import diagnose

# name: (extra flags, serve_argv keyword overrides, exit code, decisive text, diagnosis kind, words the fix must have)
CASES = {
    "unknown flag": (("--no-such-flag", "1"), {}, 2, "unrecognized arguments: --no-such-flag 1", "unknown_flag",
                     ("remove",)),
    "max_model_len beyond the model": ((), {"max_model_len": 8192}, 1,
                                       "User-specified max_model_len (8192) is greater than the derived max_model_len",
                                       "max_model_len_too_long", ("4096",)),
    "KV cache too small": ((), {"kv_cache_bytes": "256K"}, 1, "To serve at least one request with the model",
                           "kv_too_small", ("max_model_len to",)),
}


@pytest.mark.parametrize("case", list(CASES))
def test_startup_failure_is_diagnosed(own_engines, kind, case):
    flags, kw, rc, text, diag_kind, fix_words = CASES[case]
    eng = own_engines(kind, *flags, wait=False, **kw)
    code = eng.wait_exit(300)
    lines = eng.lines()
    assert code == rc, f"[{kind}] exit {code}:\n" + "\n".join(lines[-30:])
    assert any(text in ln for ln in lines), f"[{kind}] no line with {text!r}:\n" + "\n".join(lines[-30:])
    d = diagnose(lines, code)
    assert d.kind == diag_kind, f"[{kind}] diagnosed {d.kind}: {d.title}"
    assert all(w in d.fix for w in fix_words), d.fix
    if diag_kind == "kv_too_small":
        # vLLM's own estimate, read from its output (real 0.32 CPU: 384 tokens for 256 KiB; the stand-in's
        # arithmetic has no reserved null block and a GPU block size: 512)
        assert d.estimated_max_model_len is not None and 0 < d.estimated_max_model_len < 2048
        assert f"max_model_len to {d.estimated_max_model_len} or less" in d.fix


def test_port_taken_is_diagnosed(own_engines, kind):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        eng = own_engines(kind, wait=False, port=taken.getsockname()[1])
        code = eng.wait_exit(300)
    lines = eng.lines()
    assert code == 1, f"[{kind}] exit {code}:\n" + "\n".join(lines[-30:])
    assert any("[Errno 98] Address already in use" in ln for ln in lines), "\n".join(lines[-30:])
    d = diagnose(lines, code)
    assert d.kind == "address_in_use" and "port" in d.fix, d
