"""Setting a container's sysctls inside it (which it may set is `oci.sysctl`'s rules).

Imports `oci.sysctl`: berth-runtime imports it on every `create` and `run`.
"""

from __future__ import annotations

import os

from berth.oci.sysctl import valid_name


def write_all(sysctls: dict[str, str]) -> None:
    """Write them through the container's /proc (after pivot_root, before /proc/sys is made
    read-only), walking /proc/sys by directory descriptor without following links. Raises
    ValueError for a name `valid_name` refuses, OSError as the write fails."""
    if not sysctls:
        return
    top = os.open("/proc/sys", os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        for name, value in sysctls.items():
            if not valid_name(name):
                raise ValueError(f"invalid sysctl name {name!r}")
            *dirs, leaf = name.split(".")
            fd = os.dup(top)
            try:
                for d in dirs:
                    nxt = os.open(
                        d, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=fd
                    )
                    os.close(fd)
                    fd = nxt
                wfd = os.open(leaf, os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=fd)
                try:
                    os.write(wfd, value.encode())
                finally:
                    os.close(wfd)
            finally:
                os.close(fd)
    finally:
        os.close(top)


__all__ = ["write_all"]
