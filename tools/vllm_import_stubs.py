"""Stand-ins for the heavy dependencies of vLLM (torch, transformers, numpy, …) so that vLLM's own argument
parser can be built in a small venv without them. Used by tools/extract_vllm_spec.py only.

Every import of a top-level module that is not installed gets a permissive stub module: any attribute is a class
that can be called, subclassed, indexed, iterated and used as a decorator or a type hint. The few results vLLM
compares or validates at import time get real values (`_shim_torch`).
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import sys
import types
import typing

NO_STUB = {"vllm", "_winapi", "msvcrt", "winreg", "nt", "_overlapped", "_wmi", "winsound", "java", "IPython"}


def install_stubs() -> set[str]:
    stubbed: set[str] = set()

    class _Meta(type):
        def __getattr__(cls, name):
            if name.startswith("__") and name.endswith("__"):
                raise AttributeError(name)
            return Stub

        def __getitem__(cls, item):
            return Stub

        def __or__(cls, other):  # `torch.dtype | Literal[...]` must keep the Literal (its choices)
            try:
                return typing.Union[cls, other]
            except TypeError:
                return Stub

        def __ror__(cls, other):
            try:
                return typing.Union[other, cls]
            except TypeError:
                return Stub

        def __call__(cls, *a, **k):
            if len(a) == 1 and callable(a[0]) and not k:  # used as a decorator
                return a[0]
            return super().__call__()

        def __iter__(cls):
            return iter(())

        def __mro_entries__(cls, bases):
            return (object,)

    class Stub(metaclass=_Meta):
        @classmethod
        def __get_pydantic_core_schema__(cls, source, handler):
            from pydantic_core import core_schema

            return core_schema.any_schema()

        def __init__(self, *a, **k):
            pass

        def __getattr__(self, name):
            if name.startswith("__") and name.endswith("__"):
                raise AttributeError(name)
            return Stub

        def __call__(self, *a, **k):
            if len(a) == 1 and callable(a[0]) and not k:
                return a[0]
            return Stub()

        def __iter__(self):
            return iter(())

        def __bool__(self):
            return False

        def __int__(self):
            return 0

        __index__ = __int__

        def __float__(self):
            return 0.0

        def __lt__(self, other):
            return False

        __gt__ = __le__ = __ge__ = __lt__

        def __add__(self, other):
            return self

        __sub__ = __mul__ = __truediv__ = __radd__ = __rmul__ = __add__

    class StubModule(types.ModuleType):
        def __getattr__(self, name):
            if name.startswith("__") and name.endswith("__"):
                raise AttributeError(name)
            cls = type(name, (Stub,), {})
            setattr(self, name, cls)
            return cls

    class Finder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
        def find_spec(self, fullname, path, target=None):
            root = fullname.split(".")[0]
            if root in NO_STUB:
                return None
            if root not in stubbed and (
                root in sys.builtin_module_names or importlib.machinery.PathFinder.find_spec(root) is not None
            ):
                return None
            stubbed.add(root)
            return importlib.machinery.ModuleSpec(fullname, self, is_package=True)

        def create_module(self, spec):
            mod = StubModule(spec.name)
            mod.__path__ = []
            mod.__version__ = "2.9.0"
            return mod

        def exec_module(self, module):
            pass

    sys.meta_path.append(Finder())
    _shim_torch()
    return stubbed


def _shim_torch() -> None:
    """The few torch calls whose results vLLM 0.32+ compares or hands to pydantic at import time.

    vllm/ir/op.py checks that every kernel provider has the same `torch.library.infer_schema` string as the
    native one (a fresh stub each time would never match); the speech-to-text protocols use
    `torch.iinfo(torch.long).min/max` as pydantic bounds, which must be real ints.
    """
    if importlib.machinery.PathFinder.find_spec("torch") is not None:
        return  # a real torch is installed: nothing to fake
    import torch
    import torch.library

    def infer_schema(fn, *a, **k):
        # Same function -> same string; the return part counts Tensors as vllm/ir/op.py's inplace check does.
        ret = str(getattr(fn, "__annotations__", {}).get("return", "Tensor"))
        outs = ", ".join(["Tensor"] * max(1, ret.count("Tensor")))
        params = ", ".join(n for n in getattr(fn, "__code__", types.SimpleNamespace(co_varnames=()))
                           .co_varnames[: getattr(getattr(fn, "__code__", None), "co_argcount", 0)])
        return f"({params}) -> " + (f"({outs})" if "," in outs else outs)

    torch.library.infer_schema = infer_schema
    torch.iinfo = lambda dtype: types.SimpleNamespace(min=-(2**63), max=2**63 - 1, bits=64)
    torch.finfo = lambda dtype: types.SimpleNamespace(min=-3.4e38, max=3.4e38, eps=1.2e-7, bits=32)
