"""Go's encoding/json Marshal, for the `json` function and the CLI's JSON output: compact,
HTML characters escaped unless told not to, maps' keys sorted and structs' fields in their
order."""

from __future__ import annotations

from berth.gotemplate.values import (
    MISSING,
    ExecError,
    NilList,
    NilMap,
    NilPtr,
    exp_form,
    fixed_form,
    format_float,
    is_go_map,
    shortest,
    type_name,
)

TYPE_CHECKING = False  # not typing's: importing typing costs ~3 ms of CLI start-up
if TYPE_CHECKING:
    from typing import Any


def _json_str(s: str, escape_html: bool) -> str:
    out = ['"']
    for c in s:
        o = ord(c)
        if c == '"':
            out.append('\\"')
        elif c == "\\":
            out.append("\\\\")
        elif o < 0x20:
            out.append({10: "\\n", 13: "\\r", 9: "\\t", 8: "\\b", 12: "\\f"}.get(o, f"\\u{o:04x}"))
        elif escape_html and c in "<>&":
            out.append(f"\\u{o:04x}")
        elif o in (0x2028, 0x2029):
            out.append(f"\\u{o:04x}")
        elif 0xD800 <= o <= 0xDFFF:
            out.append("\ufffd")
        else:
            out.append(c)
    out.append('"')
    return "".join(out)


def _json_float(f: float) -> str:
    if f != f or f in (float("inf"), float("-inf")):
        raise ExecError(f"json: unsupported value: {format_float(f)}")
    if f == 0:
        return "0" if not str(f).startswith("-") else "-0"
    digits, dp = shortest(f)
    sign = "-" if f < 0 else ""
    a = abs(f)
    if a < 1e-6 or a >= 1e21:
        s = exp_form(digits, dp)
        m, _, e = s.partition("e")
        return sign + m + "e" + e[0] + e[1:].lstrip("0").rjust(1, "0")
    return sign + fixed_form(digits, dp)


def to_json(v: Any, escape_html: bool = True, sort_maps: bool = True) -> str:
    """Go's json.Marshal: compact, keys of maps sorted, `<>&` escaped unless told not to.
    Without `sort_maps`, objects keep their order (JSON passed through as it came)."""
    marshal = getattr(v, "go_json", None)
    if marshal is not None:
        return str(marshal())
    if v is None or v is MISSING or isinstance(v, NilPtr) or isinstance(v, (NilList, NilMap)):
        return "null"
    if v is True:
        return "true"
    if v is False:
        return "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return _json_float(v)
    if isinstance(v, str):
        return _json_str(v, escape_html)
    if isinstance(v, (list, tuple)):
        return "[" + ",".join(to_json(x, escape_html, sort_maps) for x in v) + "]"
    if isinstance(v, dict):
        items = [
            (k, x)
            for k, x in (sorted(v.items()) if sort_maps and is_go_map(v) else v.items())
            if not getattr(x, "go_omit", False)
        ]
        return (
            "{"
            + ",".join(
                _json_str(str(k), escape_html) + ":" + to_json(x, escape_html, sort_maps)
                for k, x in items
            )
            + "}"
        )
    raise ExecError(f"json: unsupported type: {type_name(v)}")
