"""Volumes: the local driver (a directory per volume, or a tmpfs or a device mounted per use),
and the copy-up of an image's content into a new volume. The mount specs (`-v`, `--mount`) are
`specs`; the typed record of a volume, and what it is stored as, is `records`.

Imports `fs`, `metadata`, `storage`, `errors`. Layout: ROOT/<name>/_data. The methods are
blocking (SQLite, file work): the API calls them in worker threads.
"""

from __future__ import annotations

import builtins
import os
import secrets
import shutil
import stat
import threading
import time
from collections.abc import Callable
from typing import Any

from berth import fs, storage
from berth.errors import Conflict, InvalidArgument, NotFound
from berth.metadata import MetadataStore
from berth.volumes.records import (
    ANONYMOUS,
    VolumePruneReport,
    VolumeRecord,
    VolumeScope,
    VolumeUsage,
)
from berth.volumes.specs import NAME, MountSpec, parse_bind, parse_mount

_OPTION_KEYS = {"type", "device", "o"}


class VolumeService:
    def __init__(
        self,
        meta: MetadataStore,
        root: str,
        users: Callable[[str], list[str]] | None = None,
        owner: tuple[int, int] = (0, 0),
        emit: Callable[[str, str, str, dict[str, str]], None] | None = None,
    ) -> None:
        self.meta = meta
        self._remove_lock = threading.RLock()
        # the daemon's event bus: a volume's create and destroy are published here
        self.emit = emit or (lambda typ, action, actor, attrs: None)
        self.root = root
        self.owner = owner  # --userns-remap: a new volume belongs to the container's root
        # closed (berthd gives it the group of --userns-remap): what a container plants in a
        # volume must not be reachable from the host; a volume's own _data keeps its mode
        os.makedirs(root, mode=0o700, exist_ok=True)
        self.users = users or (lambda name: [])  # container IDs that mount a volume

    def _path(self, name: str) -> str:
        return os.path.join(self.root, name, "_data")

    def create(
        self,
        name: str = "",
        *,
        driver: str = "local",
        options: dict[str, str] | None = None,
        labels: dict[str, str] | None = None,
        anonymous: bool = False,
    ) -> VolumeRecord:
        """A volume, or the one of that name that exists; a `create` event either way (as
        dockerd's volume service)."""
        vol = self._create(name, driver=driver, options=options, labels=labels, anonymous=anonymous)
        self.emit("volume", "create", vol.name, {"driver": vol.driver})
        return vol

    def _create(
        self,
        name: str,
        *,
        driver: str,
        options: dict[str, str] | None,
        labels: dict[str, str] | None,
        anonymous: bool,
    ) -> VolumeRecord:
        driver = driver or "local"
        if driver != "local":
            raise NotFound(f'error looking up volume plugin {driver}: plugin "{driver}" not found')
        options = dict(options or {})
        for k in options:
            if k not in _OPTION_KEYS:
                raise InvalidArgument(f"invalid option key: {k!r}")
        if options and not options.get("type") and not options.get("device"):
            raise InvalidArgument('missing required option: "type"')
        if not name:
            name = secrets.token_hex(32)
            anonymous = True
        elif not NAME.match(name):
            raise InvalidArgument(
                f'create {name}: "{name}" includes invalid characters for a local volume '
                'name, only "[a-zA-Z0-9][a-zA-Z0-9_.-]" are allowed. If you intended to pass '
                "a host directory, use absolute path"
            )
        existing = self.find(name)
        if existing is not None:
            return existing
        labels = dict(labels or {})
        # the marker given as a label (as docker compose does) makes an anonymous volume
        anonymous = anonymous or labels.pop(ANONYMOUS, None) is not None
        os.makedirs(self._path(name), mode=0o755, exist_ok=True)
        if self.owner != (0, 0):
            os.chown(self._path(name), *self.owner)
        vol = VolumeRecord(
            name=name,
            mountpoint=self._path(name),
            driver=driver,
            options=options,
            labels=labels,
            scope=VolumeScope.LOCAL,
            created=int(time.time()),
            anonymous=anonymous,
        )
        if not self.meta.put_volume(name, vol.created, vol.to_doc(), exclusive=True):
            return self.get(name)
        return vol

    def find(self, name: str) -> VolumeRecord | None:
        doc = self.meta.get_volume(name)
        return None if doc is None else VolumeRecord.from_doc(doc)

    def exists(self, name: str) -> bool:
        return self.meta.get_volume(name) is not None

    def get(self, name: str) -> VolumeRecord:
        vol = self.find(name)
        if vol is None:
            raise NotFound(f"get {name}: no such volume")
        return vol

    def all(self) -> builtins.list[VolumeRecord]:
        """Every volume, the oldest first."""
        return [VolumeRecord.from_doc(d) for d in self.meta.volumes()]

    def list(
        self, filters: dict[str, builtins.list[str]] | None = None
    ) -> builtins.list[VolumeRecord]:
        """The volumes `filters` (dangling, name, label, driver; as dockerd's) let through."""
        filters = filters or {}
        for k in filters:
            if k not in ("dangling", "name", "label", "driver"):
                raise InvalidArgument(f"invalid filter '{k}'")
        out = []
        for v in self.all():
            if "dangling" in filters:
                want = filters["dangling"][-1].lower() in ("true", "1")
                if want != (not self.users(v.name)):
                    continue
            if filters.get("name") and not any(n in v.name for n in filters["name"]):
                continue
            if filters.get("driver") and v.driver not in filters["driver"]:
                continue
            if _labels_match(v, filters.get("label", [])):
                out.append(v)
        return out

    def usage(self) -> builtins.list[VolumeUsage]:
        """`GET /system/df`'s volumes: each with its size on disk and how many containers use
        it (-1 where the size cannot be known: tmpfs and device volumes)."""
        return [
            VolumeUsage(
                volume=v,
                size=_du(self._path(v.name)) if v.is_directory else -1,
                ref_count=len(self.users(v.name)),
            )
            for v in self.all()
        ]

    def remove(self, name: str, *, force: bool = False) -> None:
        """Remove an unused volume (a `destroy` event); with `force`, a missing one is no
        error."""
        with self._remove_lock:  # concurrent removals: one removes, the others find none
            if not self.exists(name):
                if force:
                    self.emit("volume", "destroy", name, {})
                    return
                raise NotFound(f"get {name}: no such volume")
            users = self.users(name)
            if users:
                raise Conflict(f"remove {name}: volume is in use - [{', '.join(users)}]")
            self.meta.delete_volume(name)
            shutil.rmtree(os.path.join(self.root, name), ignore_errors=True)
        self.emit("volume", "destroy", name, {})

    def prune(self, filters: dict[str, builtins.list[str]] | None = None) -> VolumePruneReport:
        """Unused volumes; only anonymous ones unless the filter `all=true` (Docker 23+)."""
        filters = filters or {}
        all_ = any(v.lower() in ("true", "1") for v in filters.get("all", []))
        deleted = []
        reclaimed = 0
        for v in self.all():
            if not all_ and not v.anonymous:
                continue
            if self.users(v.name) or not _labels_match(v, filters.get("label", [])):
                continue
            reclaimed += _du(os.path.join(self.root, v.name))
            self.remove(v.name)
            deleted.append(v.name)
        return VolumePruneReport(deleted=deleted, reclaimed=reclaimed)

    def runtime_mount(self, name: str, target: str, read_only: bool) -> dict[str, Any]:
        """The runtime-spec mount of a volume in a container."""
        vol = self.get(name)
        ro = ["ro"] if read_only else []
        if vol.fs_type:
            return {
                "destination": target,
                "type": vol.fs_type,
                "source": vol.device or vol.fs_type,
                "options": vol.mount_options + ro,
            }
        if vol.device:
            return {
                "destination": target,
                "type": "bind",
                "source": vol.device,
                "options": ["rbind", "rprivate", *ro],
            }
        return {
            "destination": target,
            "type": "bind",
            "source": self._path(name),
            "options": ["rbind", "rprivate", *ro],
        }

    def copy_up(self, name: str, layer_dirs_top_first: builtins.list[str], path: str) -> None:
        """Fill a new, empty volume with what the image has at `path` (owners and modes kept)."""
        if not self.get(name).is_directory:
            return  # tmpfs or device volumes are not filled
        # the volume's directory by fd (a symlink there is not followed), the image's files
        # as the kernel would show them (a path under a symlink or a whiteout of a higher layer
        # does not exist), and every write through a directory fd with O_NOFOLLOW|O_EXCL
        dest = fs.open_dir(self._path(name))
        try:
            if os.listdir(dest):
                return
            with storage.MergedView(layer_dirs_top_first) as view:
                # as Docker: the path is followed inside the image's root if it is a symlink
                node = view.resolve(path)
                if node is None:
                    return
                try:
                    if not node.is_dir:
                        return
                    storage.copy_into(view, node, dest)
                    os.fchown(dest, node.st.st_uid, node.st.st_gid)
                    os.fchmod(dest, stat.S_IMODE(node.st.st_mode))
                finally:
                    node.close()
        finally:
            os.close(dest)


def _labels_match(vol: VolumeRecord, wanted: list[str]) -> bool:
    """Each of `wanted` (KEY or KEY=VALUE) is among the volume's labels as Docker shows them."""
    labels = vol.all_labels()
    for lab in wanted:
        k, eq, val = lab.partition("=")
        if k not in labels or (eq and labels[k] != val):
            return False
    return True


def _du(path: str) -> int:
    total = 0
    for dirpath, _d, files in os.walk(path):
        for f in files:
            try:
                total += os.lstat(os.path.join(dirpath, f)).st_size
            except OSError:
                pass
    return total


# MountSpec and its parsers are specs', the record and its reports records': named here for the
# container service
__all__ = [
    "ANONYMOUS",
    "MountSpec",
    "VolumePruneReport",
    "VolumeRecord",
    "VolumeService",
    "VolumeUsage",
    "parse_bind",
    "parse_mount",
]
