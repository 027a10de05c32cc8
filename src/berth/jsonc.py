"""JSON for the fast paths (the CLI, berth-runtime): `loads` and compact `dumps` straight from
CPython's `_json`. Imports nothing of berth's.

The `json` package imports `re` and with it `enum`, about 6 ms of every command's start-up
here. The C scanner and encoder under it need neither. Anything beyond compact output
(`indent`, `sort_keys`, ...) goes to the `json` package, imported then.
"""

from __future__ import annotations

TYPE_CHECKING = False  # not typing's: importing typing costs ~3 ms of CLI start-up
if TYPE_CHECKING:
    from typing import Any

try:
    import _json
except ImportError:  # another Python: the package, slower to import, same results
    _json = None  # type: ignore[assignment]


class _Context:
    """What `_json.make_scanner` reads off a JSONDecoder."""

    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    memo: dict[str, str] = {}

    @staticmethod
    def parse_constant(name: str) -> float:
        return {"NaN": float("nan"), "Infinity": float("inf"), "-Infinity": float("-inf")}[name]


_WS = " \t\n\r"
# typeshed's stub wants a JSONDecoder; the scanner reads only the attributes _Context has
_scan = _json.make_scanner(_Context()) if _json else None  # type: ignore[arg-type]


def loads(s: str | bytes | bytearray) -> Any:
    """json.loads; ValueError if it is not JSON."""
    if _scan is None:
        import json

        return json.loads(s)
    if not isinstance(s, str):
        s = s.decode("utf-8-sig" if s[:3] == b"\xef\xbb\xbf" else "utf-8")
    end = len(s) - len(s.lstrip(_WS))
    try:
        obj, end = _scan(s, end)
    except StopIteration as e:
        raise ValueError(f"Expecting value: char {e.value}") from None
    finally:
        _Context.memo.clear()
    if s[end:].strip(_WS):
        raise ValueError(f"Extra data: char {end}")
    return obj


def _no_default(o: Any) -> Any:
    raise TypeError(f"Object of type {type(o).__name__} is not JSON serializable")


def dumps(obj: Any, *, ensure_ascii: bool = True, **kw: Any) -> str:
    """json.dumps; compact output (the package's default separators) in C, the rest by json."""
    if kw or _json is None:
        import json

        return json.dumps(obj, ensure_ascii=ensure_ascii, **kw)
    if isinstance(obj, str):  # the C encoder takes containers and scalars, but not top strings
        return (_json.encode_basestring_ascii if ensure_ascii else _json.encode_basestring)(obj)
    try:
        enc = _json.make_encoder(
            {},
            _no_default,
            _json.encode_basestring_ascii if ensure_ascii else _json.encode_basestring,
            None,
            ": ",
            ", ",
            False,
            False,
            True,
        )
    except TypeError:  # a Python whose C encoder takes other arguments: the package's
        import json

        return json.dumps(obj, ensure_ascii=ensure_ascii)
    return "".join(enc(obj, 0))


def load(f: Any) -> Any:
    return loads(f.read())


def dump(obj: Any, f: Any, **kw: Any) -> None:
    f.write(dumps(obj, **kw))
