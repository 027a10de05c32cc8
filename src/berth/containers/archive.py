"""`docker cp` on the daemon's side: stat a path in a container, archive it, extract a tar into it.

Part of the container service (see `berth.containers`). Every lookup goes by directory fd
from the container's root with O_NOFOLLOW (`berth.fs`), never through a host path string, so a
container that swaps a path component for a symlink while a copy runs (Docker's CVE-2018-15664)
leads the copy into its own root or nowhere:

- a running container: its root is its init's `/proc/PID/root`, opened once; its volumes,
  binds and tmpfs are there as the container sees them (they are mounted in its namespace).
- a stopped one: the merged view of its writable layer over the image's layers
  (`storage.MergedView`), with its volumes and binds opened at their destinations. A write goes
  into the volume mounted at its path, else into the writable (upper) layer: a directory that
  is only in the image's layers is made there first with its owner and mode (overlayfs's own
  copy-up of a directory), a whiteout is replaced and the new directory made opaque, so what
  the container sees when it starts is what was copied.
"""

from __future__ import annotations

import errno
import logging
import os
import stat
import tarfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, BinaryIO

from berth import fs, storage
from berth.containers.cp_extract import _Exactly, _Extract
from berth.containers.cp_tree import (
    PathStat,
    _base,
    _dup_root,
    _LiveTree,
    _Mount,
    _StoppedTree,
    _Tree,
    go_mode,
)
from berth.errors import BerthError, Forbidden, InvalidArgument, NotFound

if TYPE_CHECKING:
    from berth.containers import ContainerService
    from berth.containers.record import ContainerRecord, MountPoint

log = logging.getLogger(__name__)


# --- the service ---------------------------------------------------------------------------
class ArchiveService:
    """`HEAD`, `GET` and `PUT /containers/{id}/archive` over the container service."""

    def __init__(self, containers: ContainerService) -> None:
        self.containers = containers

    @contextmanager
    def _tree(self, rec: ContainerRecord) -> Iterator[_Tree]:
        shift = self.containers.driver.shift
        pid = rec.state.pid
        tree: _Tree
        if rec.state.running and pid > 0:
            tree = _LiveTree(self._live_root(rec.id, pid), shift)
        else:
            cid = rec.id
            upper = self.containers.driver.upper(cid)
            lowers: list[str] = []
            if self.containers.driver.name == "overlay2":
                lowers = [
                    self.containers.images.layer_store.get(c).path for c in reversed(rec.layers)
                ]
            mounts = [
                _Mount(tuple(fs.components(m.destination)), m.source, m.rw)
                for m in rec.mounts
                if m.type in ("volume", "bind") and m.source
            ]
            try:
                tree = _StoppedTree(upper, lowers, mounts, shift)
            except FileNotFoundError:
                raise NotFound(f"container {cid[:12]} has no filesystem") from None
        try:
            yield tree
        finally:
            tree.close()

    def _live_root(self, cid: str, pid: int) -> int:
        """The container's root, from its init: checked to be in a mount namespace of its own
        and not the host's root, so a pid that a host process took over is never used."""
        try:
            pfd = os.open(f"/proc/{pid}", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except FileNotFoundError:
            raise NotFound(f"container {cid[:12]} is not running") from None
        try:
            root = os.open("root", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC, dir_fd=pfd)
            try:
                ns = os.stat("ns/mnt", dir_fd=pfd)
                mine = os.stat("/proc/self/ns/mnt")
                rst, host = os.fstat(root), os.stat("/")
                if (ns.st_ino == mine.st_ino and ns.st_dev == mine.st_dev) or (
                    rst.st_ino == host.st_ino and rst.st_dev == host.st_dev
                ):
                    raise NotFound(f"container {cid[:12]} is not running")
                state = self.containers.resolve(cid).state
                if not state.running or state.pid != pid:
                    raise NotFound(f"container {cid[:12]} is not running")
            except BaseException:
                os.close(root)
                raise
            return root
        except FileNotFoundError:
            raise NotFound(f"container {cid[:12]} is not running") from None
        finally:
            os.close(pfd)

    # --- stat ---------------------------------------------------------------------------
    def stat(self, ref: str, path: str) -> PathStat:
        rec = self.containers.resolve(ref)
        with self._tree(rec) as tree:
            node = self._resolve(tree, rec, path)
            try:
                return self._stat(tree, node, path)
            finally:
                tree.walker.close(node)

    @staticmethod
    def _follow_last(path: str) -> bool:
        return path.endswith(("/", "/.")) or path in ("", ".")

    def _resolve(self, tree: _Tree, rec: ContainerRecord, path: str) -> Any:
        """The node `path` names: symlinks followed but in its last place (unless it ends in
        `/` or `/.`), as Docker resolves a copy's source."""
        try:
            stack = fs.walk(tree.walker, tree.root, path, follow=self._follow_last(path))
        except (FileNotFoundError, NotADirectoryError):
            raise NotFound(
                f"Could not find the file {path} in container {rec.name.lstrip('/')}"
            ) from None
        except OSError as e:
            if e.errno == errno.ELOOP:
                raise InvalidArgument(f"{path}: too many levels of symbolic links") from None
            raise
        if len(stack) == 1:
            return _dup_root(tree)
        node = stack.pop()[1]
        fs.close_stack(tree.walker, stack)
        return node

    def _stat(self, tree: _Tree, node: Any, path: str) -> PathStat:
        st = tree.stat(node)
        link = ""
        if stat.S_ISLNK(st.st_mode):
            try:
                stack = fs.walk(tree.walker, tree.root, path, follow=True, missing_ok=True)
                link = "/" + "/".join(name for name, _ in stack[1:])
                fs.close_stack(tree.walker, stack)
            except OSError:
                link = tree.readlink(node)
        return PathStat(
            name=_base(path),
            size=st.st_size,
            mode=go_mode(st.st_mode),
            mtime=st.st_mtime,
            link_target=link,
        )

    # --- archive (GET) ------------------------------------------------------------------
    def archive(
        self, ref: str, path: str, out: BinaryIO, on_stat: Callable[[PathStat], None] | None = None
    ) -> PathStat:
        """Write a tar of `path` to `out` (its entries under the path's base name; a path that
        ends in `/.` gives the directory's content): the path's stat, also handed to `on_stat`
        before the first byte (the tar is of the very entry that was stat'ed: it is held open
        from the walk on)."""
        rec = self.containers.resolve(ref)
        with self._tree(rec) as tree:
            node = self._resolve(tree, rec, path)
            try:
                ps = self._stat(tree, node, path)
                if on_stat is not None:
                    on_stat(ps)
                base = _base(path)
                self._write_tar(tree, node, "." if base == "/" else base, out)
            finally:
                tree.walker.close(node)
        return ps

    def _write_tar(self, tree: _Tree, node: Any, arc: str, out: BinaryIO) -> None:
        shift = self.containers.driver.shift
        links: dict[tuple[int, int], str] = {}
        with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tf:

            def add(n: Any, name: str) -> None:
                st = tree.stat(n)
                ti = storage.tar_header(name, st, links, lambda: tree.readlink(n), shift)
                if ti is None:
                    return  # a socket has no place in a tar
                if ti.isdir():
                    tf.addfile(ti)
                    for child_name in tree.names(n):
                        c = tree.walker.lookup(n, child_name)
                        if c is None:
                            continue  # gone meanwhile
                        try:
                            add(c, child_name if name == "." else f"{name}/{child_name}")
                        finally:
                            tree.walker.close(c)
                    return
                if ti.isreg():
                    fd = tree.open_read(n)
                    with os.fdopen(fd, "rb") as f:
                        ti.size = os.fstat(fd).st_size
                        tf.addfile(ti, _Exactly(f, ti.size))
                    return
                tf.addfile(ti)

            add(node, arc)

    # --- extract (PUT) ------------------------------------------------------------------
    def extract(
        self,
        ref: str,
        path: str,
        src: BinaryIO,
        *,
        no_overwrite_dir_non_dir: bool = False,
        copy_uid_gid: bool = False,
    ) -> None:
        """Extract the tar `src` into the directory `path` of the container."""
        rec = self.containers.resolve(ref)
        name = rec.name.lstrip("/")
        with self._tree(rec) as tree:
            try:
                stack = fs.walk(tree.walker, tree.root, path, follow=True)
            except (FileNotFoundError, NotADirectoryError):
                raise NotFound(f"Could not find the file {path} in container {name}") from None
            try:
                if not tree.walker.is_dir(stack[-1][1]):
                    raise InvalidArgument("extraction point is not a directory")
                dest = [n for n, _ in stack[1:]]
            finally:
                fs.close_stack(tree.walker, stack)
            self._check_writable(rec, dest)
            ex = _Extract(
                tree, dest, self.containers.driver.shift, no_overwrite_dir_non_dir, copy_uid_gid
            )
            try:
                with tarfile.open(fileobj=src, mode="r|*", errorlevel=2) as tf:
                    for m in tf:
                        ex.add(tf, m)
                ex.finish()
            except (tarfile.TarError, EOFError, UnicodeError) as e:
                raise InvalidArgument(f"invalid tar archive: {e}") from e
            except BerthError:
                raise
            except OSError as e:
                if e.errno == errno.EROFS:
                    raise Forbidden("container rootfs is marked read-only") from None
                if e.errno in (errno.ELOOP, errno.ENOTDIR, errno.EXDEV):
                    raise InvalidArgument(
                        f"cannot extract {e.filename or ''}: {e.strerror} "
                        "(a symlink is never followed)"
                    ) from None
                raise
        log.info("copied into %s:%s", rec.id[:12], path, extra={"container": rec.id})

    @staticmethod
    def _check_writable(rec: ContainerRecord, dest: list[str]) -> None:
        best: MountPoint | None = None
        best_len = -1
        for m in rec.mounts:
            parts = fs.components(m.destination)
            if dest[: len(parts)] == parts and len(parts) > best_len:
                best, best_len = m, len(parts)
        if best is not None:
            if not best.rw:
                raise Forbidden("mounted volume is marked read-only")
            return
        if rec.host_config.readonly_rootfs:
            raise Forbidden("container rootfs is marked read-only")


__all__ = ["ArchiveService", "PathStat", "go_mode"]
