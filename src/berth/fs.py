"""Files under a root that an attacker may have shaped: an image's layers, a container's rootfs,
a build stage, a volume, berth's own data root.

Every walk here goes by directory file descriptor with O_NOFOLLOW, so a symlink planted anywhere
on the way resolves inside the root or not at all; never through a host path string. This is the
one root-confined resolver of the code base: storage, volumes, the builder and the runtime use it.
"""

from __future__ import annotations

import os


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
    tmp = os.path.join(parent,
                       f".{os.path.basename(path)}.{os.getpid()}.{os.urandom(4).hex()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, mode)
    try:
        try:
            os.fchmod(fd, mode)
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
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
