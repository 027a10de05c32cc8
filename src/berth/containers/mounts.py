"""A container's mounts: volumes, binds and tmpfs, from -v, --mount, --volumes-from and VOLUME.

A part of the container service (see `berth.containers.service`), holding the shared
`ContainerStore`.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterable
from typing import Any

from berth import storage
from berth.containers.hostconfig import HostConfig
from berth.containers.record import ContainerRecord, MountPoint
from berth.containers.store import ContainerStore
from berth.errors import BerthError, InvalidArgument
from berth.volumes import MountSpec, VolumeService, parse_bind, parse_mount

log = logging.getLogger(__name__)


MAX_IMAGE_VOLUMES = 1024  # an image's VOLUMEs a container is made with, at most


class Mounts:
    """A container's mounts: the volumes, binds and tmpfs it asks for, made at create and
    given to the runtime at each start."""

    def __init__(self, store: ContainerStore, volumes: VolumeService) -> None:
        self.store = store
        self.volumes = volumes

    def volume_users(self, name: str) -> list[str]:
        return [d.id for d in self.store.records.values() if any(m.name == name for m in d.mounts)]

    def specs(
        self, volumes: Iterable[str] | None, hc: HostConfig, image_volumes: Iterable[str] | None
    ) -> list[MountSpec]:
        """What -v, --mount, --volumes-from and the image's VOLUME ask for, one per target."""
        specs = [parse_bind(b) for b in hc.binds or ()]
        specs += [parse_mount(m) for m in hc.mounts or ()]
        seen: set[str] = set()
        for sp in specs:
            if sp.target in seen:
                raise InvalidArgument(f"Duplicate mount point: {sp.target}")
            seen.add(sp.target)
        for ref in hc.volumes_from or ():
            name, _, mode = ref.partition(":")
            other = self.store.resolve(name)
            for m in other.mounts:
                if m.destination in seen or m.type == "tmpfs":
                    continue
                seen.add(m.destination)
                ro = mode == "ro" or (mode != "rw" and not m.rw)
                specs.append(
                    MountSpec(
                        type=m.type, target=m.destination, source=m.name or m.source, read_only=ro
                    )
                )
        image_volumes = list(image_volumes or ())
        if len(image_volumes) > MAX_IMAGE_VOLUMES:
            # a hostile image's config (megabytes) can name a volume per line: each one a
            # volume made and filled at every create (and, in a crash-looping pod, again)
            raise InvalidArgument(
                f"the image asks for {len(image_volumes)} volumes; at most "
                f"{MAX_IMAGE_VOLUMES} are made"
            )
        for target in [*image_volumes, *(volumes or ())]:
            if target not in seen:
                seen.add(target)
                specs.append(MountSpec(type="volume", target=target))
        return specs

    def make(
        self,
        cid: str,
        specs: list[MountSpec],
        layers: list[storage.Layer],
        undo: contextlib.ExitStack,
    ) -> list[MountPoint]:
        """Create the volumes (filled from the image) and bind sources; Docker's Mounts.
        The anonymous volumes made go again if the create fails (`undo`)."""
        out: list[MountPoint] = []
        for sp in specs:
            if sp.type == "volume":
                new = not sp.source or self.volumes.meta.get_volume(sp.source) is None
                vol = self.volumes.create(sp.source, anonymous=not sp.source)
                if not sp.source:
                    undo.callback(self._remove_quietly, vol.name)
                if new and not sp.nocopy:
                    self.volumes.copy_up(vol.name, [la.path for la in reversed(layers)], sp.target)
                # dockerd's Mode: "z" for a named volume, "" for an anonymous one
                out.append(
                    MountPoint(
                        type="volume",
                        name=vol.name,
                        source=vol.mountpoint,
                        destination=sp.target,
                        driver="local",
                        mode="z" if sp.source else "",
                        rw=not sp.read_only,
                    )
                )
            elif sp.type == "bind":
                if not os.path.exists(sp.source):
                    os.makedirs(sp.source, exist_ok=True)  # -v creates a missing source
                out.append(
                    MountPoint(
                        type="bind",
                        source=sp.source,
                        destination=sp.target,
                        rw=not sp.read_only,
                        propagation=sp.propagation or "rprivate",
                    )
                )
            else:
                out.append(
                    MountPoint(
                        type="tmpfs",
                        destination=sp.target,
                        mode=sp.tmpfs_options,
                        rw=not sp.read_only,
                    )
                )
        return out

    def _remove_quietly(self, name: str) -> None:
        with contextlib.suppress(BerthError):
            self.volumes.remove(name)

    def runtime_mounts(self, rec: ContainerRecord) -> list[dict[str, Any]]:
        out = []
        for m in rec.mounts:
            ro = [] if m.rw else ["ro"]
            if m.type == "volume":
                out.append(self.volumes.runtime_mount(m.name, m.destination, not m.rw))
            elif m.type == "bind":
                out.append(
                    {
                        "destination": m.destination,
                        "type": "bind",
                        "source": m.source,
                        "options": ["rbind", m.propagation or "rprivate", *ro],
                    }
                )
            else:
                opts = [o for o in m.mode.split(",") if o]
                out.append(
                    {
                        "destination": m.destination,
                        "type": "tmpfs",
                        "source": "tmpfs",
                        "options": ["nosuid", "nodev", "noexec", *opts, *ro],
                    }
                )
        return out
