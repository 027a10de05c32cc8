"""The web dashboard that berthd serves with `--ui ADDR` (off by default), over the same
services as the Engine API: containers (with live stats, logs and a terminal), images,
networks, volumes, events and disk usage.

`server` has the routes, `streams` the live ones (feeds served as SSE, the terminal's
WebSocket), `live` the one WebSocket that carries all of a browser's feeds, `auth` the token,
cookie and CSRF checks, `data` the page's JSON, `create` the new-container form, `projects`
and `scaling` compose projects. The front end's built bundle is in `static/`; its source, and
how to build it, in the repository's ui/frontend/.
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import os
import socket
import ssl

from aiohttp import web

from berth.containers import ContainerService
from berth.containers.execs import ExecService
from berth.errors import InvalidArgument
from berth.events import EventBus
from berth.images import ImageService
from berth.images.distribution import Distribution
from berth.networks import NetworkService
from berth.volumes import VolumeService

from .auth import Gate, is_loopback
from .server import Dashboard


def parse_address(addr: str, *, tls: bool) -> tuple[str, int]:
    """`--ui HOST:PORT` (or `[V6]:PORT`): the host and port. A host that is not a loopback
    address is refused unless berthd serves TLS: the token would cross the network in the
    clear."""
    host, sep, port_s = addr.rpartition(":")
    if not sep or not host:
        raise InvalidArgument(f"--ui {addr}: want HOST:PORT, as 127.0.0.1:8080")
    host = host.strip("[]")
    try:
        port = int(port_s)
    except ValueError:
        raise InvalidArgument(f"--ui {addr}: the port is not a number") from None
    if not 0 <= port <= 65535:
        raise InvalidArgument(f"--ui {addr}: the port is out of range")
    if host != "localhost":
        try:
            ipaddress.ip_address(host)
        except ValueError:
            raise InvalidArgument(
                f"--ui {addr}: the host must be an IP address or localhost"
            ) from None
    if not is_loopback(host) and not tls:
        raise InvalidArgument(
            f"--ui {addr}: the dashboard listens on a loopback address "
            "only (127.0.0.1), unless berthd serves TLS (--tlsverify, "
            "--tlscert, --tlskey)"
        )
    return host, port


async def start(
    addr: tuple[str, int],
    *,
    containers: ContainerService,
    images: ImageService,
    execs: ExecService,
    events: EventBus,
    networks: NetworkService | None,
    volumes: VolumeService | None,
    distribution: Distribution | None,
    ssl_context: ssl.SSLContext | None,
    url_file: str = "",
) -> tuple[web.AppRunner, Gate]:
    """Bind `addr`, serve the dashboard there, log the URL with its token (and write it to
    `url_file`, mode 0600, for `berth` and scripts to read). The caller cleans the runner
    up at shutdown (and removes `url_file`)."""
    host, port = addr
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1" if host == "localhost" else host, port))
        sock.listen(128)
        sock.set_inheritable(False)
    except OSError as e:
        sock.close()
        raise InvalidArgument(f"--ui {host}:{port}: {e.strerror}") from None
    port = sock.getsockname()[1]
    gate = Gate(host, port, secure=ssl_context is not None)
    dash = Dashboard(
        containers=containers,
        images=images,
        execs=execs,
        events=events,
        networks=networks,
        volumes=volumes,
        distribution=distribution,
        gate=gate,
    )
    runner = web.AppRunner(dash.app(), access_log=None, handle_signals=False, shutdown_timeout=1.0)
    await runner.setup()
    await web.SockSite(runner, sock, ssl_context=ssl_context).start()
    if url_file:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(url_file)
        fd = os.open(url_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(gate.url + "\n")
    logging.getLogger("berthd").warning(
        "dashboard: open %s (the token is a password: keep it to yourself)", gate.url
    )
    return runner, gate


__all__ = ["Dashboard", "Gate", "parse_address", "start"]
