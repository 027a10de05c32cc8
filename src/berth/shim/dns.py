"""The embedded DNS server of a container on user-defined networks, run by its shim.

Imports nothing of berth's. dnslib is imported at the first query: the fork server that starts
the monitors of such containers has it loaded already.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import time

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


class DnsServer:
    """The embedded DNS server of a container on user-defined networks: at 127.0.0.11 in the
    container's network namespace, answering A and AAAA queries for container names, aliases
    and short IDs from the tables the daemon writes (one per network), and, when `forward` is set,
    forwarding other names to the daemon's upstream resolvers from the host's namespace.

    `forward` is off for a container whose networks are all `--internal` (as Docker since
    CVE-2024-29018): such a container must not reach outside names through us, so other names
    get SERVFAIL at once (Docker's answer) and nothing leaves the monitor.

    Each upstream server has one UDP socket connect()ed to it: the kernel drops datagrams from
    any other source. A query goes up under an ID of ours (random, unique among those pending);
    an answer is relayed only if its ID is pending on that socket and its question is the one
    asked (name, type, class), with the client's ID put back."""

    MAX_PENDING = 1024
    TIMEOUT = 10.0

    def __init__(
        self,
        fd: int,
        tables: list[str],
        upstream: list[str],
        *,
        forward: bool,
        port: int = 53,
        links: dict[str, str] | None = None,
    ) -> None:
        self.sock = socket.socket(fileno=fd)
        # the container's links on user-defined networks: alias -> a name in the tables
        self.links = dict(links or {})
        self.sock.setblocking(False)
        self.tables = tables
        self.forward = forward
        self.upstream: list[socket.socket] = []
        for server in upstream:
            family = socket.AF_INET6 if ":" in server else socket.AF_INET
            s = socket.socket(family, socket.SOCK_DGRAM)
            try:
                s.connect((server, port))
            except OSError:
                s.close()
                continue
            s.setblocking(False)
            self.upstream.append(s)
        # (upstream index, our query id) -> (client address, client's id, question, when)
        self.pending: dict[tuple[int, int], tuple[Any, bytes, tuple[str, int, int], float]] = {}
        self._cache: dict[str, tuple[float, dict[str, list[str]]]] = {}

    def close(self) -> None:
        for s in [self.sock, *self.upstream]:
            s.close()

    def _lookup(self, name: str) -> list[str]:
        name = name.rstrip(".").lower()
        return self._table_lookup(name) or (
            self._table_lookup(self.links[name]) if name in self.links else []
        )

    def _table_lookup(self, name: str) -> list[str]:
        out: list[str] = []
        for path in self.tables:
            try:
                mtime = os.stat(path).st_mtime
                cached = self._cache.get(path)
                if cached is None or cached[0] != mtime:
                    with open(path) as f:
                        self._cache[path] = (mtime, json.load(f))
                out += self._cache[path][1].get(name, [])
            except (OSError, ValueError):
                continue
        return out

    def _expire(self) -> None:
        now = time.monotonic()
        for k in [k for k, v in self.pending.items() if now - v[3] > self.TIMEOUT]:
            del self.pending[k]

    def on_query(self) -> None:
        from dnslib import AAAA, QTYPE, RCODE, RR, A, DNSRecord

        try:
            data, addr = self.sock.recvfrom(4096)
        except OSError:
            return
        try:
            q = DNSRecord.parse(data)
        except Exception:  # noqa: BLE001 - not DNS: ignore it
            return
        if q.header.qr or len(q.questions) != 1:
            return  # an answer, or not one question: nothing we answer or forward
        name = str(q.q.qname)
        ips = self._lookup(name)
        if ips:
            reply = q.reply()
            # a name with addresses of the other family only: an answer with none (NOERROR)
            for ip in ips:
                v6 = ":" in ip  # containers on IPv6 networks have both
                if q.q.qtype in (QTYPE.AAAA if v6 else QTYPE.A, QTYPE.ANY):
                    reply.add_answer(
                        RR(
                            q.q.qname,
                            QTYPE.AAAA if v6 else QTYPE.A,
                            rdata=AAAA(ip) if v6 else A(ip),
                            ttl=600,
                        )
                    )
            with contextlib.suppress(OSError):  # a full buffer or a gone client: one answer
                self.sock.sendto(reply.pack(), addr)
            return
        self._expire()
        if self.forward and len(self.pending) < self.MAX_PENDING:
            question = (name.lower(), int(q.q.qtype), int(q.q.qclass))
            for i, up in enumerate(self.upstream):
                ours = int.from_bytes(os.urandom(2), "big")
                while (i, ours) in self.pending:
                    ours = int.from_bytes(os.urandom(2), "big")
                try:
                    up.send(ours.to_bytes(2, "big") + data[2:])
                except OSError:
                    continue  # e.g. refused earlier: try the next server
                self.pending[(i, ours)] = (addr, data[:2], question, time.monotonic())
                return
        reply = q.reply()
        reply.header.rcode = RCODE.SERVFAIL
        with contextlib.suppress(OSError):
            self.sock.sendto(reply.pack(), addr)

    def on_answer(self, index: int) -> None:
        from dnslib import DNSRecord

        try:
            data = self.upstream[index].recv(65536)
        except OSError:
            return
        if len(data) < 12:
            return
        key = (index, int.from_bytes(data[:2], "big"))
        entry = self.pending.get(key)
        if entry is None:
            return
        try:
            a = DNSRecord.parse(data)
        except Exception:  # noqa: BLE001 - not DNS: drop it
            return
        if (
            not a.header.qr
            or len(a.questions) != 1
            or (str(a.q.qname).lower(), int(a.q.qtype), int(a.q.qclass)) != entry[2]
        ):
            return  # not the answer to what we asked
        del self.pending[key]
        with contextlib.suppress(OSError):
            self.sock.sendto(entry[1] + data[2:], entry[0])


__all__ = ["DnsServer"]
