"""A volume's files, read-only: a directory's entries and the first bytes of a file.

A volume's content is whatever its containers wrote, so it is walked as hostile: by directory
file descriptor with O_NOFOLLOW (`berth.fs`), every path resolved inside the volume as if it
were `/`. A symlink is shown with its target and never opened. Nothing here writes.

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


def _open(root: str, path: str, flags: int) -> int:
    if "\x00" in path:
        raise InvalidArgument("a path holds no NUL byte")
    root_fd = fs.open_dir(root)
    try:
        return fs.open_beneath(root_fd, path or "/", flags)
    except FileNotFoundError:
        raise NotFound(f"no such file in the volume: {path}") from None
    except NotADirectoryError:
        raise InvalidArgument(f"not a directory: {path}") from None
    except OSError as e:
        raise InvalidArgument(f"{path}: {e.strerror}") from None
    finally:
        os.close(root_fd)


def list_dir(root: str, path: str) -> dict[str, Any]:
    fd = _open(root, path, os.O_RDONLY | os.O_DIRECTORY)
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
    fd = _open(root, path, os.O_RDONLY | os.O_NONBLOCK)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise InvalidArgument(f"not a regular file: {path}")
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
