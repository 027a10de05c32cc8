"""The fork server: a small process the daemon starts once, with the runtime already imported,
that forks a monitor per container. The asyncio daemon never forks (shared/DESIGN.md); a fork of
this warm interpreter costs about a millisecond, where a new interpreter costs tens.

Protocol: the daemon connects to the unix socket and writes one request line; the server forks
a monitor (which outlives us and the daemon: orphans are re-parented) and the monitor answers on
the same connection (see `monitor`).

Run as `python -m berth.runtime.forkserver SOCKET`; it prints `ready` once it listens and dies
with its parent (PR_SET_PDEATHSIG).
"""

from __future__ import annotations

import gc
import os
import signal
import socket
import sys

from berth import linux
from berth.runtime import monitor


def _preload() -> None:
    """Imported once here, not in every monitor: netlink and DNS for networked containers, and
    the C functions the monitors call."""
    linux.preload()
    try:
        import dnslib  # noqa: F401
        import pyroute2  # noqa: F401
    except ImportError:
        pass


def serve(path: str) -> None:
    linux.set_pdeathsig(signal.SIGKILL)
    _preload()
    monitor.SECCOMP_CACHE = os.path.join(os.path.dirname(path), "seccomp")
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(path)
    os.chmod(path, 0o600)
    srv.listen(128)
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    # Monitors are our direct children, reaped by the kernel (SIGCHLD ignored): no second fork
    # to detach them, and no wait before the next request. Should we die, they are re-parented
    # and live on, as live restore wants.
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)
    # what is loaded now stays out of the children's garbage collections: a collection that
    # walked it would copy every page it touched (copy-on-write) in every monitor
    gc.freeze()
    while True:
        conn, _ = srv.accept()
        if os.fork() == 0:
            srv.close()
            monitor.serve_connection(conn)  # never returns
        conn.close()


def main() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    serve(sys.argv[1])


if __name__ == "__main__":
    main()
