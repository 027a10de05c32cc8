"""A container's mounts: volumes, binds and tmpfs, from -v, --mount, --volumes-from and VOLUME.

Part of the container service (see `berth.containers`).
"""

from __future__ import annotations

import logging
import os
from typing import Any

from berth import storage
from berth.containers._base import ServiceState
from berth.errors import (
    InvalidArgument,
)
from berth.volumes import MountSpec, parse_bind, parse_mount

log = logging.getLogger(__name__)


class MountsMixin(ServiceState):
    def volume_users(self, name: str) -> list[str]:
        return [d["Id"] for d in self._docs.values()
                if any(m.get("Name") == name for m in d.get("Mounts") or [])]

    def _mount_specs(self, body: dict[str, Any], hc: dict[str, Any],
                     image_volumes: dict[str, Any] | None) -> list[MountSpec]:
        """What -v, --mount, --volumes-from and the image's VOLUME ask for, one per target."""
        specs = [parse_bind(b) for b in hc.get("Binds") or []]
        specs += [parse_mount(m) for m in hc.get("Mounts") or []]
        seen: set[str] = set()
        for sp in specs:
            if sp.target in seen:
                raise InvalidArgument(f"Duplicate mount point: {sp.target}")
            seen.add(sp.target)
        for ref in hc.get("VolumesFrom") or []:
            name, _, mode = ref.partition(":")
            other = self.resolve(name)
            for m in other.get("Mounts") or []:
                if m["Destination"] in seen or m["Type"] == "tmpfs":
                    continue
                seen.add(m["Destination"])
                ro = mode == "ro" or (mode != "rw" and not m.get("RW", True))
                specs.append(MountSpec(type=m["Type"], target=m["Destination"],
                                       source=m.get("Name") or m["Source"], read_only=ro))
        for target in [*(image_volumes or {}), *(body.get("Volumes") or {})]:
            if target not in seen:
                seen.add(target)
                specs.append(MountSpec(type="volume", target=target))
        return specs

    def _make_mounts(self, cid: str, specs: list[MountSpec],
                     layers: list[storage.Layer]) -> list[dict[str, Any]]:
        """Create the volumes (filled from the image) and bind sources; Docker's Mounts."""
        out = []
        for sp in specs:
            if sp.type == "volume":
                new = not sp.source or self.volumes.meta.get_volume(sp.source) is None
                vol = self.volumes.create(sp.source, anonymous=not sp.source)
                if new and not sp.nocopy:
                    self.volumes.copy_up(vol.name, [la.path for la in reversed(layers)],
                                         sp.target)
                out.append({"Type": "volume", "Name": vol.name, "Source": vol.mountpoint,
                            "Destination": sp.target, "Driver": "local", "Mode": "z",
                            "RW": not sp.read_only, "Propagation": ""})
            elif sp.type == "bind":
                if not os.path.exists(sp.source):
                    os.makedirs(sp.source, exist_ok=True)  # -v creates a missing source
                out.append({"Type": "bind", "Source": sp.source, "Destination": sp.target,
                            "Mode": "", "RW": not sp.read_only,
                            "Propagation": sp.propagation or "rprivate"})
            else:
                out.append({"Type": "tmpfs", "Source": "", "Destination": sp.target,
                            "Mode": sp.tmpfs_options, "RW": not sp.read_only,
                            "Propagation": ""})
        return out

    def _runtime_mounts(self, doc: dict[str, Any]) -> list[dict[str, Any]]:
        out = []
        for m in doc.get("Mounts") or []:
            ro = [] if m.get("RW", True) else ["ro"]
            if m["Type"] == "volume":
                out.append(self.volumes.runtime_mount(m["Name"], m["Destination"],
                                                      not m.get("RW", True)))
            elif m["Type"] == "bind":
                out.append({"destination": m["Destination"], "type": "bind",
                            "source": m["Source"],
                            "options": ["rbind", m.get("Propagation") or "rprivate", *ro]})
            else:
                opts = [o for o in (m.get("Mode") or "").split(",") if o]
                out.append({"destination": m["Destination"], "type": "tmpfs", "source": "tmpfs",
                            "options": ["nosuid", "nodev", "noexec", *opts, *ro]})
        return out
