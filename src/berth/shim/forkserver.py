"""The fork server: a small process the daemon starts once, with the runtime already imported,
that forks what holds containers and execs. The asyncio daemon never forks (shared/DESIGN.md); a
fork of this warm interpreter costs about a millisecond, where a new interpreter costs tens.

Protocol: the daemon connects to a unix socket (SOCKET.lean or SOCKET.dns, see `serve`) and
writes one request line. The server reads it: a container start goes to the server's current
shim host (`shim.host`, which holds many containers; a new host is forked when there is none or
the current one is full), with the connection passed over; an exec gets a monitor of its own
(`shim.monitor`), forked here. Either outlives us and the daemon (orphans are re-parented) and
answers on the same connection (see `shim.protocol`).

Run as `python -m berth.shim.forkserver SOCKET` (`shim.launch` does); it prints `ready` once it
listens and dies with its parent (PR_SET_PDEATHSIG). Imports `linux`, `shim.monitor`,
`shim.host`.
"""

from __future__ import annotations

import contextlib
import gc
import hashlib  # noqa: F401 - for every monitor: seccomp.cached_bpf imports it late
import json  # noqa: F401 - the same
import os
import resource
import signal
import socket
import sys

from berth import linux
from berth.shim import host, monitor, protocol, starter
from berth.shim.protocol import NOFILE_ENV, dns_socket, lean_socket


def _preload_dns() -> None:
    """The embedded DNS server's library (for containers on user-defined networks): imported
    in a monitor, it would cost each of them 16 ms and 3 MB of its own."""
    try:
        import dnslib  # noqa: F401
    except ImportError:
        pass


def _preload() -> None:
    """Imported once here, not in every helper: netlink (~140 ms)."""
    try:
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


def _accept_loop(srv: socket.socket, cfg: monitor.ShimConfig) -> None:
    # Monitors are our direct children, reaped by the kernel (SIGCHLD ignored): no second fork
    # to detach them, and no wait before the next request. Should we die, they are re-parented
    # and live on, as live restore wants.
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)
    # what is loaded now stays out of the children's garbage collections: a collection that
    # walked it would copy every page it touched (copy-on-write) in every monitor
    gc.freeze()
    hosts = _Hosts(srv, cfg)
    while True:
        conn, _ = srv.accept()
        line = None
        if cfg.network_server:
            # the lean and DNS servers: a container start goes to a shim host; an exec (short
            # lived) gets a monitor of its own
            try:
                conn.settimeout(10)
                line = monitor.read_request_line(conn)
                req = protocol.decode_request(line) if line else None
            except Exception as e:  # noqa: BLE001 - answered on its own connection
                with contextlib.suppress(OSError):
                    conn.sendall(
                        protocol.encode_control(
                            protocol.StartFailed(error=f"monitor: {e}", code=125)
                        )
                    )
                conn.close()
                continue
            if req is None:
                conn.close()
                continue
            conn.settimeout(None)
            if isinstance(req, protocol.StartRequest) and not req.exec_pid:
                hosts.hand(line, conn)
                conn.close()
                continue
        if os.fork() == 0:
            srv.close()
            hosts.close()
            monitor.serve_connection(conn, cfg, line)  # never returns
        conn.close()


class _Hosts:
    """The shim host that takes this server's container starts: a new one when there is none,
    it went away, or it has taken `host.CAPACITY` (the old one is retired: it takes no more
    and ends with its last container)."""

    def __init__(self, srv: socket.socket, cfg: monitor.ShimConfig) -> None:
        self.srv = srv
        self.cfg = cfg
        self.ctl: socket.socket | None = None
        self.taken = 0

    def _new(self, conn: socket.socket) -> socket.socket:
        self.close()
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            pid = os.fork()
        except BaseException:
            ours.close()
            theirs.close()
            raise
        if pid == 0:
            self.srv.close()
            ours.close()
            conn.close()  # the host gets it over `theirs`: no copy of its own
            host.run_host(theirs, self.cfg)  # never returns
        theirs.close()
        self.ctl, self.taken = ours, 0
        return ours

    def hand(self, line: bytes, conn: socket.socket) -> None:
        for attempt in range(2):
            try:
                ctl = (
                    self.ctl
                    if self.ctl is not None and self.taken < host.CAPACITY
                    else self._new(conn)
                )
                starter.handoff(ctl, line, conn)
            except OSError:
                if attempt:
                    with contextlib.suppress(OSError):
                        conn.sendall(
                            protocol.encode_control(
                                protocol.StartFailed(
                                    error="monitor: no shim host to take the container", code=125
                                )
                            )
                        )
                    return
                self.close()  # it died: a new one
                continue
            self.taken += 1
            return

    def close(self) -> None:
        if self.ctl is not None:
            self.ctl.close()
            self.ctl = None


def serve(path: str) -> None:
    """Three servers, each forked from the one before it loaded more:
    - on lean_socket(path), nothing more: the monitors of execs and of most containers;
    - on dns_socket(path), with the DNS library: the monitors of containers on user-defined
      networks, which answer their DNS queries (imported in a monitor, dnslib would cost it
      16 ms and 3 MB of its own);
    - on `path`, this process, with netlink too (~140 ms of imports): the children that plumb
      a container's interfaces for its monitor (`shim.netsetup`).

    A fork costs with the size of the process (0.65 ms at 15 MB here, 1.6 ms at 35 MB), and
    an exec pays two of them. A monitor forked from a smaller server also keeps less to itself
    (2.3 MB instead of 2.9 without netlink): preloaded libraries (their threading and logging)
    add fork-time work in every child."""
    linux.set_pdeathsig(signal.SIGKILL)
    linux.preload()
    cache = os.path.join(os.path.dirname(path), "seccomp")
    # the monitors forked from the first two get their interfaces plugged by this one's
    lean = monitor.ShimConfig(seccomp_cache=cache, network_server=path)
    _fork_server(lean_socket(path), lean)
    _preload_dns()
    _fork_server(dns_socket(path), lean)
    _preload()
    srv = _listen(path)
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    _leave_stdout()
    _accept_loop(srv, monitor.ShimConfig(seccomp_cache=cache))


def _fork_server(sock_path: str, cfg: monitor.ShimConfig) -> None:
    srv = _listen(sock_path)
    if os.fork() == 0:
        linux.set_pdeathsig(signal.SIGKILL)  # dies with us
        _leave_stdout()
        _accept_loop(srv, cfg)  # never returns
    srv.close()


def _leave_stdout() -> None:
    """Our stdout is the daemon's pipe for "ready": no monitor may inherit it, or the daemon,
    which waits for that pipe to close when it stops us, waits as long as any container runs."""
    null = os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, 1)
    os.close(null)


def _restore_nofile() -> None:
    """berthd raised its own soft RLIMIT_NOFILE to the hard limit; monitors and containers get
    the one it was started with (as Go programs such as containerd restore it for children)."""
    soft = os.environ.pop(NOFILE_ENV, "")
    if soft.isdigit():
        hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(int(soft), hard), hard))


def main() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    _restore_nofile()
    serve(sys.argv[1])


if __name__ == "__main__":
    main()
