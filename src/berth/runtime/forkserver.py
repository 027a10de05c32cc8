"""The fork server: a small process the daemon starts once, with the runtime already imported,
that forks a monitor per container. The asyncio daemon never forks (shared/DESIGN.md); a fork of
this warm interpreter costs about a millisecond, where a new interpreter costs tens.

Protocol: the daemon connects to the unix socket and writes one request line; the server forks
twice (the monitor is re-parented to init, so it outlives us and the daemon) and the monitor
answers on the same connection (see `monitor`).

Run as `python -m berth.runtime.forkserver SOCKET`; it prints `ready` once it listens and dies
with its parent (PR_SET_PDEATHSIG).
"""

from __future__ import annotations

import os
import signal
import socket
import sys

from berth import linux
from berth.runtime import monitor


def _preload() -> None:
    """Imported once here, not in every monitor: netlink and DNS for networked containers."""
    try:
        import dnslib  # noqa: F401
        import pyroute2  # noqa: F401
    except ImportError:
        pass


def serve(path: str) -> None:
    linux.set_pdeathsig(signal.SIGKILL)
    _preload()
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
    while True:
        conn, _ = srv.accept()
        pid = os.fork()
        if pid == 0:
            srv.close()
            if os.fork() == 0:
                monitor.serve_connection(conn)  # never returns
            os._exit(0)
        conn.close()
        os.waitpid(pid, 0)


def main() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    serve(sys.argv[1])


if __name__ == "__main__":
    main()
