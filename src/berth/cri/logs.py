"""Container logs in the kubelet's CRI format, at the path CreateContainer named:

    2016-10-06T00:17:09.669794202Z stdout F a whole line
    2016-10-06T00:17:09.669794203Z stderr P a part of a long line...

One writer per running container follows its output (an attach made before the start, so
nothing is lost) until it exits; the container's json-file log is kept as well (`berth logs`).

The file is opened inside the pod's log directory (the kubelet's, but a pod that mounts
/var/log/pods, as log collectors do, can write there) by directory fd: a symlink planted on
the way resolves inside that directory or not at all (`berth.fs`), and the file itself is
made anew (O_EXCL) or, when it is there, written only if it is a regular file of one link
(a FIFO would block the daemon, a device would be opened by it, a hard link is another file).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import posixpath
import stat
import time
from collections.abc import AsyncIterator

from berth import fs
from berth.containers.channel import T_STDERR, T_STDOUT
from berth.errors import InvalidArgument

log = logging.getLogger(__name__)

# a line longer than this is written in parts (tag P), as containerd cuts them
MAX_LINE = 16 * 1024


def timestamp(ns: int | None = None) -> str:
    ns = time.time_ns() if ns is None else ns
    secs, frac = divmod(ns, 1_000_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs)) + f".{frac:09d}Z"


def format_lines(stream: str, buf: bytearray, data: bytes, *, final: bool = False) -> bytes:
    """The CRI lines for `data` after the partial line in `buf` (kept there for later)."""
    buf.extend(data)
    out = bytearray()
    ts = timestamp().encode()
    while True:
        nl = buf.find(b"\n")
        if nl < 0 or nl > MAX_LINE:
            if len(buf) >= MAX_LINE:
                out += ts + b" " + stream.encode() + b" P " + bytes(buf[:MAX_LINE]) + b"\n"
                del buf[:MAX_LINE]
                continue
            break
        out += ts + b" " + stream.encode() + b" F " + bytes(buf[:nl]) + b"\n"
        del buf[: nl + 1]
    if final and buf:
        out += ts + b" " + stream.encode() + b" F " + bytes(buf) + b"\n"
        buf.clear()
    return bytes(out)


def open_log(root: str, path: str) -> int:
    """`path` (a file under the directory `root`) opened to append, made if missing, with
    its directories (see the module's note)."""
    prefix = root.rstrip("/") + "/"
    rel = path[len(prefix) :] if path.startswith(prefix) else ""
    if not root.startswith("/") or not rel or ".." in rel.split("/"):
        raise InvalidArgument(f"CRI log {path!r} is not under the pod's log directory {root!r}")
    parent, name = posixpath.split(rel)
    if not name:
        raise InvalidArgument(f"CRI log {path!r} names no file")
    os.makedirs(root, mode=0o755, exist_ok=True)  # the kubelet's own path (made if missing)
    root_fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        if parent:
            above, _, dir_fd = fs.make_beneath(root_fd, parent)
            os.close(above)
        else:
            dir_fd = os.dup(root_fd)
    finally:
        os.close(root_fd)
    flags = os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC
    try:
        try:
            return os.open(
                name, flags | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o640, dir_fd=dir_fd
            )
        except FileExistsError:
            pass
        node = os.open(name, fs.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd)
        try:
            st = os.fstat(node)
            if not stat.S_ISREG(st.st_mode) or st.st_nlink != 1:
                raise InvalidArgument(f"CRI log {path} is not a regular file of its own")
            return os.open(f"/proc/self/fd/{node}", flags)  # that inode, not the name again
        finally:
            os.close(node)
    finally:
        os.close(dir_fd)


class CriLog:
    """Writes one container's output to its CRI log file, `path` under the pod's log
    directory `root`."""

    def __init__(self, path: str, root: str) -> None:
        self.path = path
        self.root = root
        self.fd = -1
        self.open()

    def open(self) -> None:
        fd = open_log(self.root, self.path)
        old, self.fd = self.fd, fd
        if old >= 0:
            os.close(old)

    def reopen(self) -> None:
        """ReopenContainerLog: the kubelet rotated the file away; write a new one."""
        self.open()

    def write(self, data: bytes) -> None:
        if data and self.fd >= 0:
            os.write(self.fd, data)

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    async def follow(self, output: AsyncIterator[tuple[int, bytes]]) -> None:
        bufs: dict[int, bytearray] = {T_STDOUT: bytearray(), T_STDERR: bytearray()}
        names: dict[int, str] = {T_STDOUT: "stdout", T_STDERR: "stderr"}
        try:
            async for stream, data in output:
                if stream in bufs:
                    self.write(format_lines(names[stream], bufs[stream], data))
        except asyncio.CancelledError:
            raise
        except Exception:  # noqa: BLE001 - a log writer must not take the daemon down
            log.exception("CRI log %s", self.path)
        finally:
            with contextlib.suppress(OSError):
                for s, b in bufs.items():
                    self.write(format_lines(names[s], b, b"", final=True))
            self.close()


__all__ = ["CriLog", "format_lines", "open_log", "timestamp"]
