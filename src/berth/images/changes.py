"""Dockerfile-style `--change` instructions (`docker import`, `docker commit`) applied to an
image's `config` section.

Imports `errors`.
"""

from __future__ import annotations

import json
import shlex
from typing import Any

from berth.errors import InvalidArgument


def apply_changes(cfg: dict[str, Any], changes: list[str]) -> None:
    """Dockerfile-style `--change` instructions on an image's `config` section."""
    for change in changes:
        change = change.strip()
        if not change:
            continue
        instr, _, rest = change.partition(" ")
        instr = instr.upper()
        rest = rest.strip()
        if instr in ("CMD", "ENTRYPOINT"):
            if rest.startswith("["):
                try:
                    val = json.loads(rest)
                except ValueError:
                    val = None
                if not isinstance(val, list) or not all(isinstance(x, str) for x in val):
                    val = ["/bin/sh", "-c", rest]
            else:
                val = ["/bin/sh", "-c", rest]
            cfg["Cmd" if instr == "CMD" else "Entrypoint"] = val
        elif instr == "ENV":
            env = list(cfg.get("Env") or [])
            for k, v in _kv_pairs(rest, "ENV"):
                env = [e for e in env if e.split("=", 1)[0] != k] + [f"{k}={v}"]
            cfg["Env"] = env
        elif instr == "LABEL":
            labels = dict(cfg.get("Labels") or {})
            labels.update(_kv_pairs(rest, "LABEL"))
            cfg["Labels"] = labels
        elif instr == "WORKDIR":
            cfg["WorkingDir"] = rest
        elif instr == "USER":
            cfg["User"] = rest
        elif instr == "EXPOSE":
            ports = dict(cfg.get("ExposedPorts") or {})
            for p in rest.split():
                ports[p if "/" in p else p + "/tcp"] = {}
            cfg["ExposedPorts"] = ports
        elif instr == "VOLUME":
            vols = dict(cfg.get("Volumes") or {})
            items = json.loads(rest) if rest.startswith("[") else rest.split()
            for v in items:
                vols[v] = {}
            cfg["Volumes"] = vols
        elif instr == "STOPSIGNAL":
            cfg["StopSignal"] = rest
        else:
            raise InvalidArgument(f"{instr} is not a valid change command")


def _kv_pairs(rest: str, instr: str) -> list[tuple[str, str]]:
    try:
        words = shlex.split(rest)
    except ValueError as e:
        raise InvalidArgument(f"{instr}: {e}") from None
    if not words:
        raise InvalidArgument(f"{instr} requires at least one argument")
    if "=" not in words[0]:
        if len(words) < 2:
            raise InvalidArgument(f"{instr} names can not be blank")
        return [(words[0], rest.split(None, 1)[1].strip())]
    out = []
    for w in words:
        k, eq, v = w.partition("=")
        if not eq or not k:
            raise InvalidArgument(f"{instr}: invalid key-value pair {w!r}")
        out.append((k, v))
    return out


__all__ = ["apply_changes"]
