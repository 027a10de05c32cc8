"""The trees a `docker cp` walks in a container: the live one under `/proc/PID/root` and the
merged view of a stopped one; Go's file modes for the path-stat header.

Part of the container service's `cp` (see `berth.containers.archive`)."""

from __future__ import annotations

import errno
import logging
import os
import stat
from dataclasses import dataclass
from typing import Any

from berth import fs, storage
from berth.storage import merged as merged_view
from berth.storage.merged import is_whiteout

log = logging.getLogger(__name__)

_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_OPAQUE = "trusted.overlay.opaque"

# Go's os.FileMode bits, as X-Docker-Container-Path-Stat carries them
MODE_DIR = 1 << 31
MODE_SYMLINK = 1 << 27
MODE_DEVICE = 1 << 26
MODE_NAMED_PIPE = 1 << 25
MODE_SOCKET = 1 << 24
MODE_SETUID = 1 << 23
MODE_SETGID = 1 << 22
MODE_CHAR_DEVICE = 1 << 21
MODE_STICKY = 1 << 20


def go_mode(st_mode: int) -> int:
    """A stat mode as Go's os.FileMode."""
    m = st_mode & 0o777
    fmt = stat.S_IFMT(st_mode)
    m |= {
        stat.S_IFDIR: MODE_DIR,
        stat.S_IFLNK: MODE_SYMLINK,
        stat.S_IFIFO: MODE_NAMED_PIPE,
        stat.S_IFSOCK: MODE_SOCKET,
        stat.S_IFBLK: MODE_DEVICE,
        stat.S_IFCHR: MODE_DEVICE | MODE_CHAR_DEVICE,
    }.get(fmt, 0)
    if st_mode & stat.S_ISUID:
        m |= MODE_SETUID
    if st_mode & stat.S_ISGID:
        m |= MODE_SETGID
    if st_mode & stat.S_ISVTX:
        m |= MODE_STICKY
    return m


@dataclass(frozen=True, slots=True)
class PathStat:
    name: str
    size: int
    mode: int  # Go's os.FileMode
    mtime: float  # seconds since the epoch
    link_target: str  # a symlink's target resolved inside the container; "" otherwise

    @property
    def is_dir(self) -> bool:
        return bool(self.mode & MODE_DIR)


# --- the trees a copy walks ----------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class _Mount:
    parts: tuple[str, ...]
    source: str  # the volume's or bind's host directory (berth's own or the user's)
    rw: bool


class _Tree:
    """A container's files as its processes see them. Nodes are what `walker` makes."""

    walker: Any
    root: Any

    def stat(self, node: Any) -> os.stat_result:
        raise NotImplementedError

    def names(self, node: Any) -> list[str]:
        raise NotImplementedError

    def open_read(self, node: Any) -> int:
        raise NotImplementedError

    def readlink(self, node: Any) -> str:
        raise NotImplementedError

    def dir_for_write(self, parts: list[str], *, replace: bool = False) -> int:
        """A directory fd (O_RDONLY) at `parts`, its missing directories made (0755, root)."""
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError


def _reopen(fd: int, flags: int) -> int:
    """A real open file from an O_PATH fd: the same inode, no path looked up again."""
    return os.open(f"/proc/self/fd/{fd}", flags | os.O_CLOEXEC)


class _LiveTree(_Tree):
    """A running container, from its init's /proc/PID/root."""

    def __init__(self, root_fd: int, shift: tuple[int, int]) -> None:
        self.walker = fs.FD_WALKER
        self.root = root_fd
        self.shift = shift

    def stat(self, node: int) -> os.stat_result:
        return os.fstat(node)

    def names(self, node: int) -> list[str]:
        fd = os.open(".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC, dir_fd=node)
        try:
            return sorted(os.listdir(fd))
        finally:
            os.close(fd)

    def open_read(self, node: int) -> int:
        if not stat.S_ISREG(os.fstat(node).st_mode):
            raise OSError(errno.EINVAL, "not a regular file")
        return _reopen(node, os.O_RDONLY)

    def readlink(self, node: int) -> str:
        return os.readlink("", dir_fd=node)

    def dir_for_write(self, parts: list[str], *, replace: bool = False) -> int:
        fd = os.open(".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC, dir_fd=self.root)
        try:
            for i, p in enumerate(parts):
                if replace and i == len(parts) - 1:
                    _remove_non_dir(fd, p)
                nfd = fs.mkdir_at(fd, p, 0o755)  # O_NOFOLLOW: a symlink here fails (ELOOP)
                os.close(fd)
                fd = nfd
            return fd
        except BaseException:
            os.close(fd)
            raise

    def close(self) -> None:
        os.close(self.root)


class _SNode:
    """A node of a stopped container: in the merged layers, or (below a volume's or bind's
    destination) an fd of the host directory mounted there."""

    __slots__ = ("merged", "fd", "parts")

    def __init__(
        self, parts: tuple[str, ...], merged: merged_view.Node | None = None, fd: int | None = None
    ) -> None:
        self.parts = parts
        self.merged = merged
        self.fd = fd


class _StoppedWalker:
    def __init__(self, mounts: dict[tuple[str, ...], _Mount]) -> None:
        self.mounts = mounts

    def lookup(self, parent: _SNode, name: str) -> _SNode | None:
        parts = (*parent.parts, name)
        m = self.mounts.get(parts)
        if m is not None:
            try:
                return _SNode(parts, fd=fs.open_dir(m.source))
            except OSError:
                return None
        if parent.fd is not None:
            fd = fs.FD_WALKER.lookup(parent.fd, name)
            return None if fd is None else _SNode(parts, fd=fd)
        assert parent.merged is not None
        node = merged_view.child(parent.merged, name)
        return None if node is None else _SNode(parts, merged=node)

    def readlink(self, node: _SNode) -> str | None:
        if node.fd is not None:
            return fs.FD_WALKER.readlink(node.fd)
        assert node.merged is not None
        return merged_view.WALKER.readlink(node.merged)

    def is_dir(self, node: _SNode) -> bool:
        if node.fd is not None:
            return fs.FD_WALKER.is_dir(node.fd)
        assert node.merged is not None
        return node.merged.is_dir

    def close(self, node: _SNode) -> None:
        if node.fd is not None:
            os.close(node.fd)
            node.fd = None
        if node.merged is not None:
            node.merged.close()


class _StoppedTree(_Tree):
    def __init__(
        self, upper: str, lowers: list[str], mounts: list[_Mount], shift: tuple[int, int]
    ) -> None:
        self.mounts = {m.parts: m for m in mounts}
        self.walker = _StoppedWalker(self.mounts)
        self.shift = shift
        self.view = storage.MergedView([upper, *lowers])
        self.lowers = storage.MergedView(lowers) if lowers else None
        self.upper_fd = fs.open_dir(upper)
        self.root = _SNode((), merged=self.view.root)

    def stat(self, node: _SNode) -> os.stat_result:
        if node.fd is not None:
            return os.fstat(node.fd)
        assert node.merged is not None
        return node.merged.st

    def names(self, node: _SNode) -> list[str]:
        if node.fd is not None:
            fd = os.open(".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC, dir_fd=node.fd)
            try:
                return sorted(os.listdir(fd))
            finally:
                os.close(fd)
        assert node.merged is not None
        return merged_view.names(node.merged)

    def open_read(self, node: _SNode) -> int:
        if node.fd is not None:
            if not stat.S_ISREG(os.fstat(node.fd).st_mode):
                raise OSError(errno.EINVAL, "not a regular file")
            return _reopen(node.fd, os.O_RDONLY)
        assert node.merged is not None
        return storage.MergedView.open(node.merged)

    def readlink(self, node: _SNode) -> str:
        r: str | None = self.walker.readlink(node)
        if r is None:
            raise OSError(errno.EINVAL, "not a symlink")
        return r

    def dir_for_write(self, parts: list[str], *, replace: bool = False) -> int:
        fd = os.dup(self.upper_fd)
        in_upper = True  # else in a volume or bind: plain directories
        lower_shows = self.lowers is not None
        try:
            for i, p in enumerate(parts):
                last = i == len(parts) - 1
                m = self.mounts.get(tuple(parts[: i + 1]))
                if m is not None:
                    nfd = fs.open_dir(m.source)
                    os.close(fd)
                    fd, in_upper = nfd, False
                    continue
                if not in_upper:
                    if replace and last:
                        _remove_non_dir(fd, p)
                    nfd = fs.mkdir_at(fd, p, 0o755)
                    os.close(fd)
                    fd = nfd
                    continue
                try:
                    st: os.stat_result | None = os.stat(p, dir_fd=fd, follow_symlinks=False)
                except FileNotFoundError:
                    st = None
                if st is not None and stat.S_ISDIR(st.st_mode):
                    nfd = os.open(p, _DIR, dir_fd=fd)
                    if _opaque(nfd):
                        lower_shows = False
                    os.close(fd)
                    fd = nfd
                    continue
                opaque = False
                if st is not None:
                    if not is_whiteout(st) and not (replace and last):
                        raise NotADirectoryError(
                            errno.ENOTDIR, "not a directory", "/" + "/".join(parts[: i + 1])
                        )
                    os.unlink(p, dir_fd=fd)  # a whiteout, or what the tar replaces
                    opaque = True
                lower = None
                if lower_shows and not opaque and self.lowers is not None:
                    lower = self.lowers.lookup("/".join(parts[: i + 1]))
                try:
                    if lower is not None and not lower.is_dir:
                        if not (replace and last):
                            raise NotADirectoryError(
                                errno.ENOTDIR, "not a directory", "/" + "/".join(parts[: i + 1])
                            )
                        opaque = True
                    nfd = fs.mkdir_at(fd, p, 0o755)
                    try:
                        if lower is not None and lower.is_dir:
                            # copy-up: the image's directory, with its owner and mode
                            os.fchown(nfd, lower.st.st_uid, lower.st.st_gid)
                            os.fchmod(nfd, stat.S_IMODE(lower.st.st_mode))
                        else:
                            os.fchown(nfd, *self.shift)
                        if opaque:
                            os.setxattr(nfd, _OPAQUE, b"y")
                            lower_shows = False
                    except BaseException:
                        os.close(nfd)
                        raise
                finally:
                    if lower is not None:
                        lower.close()
                os.close(fd)
                fd = nfd
            return fd
        except BaseException:
            os.close(fd)
            raise

    def close(self) -> None:
        os.close(self.upper_fd)
        if self.lowers is not None:
            self.lowers.close()
        self.view.close()


def _opaque(fd: int) -> bool:
    try:
        return os.getxattr(fd, _OPAQUE) == b"y"
    except OSError:
        return False


def _remove_non_dir(dfd: int, name: str) -> None:
    """Make room for a directory: anything but a directory at `name` goes."""
    try:
        st = os.stat(name, dir_fd=dfd, follow_symlinks=False)
    except FileNotFoundError:
        return
    if not stat.S_ISDIR(st.st_mode):
        os.unlink(name, dir_fd=dfd)


def _remove(dfd: int, name: str) -> None:
    """Remove `name` in `dfd`, a directory with all it holds; nothing is followed."""
    try:
        st = os.stat(name, dir_fd=dfd, follow_symlinks=False)
    except FileNotFoundError:
        return
    if not stat.S_ISDIR(st.st_mode):
        os.unlink(name, dir_fd=dfd)
        return
    sub = os.open(name, _DIR, dir_fd=dfd)
    try:
        for child in os.listdir(sub):
            _remove(sub, child)
    finally:
        os.close(sub)
    os.rmdir(name, dir_fd=dfd)


def _dup_root(tree: _Tree) -> Any:
    """A node of the root that the caller closes like any other."""
    if isinstance(tree, _LiveTree):
        return os.open(".", fs.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC, dir_fd=tree.root)
    assert isinstance(tree, _StoppedTree)
    mounted = tree.mounts.get(())
    if mounted is not None:
        return _SNode((), fd=fs.open_dir(mounted.source))
    return _SNode((), merged=tree.view._root_copy())


def _base(path: str) -> str:
    """The name a copy of `path` has (Go's filepath.Base of the path with its trailing `/.`
    kept): `.` for a directory's content, `/` for the root."""
    if path.endswith("/.") or path == ".":
        return "."
    parts = fs.components(path)
    return parts[-1] if parts else "/"
