"""Layers: unpacked once per chain ID and shared by every image that holds them, and the
drivers that stack them for a container (kernel overlayfs; a copying driver where overlayfs
cannot be used).

Imports `fs`, `content`, `oci`, `errors`, `storage.archive`, `storage.merged` (an image's files
as the kernel merges them, by directory fd), `storage.tars` (export) and `storage.changes` (a
container's changes: diff, commit). Drivers return mounts; they never mount
(containerd's snapshotters): the container's monitor performs the mount in its own mount
namespace, so a rootfs mount never appears on the host.

Layout under ROOT:
  layers/<chain hex>/diff        the unpacked layer (overlayfs whiteout format)
  layers/<chain hex>/meta.json   {"diff_id", "parent", "size"}, written last: a layer without it
                                 is half-made and removed at start-up
  rw/<container id>/{upper,work} the container's copy-on-write layer (overlay driver)
  rw/<container id>/rootfs       the container's full copy (copy driver)
"""

from __future__ import annotations

import io
import json
import os
import secrets
import shutil
import stat
import threading
from dataclasses import dataclass
from typing import BinaryIO, Protocol

from berth import oci
from berth.content import ContentStore
from berth.errors import InvalidArgument, NotFound, System
from berth.fs import atomic_write
from berth.storage import archive
from berth.storage.changes import _lower_stat as _lower_stat
from berth.storage.changes import upper_changes as upper_changes
from berth.storage.changes import write_diff_tar as write_diff_tar
from berth.storage.merged import MergedView, copy_into
from berth.storage.tars import merged_entries as merged_entries
from berth.storage.tars import tar_header as tar_header
from berth.storage.tars import write_merged_tar as write_merged_tar


@dataclass(frozen=True, slots=True, kw_only=True)
class Layer:
    chain_id: str
    diff_id: str
    parent: str | None
    size: int
    path: str  # the diff directory


@dataclass(frozen=True, slots=True, kw_only=True)
class StagedLayer:
    path: str  # a private directory with diff/ inside
    diff_id: str
    size: int


@dataclass(frozen=True, slots=True)
class Mount:
    type: str
    source: str
    options: list[str]

    def to_dict(self) -> dict[str, object]:
        return {"type": self.type, "source": self.source, "options": self.options}


class LayerStore:
    def __init__(self, root: str, content: ContentStore, shift: tuple[int, int] = (0, 0)) -> None:
        self.root = root
        self.content = content
        # --userns-remap: files are owned on disk by the container's ids plus this (uid, gid),
        # as Docker keeps a remapped daemon's layers; tars in and out carry the container's ids
        self.shift = shift
        self.layers_dir = os.path.join(root, "layers")
        # commits of one chain by two pulls or builds at once: one makes it, the other finds
        # it made (without, the second could remove the first's fresh layer as a half one)
        self._commit_lock = threading.Lock()
        # closed: a layer's setuid files and device nodes are for containers, not local users
        os.makedirs(root, mode=0o700, exist_ok=True)
        os.makedirs(self.layers_dir, mode=0o700, exist_ok=True)

    def _dir(self, chain_id: str) -> str:
        return os.path.join(self.layers_dir, oci.hex_of(chain_id))

    def get(self, chain_id: str) -> Layer:
        d = self._dir(chain_id)
        try:
            with open(os.path.join(d, "meta.json")) as f:
                meta = json.load(f)
        except FileNotFoundError:
            raise NotFound(f"no such layer: {chain_id}") from None
        return Layer(
            chain_id=chain_id,
            diff_id=meta["diff_id"],
            parent=meta.get("parent"),
            size=meta.get("size", 0),
            path=os.path.join(d, "diff"),
        )

    def exists(self, chain_id: str) -> bool:
        return os.path.exists(os.path.join(self._dir(chain_id), "meta.json"))

    def create(
        self, src: BinaryIO, parent: str | None, *, expected_diff_id: str | None = None
    ) -> Layer:
        """Unpack a layer tarball (any compression) on top of `parent` (a chain ID).

        The uncompressed tar is kept in the content store under its diff ID (for save and
        push). Nothing is visible until the layer is complete."""
        staged = self.stage(src, expected_diff_id=expected_diff_id)
        return self.commit(staged, parent)

    def stage(self, src: BinaryIO, *, expected_diff_id: str | None = None) -> StagedLayer:
        """Unpack a layer into a private directory. A layer's files do not depend on its
        parent, so layers of one image can be staged in parallel and committed in order."""
        tmp = os.path.join(self.layers_dir, "tmp-" + secrets.token_hex(8))
        os.makedirs(os.path.join(tmp, "diff"))
        try:
            with self.content.writer() as w:
                tee = archive._Tee(archive.decompressed(src), w.write)
                reader = io.BufferedReader(tee, 1 << 20)  # type: ignore[type-var]
                stats = archive.unpack(reader, os.path.join(tmp, "diff"), self.shift)
                archive.drain(reader)
                diff_id = w.digest
                if expected_diff_id and expected_diff_id != diff_id:
                    raise InvalidArgument(
                        f"layer digest mismatch: expected {expected_diff_id}, got {diff_id}"
                    )
                if not self.content.exists(diff_id):
                    w.commit(diff_id)
            return StagedLayer(path=tmp, diff_id=diff_id, size=stats.size)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise

    def discard(self, staged: StagedLayer) -> None:
        shutil.rmtree(staged.path, ignore_errors=True)

    def commit(self, staged: StagedLayer, parent: str | None) -> Layer:
        tmp = staged.path
        try:
            chain = (
                staged.diff_id
                if parent is None
                else oci.sha256_digest(f"{parent} {staged.diff_id}".encode())
            )
            final = self._dir(chain)
            meta = {"diff_id": staged.diff_id, "parent": parent, "size": staged.size}
            atomic_write(os.path.join(tmp, "meta.json"), json.dumps(meta).encode())
            with self._commit_lock:
                if self.exists(chain):
                    shutil.rmtree(tmp, ignore_errors=True)
                    return self.get(chain)
                if os.path.exists(final):  # half made (a crash): never one being made
                    shutil.rmtree(final, ignore_errors=True)
                os.rename(tmp, final)
            return self.get(chain)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise

    def delete(self, chain_id: str) -> None:
        d = self._dir(chain_id)
        if os.path.exists(d):
            # the meta file goes first, so a crash mid-delete leaves a half layer that
            # start-up removes, never a layer that claims to be whole
            try:
                os.unlink(os.path.join(d, "meta.json"))
            except FileNotFoundError:
                pass
            shutil.rmtree(d, ignore_errors=True)

    def list(self) -> list[str]:
        return [
            "sha256:" + n
            for n in os.listdir(self.layers_dir)
            if not n.startswith("tmp-")
            and os.path.exists(os.path.join(self.layers_dir, n, "meta.json"))
        ]

    def clean(self) -> None:
        """Remove half-made layers: a daemon killed mid-import leaves them."""
        for n in os.listdir(self.layers_dir):
            p = os.path.join(self.layers_dir, n)
            if n.startswith("tmp-") or not os.path.exists(os.path.join(p, "meta.json")):
                shutil.rmtree(p, ignore_errors=True)


class Driver(Protocol):
    """Prepares a container's writable rootfs over a stack of layers.

    Lifecycle: prepare(id, chain) → mount() any number of times → remove(id)."""

    name: str
    shift: tuple[int, int]  # --userns-remap: (uid, gid) added to every owner

    def prepare(self, cid: str, layers: list[Layer]) -> None: ...
    def mount(self, cid: str, layers: list[Layer]) -> Mount: ...
    def upper(self, cid: str) -> str: ...
    def remove(self, cid: str) -> None: ...


class OverlayDriver:
    name = "overlay2"

    def __init__(self, root: str) -> None:
        self.rw = os.path.join(root, "rw")
        # closed: what a container plants in its layer (setuid files, device nodes) must not
        # be reachable from the host; the upper directory keeps its mode (the rootfs's)
        os.makedirs(root, mode=0o700, exist_ok=True)
        os.makedirs(self.rw, mode=0o700, exist_ok=True)

    shift: tuple[int, int] = (0, 0)  # --userns-remap (see LayerStore.shift)

    def prepare(self, cid: str, layers: list[Layer]) -> None:
        for d in ("upper", "work"):
            os.makedirs(os.path.join(self.rw, cid, d), exist_ok=True)
        upper = self.upper(cid)
        if self.shift != (0, 0):
            # the merged root takes the upper directory's owner: the container's root
            os.chown(upper, *self.shift)
        init_dirs(upper, [la.path for la in reversed(layers)], self.shift)

    def mount(self, cid: str, layers: list[Layer]) -> Mount:
        lower = ":".join(layer.path for layer in reversed(layers))
        opts = [
            f"lowerdir={lower}",
            f"upperdir={self.upper(cid)}",
            f"workdir={os.path.join(self.rw, cid, 'work')}",
        ]
        if len(",".join(opts)) > 4000:
            raise System(f"too many layers for one overlay mount ({len(layers)})")
        return Mount(type="overlay", source="overlay", options=opts)

    def upper(self, cid: str) -> str:
        return os.path.join(self.rw, cid, "upper")

    def remove(self, cid: str) -> None:
        shutil.rmtree(os.path.join(self.rw, cid), ignore_errors=True)


class CopyDriver:
    """Where overlayfs cannot be used: each container gets a full copy of its layers."""

    name = "vfs"
    shift: tuple[int, int] = (0, 0)

    def __init__(self, root: str) -> None:
        self.rw = os.path.join(root, "rw")
        # closed: what a container plants in its layer (setuid files, device nodes) must not
        # be reachable from the host; the upper directory keeps its mode (the rootfs's)
        os.makedirs(root, mode=0o700, exist_ok=True)
        os.makedirs(self.rw, mode=0o700, exist_ok=True)

    def prepare(self, cid: str, layers: list[Layer]) -> None:
        dst = self.upper(cid)
        if os.path.exists(dst):
            return
        tmp = dst + ".tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        os.makedirs(tmp)
        for layer in layers:
            apply_overlay_dir(layer.path, tmp)
        for name in INIT_DIRS:  # see init_dirs
            p = os.path.join(tmp, name)
            if os.path.islink(p) or (os.path.lexists(p) and not os.path.isdir(p)):
                os.unlink(p)
            if not os.path.exists(p):
                os.mkdir(p, 0o755)
                os.chown(p, *self.shift)
        os.chown(tmp, *self.shift)
        os.rename(tmp, dst)

    def mount(self, cid: str, layers: list[Layer]) -> Mount:
        return Mount(type="bind", source=self.upper(cid), options=["rbind"])

    def upper(self, cid: str) -> str:
        return os.path.join(self.rw, cid, "rootfs")

    def remove(self, cid: str) -> None:
        shutil.rmtree(os.path.join(self.rw, cid), ignore_errors=True)


INIT_DIRS = ("proc", "dev", "sys")


def init_dirs(top: str, lowers_top_first: list[str], owner: tuple[int, int] = (0, 0)) -> None:
    """As Docker's init layer: /proc, /dev and /sys are directories in every container,
    whatever the image has there. A symlink in an image (to a host path, say) is hidden by a
    directory above it, so no runtime ever mounts or makes device nodes through it."""
    for name in INIT_DIRS:
        st = _lower_stat(name, lowers_top_first) if lowers_top_first else None
        p = os.path.join(top, name)
        if (st is None or not stat.S_ISDIR(st.st_mode)) and not os.path.lexists(p):
            os.mkdir(p, 0o755)
            os.chown(p, *owner)


def apply_overlay_dir(src: str, dst: str) -> None:
    """Apply a layer in overlayfs format onto a plain directory: whiteouts delete, opaque
    directories replace."""
    for dirpath, dirnames, filenames in os.walk(src):
        rel = os.path.relpath(dirpath, src)
        tdir = dst if rel == "." else os.path.join(dst, rel)
        try:
            opaque = os.getxattr(dirpath, "trusted.overlay.opaque") == b"y"
        except OSError:
            opaque = False
        if opaque and os.path.isdir(tdir) and rel != ".":
            shutil.rmtree(tdir)
        if not os.path.isdir(tdir) or os.path.islink(tdir):
            if os.path.lexists(tdir):
                os.unlink(tdir)
            os.mkdir(tdir)
        st = os.lstat(dirpath)
        os.chown(tdir, st.st_uid, st.st_gid)
        os.chmod(tdir, stat.S_IMODE(st.st_mode))
        for name in filenames + [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]:
            s = os.path.join(dirpath, name)
            t = os.path.join(tdir, name)
            sst = os.lstat(s)
            if stat.S_ISCHR(sst.st_mode) and sst.st_rdev == 0:
                if os.path.isdir(t) and not os.path.islink(t):
                    shutil.rmtree(t)
                elif os.path.lexists(t):
                    os.unlink(t)
                continue
            if os.path.isdir(t) and not os.path.islink(t):
                shutil.rmtree(t)
            elif os.path.lexists(t):
                os.unlink(t)
            if stat.S_ISLNK(sst.st_mode):
                os.symlink(os.readlink(s), t)
            elif stat.S_ISREG(sst.st_mode):
                shutil.copy2(s, t, follow_symlinks=False)
            else:
                os.mknod(t, sst.st_mode, sst.st_rdev)
            os.chown(t, sst.st_uid, sst.st_gid, follow_symlinks=False)
            if not stat.S_ISLNK(sst.st_mode):
                os.chmod(t, stat.S_IMODE(sst.st_mode))
        dirnames[:] = [d for d in dirnames if not os.path.islink(os.path.join(dirpath, d))]


def overlay_supported(root: str) -> bool:
    """overlayfs needs kernel support and an upper directory that is not itself on overlayfs."""
    try:
        with open("/proc/filesystems") as f:
            if "overlay" not in f.read():
                return False
        return os.statvfs(root) is not None and _fs_type(root) not in ("overlay", "tmpfs-no")
    except OSError:
        return False


def _fs_type(path: str) -> str:
    path = os.path.realpath(path)
    best, typ = "", ""
    with open("/proc/self/mountinfo") as f:
        for line in f:
            left, _, right = line.partition(" - ")
            point = left.split()[4]
            if (path == point or path.startswith(point.rstrip("/") + "/")) and len(point) >= len(
                best
            ):
                best, typ = point, right.split()[0]
    return typ


def make_driver(name: str, root: str) -> Driver:
    if name in ("overlay2", "overlay"):
        return OverlayDriver(root)
    if name in ("vfs", "copy"):
        return CopyDriver(root)
    raise InvalidArgument(f"unknown storage driver: {name}")


__all__ = [
    "Layer",
    "Mount",
    "LayerStore",
    "Driver",
    "OverlayDriver",
    "CopyDriver",
    "merged_entries",
    "write_merged_tar",
    "MergedView",
    "copy_into",
    "apply_overlay_dir",
    "overlay_supported",
    "make_driver",
]
