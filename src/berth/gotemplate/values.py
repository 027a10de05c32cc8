"""The errors, and the Go values that JSON alone cannot tell apart: a missing map key, typed
nils, maps known to be Go maps, time.Time fields. Go's type names and truth for all of them."""

from __future__ import annotations

TYPE_CHECKING = False  # not typing's: importing typing costs ~3 ms of CLI start-up
if TYPE_CHECKING:
    from typing import Any


class TemplateError(Exception):
    """A template that does not parse or does not execute; the text is Go's."""


class ParseError(TemplateError):
    pass


class ExecError(TemplateError):
    """A template that fails as it runs; `partial` is what it had written by then."""

    partial = ""


class _Missing:
    """Go's invalid reflect.Value: what a missing map key gives; prints `<no value>`."""

    def __repr__(self) -> str:
        return "<no value>"


MISSING: Any = _Missing()


class NilPtr:
    """A typed nil pointer or interface of a Go struct: prints `<nil>` (a null in a raw JSON
    map prints `<no value>`), is false, marshals as null."""

    def __str__(self) -> str:
        return "<nil>"

    def __bool__(self) -> bool:
        return False


NILPTR: Any = NilPtr()


def omitted(v: Any) -> Any:
    """`v` (a typed nil) marked as a field the JSON left out: `json` leaves it out too."""
    if isinstance(v, NilPtr):
        v = NilPtr()
    v.go_omit = True
    return v


class GoMap(dict):  # type: ignore[type-arg]
    """A JSON object known to come from a Go map: `json` sorts its keys, as Go's does."""


class GoTime(str):
    """A time.Time field: the JSON text, printed as Go's Time.String (`go_string`)."""

    go_string = ""


class NilList(list):  # type: ignore[type-arg]
    """A typed nil slice ([]string(nil)): prints `[]`, is false and empty, marshals as null."""


class NilMap(dict):  # type: ignore[type-arg]
    """A typed nil map: prints `map[]`, marshals as null."""


def type_name(v: Any) -> str:
    """The Go type `v` stands for, as %T and the error messages name it."""
    if v is None or v is MISSING or isinstance(v, NilPtr):
        return "<nil>"
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, int):
        return "int"
    if isinstance(v, float):
        return "float64"
    if isinstance(v, str):
        return "string"
    if isinstance(v, list):
        return "[]string" if isinstance(v, NilList) or (v and all(isinstance(x, str) for x in v)) \
            else "[]interface {}"
    if isinstance(v, dict):
        gt = getattr(v, "go_type", None)
        if gt:
            return str(gt)
        return "map[string]string" if isinstance(v, NilMap) or (
            v and all(isinstance(x, str) for x in v.values())) else "map[string]interface {}"
    return type(v).__name__


def truth(v: Any) -> bool:
    """Go's isTrue: empty strings, collections, zero numbers, false and nil are false."""
    if v is None or v is MISSING or isinstance(v, NilPtr):
        return False
    if isinstance(v, (str, list, dict, tuple, bool, int, float)):
        return bool(v)
    return True
