"""The UDP side of the userland proxy: datagrams to a published UDP port that DNAT does not
carry (a host address of the other family than the container's, as `[::]` for a container on
an IPv4-only network; loopback), relayed to the container and its answers back.

As dockerd's userland proxy: one flow per client address (a socket connected to the container,
so the container's answers come back to the socket they belong to), ended after
`idle` seconds without a datagram either way (dockerd's 90 s UDP conntrack timeout). Unlike
it, the flows are bounded: past `per_port` on one port or `budget`'s total on all, a new
client's datagrams are dropped (the flows already open go on); each flow costs one fd.

All in the event loop (readers on non-blocking sockets), no thread per flow: a datagram is
read whole into one buffer of `MAX_DATAGRAM` and sent on as it came; a wake-up reads at most
`BURST` of them so one busy port does not starve the loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from dataclasses import dataclass, field

log = logging.getLogger(__name__)

MAX_DATAGRAM = 65535  # the largest UDP payload over IPv6 (and more than IPv4's)
BURST = 64  # datagrams read per wake-up of one socket
IDLE_TIMEOUT = 90.0  # seconds, as dockerd's UDPConnTrackTimeout
MAX_FLOWS_PER_PORT = 1024
MAX_FLOWS = 4096

Addr = tuple[str, int] | tuple[str, int, int, int]


class FlowBudget:
    """How many UDP flows are open on all ports of one daemon, against its cap."""

    def __init__(self, total: int = MAX_FLOWS) -> None:
        self.total = total
        self.open = 0
        self.refused = 0  # datagrams of new clients dropped for the caps


@dataclass(slots=True, eq=False)
class _Flow:
    client: Addr
    sock: socket.socket
    last: float
    ended: bool = False


@dataclass(slots=True, eq=False)
class UdpProxy:
    """Relays the datagrams that reach `front` (the bound host port, now the proxy's) to
    `target` (the container's address and port)."""

    front: socket.socket
    target: tuple[str, int]
    budget: FlowBudget
    per_port: int = MAX_FLOWS_PER_PORT
    idle: float = IDLE_TIMEOUT
    flows: dict[Addr, _Flow] = field(default_factory=dict)
    _loop: asyncio.AbstractEventLoop | None = None
    _sweep: asyncio.TimerHandle | None = None
    _closed: bool = False

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self.front.setblocking(False)
        self._loop.add_reader(self.front.fileno(), self._from_clients)

    def close(self) -> None:
        """Stop relaying: every flow's socket and the front one closed."""
        if self._closed:
            return
        self._closed = True
        if self._sweep is not None:
            self._sweep.cancel()
        for flow in list(self.flows.values()):
            self._end(flow)
        if self._loop is not None:
            self._loop.remove_reader(self.front.fileno())
        self.front.close()

    # --- client → container -----------------------------------------------------------------
    def _from_clients(self) -> None:
        for _ in range(BURST):
            try:
                data, client = self.front.recvfrom(MAX_DATAGRAM)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as e:  # an ICMP error of an earlier send: not this port's end
                log.debug("udp %s: %s", self.front.getsockname(), e)
                continue
            flow = self.flows.get(client) or self._new_flow(client)
            if flow is None:
                continue
            assert self._loop is not None
            flow.last = self._loop.time()
            with contextlib.suppress(OSError):  # refused or full: as UDP, the datagram is lost
                flow.sock.send(data)

    def _new_flow(self, client: Addr) -> _Flow | None:
        if len(self.flows) >= self.per_port or self.budget.open >= self.budget.total:
            self.budget.refused += 1
            if self.budget.refused % 1000 == 1:
                log.warning(
                    "udp port %s: too many flows (%d on this port, %d in all): "
                    "dropping new clients' datagrams",
                    self.front.getsockname()[1],
                    self.per_port,
                    self.budget.total,
                )
            return None
        fam = socket.AF_INET6 if ":" in self.target[0] else socket.AF_INET
        try:
            s = socket.socket(fam, socket.SOCK_DGRAM | socket.SOCK_NONBLOCK | socket.SOCK_CLOEXEC)
        except OSError as e:  # out of fds: this datagram is lost, the next one tries again
            log.warning("udp proxy to %s: %s", self.target, e)
            return None
        try:
            s.connect(self.target)
        except OSError as e:
            s.close()
            log.warning("udp proxy to %s: %s", self.target, e)
            return None
        assert self._loop is not None
        flow = _Flow(client, s, self._loop.time())
        self.flows[client] = flow
        self.budget.open += 1
        self._loop.add_reader(s.fileno(), self._from_container, flow)
        if self._sweep is None:
            self._sweep = self._loop.call_later(self._period(), self._expire)
        return flow

    # --- container → client -----------------------------------------------------------------
    def _from_container(self, flow: _Flow) -> None:
        assert self._loop is not None
        for _ in range(BURST):
            try:
                data = flow.sock.recv(MAX_DATAGRAM)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:  # ICMP port unreachable from the container: nothing to relay
                continue
            flow.last = self._loop.time()
            with contextlib.suppress(OSError):
                self.front.sendto(data, flow.client)

    # --- idle flows -------------------------------------------------------------------------
    def _period(self) -> float:
        return max(0.05, min(self.idle / 4, 5.0))

    def _expire(self) -> None:
        self._sweep = None
        if self._closed:
            return
        assert self._loop is not None
        now = self._loop.time()
        for flow in list(self.flows.values()):
            if now - flow.last >= self.idle:
                self._end(flow)
        if self.flows:
            self._sweep = self._loop.call_later(self._period(), self._expire)

    def _end(self, flow: _Flow) -> None:
        if flow.ended:
            return
        flow.ended = True
        self.flows.pop(flow.client, None)
        self.budget.open -= 1
        if self._loop is not None:
            self._loop.remove_reader(flow.sock.fileno())
        flow.sock.close()
