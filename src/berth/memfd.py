"""Sealed in-memory copies of executables (CVE-2019-5736, the way runc answers it).

Imports nothing of berth's. A copy in a memfd sealed against every change: a process run from
it that a container can reach (its /proc/PID/exe) gives no way to write to the host's file.
berthd starts the fork server from one (`shim.launch`), and the runtime runs from one or execs
through a sealed trampoline (`runtime.sealed`): one module both import, so that the runtime's
code does not load into berthd.
"""

from __future__ import annotations

import errno
import fcntl
import os

F_ADD_SEALS = 1033
F_GET_SEALS = 1034
SEALS = 1 | 2 | 4 | 8  # F_SEAL_SEAL | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE
_MFD_EXEC = 0x10  # Linux 6.3: executable even where vm.memfd_noexec = 1 makes it opt-in


def memfd_exec(name: str, flags: int) -> int:
    """An executable memfd that allows sealing; kernels before 6.3 know no MFD_EXEC, and all
    of theirs are executable."""
    try:
        return os.memfd_create(name, flags | os.MFD_ALLOW_SEALING | _MFD_EXEC)
    except OSError as e:
        if e.errno != errno.EINVAL:
            raise OSError(
                e.errno, f"an executable memfd: {e.strerror} (see sysctl vm.memfd_noexec)"
            ) from e
    return os.memfd_create(name, flags | os.MFD_ALLOW_SEALING)


def sealed_copy(path: str, name: str = "berth-runtime") -> int:
    """A sealed in-memory copy of an executable, as an inheritable descriptor to exec."""
    fd = memfd_exec(name, 0)
    try:
        with open(path, "rb") as f:
            while chunk := f.read(1 << 20):
                os.write(fd, chunk)
        fcntl.fcntl(fd, F_ADD_SEALS, SEALS)
    except BaseException:
        os.close(fd)
        raise
    return fd


__all__ = ["sealed_copy", "memfd_exec", "SEALS", "F_ADD_SEALS", "F_GET_SEALS"]
