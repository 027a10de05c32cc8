"""The modes and owners of berthd's data root and exec root, set at every start.

Imports nothing of berth's but the configuration beside it.
"""

from __future__ import annotations

import contextlib
import fcntl
import os

from berth.daemon.config import DaemonConfig
from berth.errors import Conflict

# The data root and exec root are berth's alone: no other local user may read a container's
# environment (berth.db, a bundle's config.json) or reach what a container planted in its
# writable layer or a volume (a setuid-root file, a 0666 node of the host's disk).
#   DATA_ROOT                 0700 root:root (0710 root:REMAP_GID with --userns-remap)
#     containers/ volumes/ build/   the same: with --userns-remap the container's root
#                               (REMAP_UID:REMAP_GID outside) walks to the files, volumes and
#                               build mounts bound into it; nobody else may
#     content/ storage/         0700 root:root always: only berthd reads blobs; layers and
#                               writable layers are mounted by the monitor (root), and
#                               overlayfs reaches them with the mounter's credentials
#     berth.db (-wal, -shm), engine-id   0600
#   DATA_ROOT/.. with --userns-remap (the --data-root given)   0710 root:REMAP_GID (as dockerd)
#   EXEC_ROOT                 0711 root:root: the default socket (0660) is in it, so it is
#                             walked but not listed
#     containers/ runtimes/     0700 root:root (0710 root:REMAP_GID: the container's root
#                               walks to its bundle's rootfs)
#     networks/ seccomp/        0700 root:root
# Inside, files with secrets are 0600 (berth.fs.atomic_write); the files bound into
# containers (hostname, hosts, resolv.conf) stay 0644 for the container's non-root users,
# the upper directory and a volume's _data keep the image's modes: the closed directories
# above them keep other local users out. A data root from before is closed here at start.
_DATA_SHARED = ("containers", "volumes", "build")
_DATA_PRIVATE = ("content", "storage")
_EXEC_SHARED = ("containers", "runtimes")
_EXEC_PRIVATE = ("networks", "seccomp")


def close_roots(cfg: DaemonConfig) -> None:
    gid = cfg.idmap[1] if cfg.idmap else 0
    shared = 0o710 if cfg.idmap else 0o700
    if cfg.idmap:
        _own_dir(os.path.dirname(cfg.data_root), 0o710, gid)
    _own_dir(cfg.data_root, shared, gid)
    for name in _DATA_SHARED:
        _own_dir(os.path.join(cfg.data_root, name), shared, gid)
    for name in _DATA_PRIVATE:
        _own_dir(os.path.join(cfg.data_root, name), 0o700, 0)
    with contextlib.suppress(FileNotFoundError):
        os.chmod(os.path.join(cfg.data_root, "engine-id"), 0o600)
    _own_dir(cfg.exec_root, 0o711, 0)
    for name in _EXEC_SHARED:
        _own_dir(os.path.join(cfg.exec_root, name), shared, gid)
    for name in _EXEC_PRIVATE:
        _own_dir(os.path.join(cfg.exec_root, name), 0o700, 0)


def _own_dir(path: str, mode: int, gid: int) -> None:
    """`path` a directory of root's, group `gid`, exactly `mode`, made if missing."""
    os.makedirs(path, mode=0o700, exist_ok=True)
    os.chown(path, 0, gid)
    os.chmod(path, mode)


LOCK_NAME = "berthd.lock"


def lock_data_root(data_root: str) -> int:
    """Hold the data root for this process, or raise Conflict naming the holder.

    Two daemons on one data root would each clean the other's ingests and layers at start,
    write one database and restore the same containers twice. As dockerd's pidfile does, a
    second one is refused; unlike a pidfile, the lock (flock on DATA_ROOT/berthd.lock) goes
    with its holder however it ends, kill -9 included, so a stale file never blocks a start.
    The file says the holder's pid, for the error. The descriptor is close-on-exec (the fork
    server and the shim hosts must not hold the lock on after a crash) and is returned to be
    kept open for the daemon's life."""
    os.makedirs(data_root, mode=0o700, exist_ok=True)
    path = os.path.join(data_root, LOCK_NAME)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 32, 0).decode(errors="replace").strip()
        os.close(fd)
        raise Conflict(
            f"data root {data_root} is in use by another berthd"
            f"{f' (pid {holder})' if holder.isdigit() else ''}: stop it first, or give this one "
            "its own --data-root"
        ) from None
    except BaseException:
        os.close(fd)
        raise
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd


__all__ = ["LOCK_NAME", "close_roots", "lock_data_root"]
