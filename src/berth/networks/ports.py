"""Published ports: `-p [ip:][hostPort:]containerPort[/proto]` and `-P`.

Imports `errors`. As Docker does it: an iptables DNAT rule (nat PREROUTING and OUTPUT, through
the daemon's PREFIX-DNAT chain) sends connections that arrive on the host's addresses to the
container, keeping their source address (kernel forwarding); loopback connections, which DNAT
cannot reach, go through a small proxy in the daemon (TCP here, UDP `networks.udpproxy`),
which also holds the port so no one else takes it.

IPv6 as dockerd 20.10 does it: a port published with no host address is held on `0.0.0.0`
and on `[::]` (the same port; the latter skipped where the host has no IPv6), and both show
in NetworkSettings.Ports. A host address of one family binds only that one. An IPv6 host
address is DNATed by ip6tables to the container's IPv6 address where it has one; where it has
none (an IPv4-only network), the proxy carries the connection to its IPv4 address, as
dockerd's userland proxy does; and the other way round on an IPv6-only network.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import re
import resource
import select
import shutil
import socket
import struct
import subprocess
import threading
from dataclasses import dataclass, field
from typing import Any

from berth.errors import Conflict, InvalidArgument, System
from berth.networks.udpproxy import IDLE_TIMEOUT, FlowBudget, UdpProxy

log = logging.getLogger(__name__)

_SPEC = re.compile(
    r"^(?:(?P<ip>\[[0-9a-fA-F:]+\]|\d+\.\d+\.\d+\.\d+):)?(?:(?P<host>[0-9]*(?:-[0-9]+)?):)?"
    r"(?P<ctr>[0-9]+(?:-[0-9]+)?)(?:/(?P<proto>tcp|udp|sctp))?$"
)


def _range(s: str) -> list[int]:
    lo, _, hi = s.partition("-")
    a, b = int(lo), int(hi or lo)
    if not (0 < a <= b <= 65535):
        raise InvalidArgument(f"invalid port range: {s}")
    return list(range(a, b + 1))


def parse_publish(spec: str) -> dict[str, list[dict[str, str]]]:
    """`-p` into Docker's PortBindings: {"80/tcp": [{"HostIp": "", "HostPort": "8080"}]}."""
    m = _SPEC.match(spec)
    if not m:
        raise InvalidArgument(f'invalid port specification: "{spec}"')
    proto = m.group("proto") or "tcp"
    ctr = _range(m.group("ctr"))
    host = m.group("host") or ""
    hosts = _range(host) if host else [0] * len(ctr)
    if host and len(hosts) != len(ctr):
        if len(ctr) == 1:  # -p 8000-8010:80 means "any one of these"
            hosts = [0]
            ctr = ctr[:1]
        else:
            raise InvalidArgument(
                f"invalid ranges specified for container and host Ports: "
                f"{m.group('ctr')} and {host}"
            )
    out: dict[str, list[dict[str, str]]] = {}
    for c, h in zip(ctr, hosts, strict=True):
        out.setdefault(f"{c}/{proto}", []).append(
            {"HostIp": (m.group("ip") or "").strip("[]"), "HostPort": str(h) if h else ""}
        )
    return out


# The loopback proxy spends one thread and six fds (two sockets, two pipes) per connection:
# past these many at once, a new connection is refused (reset) rather than queued.
MAX_CONNS_PER_PORT = 512
MAX_CONNS = 4096


@dataclass(slots=True)
class Published:
    proto: str
    host_ip: str
    host_port: int
    ctr_ip: str  # where the proxy connects (and DNAT sends, if of host_ip's family)
    ctr_port: int
    bridge: str = ""
    task: asyncio.Future[None] | None = None
    holder: socket.socket | None = None
    udp: UdpProxy | None = None  # a UDP port's proxy, which owns `holder`
    conns: set[socket.socket] = field(default_factory=set)  # proxied clients, open now


class _Slots:
    """How many proxied connections are open, per port and in all (threads end them)."""

    def __init__(self, per_port: int, total: int) -> None:
        self.per_port = per_port
        self.total = total
        self.open = 0
        self.lock = threading.Lock()
        self.refused = 0

    def take(self, p: Published, conn: socket.socket) -> bool:
        with self.lock:
            if len(p.conns) >= self.per_port or self.open >= self.total:
                self.refused += 1
                return False
            p.conns.add(conn)
            self.open += 1
            return True

    def give(self, p: Published, conn: socket.socket) -> None:
        with self.lock:
            p.conns.discard(conn)
            self.open -= 1


class PortMapper:
    def __init__(
        self,
        chain: str,
        bridge_of: Any,
        iptables: bool = True,
        max_per_port: int = MAX_CONNS_PER_PORT,
        max_conns: int = MAX_CONNS,
        udp_idle: float = IDLE_TIMEOUT,
    ) -> None:
        self.chain = chain  # the daemon's chain prefix
        self.iptables = iptables
        self.bridge_of = bridge_of  # network name -> bridge name
        self.by_container: dict[str, list[Published]] = {}
        self.v6 = False  # the ip6tables DNAT chain is made with the first IPv6 DNAT
        # never more than the fd limit allows, with room for everything else berthd holds
        soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        if soft != resource.RLIM_INFINITY:
            max_conns = max(16, min(max_conns, (soft - 1024) // 6))
        self.slots = _Slots(min(max_per_port, max_conns), max_conns)
        self.udp_flows = FlowBudget(max_conns)  # one fd a flow: within the same fd room
        self.udp_idle = udp_idle

    # --- rules ------------------------------------------------------------------------------
    def _ipt(
        self, *args: str, table: str = "nat", check: bool = False, binary: str = "iptables"
    ) -> bool:
        return iptables(*args, table=table, check=check, binary=binary)

    def _jumps(self, v6: bool) -> list[list[str]]:
        c = f"{self.chain}-DNAT"
        loop = "::1/128" if v6 else "127.0.0.0/8"
        return [
            ["PREROUTING", "-m", "addrtype", "--dst-type", "LOCAL", "-j", c],
            ["OUTPUT", "-m", "addrtype", "--dst-type", "LOCAL", "!", "-d", loop, "-j", c],
        ]

    def setup(self, *, v6: bool = False) -> None:
        """The DNAT chain and the jumps to it: iptables' at start, ip6tables' with the first
        port DNATed over IPv6."""
        if not self.iptables:
            return
        binary = "ip6tables" if v6 else "iptables"
        self._ipt("-N", f"{self.chain}-DNAT", binary=binary)
        for rule in self._jumps(v6):
            if not self._ipt("-C", *rule, binary=binary):
                self._ipt("-I", *rule, check=True, binary=binary)
        if v6:
            self.v6 = True

    def clear_stale(self) -> None:
        """At start, before running containers are restored: every published port's rules
        go (the DNAT chain's, and the accepts in the FWD chain). A daemon killed, or stopped
        with containers running, left them: restore puts back those of the containers still
        running, and those of a container that ended meanwhile would be left forever."""
        if not self.iptables:
            return
        fwd = f"{self.chain}-FWD"
        for binary in ("iptables", "ip6tables"):
            if binary == "ip6tables" and not shutil.which(binary):
                continue
            self._ipt("-F", f"{self.chain}-DNAT", binary=binary)
            r = subprocess.run([binary, "-w", "-S", fwd], capture_output=True, text=True)
            for line in r.stdout.splitlines():
                words = line.split()
                # the shape of `_rules`' accept: -A FWD -d IP ! -i BR -o BR -p P -m P --dport N
                if (
                    words[:3] == ["-A", fwd, "-d"]
                    and "--dport" in words
                    and words[-2:] == ["-j", "ACCEPT"]
                ):
                    self._ipt("-D", *words[1:], table="filter", binary=binary)

    def teardown(self) -> None:
        if not self.iptables:
            return
        for v6 in (False, True):
            binary = "ip6tables" if v6 else "iptables"
            if v6 and not shutil.which(binary):
                continue
            for rule in self._jumps(v6):
                self._ipt("-D", *rule, binary=binary)
            self._ipt("-F", f"{self.chain}-DNAT", binary=binary)
            self._ipt("-X", f"{self.chain}-DNAT", binary=binary)
        self.v6 = False

    def intact(self) -> bool:
        """Whether the jumps to the DNAT chains are in place (see `Rules.intact`)."""
        if not self.iptables:
            return True
        families = [(False, "iptables")] + ([(True, "ip6tables")] if self.v6 else [])
        return all(self._ipt("-C", *self._jumps(v6)[0], binary=b) for v6, b in families)

    def reapply(self) -> None:
        """The DNAT chains, their jumps and every published port's rules, where missing (after
        the tables were flushed under the daemon); in front, as `publish` puts them."""
        if not self.iptables:
            return
        self.setup()
        if self.v6:
            self.setup(v6=True)
        for ps in list(self.by_container.values()):
            for p in list(ps):
                for binary, table, r in self._rules(p, p.bridge):
                    if not self._ipt("-C", *r, table=table, binary=binary):
                        self._ipt("-I", *r, table=table, binary=binary)

    def _rules(self, p: Published, bridge: str) -> list[tuple[str, str, list[str]]]:
        """(binary, table, rule) of a published port: none where the host address and the
        container's are of two families (the proxy alone carries those)."""
        v6 = ":" in p.host_ip
        if v6 != (":" in p.ctr_ip):
            return []
        binary = "ip6tables" if v6 else "iptables"
        dst = ["-d", p.host_ip] if p.host_ip not in ("", "0.0.0.0", "::") else []
        to = f"[{p.ctr_ip}]:{p.ctr_port}" if v6 else f"{p.ctr_ip}:{p.ctr_port}"
        return [
            (
                binary,
                "nat",
                [
                    f"{self.chain}-DNAT",
                    "!",
                    "-i",
                    bridge,
                    *dst,
                    "-p",
                    p.proto,
                    "--dport",
                    str(p.host_port),
                    "-j",
                    "DNAT",
                    "--to-destination",
                    to,
                ],
            ),
            (
                binary,
                "filter",
                [
                    f"{self.chain}-FWD",
                    "-d",
                    p.ctr_ip,
                    "!",
                    "-i",
                    bridge,
                    "-o",
                    bridge,
                    "-p",
                    p.proto,
                    "--dport",
                    str(p.ctr_port),
                    "-j",
                    "ACCEPT",
                ],
            ),
        ]

    # --- per container ----------------------------------------------------------------------
    async def publish(
        self,
        cid: str,
        bindings: dict[str, list[dict[str, str]]],
        ctr_ip: str,
        network: str,
        ctr_ip6: str = "",
    ) -> dict[str, list[dict[str, str]]]:
        """Open the ports of a container with addresses `ctr_ip` and `ctr_ip6` (either may be
        ""); returns NetworkSettings.Ports. Undoes all on any failure."""
        bridge = self.bridge_of(network)
        done: list[Published] = []
        ports: dict[str, list[dict[str, str]]] = {}
        try:
            for key, binds in bindings.items():
                port_s, _, proto = key.partition("/")
                proto = proto or "tcp"
                for b in binds or [{}]:
                    for p in await self._open_binding(
                        b, proto, int(port_s), ctr_ip, ctr_ip6, bridge
                    ):
                        done.append(p)
                        self._add_rules(p, bridge)
                        ports.setdefault(key, []).append(
                            {"HostIp": p.host_ip, "HostPort": str(p.host_port)}
                        )
        except BaseException:
            for p in done:
                self._close(p, bridge)
            raise
        self.by_container[cid] = done
        return ports

    async def _open_binding(
        self, b: dict[str, str], proto: str, ctr_port: int, ctr_ip: str, ctr_ip6: str, bridge: str
    ) -> list[Published]:
        """The host sockets of one binding: its address, or 0.0.0.0 and [::] on one port (a
        random one taken on [::] alone is given up for another, a few times)."""
        asked = b.get("HostIp") or ""
        for attempt in range(4):
            port = int(b.get("HostPort") or 0)
            opened: list[Published] = []
            try:
                for host_ip in [asked] if asked else ["0.0.0.0", "::"]:
                    v6 = ":" in host_ip
                    p = Published(
                        proto=proto,
                        host_ip=host_ip,
                        host_port=port,
                        ctr_ip=(ctr_ip6 or ctr_ip) if v6 else (ctr_ip or ctr_ip6),
                        ctr_port=ctr_port,
                        bridge=bridge,
                    )
                    if await self._open(p, optional=not asked and v6):  # False: no IPv6 here
                        opened.append(p)
                        port = p.host_port  # [::] gets the port 0.0.0.0 got
            except Conflict:
                for p in opened:
                    self._close(p, bridge)
                if opened and not b.get("HostPort") and attempt < 3:
                    continue
                raise
            except BaseException:
                for p in opened:
                    self._close(p, bridge)
                raise
            return opened
        raise AssertionError("unreachable")

    def _add_rules(self, p: Published, bridge: str) -> None:
        if not self.iptables:
            return
        for binary, table, r in self._rules(p, bridge):
            if binary == "ip6tables" and not self.v6:
                self.setup(v6=True)
            if not self._ipt("-C", *r, table=table, binary=binary):  # kept over a restart
                # in front: the chain ends by dropping the unpublished rest
                self._ipt("-I", *r, table=table, check=True, binary=binary)

    async def _open(self, p: Published, *, optional: bool = False) -> bool:
        """Hold the host port with a proxy (what loopback clients and the other address family
        reach: DNAT takes the rest). A taken port is Docker's error; False if `optional` and
        the host has no IPv6."""
        fam = socket.AF_INET6 if ":" in p.host_ip else socket.AF_INET
        typ = socket.SOCK_STREAM if p.proto == "tcp" else socket.SOCK_DGRAM
        try:
            s = socket.socket(fam, typ)
        except OSError:
            if optional:
                return False
            raise
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if fam == socket.AF_INET6:  # [::] beside 0.0.0.0, not over it
            s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        try:
            s.bind((p.host_ip, p.host_port))
        except OSError as e:
            s.close()
            if optional and e.errno in (errno.EADDRNOTAVAIL, errno.EAFNOSUPPORT):
                return False
            shown = f"[{p.host_ip}]" if fam == socket.AF_INET6 else p.host_ip
            raise Conflict(
                f"Bind for {shown}:{p.host_port} failed: port is already allocated ({e.strerror})"
            ) from None
        p.host_port = s.getsockname()[1]
        if p.proto != "tcp":
            p.holder = s
            if p.proto == "udp" and p.ctr_ip:
                p.udp = UdpProxy(s, (p.ctr_ip, p.ctr_port), self.udp_flows, idle=self.udp_idle)
                p.udp.start()
            return True
        s.listen(128)
        s.setblocking(False)
        p.holder = s
        p.task = asyncio.ensure_future(self._accept(p, s))
        return True

    async def _accept(self, p: Published, s: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        while True:
            try:
                conn, _ = await loop.sock_accept(s)
            except OSError as e:  # EMFILE and friends: wait, do not spin
                log.warning("port %s:%d: accept: %s", p.host_ip, p.host_port, e)
                await asyncio.sleep(0.1)
                continue
            if not self.slots.take(p, conn):
                # reset at once: a client should not wait on a connection no one will serve
                with contextlib.suppress(OSError):
                    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                conn.close()
                if self.slots.refused % 1000 == 1:
                    log.warning(
                        "port %s:%d: too many proxied connections (%d on this port, "
                        "%d in all): refusing new ones",
                        p.host_ip,
                        p.host_port,
                        self.slots.per_port,
                        self.slots.total,
                    )
                continue
            try:
                threading.Thread(target=_proxy, args=(conn, p, self.slots), daemon=True).start()
            except RuntimeError:  # no more threads
                self.slots.give(p, conn)
                conn.close()

    def _close(self, p: Published, bridge: str) -> None:
        if p.task is not None:
            p.task.cancel()
        if p.udp is not None:
            p.udp.close()
        elif p.holder is not None:
            p.holder.close()
        with self.slots.lock:
            conns = list(p.conns)
        for c in conns:  # their threads see the end and close both sides
            with contextlib.suppress(OSError):
                c.shutdown(socket.SHUT_RDWR)
        if self.iptables:
            for binary, table, r in self._rules(p, bridge):
                self._ipt("-D", *r, table=table, binary=binary)

    def unpublish(self, cid: str, network: str) -> None:
        """Close a container's ports. Each rule names the bridge it was made with, so a
        network gone since (removed, or its daemon's record lost) does not keep them open."""
        for p in self.by_container.pop(cid, []):
            self._close(p, p.bridge or self.bridge_of(network))


def iptables(
    *args: str, table: str = "filter", check: bool = True, binary: str = "iptables"
) -> bool:
    """One iptables (or ip6tables) call, waiting for the xtables lock; True if it succeeded.
    With `check`, a failure is an error naming the rule."""
    try:
        r = subprocess.run([binary, "-w", "-t", table, *args], capture_output=True, text=True)
    except FileNotFoundError:
        raise System(
            f"{binary} is not installed: install it, or start berthd with --iptables=false"
        ) from None
    if check and r.returncode != 0:
        raise System(f"{binary} -t {table} {' '.join(args)}: {r.stderr.strip()}")
    return r.returncode == 0


def _proxy(client: socket.socket, p: Published, slots: _Slots) -> None:
    """One loopback connection, both ways, in this one thread, with splice(2): the bytes never
    enter Python."""
    try:
        client.setblocking(True)
        try:
            upstream = socket.create_connection((p.ctr_ip, p.ctr_port), timeout=10)
        except OSError:
            return
        try:
            _splice_both(client, upstream)
        finally:
            upstream.close()
    finally:
        client.close()
        slots.give(p, client)


_PIPE = 1 << 16  # a pipe's default capacity


@dataclass(slots=True)
class _Way:
    src: socket.socket
    dst: socket.socket
    r: int
    w: int
    held: int = 0  # bytes in the pipe
    pipe_full: bool = False
    eof: bool = False
    shut: bool = False


def _splice_both(a: socket.socket, b: socket.socket) -> None:
    """Copy a→b and b→a through a pipe each until both ends have closed (or one fails)."""
    a.setblocking(False)
    b.setblocking(False)
    flags = os.SPLICE_F_NONBLOCK | os.SPLICE_F_MOVE
    ways: list[_Way] = []
    try:
        for src, dst in ((a, b), (b, a)):
            r, w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
            ways.append(_Way(src, dst, r, w))
        poller = select.poll()
        registered: dict[int, int] = {}
        while True:
            want: dict[int, int] = {}
            for x in ways:
                if not x.eof and not x.pipe_full and x.held < _PIPE:
                    want[x.src.fileno()] = want.get(x.src.fileno(), 0) | select.POLLIN
                if x.held:
                    want[x.dst.fileno()] = want.get(x.dst.fileno(), 0) | select.POLLOUT
            if not want:
                return  # both ways have ended
            for fd in set(registered) - set(want):
                poller.unregister(fd)
                del registered[fd]
            for fd, ev in want.items():
                if registered.get(fd) != ev:
                    poller.register(fd, ev)
                    registered[fd] = ev
            ready = dict(poller.poll())
            bad = select.POLLHUP | select.POLLERR
            for x in ways:
                if (
                    not x.eof
                    and not x.pipe_full
                    and ready.get(x.src.fileno(), 0) & (select.POLLIN | bad)
                ):
                    try:
                        n = os.splice(x.src.fileno(), x.w, _PIPE - x.held, flags=flags)
                    except BlockingIOError:
                        x.pipe_full = x.held > 0  # out of pipe slots: drain first
                    else:
                        if n == 0:
                            x.eof = True
                        x.held += n
                if x.held and ready.get(x.dst.fileno(), 0) & (select.POLLOUT | bad):
                    try:
                        n = os.splice(x.r, x.dst.fileno(), x.held, flags=flags)
                    except BlockingIOError:
                        n = 0
                    x.held -= n
                    if n:
                        x.pipe_full = False
                if x.eof and not x.held and not x.shut:
                    x.shut = True
                    with contextlib.suppress(OSError):
                        x.dst.shutdown(socket.SHUT_WR)
    except OSError:
        pass  # a reset or a broken pipe ends the connection both ways
    finally:
        for x in ways:
            os.close(x.r)
            os.close(x.w)


def ps_ports(ports: dict[str, list[dict[str, str]]] | None) -> list[dict[str, Any]]:
    """`/containers/json`'s Ports list."""
    out: list[dict[str, Any]] = []
    for key, binds in (ports or {}).items():
        port_s, _, proto = key.partition("/")
        for b in binds or [None]:  # type: ignore[list-item]
            e: dict[str, Any] = {"PrivatePort": int(port_s), "Type": proto}
            if b:
                e.update({"IP": b["HostIp"], "PublicPort": int(b["HostPort"])})
            out.append(e)
    return out


__all__ = ["PortMapper", "parse_publish", "ps_ports", "iptables"]
