"""Go's strconv as the templates need it: Quote, QuoteRune, Unquote, and FormatFloat's
shortest digits (for fmt's %v and encoding/json's numbers)."""

from __future__ import annotations

_SHORT_ESCAPES = {7: "\\a", 8: "\\b", 12: "\\f", 10: "\\n", 13: "\\r", 9: "\\t", 11: "\\v"}


def escape_rune(r: int, quote: str, ascii_only: bool = False) -> str:
    c = chr(r)
    if c == quote or c == "\\":
        return "\\" + c
    if (c.isprintable() and not (ascii_only and r >= 0x80)) or (r == 0x20):
        return c
    if r in _SHORT_ESCAPES:
        return _SHORT_ESCAPES[r]
    if r < 0x20 or r == 0x7f:
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


_ESCAPES = {"a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v",
            "\\": "\\", "'": "'", '"': '"'}
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
                digits = body[i + 2:i + 2 + width]
                if len(digits) != width or any(d not in _HEX for d in digits):
                    raise ValueError
                out.append(chr(int(digits, 16)))  # ValueError past U+10FFFF
                i += 2 + width
            elif e in "01234567":
                digits = body[i + 1:i + 4]
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
    digits = (ip + fp)
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
