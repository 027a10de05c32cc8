"""A volume's files, read-only: a directory's entries and the first bytes of a file.

A volume's content is whatever its containers wrote, so it is walked as hostile: by directory
file descriptor with O_NOFOLLOW (`berth.fs`), every path resolved inside the volume as if it
were `/`. A symlink is shown with its target and never opened. Nothing here writes.

What a path names is first held by an O_PATH descriptor, which opens nothing: only once its
type is known (a directory, a regular file) is it opened for reading, through that descriptor
(`/proc/self/fd/N`: the same inode, never the name again). So a device node a container made
in its volume (mknod is in Docker's default capabilities, and the daemon is outside the
container's device cgroup) is never opened by the daemon, nor a FIFO. Nor is anything read
on another mount than the volume's own (a mount propagated into it: a procfs, a host path).

Imports `fs` and `errors`.
"""

from __future__ import annotations

import os
import posixpath
import stat
from typing import Any

from berth import fs
from berth.errors import InvalidArgument, NotFound

MAX_ENTRIES = 2000  # a directory's entries shown, at most
MAX_READ = 256 * 1024  # a file's bytes shown, at most


def mount_id(fd: int) -> int:
    """The mount an open file (an O_PATH one too) is on (`mnt_id` of /proc/self/fdinfo)."""
    with open(f"/proc/self/fdinfo/{fd}", encoding="ascii") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key == "mnt_id":
                return int(value)
    raise OSError(f"no mnt_id for fd {fd}")


def _open(root: str, path: str, want: int, flags: int) -> int:
    """`path` in the volume, opened with `flags` once it is known to be of the type `want`
    (stat.S_IFDIR, stat.S_IFREG) and on the volume's own mount."""
    if "\x00" in path:
        raise InvalidArgument("a path holds no NUL byte")
    root_fd = fs.open_dir(root)
    try:
        node = fs.open_beneath(root_fd, path or "/", fs.O_PATH)
        try:
            st = os.fstat(node)
            if stat.S_IFMT(st.st_mode) != want:
                what = "a directory" if want == stat.S_IFDIR else "a regular file"
                raise InvalidArgument(f"not {what}: {path}")
            if mount_id(node) != mount_id(root_fd):
                raise InvalidArgument(f"{path} is on another mount than the volume")
            fd = os.open(f"/proc/self/fd/{node}", flags | os.O_CLOEXEC)
        finally:
            os.close(node)
        got = os.fstat(fd)
        if (got.st_dev, got.st_ino) != (st.st_dev, st.st_ino):  # cannot be: the same inode
            os.close(fd)
            raise InvalidArgument(f"{path} changed while it was opened")
        return fd
    except FileNotFoundError:
        raise NotFound(f"no such file in the volume: {path}") from None
    except NotADirectoryError:
        raise InvalidArgument(f"not a directory: {path}") from None
    except OSError as e:
        raise InvalidArgument(f"{path}: {e.strerror}") from None
    finally:
        os.close(root_fd)


def list_dir(root: str, path: str) -> dict[str, Any]:
    fd = _open(root, path, stat.S_IFDIR, os.O_RDONLY | os.O_DIRECTORY)
    entries: list[dict[str, Any]] = []
    truncated = False
    try:
        with os.scandir(fd) as it:
            for e in it:
                if len(entries) >= MAX_ENTRIES:
                    truncated = True
                    break
                try:
                    st = e.stat(follow_symlinks=False)
                except OSError:
                    continue
                kind = (
                    "dir"
                    if stat.S_ISDIR(st.st_mode)
                    else "file"
                    if stat.S_ISREG(st.st_mode)
                    else "link"
                    if stat.S_ISLNK(st.st_mode)
                    else "other"
                )
                target = ""
                if kind == "link":
                    try:
                        target = os.readlink(e.name, dir_fd=fd)
                    except OSError:
                        target = "?"
                entries.append(
                    {
                        "name": e.name,
                        "type": kind,
                        "size": st.st_size,
                        "mode": stat.filemode(st.st_mode),
                        "mtime": int(st.st_mtime),
                        "target": target,
                    }
                )
    finally:
        os.close(fd)
    entries.sort(key=lambda x: (x["type"] != "dir", x["name"]))
    return {
        "path": posixpath.normpath("/" + path.lstrip("/")),
        "entries": entries,
        "truncated": truncated,
    }


def read_file(root: str, path: str) -> tuple[bytes, int]:
    """The first MAX_READ bytes of a regular file, and its whole size."""
    fd = _open(root, path, stat.S_IFREG, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY)
    try:
        st = os.fstat(fd)
        chunks, left = [], MAX_READ
        while left > 0:
            b = os.read(fd, min(left, 65536))
            if not b:
                break
            chunks.append(b)
            left -= len(b)
        return b"".join(chunks), st.st_size
    finally:
        os.close(fd)


__all__ = ["list_dir", "read_file", "MAX_READ"]
