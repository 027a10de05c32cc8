"""Files under a root that an attacker may have shaped: an image's layers, a container's rootfs,
a build stage, a volume, berth's own data root.

Every walk here goes by directory file descriptor with O_NOFOLLOW, so a symlink planted anywhere
on the way resolves inside the root or not at all; never through a host path string. This is the
one root-confined resolver of the code base: storage, volumes, the builder and the runtime use it.
"""

from __future__ import annotations

import errno
import os
import stat

# fs is imported by `linux`, hence by berth-runtime: no typing, dataclasses or contextlib here
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Protocol, TypeVar

    N = TypeVar("N")

    class Walker(Protocol[N]):
        """How the resolver looks at one kind of tree (a directory by fd, the merged layers of
        an image, a build context's index)."""

        def lookup(self, parent: N, name: str) -> N | None:
            """The entry `name` in the directory `parent`, not followed; None if missing."""

        def readlink(self, node: N) -> str | None:
            """A symlink's target; None if `node` is not a symlink."""

        def is_dir(self, node: N) -> bool: ...

        def close(self, node: N) -> None: ...


MAX_HOPS = 40  # as the kernel's MAXSYMLINKS

O_PATH = getattr(os, "O_PATH", 0o10000000)
_NOFOLLOW_PATH = O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC
_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def components(path: str) -> list[str]:
    return [p for p in path.split("/") if p and p != "."]


def walk(
    walker: Walker[Any],
    root: Any,
    path: str,
    *,
    follow: bool = True,
    missing_ok: bool = False,
    max_hops: int = MAX_HOPS,
) -> list[tuple[str, Any]]:
    """Resolve `path` as if `root` were `/`: the stack of (name, node) from the root (name "")
    down to the entry `path` names. Every component is looked up in the node above it, never
    through a path string. A symlink is followed by resolving its target the same way: an
    absolute target starts again at the root, and `..` never goes above the root. `follow`
    False leaves a symlink in the last place unfollowed.

    With `missing_ok`, a missing component (or one under a non-directory) and what follows it
    are taken as they are written (their node is None: the caller creates them); otherwise
    FileNotFoundError or NotADirectoryError. More than `max_hops` symlinks: ELOOP. The caller
    closes the nodes of the stack but the root's (`close_stack`)."""
    stack: list[tuple[str, Any]] = [("", root)]
    parts = components(path)
    hops = 0
    try:
        while parts:
            name = parts.pop(0)
            if name == "..":
                if len(stack) > 1:
                    _close(walker, stack.pop()[1])
                continue
            parent = stack[-1][1]
            if parent is None:
                stack.append((name, None))  # below a missing name: as written
                continue
            if not walker.is_dir(parent):
                if not missing_ok:
                    raise NotADirectoryError(errno.ENOTDIR, "not a directory", path)
                stack.append((name, None))  # as filepath-securejoin: ENOTDIR is missing
                continue
            node = walker.lookup(parent, name)
            if node is None:
                if not missing_ok:
                    raise FileNotFoundError(errno.ENOENT, "no such file or directory", path)
                stack.append((name, None))
                continue
            target = walker.readlink(node) if (parts or follow) else None
            if target is None:
                stack.append((name, node))
                continue
            walker.close(node)
            hops += 1
            if hops > max_hops:
                raise OSError(errno.ELOOP, "too many levels of symbolic links", path)
            if target.startswith("/"):
                while len(stack) > 1:
                    _close(walker, stack.pop()[1])
            parts = components(target) + parts
    except BaseException:
        close_stack(walker, stack)
        raise
    return stack


def _close(walker: Walker[Any], node: Any) -> None:
    if node is not None:
        walker.close(node)


def close_stack(walker: Walker[Any], stack: list[tuple[str, Any]]) -> None:
    """Close every node of a `walk`'s result but the root's."""
    for _, node in stack[1:]:
        _close(walker, node)


# --- a directory by fd -------------------------------------------------------------------------
class FdWalker:
    """Nodes are O_PATH file descriptors; the root's is the caller's."""

    def lookup(self, parent: int, name: str) -> int | None:
        try:
            return os.open(name, _NOFOLLOW_PATH, dir_fd=parent)
        except FileNotFoundError:
            return None

    def readlink(self, node: int) -> str | None:
        if not stat.S_ISLNK(os.fstat(node).st_mode):
            return None
        return os.readlink("", dir_fd=node)  # the link this fd holds, not a name's new one

    def is_dir(self, node: int) -> bool:
        return stat.S_ISDIR(os.fstat(node).st_mode)

    def close(self, node: int) -> None:
        os.close(node)


FD_WALKER = FdWalker()


def open_dir(path: str) -> int:
    """A directory of berth's own (a data root, a rootfs, a volume), never through a symlink
    in its last place."""
    return os.open(path, _DIR)


def open_beneath(
    root_fd: int, path: str, flags: int = O_PATH, *, follow: bool = True, mode: int = 0o600
) -> int:
    """Open `path` inside the directory `root_fd` as if it were `/` (see `walk`). `flags` as
    os.open's; O_NOFOLLOW is always added to the last open, so a symlink swapped in after the
    walk fails (ELOOP) instead of leading anywhere. With O_CREAT the parent must exist."""
    create = bool(flags & os.O_CREAT)
    stack = walk(FD_WALKER, root_fd, path, follow=follow, missing_ok=create)
    try:
        name, node = stack[-1]
        if len(stack) == 1:
            return os.open(".", (flags & ~os.O_CREAT) | os.O_CLOEXEC, dir_fd=root_fd)
        parent = stack[-2][1]
        if parent is None:
            raise FileNotFoundError(errno.ENOENT, "no such file or directory", path)
        return os.open(name, flags | os.O_NOFOLLOW | os.O_CLOEXEC, mode, dir_fd=parent)
    finally:
        close_stack(FD_WALKER, stack)


def make_beneath(
    root_fd: int, path: str, *, directory: bool = True, mode: int = 0o755
) -> tuple[int, str, int]:
    """A mount point: `path` inside `root_fd` (see `walk`), made where missing (directories,
    and the last name a directory or, with `directory` False, an empty file), never through a
    symlink. Returns (parent fd, last name, O_PATH fd of the entry), all the caller's to close.
    A name swapped for a symlink while it is made fails (ELOOP, ENOTDIR) instead of leading out
    of the root: the runtime mounts onto the fd (`/proc/self/fd/N`), never onto a path string
    that the kernel would resolve again (CVE-2021-30465)."""
    stack = walk(FD_WALKER, root_fd, path, missing_ok=True)
    try:
        if len(stack) == 1:
            raise IsADirectoryError(errno.EISDIR, "the root itself is not a mount point", path)
        for i in range(1, len(stack)):
            name, node = stack[i]
            parent = stack[i - 1][1]
            last = i == len(stack) - 1
            if node is None:
                if not last or directory:
                    node = mkdir_at(parent, name, mode)
                else:
                    try:
                        os.close(create_at(parent, name, 0o644))
                    except FileExistsError:
                        pass
                    node = os.open(name, _NOFOLLOW_PATH, dir_fd=parent)
                stack[i] = (name, node)
            if not last and not stat.S_ISDIR(os.fstat(node).st_mode):
                raise NotADirectoryError(errno.ENOTDIR, "not a directory", path)
        name, node = stack[-1]
        return os.dup(stack[-2][1]), name, os.dup(node)
    finally:
        close_stack(FD_WALKER, stack)


def resolve_path(root: str, path: str) -> str:
    """`path` resolved inside `root` as a path string under `root` (filepath-securejoin's
    SecureJoin): symlinks are followed inside the root; missing names are kept as written. For
    callers that must hand a path to the kernel (a mount's target); the fd walk makes it."""
    root = os.path.abspath(root)
    root_fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)  # the caller's own
    try:
        stack = walk(FD_WALKER, root_fd, path, missing_ok=True, max_hops=255)
        close_stack(FD_WALKER, stack)
    finally:
        os.close(root_fd)
    return os.path.join(root, *[name for name, _ in stack[1:]])


# --- writing below a directory fd --------------------------------------------------------------
def mkdir_at(dir_fd: int, name: str, mode: int = 0o755) -> int:
    """Make the directory `name` in `dir_fd` (an existing directory is kept; anything else there
    is an error) and open it, never through a symlink."""
    _check_name(name)
    try:
        os.mkdir(name, mode, dir_fd=dir_fd)
    except FileExistsError:
        pass
    return os.open(name, _DIR, dir_fd=dir_fd)


def create_at(dir_fd: int, name: str, mode: int = 0o600) -> int:
    """Create the new file `name` in `dir_fd` for writing: O_EXCL and O_NOFOLLOW, so an entry
    already there, a symlink above all, fails instead of being written through."""
    _check_name(name)
    return os.open(
        name,
        os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
        mode,
        dir_fd=dir_fd,
    )


def symlink_at(target: str, dir_fd: int, name: str) -> None:
    _check_name(name)
    os.symlink(target, name, dir_fd=dir_fd)


def chown_at(dir_fd: int, name: str, uid: int, gid: int) -> None:
    """Owner of the entry `name` itself (a symlink's own, never its target's)."""
    _check_name(name)
    os.chown(name, uid, gid, dir_fd=dir_fd, follow_symlinks=False)


def copy_fd(src: int, dst: int) -> int:
    """Copy what is left of `src` to `dst`; the number of bytes."""
    total = 0
    while True:
        try:
            n = os.copy_file_range(src, dst, 1 << 30)
        except OSError as e:
            if e.errno not in (errno.EXDEV, errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
                raise
            break
        if n == 0:
            return total
        total += n
    while chunk := os.read(src, 1 << 20):
        view = memoryview(chunk)
        while view:
            view = view[os.write(dst, view) :]
        total += len(chunk)
    return total


def _check_name(name: str) -> None:
    if not name or "/" in name or name in (".", ".."):
        raise ValueError(f"not a single name: {name!r}")


def atomic_write(path: str, data: bytes, *, mode: int = 0o600, sync: bool = True) -> None:
    """Replace `path` with `data` in one step: a reader sees the old file or the new one, never
    a part. The new file has exactly `mode` (whatever the umask), 0600 unless asked: berth's own
    files hold containers' environments and state no other local user may read.

    The temporary file is new (O_EXCL, O_NOFOLLOW: nothing planted at its name is written
    through) and lives in the same directory, so the rename stays on one filesystem. With
    `sync` the data, then the rename (an fsync of the directory), reach the disk before this
    returns; without it a crash may leave the old file, or an empty one, but never a torn one
    visible under `path` while the machine runs."""
    parent = os.path.dirname(path) or "."
    tmp = os.path.join(parent, f".{os.path.basename(path)}.{os.getpid()}.{os.urandom(4).hex()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, mode)
    try:
        try:
            os.fchmod(fd, mode)
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            if sync:
                os.fsync(fd)
        finally:
            os.close(fd)
        os.rename(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    if sync:
        dfd = os.open(parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)


__all__ = [
    "MAX_HOPS",
    "O_PATH",
    "walk",
    "close_stack",
    "components",
    "FdWalker",
    "FD_WALKER",
    "open_dir",
    "open_beneath",
    "make_beneath",
    "resolve_path",
    "mkdir_at",
    "create_at",
    "symlink_at",
    "chown_at",
    "copy_fd",
    "atomic_write",
]
