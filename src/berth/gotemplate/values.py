"""Go's values as templates see them, and how Go prints them.

JSON alone cannot tell apart what Go's reflection knows: a missing map key, typed nils, maps
known to be Go maps, time.Time fields; the marks here stand for them. Then Go's type names and
truth for all values, Go's strconv as templates need it (Quote, Unquote, FormatFloat's shortest
digits) and fmt's %v (Sprint, Sprintln): maps as `map[k:v]` in key order, lists as `[a b]`.
"""

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
        return (
            "[]string"
            if isinstance(v, NilList) or (v and all(isinstance(x, str) for x in v))
            else "[]interface {}"
        )
    if isinstance(v, dict):
        gt = getattr(v, "go_type", None)
        if gt:
            return str(gt)
        return (
            "map[string]string"
            if isinstance(v, NilMap) or (v and all(isinstance(x, str) for x in v.values()))
            else "map[string]interface {}"
        )
    return type(v).__name__


def truth(v: Any) -> bool:
    """Go's isTrue: empty strings, collections, zero numbers, false and nil are false."""
    if v is None or v is MISSING or isinstance(v, NilPtr):
        return False
    if isinstance(v, (str, list, dict, tuple, bool, int, float)):
        return bool(v)
    return True


ALNUM = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_")


def is_alnum(c: str) -> bool:
    """A letter, digit or underscore as Go's lexer takes one (Unicode letters too)."""
    return c in ALNUM or (c > "\x7f" and (c.isalnum() or c == "_"))


def is_go_map(d: dict[Any, Any]) -> bool:
    """JSON objects from Go maps have their keys sorted; Go structs keep their field order.
    A map of strings, or one whose keys are not exported Go names, is taken for a map."""
    if isinstance(d, (NilMap, GoMap)):
        return True
    if getattr(d, "go_type", None):  # a struct: its fields in their order
        return False
    return not all(
        isinstance(k, str) and k[:1].isupper() and all(is_alnum(c) for c in k) for k in d
    )


# Go's strconv

_SHORT_ESCAPES = {7: "\\a", 8: "\\b", 12: "\\f", 10: "\\n", 13: "\\r", 9: "\\t", 11: "\\v"}


def escape_rune(r: int, quote: str, ascii_only: bool = False) -> str:
    c = chr(r)
    if c == quote or c == "\\":
        return "\\" + c
    if (c.isprintable() and not (ascii_only and r >= 0x80)) or (r == 0x20):
        return c
    if r in _SHORT_ESCAPES:
        return _SHORT_ESCAPES[r]
    if r < 0x20 or r == 0x7F:
        return f"\\x{r:02x}"
    if 0xD800 <= r <= 0xDFFF:
        return "\\ufffd"
    if r < 0x10000:
        return f"\\u{r:04x}"
    return f"\\U{r:08x}"


def quote(s: str, ascii_only: bool = False) -> str:
    """Go's strconv.Quote (QuoteToASCII with `ascii_only`)."""
    return '"' + "".join(escape_rune(ord(c), '"', ascii_only) for c in s) + '"'


def quote_rune(r: int) -> str:
    return "'" + escape_rune(r, "'") + "'"


_ESCAPES = {
    "a": "\a",
    "b": "\b",
    "f": "\f",
    "n": "\n",
    "r": "\r",
    "t": "\t",
    "v": "\v",
    "\\": "\\",
    "'": "'",
    '"': '"',
}
_WIDTHS = {"x": 2, "u": 4, "U": 8}
_HEX = frozenset("0123456789abcdefABCDEF")


def unquote(q: str) -> str:
    """Go's strconv.Unquote for "...", `...` and '...'; ValueError where Go's fails."""
    if q[0] == "`":
        return q[1:-1].replace("\r", "")
    body, quote_char = q[1:-1], q[0]
    out = []
    i = 0
    try:
        while i < len(body):
            c = body[i]
            if c != "\\":
                if c == quote_char:
                    raise ValueError
                out.append(c)
                i += 1
                continue
            e = body[i + 1]
            if e in _ESCAPES:
                if (e == "'" and quote_char == '"') or (e == '"' and quote_char == "'"):
                    raise ValueError
                out.append(_ESCAPES[e])
                i += 2
            elif e in _WIDTHS:
                width = _WIDTHS[e]
                digits = body[i + 2 : i + 2 + width]
                if len(digits) != width or any(d not in _HEX for d in digits):
                    raise ValueError
                out.append(chr(int(digits, 16)))  # ValueError past U+10FFFF
                i += 2 + width
            elif e in "01234567":
                digits = body[i + 1 : i + 4]
                if len(digits) != 3 or any(d not in "01234567" for d in digits):
                    raise ValueError
                out.append(chr(int(digits, 8)))
                i += 4
            else:
                raise ValueError
    except IndexError:
        raise ValueError from None
    return "".join(out)


def shortest(f: float) -> tuple[str, int]:
    """The shortest decimal digits that give `f` back and the decimal point's place:
    f == 0.DIGITS * 10**dp."""
    r = repr(abs(f))
    mant, _, exp = r.partition("e")
    ip, _, fp = mant.partition(".")
    if fp == "0":
        fp = ""
    digits = ip + fp
    dp = len(ip) + (int(exp) if exp else 0)
    stripped = digits.lstrip("0")
    dp -= len(digits) - len(stripped)
    digits = stripped.rstrip("0")
    if not digits:
        return "0", 1
    return digits, dp


def exp_form(digits: str, dp: int, upper: bool = False) -> str:
    e = dp - 1
    s = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
    return s + ("E" if upper else "e") + ("-" if e < 0 else "+") + f"{abs(e):02d}"


def fixed_form(digits: str, dp: int) -> str:
    if dp <= 0:
        return "0." + "0" * -dp + digits
    if dp >= len(digits):
        return digits + "0" * (dp - len(digits))
    return digits[:dp] + "." + digits[dp:]


def format_float(f: float, verb: str = "v", prec: int = -1) -> str:
    """Go's fmt of a float64 for %v/%g (shortest), %e, %f with a precision."""
    if f != f:
        return "NaN"
    if f in (float("inf"), float("-inf")):
        return "+Inf" if f > 0 else "-Inf"
    sign = "-" if f < 0 or (f == 0 and str(f).startswith("-")) else ""
    if verb in "vgG" and prec < 0:
        digits, dp = shortest(f)
        if f == 0:
            return sign + "0"
        e = dp - 1
        if e < -4 or e >= 6:
            return sign + exp_form(digits, dp, verb == "G")
        return sign + fixed_form(digits, dp)
    if verb in "gG":
        s = format(abs(f), f".{prec or 1}g")
        if "e" in s:
            m, _, x = s.partition("e")
            s = m + "e" + x[0] + x[1:].lstrip("0").rjust(2, "0")
        return sign + (s.upper() if verb == "G" else s)
    py = "f" if verb in "fF" else "e" if verb == "e" else "E"
    return sign + format(abs(f), f".{6 if prec < 0 else prec}{py}")


# fmt's %v


def show(v: Any) -> str:
    """fmt.Sprint of one value (%v)."""
    if v is None:
        return "<nil>"
    if v is MISSING:
        return "<no value>"
    if v is True:
        return "true"
    if v is False:
        return "false"
    if isinstance(v, str):
        return getattr(v, "go_string", None) or v
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return format_float(v)
    if isinstance(v, list):
        return "[" + " ".join(show(x) for x in v) + "]"
    if isinstance(v, dict):
        return "map[" + " ".join(f"{show(k)}:{show(x)}" for k, x in sorted(v.items())) + "]"
    return str(v)


def sprint(args: list[Any]) -> str:
    """fmt.Sprint: a space between two operands when neither is a string."""
    out = []
    prev_str = False
    for i, a in enumerate(args):
        is_str = isinstance(a, str)
        if i > 0 and not is_str and not prev_str:
            out.append(" ")
        out.append(show(a))
        prev_str = is_str
    return "".join(out)


def sprintln(*args: Any) -> str:
    """fmt.Sprintln: a space between every two operands, a newline at the end."""
    return " ".join(show(a) for a in args) + "\n"
