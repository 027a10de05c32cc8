"""Published ports: `-p [ip:][hostPort:]containerPort[/proto]` and `-P`.

Imports `errors`. As Docker does it: an iptables DNAT rule (nat PREROUTING and OUTPUT, through
the daemon's PREFIX-DNAT chain) sends connections that arrive on the host's addresses to the
container, keeping their source address (kernel forwarding); loopback connections, which DNAT
cannot reach, go through a small TCP proxy in the daemon, which also holds the port so no one
else takes it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import resource
import select
import socket
import struct
import subprocess
import threading
from dataclasses import dataclass, field
from typing import Any

from berth.errors import Conflict, InvalidArgument, System

log = logging.getLogger(__name__)

_SPEC = re.compile(r"^(?:(?P<ip>\[[0-9a-fA-F:]+\]|\d+\.\d+\.\d+\.\d+):)?(?:(?P<host>[0-9]*(?:-[0-9]+)?):)?"
                   r"(?P<ctr>[0-9]+(?:-[0-9]+)?)(?:/(?P<proto>tcp|udp|sctp))?$")


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
        raise InvalidArgument(f"invalid port specification: \"{spec}\"")
    proto = m.group("proto") or "tcp"
    ctr = _range(m.group("ctr"))
    host = m.group("host") or ""
    hosts = _range(host) if host else [0] * len(ctr)
    if host and len(hosts) != len(ctr):
        if len(ctr) == 1:  # -p 8000-8010:80 means "any one of these"
            hosts = [0]
            ctr = ctr[:1]
        else:
            raise InvalidArgument(f"invalid ranges specified for container and host Ports: "
                                  f"{m.group('ctr')} and {host}")
    out: dict[str, list[dict[str, str]]] = {}
    for c, h in zip(ctr, hosts, strict=True):
        out.setdefault(f"{c}/{proto}", []).append(
            {"HostIp": (m.group("ip") or "").strip("[]"), "HostPort": str(h) if h else ""})
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
    ctr_ip: str
    ctr_port: int
    bridge: str = ""
    task: asyncio.Future[None] | None = None
    holder: socket.socket | None = None
    conns: set[socket.socket] = field(default_factory=set)   # proxied clients, open now


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
    def __init__(self, chain: str, bridge_of: Any, iptables: bool = True,
                 max_per_port: int = MAX_CONNS_PER_PORT, max_conns: int = MAX_CONNS) -> None:
        self.chain = chain            # the daemon's chain prefix
        self.iptables = iptables
        self.bridge_of = bridge_of    # network name -> bridge name
        self.by_container: dict[str, list[Published]] = {}
        # never more than the fd limit allows, with room for everything else berthd holds
        soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        if soft != resource.RLIM_INFINITY:
            max_conns = max(16, min(max_conns, (soft - 1024) // 6))
        self.slots = _Slots(min(max_per_port, max_conns), max_conns)

    # --- rules ------------------------------------------------------------------------------
    def _ipt(self, *args: str, table: str = "nat", check: bool = False) -> bool:
        return iptables(*args, table=table, check=check)

    def setup(self) -> None:
        if not self.iptables:
            return
        c = f"{self.chain}-DNAT"
        self._ipt("-N", c)
        for parent, extra in (("PREROUTING", []), ("OUTPUT", ["!", "-d", "127.0.0.0/8"])):
            rule = [parent, "-m", "addrtype", "--dst-type", "LOCAL", *extra, "-j", c]
            if not self._ipt("-C", *rule):
                self._ipt("-I", *rule, check=True)

    def clear_stale(self) -> None:
        """At start, before running containers are restored: every published port's rules
        go (the DNAT chain's, and the accepts in the FWD chain). A daemon killed, or stopped
        with containers running, left them: restore puts back those of the containers still
        running, and those of a container that ended meanwhile would be left forever."""
        if not self.iptables:
            return
        self._ipt("-F", f"{self.chain}-DNAT")
        fwd = f"{self.chain}-FWD"
        r = subprocess.run(["iptables", "-w", "-S", fwd], capture_output=True, text=True)
        for line in r.stdout.splitlines():
            words = line.split()
            # the shape of `_rules`' accept: -A FWD -d IP/32 ! -i BR -o BR -p P -m P --dport N
            if words[:3] == ["-A", fwd, "-d"] and "--dport" in words and \
                    words[-2:] == ["-j", "ACCEPT"]:
                self._ipt("-D", *words[1:], table="filter")

    def teardown(self) -> None:
        if not self.iptables:
            return
        c = f"{self.chain}-DNAT"
        self._ipt("-D", "PREROUTING", "-m", "addrtype", "--dst-type", "LOCAL", "-j", c)
        self._ipt("-D", "OUTPUT", "-m", "addrtype", "--dst-type", "LOCAL", "!", "-d",
                  "127.0.0.0/8", "-j", c)
        self._ipt("-F", c)
        self._ipt("-X", c)

    def intact(self) -> bool:
        """Whether the jump to the DNAT chain is in place (see `Rules.intact`)."""
        if not self.iptables:
            return True
        return self._ipt("-C", "PREROUTING", "-m", "addrtype", "--dst-type", "LOCAL", "-j",
                         f"{self.chain}-DNAT")

    def reapply(self) -> None:
        """The DNAT chain, its jumps and every published port's rules, where missing (after
        the tables were flushed under the daemon); in front, as `publish` puts them."""
        if not self.iptables:
            return
        self.setup()
        for ps in list(self.by_container.values()):
            for p in list(ps):
                for table, r in self._rules(p, p.bridge):
                    if not self._ipt("-C", *r, table=table):
                        self._ipt("-I", *r, table=table)

    def _rules(self, p: Published, bridge: str) -> list[tuple[str, list[str]]]:
        dst = ["-d", p.host_ip] if p.host_ip not in ("", "0.0.0.0") else []
        return [
            ("nat", [f"{self.chain}-DNAT", "!", "-i", bridge, *dst, "-p", p.proto, "--dport",
                     str(p.host_port), "-j", "DNAT", "--to-destination",
                     f"{p.ctr_ip}:{p.ctr_port}"]),
            ("filter", [f"{self.chain}-FWD", "-d", p.ctr_ip, "!", "-i", bridge, "-o", bridge,
                        "-p", p.proto, "--dport", str(p.ctr_port), "-j", "ACCEPT"]),
        ]

    # --- per container ----------------------------------------------------------------------
    async def publish(self, cid: str, bindings: dict[str, list[dict[str, str]]],
                      ctr_ip: str, network: str) -> dict[str, list[dict[str, str]]]:
        """Open the ports; returns NetworkSettings.Ports. Undoes all on any failure."""
        bridge = self.bridge_of(network)
        done: list[Published] = []
        ports: dict[str, list[dict[str, str]]] = {}
        try:
            for key, binds in bindings.items():
                port_s, _, proto = key.partition("/")
                proto = proto or "tcp"
                for b in binds or [{}]:
                    host_ip = b.get("HostIp") or "0.0.0.0"
                    p = Published(proto=proto, host_ip=host_ip,
                                  host_port=int(b.get("HostPort") or 0), ctr_ip=ctr_ip,
                                  ctr_port=int(port_s), bridge=bridge)
                    await self._open(p)
                    done.append(p)
                    if self.iptables:
                        for table, r in self._rules(p, bridge):
                            if not self._ipt("-C", *r, table=table):  # kept over a restart
                                # in front: the chain ends by dropping the unpublished rest
                                self._ipt("-I", *r, table=table, check=True)
                    ports.setdefault(key, []).append({"HostIp": host_ip,
                                                      "HostPort": str(p.host_port)})
        except BaseException:
            for p in done:
                self._close(p, bridge)
            raise
        self.by_container[cid] = done
        return ports

    async def _open(self, p: Published) -> None:
        """Hold the host port: a proxy for TCP (what loopback clients reach), a bound socket
        for UDP. A taken port is Docker's error."""
        fam = socket.AF_INET6 if ":" in p.host_ip else socket.AF_INET
        typ = socket.SOCK_STREAM if p.proto == "tcp" else socket.SOCK_DGRAM
        s = socket.socket(fam, typ)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((p.host_ip, p.host_port))
        except OSError as e:
            s.close()
            raise Conflict(f"Bind for {p.host_ip}:{p.host_port} failed: port is already "
                           f"allocated ({e.strerror})") from None
        p.host_port = s.getsockname()[1]
        if p.proto != "tcp":
            p.holder = s
            return
        s.listen(128)
        s.setblocking(False)
        p.holder = s
        p.task = asyncio.ensure_future(self._accept(p, s))

    async def _accept(self, p: Published, s: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        while True:
            try:
                conn, _ = await loop.sock_accept(s)
            except OSError as e:   # EMFILE and friends: wait, do not spin
                log.warning("port %s:%d: accept: %s", p.host_ip, p.host_port, e)
                await asyncio.sleep(0.1)
                continue
            if not self.slots.take(p, conn):
                # reset at once: a client should not wait on a connection no one will serve
                with contextlib.suppress(OSError):
                    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                    struct.pack("ii", 1, 0))
                conn.close()
                if self.slots.refused % 1000 == 1:
                    log.warning("port %s:%d: too many proxied connections (%d on this port, "
                                "%d in all): refusing new ones", p.host_ip, p.host_port,
                                self.slots.per_port, self.slots.total)
                continue
            try:
                threading.Thread(target=_proxy, args=(conn, p, self.slots),
                                 daemon=True).start()
            except RuntimeError:   # no more threads
                self.slots.give(p, conn)
                conn.close()

    def _close(self, p: Published, bridge: str) -> None:
        if p.task is not None:
            p.task.cancel()
        if p.holder is not None:
            p.holder.close()
        with self.slots.lock:
            conns = list(p.conns)
        for c in conns:   # their threads see the end and close both sides
            with contextlib.suppress(OSError):
                c.shutdown(socket.SHUT_RDWR)
        if self.iptables:
            for table, r in self._rules(p, bridge):
                self._ipt("-D", *r, table=table)

    def unpublish(self, cid: str, network: str) -> None:
        """Close a container's ports. Each rule names the bridge it was made with, so a
        network gone since (removed, or its daemon's record lost) does not keep them open."""
        for p in self.by_container.pop(cid, []):
            self._close(p, p.bridge or self.bridge_of(network))


def iptables(*args: str, table: str = "filter", check: bool = True,
             binary: str = "iptables") -> bool:
    """One iptables (or ip6tables) call, waiting for the xtables lock; True if it succeeded.
    With `check`, a failure is an error naming the rule."""
    try:
        r = subprocess.run([binary, "-w", "-t", table, *args], capture_output=True,
                           text=True)
    except FileNotFoundError:
        raise System(f"{binary} is not installed: install it, or start berthd with "
                     "--iptables=false") from None
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


_PIPE = 1 << 16   # a pipe's default capacity


@dataclass(slots=True)
class _Way:
    src: socket.socket
    dst: socket.socket
    r: int
    w: int
    held: int = 0          # bytes in the pipe
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
                return   # both ways have ended
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
                if (not x.eof and not x.pipe_full
                        and ready.get(x.src.fileno(), 0) & (select.POLLIN | bad)):
                    try:
                        n = os.splice(x.src.fileno(), x.w, _PIPE - x.held, flags=flags)
                    except BlockingIOError:
                        x.pipe_full = x.held > 0   # out of pipe slots: drain first
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
        pass   # a reset or a broken pipe ends the connection both ways
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
