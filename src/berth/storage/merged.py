"""An image's files as the kernel's overlayfs shows them, read from its layer directories by
directory fd, without mounting.

A name is looked up layer by layer from the top: a whiteout hides it, a file or a symlink ends
the search (nothing of a lower layer shows below a non-directory of a higher one), directories
merge until an opaque one. Symlinks are followed only by `berth.fs.walk`, inside the image's
root, never through the host's filesystem.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterator
from types import TracebackType

from berth import fs

_OPAQUE = "trusted.overlay.opaque"


def is_whiteout(st: os.stat_result) -> bool:
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == 0


def _opaque(fd: int) -> bool:
    try:
        return os.getxattr(fd, _OPAQUE) == b"y"
    except OSError:
        return False


class Node:
    """One entry of the merged view. A directory holds the fds of its directories in the
    layers that merge into it (top first, with their layer's index); any other entry holds an
    fd of the layer directory that has it, and its name there. `st` is the entry's own lstat."""

    __slots__ = ("st", "dirs", "parent", "layer", "name")

    def __init__(
        self,
        st: os.stat_result,
        *,
        dirs: list[tuple[int, int]] | None = None,
        parent: int = -1,
        layer: int = 0,
        name: str = "",
    ) -> None:
        self.st = st
        self.dirs = dirs or []  # (layer index, O_RDONLY|O_DIRECTORY fd)
        self.parent = parent  # non-directories: the fd of the layer directory holding it
        self.layer = layer if not dirs else dirs[0][0]
        self.name = name

    @property
    def is_dir(self) -> bool:
        return stat.S_ISDIR(self.st.st_mode)

    def close(self) -> None:
        for _, fd in self.dirs:
            os.close(fd)
        self.dirs = []
        if self.parent >= 0:
            os.close(self.parent)
            self.parent = -1


class _Walker:
    def lookup(self, parent: Node, name: str) -> Node | None:
        return child(parent, name)

    def readlink(self, node: Node) -> str | None:
        if not stat.S_ISLNK(node.st.st_mode):
            return None
        return os.readlink(node.name, dir_fd=node.parent)

    def is_dir(self, node: Node) -> bool:
        return node.is_dir

    def close(self, node: Node) -> None:
        node.close()


WALKER = _Walker()


def child(parent: Node, name: str) -> Node | None:
    """`name` in the merged directory `parent`, not followed; None if it does not show."""
    found: list[tuple[int, int]] = []
    top_st: os.stat_result | None = None
    try:
        for layer, pfd in parent.dirs:
            try:
                st = os.stat(name, dir_fd=pfd, follow_symlinks=False)
            except (FileNotFoundError, NotADirectoryError):
                continue
            if is_whiteout(st):
                break
            if not stat.S_ISDIR(st.st_mode):
                if found:
                    break  # a directory above hides it
                return Node(st, parent=os.dup(pfd), layer=layer, name=name)
            fd = os.open(
                name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=pfd
            )
            found.append((layer, fd))
            if top_st is None:
                top_st = os.fstat(fd)
            if _opaque(fd):
                break
    except BaseException:
        for _, fd in found:
            os.close(fd)
        raise
    if top_st is None:
        return None
    return Node(top_st, dirs=found, name=name)


def names(node: Node) -> list[str]:
    """The names a merged directory shows, sorted."""
    seen: set[str] = set()
    out: list[str] = []
    for _, fd in node.dirs:
        with os.scandir(fd) as it:
            for e in it:
                if e.name in seen:
                    continue
                seen.add(e.name)  # a whiteout hides the name below, as an entry does
                if not is_whiteout(e.stat(follow_symlinks=False)):
                    out.append(e.name)
    return sorted(out)


class MergedView:
    """The merged view of layer directories (top first). Use as a context manager."""

    def __init__(self, dirs_top_first: list[str]) -> None:
        self.dirs = list(dirs_top_first)
        fds: list[tuple[int, int]] = []
        try:
            for i, d in enumerate(self.dirs):
                fds.append((i, fs.open_dir(d)))
                if _opaque(fds[-1][1]):
                    break
        except BaseException:
            for _, fd in fds:
                os.close(fd)
            raise
        st = os.fstat(fds[0][1]) if fds else os.stat("/")
        self.root = Node(st, dirs=fds)

    def close(self) -> None:
        self.root.close()

    def __enter__(self) -> MergedView:
        return self

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def lookup(self, rel: str) -> Node | None:
        """`rel` as written: a symlink anywhere on the way (or in the last place) is not
        followed, so a path under a symlink does not exist. The caller closes the node."""
        parts = fs.components(rel)
        if not parts:
            return self._root_copy()
        node = self.root
        try:
            for i, name in enumerate(parts):
                if not node.is_dir:
                    return None
                nxt = child(node, name)
                if node is not self.root:
                    node.close()
                if nxt is None:
                    return None
                node = nxt
                if i < len(parts) - 1 and not node.is_dir:
                    node.close()
                    return None
            return node
        except BaseException:
            if node is not self.root:
                node.close()
            raise

    def resolve(self, rel: str, *, follow: bool = True) -> Node | None:
        """`rel` with symlinks followed inside the image's root (`berth.fs.walk`); None if it
        does not exist. The caller closes the node."""
        try:
            stack = fs.walk(WALKER, self.root, rel, follow=follow)
        except (FileNotFoundError, NotADirectoryError):
            return None
        except OSError as e:
            if e.errno == errno.ELOOP:
                return None
            raise
        if len(stack) == 1:
            return self._root_copy()
        node = stack.pop()[1]
        fs.close_stack(WALKER, stack)
        return node  # type: ignore[no-any-return]

    def _root_copy(self) -> Node:
        return Node(self.root.st, dirs=[(i, os.dup(fd)) for i, fd in self.root.dirs])

    def source_path(self, node: Node, rel: str) -> str:
        """The path of `node` (found at `rel`) in its layer: every component of it is a
        directory of that layer, as the walk found it (layers do not change)."""
        return os.path.join(self.dirs[node.layer], rel) if rel else self.dirs[node.layer]

    @staticmethod
    def open(node: Node) -> int:
        """A regular file of the view, opened for reading."""
        if not stat.S_ISREG(node.st.st_mode):
            raise OSError(errno.EINVAL, "not a regular file", node.name)
        # a running container's layer may change under the walk: what the name is now is
        # checked on an O_PATH fd before it is opened for reading, so a device node or fifo
        # swapped in is never opened
        path_fd = os.open(node.name, fs.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=node.parent)
        try:
            if not stat.S_ISREG(os.fstat(path_fd).st_mode):
                raise OSError(errno.EINVAL, "not a regular file", node.name)
            return os.open(f"/proc/self/fd/{path_fd}", os.O_RDONLY | os.O_CLOEXEC)
        finally:
            os.close(path_fd)

    @staticmethod
    def readlink(node: Node) -> str:
        return os.readlink(node.name, dir_fd=node.parent)

    def entries(self, node: Node | None = None, rel: str = "") -> Iterator[tuple[str, Node]]:
        """Every entry below `node` (the root by default), parents before children, depth
        first, in name order. A node is open only until the next step of the iteration."""
        node = node or self.root
        for name in names(node):
            sub = child(node, name)
            if sub is None:
                continue
            path = f"{rel}/{name}" if rel else name
            try:
                yield path, sub
                if sub.is_dir:
                    yield from self.entries(sub, path)
            finally:
                sub.close()


def copy_into(view: MergedView, node: Node, dst_fd: int) -> None:
    """Copy what the merged directory `node` holds into the directory `dst_fd`: owners, modes
    and symlinks kept; devices, fifos and sockets left out. Every write goes through a
    directory fd with O_NOFOLLOW|O_EXCL (berth.fs), so nothing already in the destination, a
    symlink above all, is ever written through."""
    for name in names(node):
        sub = child(node, name)
        if sub is None:
            continue
        try:
            st = sub.st
            if sub.is_dir:
                fd = fs.mkdir_at(dst_fd, name, 0o700)
                try:
                    copy_into(view, sub, fd)
                    os.fchown(fd, st.st_uid, st.st_gid)
                    os.fchmod(fd, stat.S_IMODE(st.st_mode))
                finally:
                    os.close(fd)
            elif stat.S_ISLNK(st.st_mode):
                fs.symlink_at(view.readlink(sub), dst_fd, name)
                fs.chown_at(dst_fd, name, st.st_uid, st.st_gid)
            elif stat.S_ISREG(st.st_mode):
                src = view.open(sub)
                try:
                    out = fs.create_at(dst_fd, name, 0o600)
                    try:
                        fs.copy_fd(src, out)
                        os.fchown(out, st.st_uid, st.st_gid)
                        os.fchmod(out, stat.S_IMODE(st.st_mode))
                    finally:
                        os.close(out)
                finally:
                    os.close(src)
        finally:
            sub.close()


__all__ = ["MergedView", "Node", "child", "names", "copy_into", "is_whiteout"]
