"""The extraction of one `docker cp` upload into a container's tree (see
`berth.containers.archive`): every entry lands through a directory fd, never a path string."""

from __future__ import annotations

import logging
import os
import stat
import tarfile
from typing import Any

from berth import fs
from berth.containers.cp_tree import _remove, _Tree
from berth.errors import InvalidArgument
from berth.storage.archive import clean_name

log = logging.getLogger(__name__)


class _Exactly:
    """A file read as `size` bytes: zeros past a file that shrank meanwhile, so the tar
    stays well-formed whatever the container does to it."""

    def __init__(self, f: Any, size: int) -> None:
        self.f = f
        self.left = size

    def read(self, n: int = -1) -> bytes:
        if self.left <= 0:
            return b""
        n = self.left if n < 0 else min(n, self.left)
        data = self.f.read(n)
        if len(data) < n:
            data += b"\0" * (n - len(data))
        self.left -= len(data)
        return data  # type: ignore[no-any-return]


class _Extract:
    """One PUT's extraction: entries land below `dest` through `tree.dir_for_write`, whose
    every step is O_NOFOLLOW, and are created with O_EXCL|O_NOFOLLOW (`berth.fs`)."""

    def __init__(
        self,
        tree: _Tree,
        dest: list[str],
        shift: tuple[int, int],
        no_overwrite: bool,
        copy_ids: bool,
    ) -> None:
        self.tree = tree
        self.dest = dest
        self.shift = shift
        self.no_overwrite = no_overwrite
        self.copy_ids = copy_ids
        self.dir_times: list[tuple[list[str], int]] = []

    def _existing(self, parts: list[str]) -> os.stat_result | None:
        try:
            stack = fs.walk(self.tree.walker, self.tree.root, "/".join(parts), follow=False)
        except (FileNotFoundError, NotADirectoryError):
            return None
        try:
            return self.tree.stat(stack[-1][1]) if len(stack) > 1 else None
        finally:
            fs.close_stack(self.tree.walker, stack)

    def add(self, tf: tarfile.TarFile, m: tarfile.TarInfo) -> None:
        rel = clean_name(m.name)  # InvalidArgument for a name that climbs out
        if not rel:
            if m.isdir():
                return  # the root entry "./"
            raise InvalidArgument(f"invalid tar entry {m.name!r}")
        if m.ischr() or m.isblk():
            raise InvalidArgument(
                f"invalid tar entry {m.name!r}: device nodes are not copied into a container"
            )
        if not (m.isdir() or m.isreg() or m.issym() or m.islnk() or m.isfifo()):
            return
        parts = self.dest + rel
        have = self._existing(parts)
        if have is not None and self.no_overwrite:
            if stat.S_ISDIR(have.st_mode) and not m.isdir():
                raise InvalidArgument(
                    f'cannot overwrite directory "/{"/".join(parts)}" with non-directory "{m.name}"'
                )
            if not stat.S_ISDIR(have.st_mode) and m.isdir():
                raise InvalidArgument(
                    f'cannot overwrite non-directory "/{"/".join(parts)}" with directory "{m.name}"'
                )
        if m.isdir():
            fd = self.tree.dir_for_write(parts, replace=True)
            try:
                self._meta_fd(fd, m)
            finally:
                os.close(fd)
            self.dir_times.append((parts, int(m.mtime)))
            return
        name = parts[-1]
        pfd = self.tree.dir_for_write(parts[:-1])
        try:
            _remove(pfd, name)
            if m.isreg():
                fd = fs.create_at(pfd, name, 0o600)
                try:
                    f = tf.extractfile(m)
                    assert f is not None
                    while chunk := f.read(1 << 20):
                        view = memoryview(chunk)
                        while view:
                            view = view[os.write(fd, view) :]
                    self._meta_fd(fd, m)
                finally:
                    os.close(fd)
            elif m.issym():
                fs.symlink_at(m.linkname, pfd, name)
                fs.chown_at(pfd, name, *self._owner(m))
                os.utime(name, ns=(int(m.mtime * 1e9),) * 2, dir_fd=pfd, follow_symlinks=False)
            elif m.islnk():
                target = clean_name(m.linkname)
                if not target:
                    raise InvalidArgument(f"invalid hard link {m.name!r} -> {m.linkname!r}")
                tparts = self.dest + target
                tfd = self.tree.dir_for_write(tparts[:-1])
                try:
                    tst = os.stat(tparts[-1], dir_fd=tfd, follow_symlinks=False)
                    if stat.S_ISDIR(tst.st_mode):
                        raise InvalidArgument(f"invalid hard link to a directory: {m.name!r}")
                    os.link(tparts[-1], name, src_dir_fd=tfd, dst_dir_fd=pfd, follow_symlinks=False)
                except FileNotFoundError:
                    raise InvalidArgument(
                        f"invalid hard link {m.name!r}: target {m.linkname!r} is not in the archive"
                    ) from None
                finally:
                    os.close(tfd)
            else:  # a fifo
                os.mkfifo(name, 0o600, dir_fd=pfd)
                fd = os.open(name, fs.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=pfd)
                try:
                    self._meta_fd(fd, m)
                finally:
                    os.close(fd)
        finally:
            os.close(pfd)

    def _owner(self, m: tarfile.TarInfo) -> tuple[int, int]:
        uid, gid = (m.uid, m.gid) if self.copy_ids else (0, 0)
        return uid + self.shift[0], gid + self.shift[1]

    def _meta_fd(self, fd: int, m: tarfile.TarInfo) -> None:
        """Owner, mode and times of the entry open as `fd` (chmod after chown: chown clears
        the setuid and setgid bits)."""
        path = f"/proc/self/fd/{fd}"
        os.chown(path, *self._owner(m))
        os.chmod(path, stat.S_IMODE(m.mode))
        for key, value in m.pax_headers.items():
            if key.startswith("SCHILY.xattr.") and not key.startswith("SCHILY.xattr.trusted."):
                try:
                    os.setxattr(
                        path, key[len("SCHILY.xattr.") :], value.encode("utf-8", "surrogateescape")
                    )
                except OSError:
                    pass  # an xattr the filesystem refuses is not fatal, as in Docker
        if not m.isdir():
            os.utime(path, ns=(int(m.mtime * 1e9),) * 2)

    def finish(self) -> None:
        for parts, mtime in reversed(self.dir_times):
            try:
                fd = self.tree.dir_for_write(parts)
            except OSError:
                continue
            try:
                os.utime(f"/proc/self/fd/{fd}", (mtime, mtime))
            finally:
                os.close(fd)
