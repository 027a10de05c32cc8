"""Variable interpolation in compose files (compose-spec "Interpolation") and the `.env` /
`env_file` format (compose-spec "Env_file format").

Imports `errors` only.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from berth.errors import InvalidArgument

TYPE_CHECKING = False  # not typing's: importing typing costs ~5 ms of every compose command
if TYPE_CHECKING:
    from typing import Any

    from berth.compose.upcache import Inputs

_NAME_START = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_"
_NAME_CHARS = _NAME_START + "0123456789"
# a .env file is small; anything larger is a mistake or an attack
MAX_ENV_FILE = 1 << 20


class InterpolationError(InvalidArgument):
    pass


@dataclass(slots=True)
class Interpolator:
    """Substitutes `$VAR`, `${VAR}`, `${VAR:-d}`, `${VAR-d}`, `${VAR:?e}`, `${VAR?e}`,
    `${VAR:+x}`, `${VAR+x}` and `$$` from `env`; defaults nest. Unset variables with no default
    become "" and are remembered in `missing` (compose warns about them once each)."""

    env: Mapping[str, str]
    missing: list[str] = field(default_factory=list)

    def __call__(self, text: str, where: str = "") -> str:
        out: list[str] = []
        i, n = 0, len(text)
        while i < n:
            c = text[i]
            if c != "$":
                out.append(c)
                i += 1
                continue
            nxt = text[i + 1] if i + 1 < n else ""
            if nxt == "$":
                out.append("$")
                i += 2
            elif nxt == "{":
                end = _closing_brace(text, i + 2)
                if end < 0:
                    raise InterpolationError(
                        f"invalid interpolation format for {where or 'value'}: {text!r}"
                    )
                out.append(self._braced(text[i + 2 : end], text, where))
                i = end + 1
            elif nxt and nxt in _NAME_START:
                j = i + 1
                while j < n and text[j] in _NAME_CHARS:
                    j += 1
                out.append(self._lookup(text[i + 1 : j]))
                i = j
            else:
                out.append("$")  # not a variable: kept as it is
                i += 1
        return "".join(out)

    def _lookup(self, name: str) -> str:
        val = self.env.get(name)
        if val is None:
            if name not in self.missing:
                self.missing.append(name)
            return ""
        return val

    def _braced(self, inner: str, text: str, where: str) -> str:
        j = 0
        while j < len(inner) and inner[j] in _NAME_CHARS:
            j += 1
        name, rest = inner[:j], inner[j:]
        if not name or name[0] not in _NAME_START:
            raise InterpolationError(
                f"invalid interpolation format for {where or 'value'}: {text!r}"
            )
        if not rest:
            return self._lookup(name)
        for op in (":-", ":?", ":+", "-", "?", "+"):
            if rest.startswith(op):
                arg = rest[len(op) :]
                break
        else:
            raise InterpolationError(
                f"invalid interpolation format for {where or 'value'}: {text!r}"
            )
        val = self.env.get(name)
        unset = val is None
        empty_or_unset = unset or val == ""
        triggered = empty_or_unset if op.startswith(":") else unset
        kind = op[-1]
        if kind == "-":
            return self(arg, where) if triggered else (val or "")
        if kind == "?":
            if triggered:
                msg = self(arg, where)
                raise InterpolationError(
                    f"required variable {name} is missing a value" + (f": {msg}" if msg else "")
                )
            return val or ""
        # "+": the replacement when set (and not empty for ":+")
        return "" if triggered else self(arg, where)


def _closing_brace(text: str, start: int) -> int:
    depth = 1
    i = start
    while i < len(text):
        if text[i] == "{":
            depth += 1
        elif text[i] == "}":
            depth -= 1
            if depth == 0:
                return i
        i += 1
    return -1


def interpolate_tree(value: Any, fn: Interpolator, path: tuple[str, ...] = ()) -> Any:
    """Every string value of a YAML tree (not the keys), interpolated."""
    if isinstance(value, str):
        return fn(value, ".".join(path))
    if isinstance(value, dict):
        return {k: interpolate_tree(v, fn, (*path, str(k))) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate_tree(v, fn, (*path, f"[{i}]")) for i, v in enumerate(value)]
    return value


@dataclass(slots=True, kw_only=True)
class Variable:
    """A variable a compose file uses, as `config --variables` lists it."""

    name: str
    required: bool = False  # ${VAR?err}, ${VAR:?err}
    default: str = ""  # ${VAR-d}, ${VAR:-d}
    alternate: str = ""  # ${VAR+x}, ${VAR:+x}


def extract_variables(
    value: Any,
    found: dict[str, Variable] | None = None,
) -> dict[str, Variable]:
    """The variables every string of a YAML tree (not interpolated) uses, by name; those
    in a default or alternate value too."""
    found = {} if found is None else found
    if isinstance(value, str):
        _scan(value, found)
    elif isinstance(value, dict):
        for v in value.values():
            extract_variables(v, found)
    elif isinstance(value, list):
        for v in value:
            extract_variables(v, found)
    return found


def _scan(text: str, found: dict[str, Variable]) -> None:
    i, n = 0, len(text)
    while i < n:
        if text[i] != "$":
            i += 1
            continue
        nxt = text[i + 1] if i + 1 < n else ""
        if nxt == "$":
            i += 2
        elif nxt == "{":
            end = _closing_brace(text, i + 2)
            if end < 0:
                return
            inner = text[i + 2 : end]
            j = 0
            while j < len(inner) and inner[j] in _NAME_CHARS:
                j += 1
            name, rest = inner[:j], inner[j:]
            if name and name[0] in _NAME_START:
                var = found.setdefault(name, Variable(name=name))
                op = rest[:2] if rest[:2] in (":-", ":?", ":+") else rest[:1]
                arg = rest[len(op) :]
                if op.endswith("-"):
                    var.default = arg
                elif op.endswith("?"):
                    var.required = True
                elif op.endswith("+"):
                    var.alternate = arg
                _scan(arg, found)
            i = end + 1
        elif nxt and nxt in _NAME_START:
            j = i + 1
            while j < n and text[j] in _NAME_CHARS:
                j += 1
            found.setdefault(text[i + 1 : j], Variable(name=text[i + 1 : j]))
            i = j
        else:
            i += 1


_ESCAPES = {"n": "\n", "r": "\r", "t": "\t", "\\": "\\", '"': '"', "'": "'"}


def parse_env_file(
    text: str, lookup: Callable[[str], str | None], source: str = ".env"
) -> dict[str, str | None]:
    """`VAR=VAL` lines as the compose-spec reads them. `lookup` resolves variables in unquoted
    and double-quoted values (earlier lines of the file first). A bare `VAR` is unset: its
    value is None (the caller takes it from the environment, or leaves it out)."""
    result: dict[str, str | None] = {}

    def resolve(name: str) -> str | None:
        v = result.get(name)
        return v if v is not None else lookup(name)

    class _Env(Mapping[str, str]):
        def __getitem__(self, k: str) -> str:
            v = resolve(k)
            if v is None:
                raise KeyError(k)
            return v

        def get(self, k: str, default: Any = None) -> Any:
            v = resolve(k)
            return default if v is None else v

        def __iter__(self) -> Any:
            return iter(result)

        def __len__(self) -> int:
            return len(result)

    interp = Interpolator(_Env())
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("export "):
            line = line[len("export ") :].lstrip()
        key, eq, val = line.partition("=")
        key = key.strip()
        if not key or any(ch.isspace() for ch in key):
            raise InvalidArgument(
                f"{source}:{lineno}: unexpected character in variable name {key!r}"
            )
        if not eq:
            result[key] = None
            continue
        val = val.lstrip()
        if val[:1] in ("'", '"'):
            q = val[0]
            i, chars = 1, []
            while i < len(val) and val[i] != q:
                if val[i] == "\\" and i + 1 < len(val):
                    e = val[i + 1]
                    if q == '"':
                        chars.append(_ESCAPES.get(e, "\\" + e))
                    else:
                        chars.append(e if e == "'" else "\\" + e)
                    i += 2
                    continue
                chars.append(val[i])
                i += 1
            if i >= len(val):
                raise InvalidArgument(f"{source}:{lineno}: unterminated quoted value")
            s = "".join(chars)
            result[key] = interp(s, key) if q == '"' else s
        else:
            cut = val.find(" #")
            if cut >= 0:
                val = val[:cut]
            result[key] = interp(val.rstrip(), key)
    return result


def read_env_file(
    path: Path, lookup: Callable[[str], str | None], inputs: Inputs | None = None
) -> dict[str, str | None]:
    """A .env or env_file file, bounded in size; `inputs` notes what was read."""
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_ENV_FILE + 1)
    except OSError as e:
        raise InvalidArgument(f"couldn't read env file {path}: {e.strerror}") from None
    if len(data) > MAX_ENV_FILE:
        raise InvalidArgument(f"env file {path} is larger than {MAX_ENV_FILE} bytes")
    if inputs is not None:
        inputs.file(path, data)
    return parse_env_file(data.decode("utf-8", errors="replace"), lookup, str(path))
