"""Starting the fork server from berthd: the one way the daemon reaches the shim's code, which
runs in that process and its children, never in the daemon's.

Imports `memfd` (a sealed copy of the interpreter: CVE-2019-5736) and `shim.protocol`, and
nothing of the runtime: this module loads into berthd.
"""

from __future__ import annotations

import asyncio
import os
import sys

from berth.memfd import sealed_copy
from berth.shim.protocol import NOFILE_ENV


async def start_forkserver(sock: str, nofile_soft: int) -> asyncio.subprocess.Process:
    """The fork server listening on `sock` (and its lean and DNS siblings: `shim.protocol`),
    once it says it is ready. `nofile_soft`: the soft RLIMIT_NOFILE the containers get."""
    # the fork server (and so every monitor and container init it forks) runs from a
    # sealed copy of the interpreter: see berth/memfd.py
    exe_fd = sealed_copy(os.path.realpath(sys.executable))
    try:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "berth.shim.forkserver",
            sock,
            executable=f"/proc/self/fd/{exe_fd}",
            pass_fds=[exe_fd],
            env={**os.environ, NOFILE_ENV: str(nofile_soft)},
            stdout=asyncio.subprocess.PIPE,
            stdin=asyncio.subprocess.DEVNULL,
            start_new_session=True,
        )
    finally:
        os.close(exe_fd)
    assert proc.stdout is not None
    line = await asyncio.wait_for(proc.stdout.readline(), 30)
    if line.strip() != b"ready":
        proc.kill()
        await proc.wait()
        raise RuntimeError("the fork server did not start")
    return proc


__all__ = ["start_forkserver"]
