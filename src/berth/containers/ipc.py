"""IPC and PID namespaces that containers share: `--ipc shareable` (a /dev/shm tmpfs on the
host, as dockerd makes it), `--ipc container:NAME` and `--pid container:NAME`.

A part of the container service (see `berth.containers.service`), holding the shared
`ContainerStore`. Imports `linux`, `errors`.
"""

from __future__ import annotations

import contextlib
import os

from berth import linux
from berth.containers.record import ContainerRecord
from berth.containers.status import ContainerStatus
from berth.containers.store import ContainerStore
from berth.errors import Conflict, InvalidArgument, NotFound, System


class Ipc:
    """The namespaces a container joins from another, and a shareable one's /dev/shm."""

    def __init__(self, store: ContainerStore) -> None:
        self.store = store
        self.cfg = store.cfg

    def running_donor(self, mode: str) -> ContainerRecord:
        """The container a `container:NAME` PID or IPC mode joins: dockerd's errors where it
        does not exist (400) or does not run (409)."""
        ref = mode.split(":", 1)[1]
        try:
            other = self.store.resolve(ref)
        except NotFound as e:
            raise InvalidArgument(e.message) from None
        status = other.state.status
        if status is ContainerStatus.RESTARTING:
            raise Conflict(
                f"Container {other.id} is restarting, wait until the container is running"
            )
        if not status.is_running or not other.state.pid:
            raise Conflict(f"container {ref} is not running")
        return other

    def _shm_dir(self, cid: str) -> str:
        return os.path.join(self.store.dir(cid), "mounts", "shm")

    def shm_path(self, rec: ContainerRecord, depth: int = 0) -> str | None:
        """The host directory a container's /dev/shm is, where others may share it (dockerd's
        ShmPath): a shareable one's own tmpfs, the host's, or the donor's; None for a
        private one (or a shareable one not running)."""
        mode = rec.host_config.ipc_mode
        if mode == "host":
            return "/dev/shm"
        if mode == "shareable":
            d = self._shm_dir(rec.id)
            return d if os.path.ismount(d) else None
        if mode.startswith("container:") and depth < 8:  # no loop through renamed donors
            with contextlib.suppress(NotFound):
                return self.shm_path(self.store.resolve(mode.split(":", 1)[1]), depth + 1)
        return None

    def mount_shm(self, rec: ContainerRecord) -> None:
        """A shareable IPC's /dev/shm: a tmpfs on the host (containers/<id>/mounts/shm, as
        dockerd), which a `container:` one binds too; unmounted when the container stops."""
        d = self._shm_dir(rec.id)
        if os.path.ismount(d):
            return
        os.makedirs(d, exist_ok=True)
        size = rec.host_config.shm_size or 64 * 1024 * 1024
        try:
            linux.mount(
                "shm",
                d,
                "tmpfs",
                linux.MS_NOSUID | linux.MS_NODEV | linux.MS_NOEXEC,
                f"mode=1777,size={size}",
            )
        except OSError as e:
            raise System(f"mounting shm tmpfs: {e}") from e
        if self.cfg.idmap is not None:
            with contextlib.suppress(OSError):
                os.chown(d, self.cfg.idmap[0], self.cfg.idmap[1])

    def unmount_shm(self, cid: str) -> None:
        d = self._shm_dir(cid)
        if os.path.ismount(d):
            with contextlib.suppress(OSError):
                linux.umount(d, linux.MNT_DETACH)


__all__ = ["Ipc"]
