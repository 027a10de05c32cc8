"""Reading one compose file: bounded YAML with compose's `!reset` and `!override` tags, the line
of every key path (for error messages), and schema validation against the compose-spec's JSON
schema (shipped beside this module with its licence).

Imports `errors` only. YAML enters here as `Any` and leaves as plain dicts and lists.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import yaml

from berth.errors import InvalidArgument

TYPE_CHECKING = False  # not typing's: importing typing costs ~5 ms of every compose command
if TYPE_CHECKING:
    from typing import Any

MAX_FILE = 8 << 20  # a compose file larger than this is not one
MAX_NODES = 1_000_000  # anchors can multiply a small file: a bound on the expanded tree


class ComposeFileError(InvalidArgument):
    pass


class Reset:
    """`!reset`: the key is removed from what earlier files or the extended service set."""

    def __repr__(self) -> str:
        return "Reset()"


@dataclass(slots=True)
class Override:
    """`!override VALUE`: VALUE replaces what earlier files set, without merging."""

    value: Any


class _Loader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc]
    """The safe loader (libyaml's where PyYAML has it: several times faster) with compose's
    tags."""


def _reset(loader: _Loader, node: yaml.Node) -> Reset:
    return Reset()


def _override(loader: _Loader, node: yaml.Node) -> Override:
    if isinstance(node, yaml.MappingNode):
        return Override(loader.construct_mapping(node, deep=True))
    if isinstance(node, yaml.SequenceNode):
        return Override(loader.construct_sequence(node, deep=True))
    return Override(loader.construct_scalar(node))


_Loader.add_constructor("!reset", _reset)
_Loader.add_constructor("!override", _override)


@dataclass(slots=True)
class Source:
    """One file's tree, with the line of each key path (1-based)."""

    path: Path
    data: dict[str, Any]
    lines: dict[tuple[str, ...], int] = field(default_factory=dict)

    def line_of(self, keypath: tuple[str, ...]) -> int | None:
        p = keypath
        while p:
            if p in self.lines:
                return self.lines[p]
            p = p[:-1]
        return None

    def where(self, keypath: tuple[str, ...]) -> str:
        line = self.line_of(keypath)
        return f"{self.path}" + (f":{line}" if line else "")


def read_text(path: Path) -> str:
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_FILE + 1)
    except FileNotFoundError:
        raise ComposeFileError(f"open {path}: no such file or directory") from None
    except OSError as e:
        raise ComposeFileError(f"open {path}: {e.strerror}") from None
    if len(data) > MAX_FILE:
        raise ComposeFileError(f"{path}: larger than {MAX_FILE} bytes")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ComposeFileError(f"{path}: not UTF-8: {e}") from None


def parse(path: Path, text: str | None = None) -> Source:
    """A compose file's YAML: a mapping at the top, anchors resolved, and the lines of keys."""
    if text is None:
        text = read_text(path)
    loader = _Loader(text)
    try:
        # one parse: the node tree gives the lines, the same tree is then constructed
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        at = f":{mark.line + 1}" if mark is not None else ""
        problem = getattr(e, "problem", None) or str(e)
        raise ComposeFileError(f"{path}{at}: invalid YAML: {problem}") from None
    finally:
        loader.dispose()
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ComposeFileError(f"{path}: top-level object must be a mapping")
    _bound(data)
    lines: dict[tuple[str, ...], int] = {}
    if node is not None:
        _walk_lines(node, (), lines, 0)
    return Source(path=path, data=data, lines=lines)


def _bound(tree: Any) -> None:
    """Refuses trees whose expansion (aliases count each time) is too large."""
    count = 0
    stack = [tree]
    while stack:
        v = stack.pop()
        count += 1
        if count > MAX_NODES:
            raise ComposeFileError(f"compose file expands to more than {MAX_NODES} values")
        if isinstance(v, dict):
            stack.extend(v.values())
        elif isinstance(v, list):
            stack.extend(v)


def _walk_lines(
    node: yaml.Node, path: tuple[str, ...], lines: dict[tuple[str, ...], int], depth: int
) -> None:
    if depth > 64:
        return
    if isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            if isinstance(k, yaml.ScalarNode) and k.value != "<<":
                p = (*path, str(k.value))
                lines.setdefault(p, k.start_mark.line + 1)
                _walk_lines(v, p, lines, depth + 1)
    elif isinstance(node, yaml.SequenceNode):
        for i, v in enumerate(node.value):
            p = (*path, str(i))
            lines.setdefault(p, v.start_mark.line + 1)
            _walk_lines(v, p, lines, depth + 1)


# `pre_start` is in the specification's text (spec.md, "pre_start") but not yet in the schema
# shipped beside it (compose-spec 170098ba07d9, kept byte for byte): its definition is added
# here, from that text, so that files using it validate
_PRE_START = {
    "type": "array",
    "items": {
        "type": "object",
        "properties": {
            "command": {"$ref": "#/definitions/command"},
            "image": {"type": "string"},
            "user": {"type": "string"},
            "privileged": {"type": ["boolean", "string"]},
            "working_dir": {"type": "string"},
            "environment": {"$ref": "#/definitions/list_or_dict"},
            "per_replica": {"type": ["boolean", "string"]},
        },
        "additionalProperties": False,
        "patternProperties": {"^x-": {}},
    },
}
# changes what the validation cache's digests mean when the additions above change
_ADDITIONS = b"pre_start/1"


@cache
def _validator() -> Any:
    import jsonschema

    schema = json.loads((Path(__file__).parent / "schema" / "compose-spec.json").read_text())
    schema["definitions"]["service"]["properties"].setdefault("pre_start", _PRE_START)
    return jsonschema.Draft7Validator(schema)


def _plain(value: Any) -> Any:
    """The tree as the schema sees it: `!override` unwrapped, `!reset` as null, YAML's dates
    and other non-JSON scalars as strings."""
    if isinstance(value, Override):
        return _plain(value.value)
    if isinstance(value, Reset):
        return None
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items() if not isinstance(v, Reset)}
    if isinstance(value, list):
        return [_plain(v) for v in value if not isinstance(v, Reset)]
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)


@cache
def _schema_digest() -> bytes:
    return hashlib.sha256(
        (Path(__file__).parent / "schema" / "compose-spec.json").read_bytes() + _ADDITIONS
    ).digest()


def validate(src: Source, data: dict[str, Any], cache_dir: Path | None = None) -> None:
    """Checks one (interpolated) file against the compose-spec schema; the error names the
    file, the line and the key path. With `cache_dir`, a tree that passed once (the same
    tree, the same schema) is not checked again: importing jsonschema and validating is most
    of an unchanged `up -d`."""
    plain = _plain(data)
    marker = None
    if cache_dir is not None:
        h = hashlib.sha256(_schema_digest())
        h.update(json.dumps(plain, sort_keys=True, separators=(",", ":")).encode())
        marker = cache_dir / h.hexdigest()
        if marker.is_file():
            return
    import jsonschema

    errors = list(_validator().iter_errors(plain))
    if not errors:
        if marker is not None:
            _remember(marker)
        return
    best = jsonschema.exceptions.best_match(errors)
    keypath = tuple(str(p) for p in best.absolute_path)
    shown = ".".join(keypath) or "(root)"
    msg = best.message
    at = keypath
    if best.validator == "additionalProperties" and isinstance(best.instance, dict):
        import re

        props = best.schema.get("properties") or {}
        patterns = list((best.schema.get("patternProperties") or {}))
        extra = [
            k
            for k in best.instance
            if k not in props and not any(re.search(p, k) for p in patterns)
        ]
        if extra:
            msg = (
                f"Additional property {extra[0]} is not allowed"
                if len(extra) == 1
                else f"Additional properties {', '.join(extra)} are not allowed"
            )
            at = (*keypath, extra[0])
    raise ComposeFileError(f"validating {src.where(at)}: {shown}: {msg}")


def _remember(marker: Path) -> None:
    """Records a validated tree (an empty file named by its digest), in a directory only its
    owner can write; a cache that cannot be written is no error."""
    try:
        marker.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        st = marker.parent.stat()
        if st.st_uid != os.geteuid() or st.st_mode & 0o022:
            return
        fd = os.open(marker, os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW, 0o600)
        os.close(fd)
    except OSError:
        pass
