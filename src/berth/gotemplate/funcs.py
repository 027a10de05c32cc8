"""The functions templates can call: Go's builtins (and, or, not, len, index, slice, print,
printf, println, eq, ne, lt, le, gt, ge, html, js, urlquery, call) and the docker CLI's (json,
split, join, title, lower, upper, pad, truncate), with the errors Go's give."""

from __future__ import annotations

from berth.gotemplate.values import ALNUM, MISSING, show, sprint, sprintln, truth, type_name

TYPE_CHECKING = False  # not typing's: importing typing costs ~3 ms of CLI start-up
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any


class Fn:
    """A template function: its parameters' kinds ('a' any, 's' string, 'i' int, 'L' list of
    strings), variadic when the last is '*'."""

    def __init__(self, fn: Callable[..., Any], params: str) -> None:
        self.fn, self.params = fn, params


class CallError(Exception):
    """A function's own failure: the template reports it as `error calling NAME: ...`."""


def _basic(v: Any) -> str:
    if v is None or v is MISSING:
        return "nil"
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, int):
        return "int"
    if isinstance(v, float):
        return "float"
    if isinstance(v, str):
        return "string"
    return "other"


def _eq(a: Any, *bs: Any) -> bool:
    if not bs:
        raise CallError("missing argument for comparison")
    ka = _basic(a)
    for b in bs:
        kb = _basic(b)
        if ka != kb:
            if ka != "nil" and kb != "nil":
                raise CallError("incompatible types for comparison")
            continue
        if ka == "other":
            if isinstance(a, (list, dict)) or isinstance(b, (list, dict)):
                raise CallError(
                    f"non-comparable types {show(a)}: {type_name(a)}, {type_name(b)}: {show(b)}"
                )
        if ka == "nil" or a == b:
            return True
    return False


def _lt(a: Any, b: Any) -> bool:
    ka, kb = _basic(a), _basic(b)
    if ka in ("nil", "other", "bool") or kb in ("nil", "other", "bool"):
        raise CallError("invalid type for comparison")
    if ka != kb:
        raise CallError("incompatible types for comparison")
    return bool(a < b)


def _index(item: Any, *indexes: Any) -> Any:
    if item is None or item is MISSING:
        raise CallError("index of untyped nil")
    for ix in indexes:
        if item is None or item is MISSING:
            raise CallError("index of nil pointer")
        if isinstance(item, (list, str)):
            if ix is None or ix is MISSING:
                raise CallError("cannot index slice/array with nil")
            if not isinstance(ix, int) or isinstance(ix, bool):
                raise CallError(f"cannot index slice/array with type {type_name(ix)}")
            if ix < 0 or ix >= len(item):
                raise CallError(f"index out of range: {ix}")
            item = item[ix] if isinstance(item, list) else item.encode()[ix]
        elif isinstance(item, dict):
            if ix is None or ix is MISSING:
                raise CallError("value is nil; should be of type string")
            if not isinstance(ix, str):
                raise CallError(f"value has type {type_name(ix)}; should be string")
            if ix in item:
                item = item[ix]
            else:  # the zero value of the map's element type
                item = "" if type_name(item) == "map[string]string" else None
        else:
            raise CallError(f"can't index item of type {type_name(item)}")
    return item


def _slice(item: Any, *idx: Any) -> Any:
    if item is None or item is MISSING:
        raise CallError("slice of untyped nil")
    if len(idx) > 3:
        raise CallError(f"too many slice indexes: {len(idx)}")
    if not isinstance(item, (list, str)):
        raise CallError(f"can't slice item of type {type_name(item)}")
    if isinstance(item, str) and len(idx) == 3:
        raise CallError("cannot 3-index slice a string")
    size = len(item.encode()) if isinstance(item, str) else len(item)
    ix = [0, size]
    for k, v in enumerate(idx[:2]):
        if not isinstance(v, int) or isinstance(v, bool):
            raise CallError(f"cannot index slice/array with type {type_name(v)}")
        if v < 0 or v > size:
            raise CallError(f"index out of range: {v}")
        ix[k] = v
    if ix[0] > ix[1]:
        raise CallError(f"invalid slice index: {ix[0]} > {ix[1]}")
    if isinstance(item, str):
        return item.encode()[ix[0] : ix[1]].decode("utf-8", "replace")
    return item[ix[0] : ix[1]]


def _len(v: Any) -> int:
    if v is None or v is MISSING:
        raise CallError("len of nil pointer")
    if isinstance(v, str):
        return len(v.encode("utf-8", "surrogateescape"))
    if isinstance(v, (list, dict)):
        return len(v)
    raise CallError(f"len of type {type_name(v)}")


def _eval_args(args: tuple[Any, ...]) -> str:
    if len(args) == 1 and isinstance(args[0], str):
        return args[0]
    return sprint(list(args))


def _html(*args: Any) -> str:
    s = _eval_args(args)
    rep = {"<": "&lt;", ">": "&gt;", "&": "&amp;", "'": "&#39;", '"': "&#34;", "\0": "\ufffd"}
    return "".join(rep.get(c, c) for c in s)


def _js(*args: Any) -> str:
    s = _eval_args(args)
    out = []
    for c in s:
        if c == "\\":
            out.append("\\\\")
        elif c == "'":
            out.append("\\'")
        elif c == '"':
            out.append('\\"')
        elif c in "<>&=":
            out.append(f"\\u{ord(c):04X}")
        elif ord(c) < 0x20 or not c.isprintable():
            out.append(f"\\u{ord(c):04X}")
        else:
            out.append(c)
    return "".join(out)


_URL_SAFE = ALNUM | {"-", ".", "~"}


def _urlquery(*args: Any) -> str:
    s = _eval_args(args)
    out = []
    for b in s.encode():
        c = chr(b)
        if c in _URL_SAFE:
            out.append(c)
        elif c == " ":
            out.append("+")
        else:
            out.append(f"%{b:02X}")
    return "".join(out)


def _upper(s: str) -> str:
    """strings.ToUpper: each rune's own upper case (ß stays ß)."""
    return "".join(u if len(u := c.upper()) == 1 else c for c in s)


def _lower(s: str) -> str:
    return "".join(lo if len(lo := c.lower()) == 1 else c for c in s)


def _split(s: str, sep: str) -> list[str]:
    if sep == "":
        return list(s)
    return s.split(sep)


def _title(s: str) -> str:
    """strings.Title: the first letter of each word upper-cased, the rest left alone."""
    out = []
    prev_sep = True
    for c in s:
        out.append(_upper(c) if prev_sep else c)
        if c.isascii():
            prev_sep = not (c.isalnum() or c == "_")
        else:
            prev_sep = c.isspace() or not (c.isalpha() or c.isdigit())
    return "".join(out)


def _pad_space(s: str, prefix: int, suffix: int) -> str:
    if s == "":
        return s
    return " " * prefix + s + " " * suffix


def _truncate(s: str, length: int) -> str:
    if len(s) < length:
        return s
    return s[:length]


def _printf(fmt: str, *args: Any) -> str:
    from berth.gotemplate import printf  # the verbs only when a template uses them

    return printf.sprintf(fmt, list(args))


def _json(v: Any) -> str:
    from berth.gotemplate import marshal

    return marshal.to_json(v, escape_html=False).strip(" \t\r\n")


def _call(fn: Any, *args: Any) -> Any:
    if not callable(fn):
        raise CallError(f"non-function {show(fn)} of type {type_name(fn)}")
    return fn(*args)


# `and` and `or` are evaluated in place, argument by argument, as Go's stop at the first that
# decides; their entries here name them (and let a caller's own functions replace them)
BUILTINS: dict[str, Fn] = {
    "and": Fn(lambda *a: a[-1], "aa*"),
    "or": Fn(lambda *a: a[-1], "aa*"),
    "not": Fn(lambda a: not truth(a), "a"),
    "len": Fn(_len, "a"),
    "index": Fn(_index, "aa*"),
    "slice": Fn(_slice, "aa*"),
    "print": Fn(lambda *a: sprint(list(a)), "a*"),
    "printf": Fn(_printf, "sa*"),
    "println": Fn(sprintln, "a*"),
    "eq": Fn(_eq, "aa*"),
    "ne": Fn(lambda a, b: not _eq(a, b), "aa"),
    "lt": Fn(_lt, "aa"),
    "le": Fn(lambda a, b: _lt(a, b) or _eq(a, b), "aa"),
    "gt": Fn(lambda a, b: not (_lt(a, b) or _eq(a, b)), "aa"),
    "ge": Fn(lambda a, b: not _lt(a, b), "aa"),
    "html": Fn(_html, "a*"),
    "js": Fn(_js, "a*"),
    "urlquery": Fn(_urlquery, "a*"),
    "call": Fn(_call, "aa*"),
}

# the docker CLI's (cli/templates): json without HTML escaping, as its encoder is set up
DOCKER_FUNCS: dict[str, Fn] = {
    "json": Fn(_json, "a"),
    "split": Fn(_split, "ss"),
    "join": Fn(lambda a, sep: sep.join(a), "Ls"),
    "title": Fn(_title, "s"),
    "lower": Fn(_lower, "s"),
    "upper": Fn(_upper, "s"),
    "pad": Fn(_pad_space, "sii"),
    "truncate": Fn(_truncate, "si"),
}

# what the docker CLI runs a table's header through: each function gives back its first
# argument, but pad, which pads the title as it pads the column
HEADER_FUNCS: dict[str, Fn] = {
    name: Fn(lambda v, *rest: v, "aa*") for name in DOCKER_FUNCS if name != "pad"
}
