"""What a shim host (`shim.host`) starts with: the fork server's handoff of a container start,
the starter a host forks per container, and the container's own socket.

Imports `shim.monitor`, `shim.runtimes`, `shim.stdio`, `shim.protocol`.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import struct
import sys
import traceback
from typing import Any

from berth.shim import monitor, runtimes
from berth.shim.protocol import StartRequest
from berth.shim.stdio import Stdio

# the handoff's frame: [length][request line], the daemon's connection as its descriptor
LEN = struct.Struct(">I")


def starter(
    req: StartRequest,
    rt: runtimes.Runtime,
    stdio: Stdio,
    cfg: monitor.ShimConfig,
    result: socket.socket,
    keep: set[int],
) -> None:
    """In the starter (a child of the host): start the container and say how it went."""
    signal.set_wakeup_fd(-1)
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    # only this container's descriptors: the host's others (other containers' stdio and
    # channels) must never reach this container's init, not even before it execs
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        if fd not in keep:
            with contextlib.suppress(OSError):
                os.close(fd)
    try:
        h, cg, dns = monitor.start_container(req, rt, stdio, cfg)
    except monitor.Failed as e:
        result.send(json.dumps({"error": e.message, "code": e.code}).encode())
        return
    except Exception as e:  # noqa: BLE001 - the host reports it
        log(f"shim host: a starter failed: {''.join(traceback.format_exception(e))}")
        result.send(json.dumps({"error": f"monitor: {e}", "code": 125}).encode())
        return
    fds = []
    word: dict[str, Any] = {"pid": h.pid}
    if stdio.master >= 0:
        fds.append(stdio.master)
        word["master"] = True
    if dns is not None:
        fds.append(dns.sock.fileno())
        word["dns"] = True
    socket.send_fds(result, [json.dumps(word).encode()], fds)


def listen(path: str) -> socket.socket:
    # bound by a relative name from its directory (a unix socket path has at most 107 bytes),
    # then back to /: the host must not hold a container's directory as its own
    os.chdir(os.path.dirname(path))
    try:
        name = os.path.basename(path)
        with contextlib.suppress(OSError):
            os.unlink(name)
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.bind(name)
        os.chmod(name, 0o600)
        s.listen(8)
        s.setblocking(False)
    finally:
        os.chdir("/")
    return s


def log(msg: str) -> None:
    with contextlib.suppress(OSError):
        sys.stderr.write(msg + "\n")
        sys.stderr.flush()


def handoff(ctl: socket.socket, line: bytes, conn: socket.socket) -> None:
    """In the fork server: hand a container start to a host (blocking)."""
    data = LEN.pack(len(line)) + line
    n = socket.send_fds(ctl, [data[:65536]], [conn.fileno()])
    if n < len(data):
        ctl.sendall(data[n:])


__all__ = ["LEN", "handoff", "listen", "log", "starter"]
