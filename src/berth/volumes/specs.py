"""Mount specs: `-v`, `--mount` (the API's HostConfig.Mounts), `--tmpfs` and an image's VOLUME,
read into one typed `MountSpec`.

Imports `errors`.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Any

from berth.errors import InvalidArgument

NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]+$")


@dataclass(frozen=True, slots=True, kw_only=True)
class MountSpec:
    """One mount of a container, as `-v`, `--mount`, `--tmpfs` or VOLUME asked for it."""

    type: str  # volume | bind | tmpfs
    target: str
    source: str = ""  # volume name ("" for a new anonymous one) or host path
    read_only: bool = False
    nocopy: bool = False
    tmpfs_options: str = ""
    propagation: str = ""


def parse_bind(spec: str) -> MountSpec:
    """`-v SOURCE:TARGET[:OPTS]`, `-v NAME:TARGET`, or `-v TARGET` (anonymous)."""
    parts = spec.split(":")
    if len(parts) == 1:
        src, dst, mode = "", parts[0], ""
    elif len(parts) == 2:
        src, dst, mode = parts[0], parts[1], ""
    elif len(parts) == 3:
        src, dst, mode = parts
    else:
        raise InvalidArgument(f"invalid volume specification: '{spec}'")
    if not dst.startswith("/"):
        raise InvalidArgument(
            f"invalid volume specification: '{spec}': "
            f'invalid mount config for type "volume": invalid mount path: '
            f"'{dst}' mount path must be absolute"
        )
    ro = nocopy = False
    propagation = ""
    for m in [x for x in mode.split(",") if x]:
        if m == "ro":
            ro = True
        elif m == "rw":
            ro = False
        elif m == "nocopy":
            nocopy = True
        elif m in ("shared", "rshared", "slave", "rslave", "private", "rprivate"):
            propagation = m
        elif m not in ("z", "Z", "consistent", "cached", "delegated"):
            raise InvalidArgument(f"invalid mode: {m}")
    if src.startswith("/"):
        return MountSpec(type="bind", target=dst, source=src, read_only=ro, propagation=propagation)
    if src and not NAME.match(src):
        raise InvalidArgument(
            f'"{src}" includes invalid characters for a local volume name, only '
            '"[a-zA-Z0-9][a-zA-Z0-9_.-]" are allowed. If you intended to pass a host '
            "directory, use absolute path"
        )
    return MountSpec(type="volume", target=dst, source=src, read_only=ro, nocopy=nocopy)


def parse_mount(m: dict[str, Any]) -> MountSpec:
    """The API's HostConfig.Mounts entry (what `--mount` sends)."""
    typ = m.get("Type", "volume")
    target = m.get("Target", "")
    if not target.startswith("/"):
        raise InvalidArgument(
            f'invalid mount config for type "{typ}": invalid mount path: '
            f"'{target}' mount path must be absolute"
        )
    ro = bool(m.get("ReadOnly"))
    if typ == "bind":
        src = m.get("Source", "")
        if not src.startswith("/"):
            raise InvalidArgument(
                f'invalid mount config for type "bind": invalid mount '
                f"path: '{src}' mount path must be absolute"
            )
        if not os.path.exists(src):
            # unlike -v, --mount does not create a missing source (Docker's behaviour)
            raise InvalidArgument(
                f'invalid mount config for type "bind": bind source path does not exist: {src}'
            )
        prop = (m.get("BindOptions") or {}).get("Propagation", "")
        return MountSpec(type="bind", target=target, source=src, read_only=ro, propagation=prop)
    if typ == "volume":
        src = m.get("Source", "")
        if src and not NAME.match(src):
            raise InvalidArgument(
                f'invalid mount config for type "volume": invalid volume name: {src}'
            )
        nocopy = bool((m.get("VolumeOptions") or {}).get("NoCopy"))
        return MountSpec(type="volume", target=target, source=src, read_only=ro, nocopy=nocopy)
    if typ == "tmpfs":
        if m.get("Source"):
            raise InvalidArgument('invalid mount config for type "tmpfs": source is not allowed')
        t = m.get("TmpfsOptions") or {}
        opts = []
        if t.get("SizeBytes"):
            opts.append(f"size={int(t['SizeBytes'])}")
        if t.get("Mode"):
            opts.append(f"mode={int(t['Mode']):o}")
        return MountSpec(type="tmpfs", target=target, read_only=ro, tmpfs_options=",".join(opts))
    raise InvalidArgument(f'invalid mount config: mount type unknown: "{typ}"')


__all__ = ["NAME", "MountSpec", "parse_bind", "parse_mount"]
