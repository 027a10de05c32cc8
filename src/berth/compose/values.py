"""Compose's scalar values and short syntaxes, read into their canonical form: booleans,
integers, durations, sizes, commands, and ports and volumes (short syntax to long).

Imports `units` and `compose.yamlsrc`. Raw YAML values enter as `Any`.
"""

from __future__ import annotations

import os
import re
import shlex
from pathlib import Path

from berth.compose.yamlsrc import ComposeFileError
from berth.units import parse_duration, parse_size

TYPE_CHECKING = False  # not typing's: importing typing costs ~5 ms of every compose command
if TYPE_CHECKING:
    from typing import Any


_TRUE = {"true", "yes", "on", "1", "y"}
_FALSE = {"false", "no", "off", "0", "n", ""}


def to_bool(v: Any, where: str) -> bool:
    if isinstance(v, bool):
        return v
    s = str(v).strip().lower()
    if s in _TRUE:
        return True
    if s in _FALSE:
        return False
    raise ComposeFileError(f"{where}: invalid boolean {v!r}")


def to_int(v: Any, where: str) -> int:
    if isinstance(v, bool):
        raise ComposeFileError(f"{where}: invalid integer {v!r}")
    try:
        return int(str(v).strip())
    except ValueError:
        raise ComposeFileError(f"{where}: invalid integer {v!r}") from None


def duration_s(v: Any, where: str) -> float:
    """A compose duration (`1m30s`, `500ms`; a bare number is seconds) in seconds."""
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return float(v)
    try:
        return parse_duration(str(v).strip())
    except ValueError:
        raise ComposeFileError(f"{where}: invalid duration {v!r}") from None


def size_bytes(v: Any, where: str) -> int:
    if isinstance(v, int) and not isinstance(v, bool):
        return v
    try:
        return parse_size(str(v))
    except ValueError:
        raise ComposeFileError(f"{where}: invalid size {v!r}") from None


def _as_str(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v)


def _cmd(v: Any) -> list[str] | None:
    if v is None:
        return None
    if isinstance(v, str):
        return shlex.split(v)
    return [_as_str(x) for x in v]


_PORT_RE = re.compile(
    r"^(?:(?:(?P<ip>\[[0-9a-fA-F:.]+\]|[0-9.]+|[^:\[\]]*?):)?(?P<host>\d*(?:-\d+)?):)?"
    r"(?P<target>\d+(?:-\d+)?)(?:/(?P<proto>[a-z]+))?$"
)


def _range(s: str, where: str) -> list[int]:
    a, dash, b = s.partition("-")
    try:
        lo, hi = int(a), int(b) if dash else int(a)
    except ValueError:
        raise ComposeFileError(f"{where}: invalid port {s!r}") from None
    if not 0 < lo <= hi <= 65535:
        raise ComposeFileError(f"{where}: invalid port {s!r}")
    return list(range(lo, hi + 1))


def parse_ports(items: list[Any], where: str) -> list[dict[str, Any]]:
    """Short (`[IP:][HOST:]CONTAINER[/PROTO]`, ranges too) and long port syntax, as long."""
    out: list[dict[str, Any]] = []
    for i, it in enumerate(items):
        at = f"{where}[{i}]"
        if isinstance(it, dict):
            p: dict[str, Any] = {
                "mode": str(it.get("mode") or "ingress"),
                "target": to_int(it.get("target"), at),
            }
            if it.get("host_ip"):
                p["host_ip"] = str(it["host_ip"])
            if it.get("published") not in (None, ""):
                p["published"] = _as_str(it["published"])
            p["protocol"] = str(it.get("protocol") or "tcp")
            for k in ("name", "app_protocol"):
                if it.get(k):
                    p[k] = str(it[k])
            out.append(p)
            continue
        m = _PORT_RE.match(_as_str(it))
        if not m:
            raise ComposeFileError(f"{at}: invalid port {it!r}")
        targets = _range(m["target"], at)
        hosts: list[int | None] = [None] * len(targets)
        if m["host"]:
            hs = _range(m["host"], at)
            if len(hs) == len(targets):
                hosts = list(hs)
            elif len(targets) == 1:
                # a host range for one container port: the engine picks one of them
                hosts = [None]
            else:
                raise ComposeFileError(f"{at}: port ranges don't match in length")
        ip = (m["ip"] or "").strip("[]")
        for j, t in enumerate(targets):
            p = {"mode": "ingress", "target": t}
            if ip:
                p["host_ip"] = ip
            if hosts[j] is not None:
                p["published"] = str(hosts[j])
            elif m["host"]:
                p["published"] = m["host"]
            p["protocol"] = m["proto"] or "tcp"
            out.append(p)
    return out


_VOL_OPTS = {
    "ro",
    "rw",
    "z",
    "Z",
    "nocopy",
    "shared",
    "rshared",
    "slave",
    "rslave",
    "private",
    "rprivate",
    "consistent",
    "cached",
    "delegated",
}


def parse_volume(it: Any, base: Path, where: str) -> dict[str, Any]:
    """One service volume in the long form; relative bind sources against `base`."""
    if isinstance(it, dict):
        v = dict(it)
        t = str(v.get("type") or "volume")
        v["type"] = t
        if t == "bind" and isinstance(v.get("source"), str):
            v["source"] = _bind_source(v["source"], base)
            bind = dict(v.get("bind") or {})
            bind.setdefault("create_host_path", True)
            v["bind"] = bind
        if "read_only" in v:
            v["read_only"] = to_bool(v["read_only"], where)
        if not v.get("target"):
            raise ComposeFileError(f"{where}: volume has no target")
        return v
    s = str(it)
    parts = s.split(":")
    if len(parts) > 3 or not all(parts):
        raise ComposeFileError(f"{where}: invalid volume specification: {s!r}")
    if len(parts) == 1:
        return {"type": "volume", "target": parts[0]}
    src, target = parts[0], parts[1]
    opts = parts[2].split(",") if len(parts) == 3 else []
    for o in opts:
        if o not in _VOL_OPTS:
            raise ComposeFileError(f"{where}: invalid volume mode {o!r} in {s!r}")
    is_bind = src[:1] in ("/", ".", "~")
    v = {
        "type": "bind" if is_bind else "volume",
        "source": _bind_source(src, base) if is_bind else src,
        "target": target,
    }
    if "ro" in opts:
        v["read_only"] = True
    if is_bind:
        bopts: dict[str, Any] = {"create_host_path": True}
        if "z" in opts or "Z" in opts:
            bopts["selinux"] = "z" if "z" in opts else "Z"
        for prop in ("shared", "rshared", "slave", "rslave", "private", "rprivate"):
            if prop in opts:
                bopts["propagation"] = prop
        v["bind"] = bopts
    elif "nocopy" in opts:
        v["volume"] = {"nocopy": True}
    return v


def _bind_source(src: str, base: Path) -> str:
    if src.startswith("~"):
        return os.path.expanduser(src)
    return os.path.normpath(base / src)
