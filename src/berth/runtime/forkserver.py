"""The fork server: a small process the daemon starts once, with the runtime already imported,
that forks a monitor per container. The asyncio daemon never forks (shared/DESIGN.md); a fork of
this warm interpreter costs about a millisecond, where a new interpreter costs tens.

Protocol: the daemon connects to the unix socket (SOCKET for containers with network
interfaces, SOCKET.lean for the rest and for execs: see `serve`) and writes one request line; the server forks a monitor (which outlives us and the
daemon: orphans are re-parented) and the monitor answers on the same connection (see `monitor`).

Run as `python -m berth.runtime.forkserver SOCKET`; it prints `ready` once it listens and dies
with its parent (PR_SET_PDEATHSIG).
"""

from __future__ import annotations

import gc
import hashlib  # noqa: F401 - for every monitor: seccomp.cached_bpf imports it late
import json  # noqa: F401 - the same
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


def _listen(path: str) -> socket.socket:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(path)
    os.chmod(path, 0o600)
    srv.listen(128)
    return srv


def lean_socket(path: str) -> str:
    """The socket of the lean server: the monitors of execs and of containers without a
    network of their own (see `serve`)."""
    return path + ".lean"


def _accept_loop(srv: socket.socket) -> None:
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


def serve(path: str) -> None:
    """Two servers: on `path`, this process, with netlink and DNS preloaded (~150 ms of
    imports) for the monitors of containers that get network interfaces; on lean_socket(path),
    a child forked before that preload, for the monitors of execs and of the other containers.

    A fork costs with the size of the process (0.65 ms at 15 MB here, 1.6 ms at 35 MB), and
    an exec pays two of them. A monitor forked from the lean server also keeps about 0.6 MB
    less to itself: the preloaded libraries add fork-time work in every child."""
    linux.set_pdeathsig(signal.SIGKILL)
    linux.preload()
    monitor.SECCOMP_CACHE = os.path.join(os.path.dirname(path), "seccomp")
    lean = _listen(lean_socket(path))
    if os.fork() == 0:
        linux.set_pdeathsig(signal.SIGKILL)  # dies with us
        _leave_stdout()
        _accept_loop(lean)  # never returns
    lean.close()
    _preload()
    srv = _listen(path)
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    _leave_stdout()
    _accept_loop(srv)


def _leave_stdout() -> None:
    """Our stdout is the daemon's pipe for "ready": no monitor may inherit it, or the daemon,
    which waits for that pipe to close when it stops us, waits as long as any container runs."""
    null = os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, 1)
    os.close(null)


def main() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    serve(sys.argv[1])


if __name__ == "__main__":
    main()
