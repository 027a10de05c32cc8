"""The little of ctypes that `berth.linux` calls libc with, built on `_ctypes` alone.

`import ctypes` costs about 1.1 ms (its package builds every C type and helper it has), which
every `berth-runtime` command paid. These are the same objects ctypes makes, from the same C
module: a `CDLL` whose functions return int and may keep errno, `PyDLL` for calls that hold
the GIL, `pythonapi`, and the integer types. Code that needs more (seccomp: pointers, buffers,
casts) imports ctypes itself.
"""

from __future__ import annotations

import _ctypes
from _ctypes import Structure, byref, get_errno, sizeof

__all__ = [
    "CDLL",
    "PyDLL",
    "Structure",
    "byref",
    "c_int",
    "c_size_t",
    "c_uint",
    "c_uint32",
    "c_uint64",
    "c_ulong",
    "get_errno",
    "pythonapi",
    "sizeof",
]


TYPE_CHECKING = False
if TYPE_CHECKING:  # typeshed makes it generic; at run time it is not subscriptable
    _Int = _ctypes._SimpleCData[int]
else:
    _Int = _ctypes._SimpleCData


class c_int(_Int):  # noqa: N801 - ctypes' names
    _type_ = "i"


class c_uint(_Int):  # noqa: N801
    _type_ = "I"


class c_ulong(_Int):  # noqa: N801
    _type_ = "L"


c_uint32 = c_uint
c_uint64 = c_ulong  # LP64: as ctypes itself aliases them
c_size_t = c_ulong


class CDLL:
    """A shared library: attribute access gives its C functions (int result)."""

    _flags = _ctypes.FUNCFLAG_CDECL

    def __init__(self, name: str | None, use_errno: bool = False) -> None:
        flags = self._flags | (_ctypes.FUNCFLAG_USE_ERRNO if use_errno else 0)

        class _Func(_ctypes.CFuncPtr):
            _flags_ = flags
            _restype_ = c_int

        self._func = _Func
        self._name = name
        self._handle: int = _ctypes.dlopen(name, _ctypes.RTLD_LOCAL)  # type: ignore[arg-type]

    def __getattr__(self, name: str) -> _ctypes.CFuncPtr:
        if name.startswith("__") and name.endswith("__"):
            raise AttributeError(name)
        fn = self._func((name, self))  # type: ignore[arg-type] # ctypes asks only _handle
        setattr(self, name, fn)
        return fn


class PyDLL(CDLL):
    """Functions called with the GIL held (and Python's error state checked after)."""

    _flags = _ctypes.FUNCFLAG_CDECL | _ctypes.FUNCFLAG_PYTHONAPI


pythonapi = PyDLL(None)
