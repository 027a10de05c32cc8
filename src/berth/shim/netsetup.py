"""A container's network set-up from its shim: plug and configure its interfaces, here if
netlink (pyroute2, ~140 ms to import) is loaded, else by a child of the fork server that has it.

Imports `linux.netlink`, `shim.protocol`, `shim.stdio`.
"""

from __future__ import annotations

import contextlib
import json
import socket

from berth.linux import netlink
from berth.shim import protocol
from berth.shim.stdio import Channel


def setup_endpoints(pid: int, networks: list[dict[str, str]], network_server: str) -> None:
    """Plug `networks` (netlink.Endpoint fields) into the network namespace of `pid`: by
    the fork server with netlink listening on `network_server`, or here if that is ""."""
    if not network_server:
        netlink.setup_endpoints(pid, [netlink.Endpoint.decode(e) for e in networks])
        return
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(network_server)
    s.sendall(protocol.NetSetupRequest(pid=pid, networks=tuple(networks)).encode())
    helper = Channel(s)
    s.settimeout(60)  # plumbing may take longer than the channel's usual 10 s
    try:
        frames: list[tuple[int, bytes]] | None = []
        while frames == []:
            frames = helper.read_frames()
        if not frames:
            raise OSError("the network helper went away")
    finally:
        helper.close()
    answer = json.loads(frames[0][1])
    if "error" in answer:
        raise OSError(answer["error"])


def serve(conn: socket.socket, req: protocol.NetSetupRequest) -> int:
    """The other side of `setup_endpoints`, in a child of the fork server with netlink."""
    try:
        netlink.setup_endpoints(req.pid, [netlink.Endpoint.decode(e) for e in req.networks])
        answer: dict[str, str] = {}
        code = 0
    except Exception as e:  # noqa: BLE001 - reported to the monitor that asked
        answer, code = {"error": str(e)}, 1
    with contextlib.suppress(OSError):
        conn.sendall(protocol.frame(protocol.T_CONTROL, json.dumps(answer).encode()))
    return code


def plug(pid: int, endpoint: dict[str, str]) -> str:
    """`network connect` of a running container: one more interface; its name."""
    ep = netlink.Endpoint.decode(endpoint)
    netlink.setup_endpoints(pid, [ep])
    return str(ep.ifname)


def unplug(pid: int, ifname: str) -> None:
    netlink.unplug(pid, ifname)


def dns_socket(pid: int) -> int:
    """A UDP socket bound to 127.0.0.11:53 in the network namespace of `pid`."""
    return int(netlink.udp_socket_in_netns(pid, "127.0.0.11", 53))


__all__ = ["setup_endpoints", "serve", "plug", "unplug", "dns_socket"]
