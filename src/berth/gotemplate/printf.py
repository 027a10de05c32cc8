"""Go's fmt.Sprintf over the values templates have (`printf`): its verbs, flags, width and
precision, and its `%!verb(...)` complaints. Imported when a template first calls printf."""

from __future__ import annotations

from berth.gotemplate.values import MISSING, format_float, quote, quote_rune, show, type_name

TYPE_CHECKING = False  # not typing's: importing typing costs ~3 ms of CLI start-up
if TYPE_CHECKING:
    from typing import Any


def _pad(s: str, width: int, minus: bool, zero: bool = False) -> str:
    if width <= len(s):
        return s
    if minus:
        return s + " " * (width - len(s))
    if zero:
        sign = s[0] if s[:1] in "+- " else ""
        return sign + "0" * (width - len(s)) + s[len(sign) :]
    return " " * (width - len(s)) + s


def _bad(verb: str, a: Any, flags: str = "", width: int = -1, prec: int = -1) -> str:
    """Go's %!verb(type=value), the value printed with %v and the verb's flags."""
    if a is None or a is MISSING:
        return f"%!{verb}(<nil>)"
    return f"%!{verb}({type_name(a)}={_fmt_one('v', a, flags, width, prec)})"


def _fmt_one(verb: str, a: Any, flags: str, width: int, prec: int) -> str:
    """One operand under one verb; lists and maps element by element, as Go's do."""
    if isinstance(a, list) and verb != "T":
        return "[" + " ".join(_fmt_one(verb, x, flags, width, prec) for x in a) + "]"
    if isinstance(a, dict) and verb != "T":
        return (
            "map["
            + " ".join(
                f"{_fmt_one(verb, k, flags, width, prec)}:{_fmt_one(verb, x, flags, width, prec)}"
                for k, x in sorted(a.items())
            )
            + "]"
        )
    minus = "-" in flags
    if verb == "T":
        return _pad(type_name(a), width, minus)
    if verb == "v":
        if isinstance(a, float):
            return _fmt_one("g", a, flags, width, prec)
        if isinstance(a, int) and not isinstance(a, bool):
            return _fmt_one("d", a, flags, width, prec)
        if "#" in flags and isinstance(a, str):
            return _pad(quote(a), width, minus)
        s = show(a)
        if isinstance(a, str) and prec >= 0:
            s = s[:prec]
        return _pad(s, width, minus)
    if isinstance(a, bool):
        if verb == "t":
            return _pad("true" if a else "false", width, minus)
    elif isinstance(a, int):
        return _fmt_int(verb, a, flags, width, prec)
    elif isinstance(a, float):
        if verb in "xX" and a == a and abs(a) != float("inf"):
            return _fmt_hex_float(verb, a, flags, width, prec)
        if verb in "eEfFgG":
            return _fmt_float(verb, a, flags, width, prec)
    elif isinstance(a, str):
        return _fmt_str(verb, a, flags, width, prec)
    return _bad(verb, a, flags, width, prec)


_INT_BASES = {"d": "d", "x": "x", "X": "X", "o": "o", "O": "o", "b": "b"}
_INT_PREFIXES = {"x": "0x", "X": "0X", "o": "0", "O": "0o", "b": "0b"}


def _fmt_int(verb: str, a: int, flags: str, width: int, prec: int) -> str:
    minus = "-" in flags
    if verb == "c":
        return _pad(chr(a), width, minus)
    if verb == "q":
        return _pad(quote_rune(a), width, minus)
    if verb == "U":
        s = f"U+{a:04X}"
        return _pad(s + (f" '{chr(a)}'" if "#" in flags else ""), width, minus)
    base = _INT_BASES.get(verb)
    if base is None:
        return _bad(verb, a, flags, width, prec)
    digits = format(abs(a), base)
    if prec >= 0:
        digits = digits.rjust(prec, "0") if prec else ("" if a == 0 else digits)
    if "#" in flags or verb == "O":
        digits = _INT_PREFIXES.get(verb, "") + digits
    sign = "-" if a < 0 else "+" if "+" in flags else " " if " " in flags else ""
    return _pad(sign + digits, width, minus, "0" in flags and prec < 0)


def _fmt_hex_float(verb: str, a: float, flags: str, width: int, prec: int) -> str:
    """%x of a finite float: Go's hexadecimal mantissa and binary exponent."""
    mant, _, e = float.hex(abs(a)).partition("p")
    mant = mant.rstrip("0").rstrip(".")
    if prec >= 0:  # hex digits after the point: cut, where Go rounds
        whole, _, frac = mant[2:].partition(".")
        digits = (frac + "0" * prec)[:prec]
        mant = "0x" + whole + ("." + digits if prec else "")
    x = int(e)
    h = (
        ("-" if a < 0 else "+" if "+" in flags else "")
        + mant
        + "p"
        + ("-" if x < 0 else "+")
        + f"{abs(x):02d}"
    )
    return _pad(h.upper() if verb == "X" else h, width, "-" in flags)


def _fmt_float(verb: str, a: float, flags: str, width: int, prec: int) -> str:
    s = format_float(a, verb, prec)
    if "+" in flags and not s.startswith(("-", "+")):
        s = "+" + s
    elif " " in flags and not s.startswith(("-", "+")):
        s = " " + s
    return _pad(s, width, "-" in flags, "0" in flags and s[-1:].isdigit())


def _fmt_str(verb: str, a: str, flags: str, width: int, prec: int) -> str:
    minus, sharp = "-" in flags, "#" in flags
    a = getattr(a, "go_string", None) or a
    if prec >= 0 and verb in "sq":
        a = a[:prec]
    if verb == "s":
        return _pad(a, width, minus, "0" in flags)
    if verb == "q":
        if sharp and "`" not in a and all(c.isprintable() or c == "\t" for c in a):
            return _pad("`" + a + "`", width, minus)
        return _pad(quote(a, "+" in flags), width, minus)
    if verb in "xX":
        data = a.encode("utf-8", "surrogateescape")
        if prec >= 0:
            data = data[:prec]
        hexes = [f"{b:02x}" if verb == "x" else f"{b:02X}" for b in data]
        pre = ("0x" if verb == "x" else "0X") if sharp else ""
        if " " in flags:
            return _pad(" ".join(pre + h for h in hexes), width, minus)
        return _pad(pre + "".join(hexes), width, minus)
    return _bad(verb, a, flags, width, prec)


def sprintf(fmt: str, args: list[Any]) -> str:
    """Go's fmt.Sprintf over the values the templates have."""
    return _Printf(fmt, args).run()


class _Printf:
    def __init__(self, fmt: str, args: list[Any]) -> None:
        self.fmt, self.args = fmt, args
        self.i = self.argi = 0
        self.out: list[str] = []

    def run(self) -> str:
        fmt, n, out = self.fmt, len(self.fmt), self.out
        while self.i < n:
            j = fmt.find("%", self.i)
            if j < 0:
                out.append(fmt[self.i :])
                break
            out.append(fmt[self.i : j])
            self.i = j + 1
            flags, width, prec = self.spec()
            if self.i >= n:
                out.append("%!(NOVERB)")
                break
            verb = fmt[self.i]
            self.i += 1
            out.append(self.operand(verb, flags, width, prec))
        if self.argi < len(self.args):
            out.append(
                "%!(EXTRA "
                + ", ".join(
                    "<nil>" if a is None or a is MISSING else f"{type_name(a)}={show(a)}"
                    for a in self.args[self.argi :]
                )
                + ")"
            )
        return "".join(out)

    def spec(self) -> tuple[str, int, int]:
        """The flags, width and precision after a `%` (-1: none); `*` takes an operand."""
        fmt, n = self.fmt, len(self.fmt)
        flags = ""
        while self.i < n and fmt[self.i] in "+-# 0":
            flags += fmt[self.i]
            self.i += 1
        width = prec = -1
        if self.i < n and fmt[self.i] == "*":
            self.i += 1
            star = self.star_arg()
            if star is None:
                self.out.append("%!(BADWIDTH)")
            elif star < 0:
                flags += "-"
                width = -star
            else:
                width = star
        else:
            width = self.digits(-1)
        if self.i < n and fmt[self.i] == ".":
            self.i += 1
            if self.i < n and fmt[self.i] == "*":
                self.i += 1
                star = self.star_arg()
                if star is None:
                    self.out.append("%!(BADPREC)")
                else:
                    prec = star
            else:
                prec = self.digits(0)
        return flags, width, prec

    def star_arg(self) -> int | None:
        """The operand a `*` takes, if it is an int."""
        a = self.args[self.argi] if self.argi < len(self.args) else None
        self.argi += 1
        return a if isinstance(a, int) else None

    def digits(self, none: int) -> int:
        s = self.i
        while self.i < len(self.fmt) and self.fmt[self.i].isdigit():
            self.i += 1
        return int(self.fmt[s : self.i]) if self.i > s else none

    def operand(self, verb: str, flags: str, width: int, prec: int) -> str:
        if verb == "%":
            return "%"
        if self.argi >= len(self.args):
            return f"%!{verb}(MISSING)"
        a = self.args[self.argi]
        self.argi += 1
        if a is MISSING:
            a = None
        if a is None and verb not in "vT":
            return _bad(verb, a)
        return _fmt_one(verb, a, flags, width, prec)
