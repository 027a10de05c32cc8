"""The embedded DNS server's forwarder (shim.dns.DnsServer), driven directly over loopback
sockets on ports of the kernel's choosing: no root, no container, nothing leaves the host."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from dnslib import QTYPE, RCODE, RR, A, DNSRecord

from berth.shim.dns import DnsServer


def _udp(addr: str = "127.0.0.1") -> socket.socket:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((addr, 0))
    s.settimeout(2)
    return s


class Rig:
    """A client, the server's listening socket (as 127.0.0.11:53 would be), an upstream."""

    def __init__(self, tmp: Path, forward: bool) -> None:
        self.client = _udp()
        self.upstream = _udp()
        listen = _udp()
        self.table = tmp / "net.json"
        self.table.write_text(json.dumps({"web": ["10.9.0.2"]}))
        self.dns = DnsServer(
            listen.detach(),
            [str(self.table)],
            ["127.0.0.1"],
            forward=forward,
            port=self.upstream.getsockname()[1],
        )
        self.server = self.dns.sock.getsockname()

    def ask(self, name: str, qid: int = 0x1234) -> DNSRecord:
        q = DNSRecord.question(name)
        q.header.id = qid
        self.client.sendto(q.pack(), self.server)
        self.dns.on_query()
        return q

    def upstream_query(self) -> tuple[DNSRecord, tuple[str, int]]:
        data, addr = self.upstream.recvfrom(4096)
        return DNSRecord.parse(data), addr

    def answer(self, q: DNSRecord, ip: str, name: str = "") -> bytes:
        r = DNSRecord.parse(q.pack()).reply()  # a copy: reply() shares the question
        if name:  # a different question from the one asked
            r.questions[0].qname = name
        r.add_answer(RR(name or q.q.qname, QTYPE.A, rdata=A(ip), ttl=5))
        return bytes(r.pack())

    def client_gets(self) -> DNSRecord | None:
        self.client.settimeout(0.2)
        try:
            return DNSRecord.parse(self.client.recv(4096))
        except TimeoutError:
            return None

    def close(self) -> None:
        self.dns.close()
        self.client.close()
        self.upstream.close()


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    r = Rig(tmp_path, forward=True)
    yield r
    r.close()


def test_known_names_are_answered_here(rig: Rig) -> None:
    rig.ask("web")
    got = rig.client_gets()
    assert got is not None and str(got.a.rdata) == "10.9.0.2" and got.header.id == 0x1234


def test_other_names_go_up_and_the_answer_comes_back_with_the_clients_id(rig: Rig) -> None:
    rig.ask("outside.berth-test", qid=0x4242)
    q, _ = rig.upstream_query()
    assert str(q.q.qname) == "outside.berth-test."
    rig.upstream.sendto(rig.answer(q, "127.0.0.1"), rig.dns.upstream[0].getsockname())
    rig.dns.on_answer(0)
    got = rig.client_gets()
    assert got is not None and str(got.a.rdata) == "127.0.0.1" and got.header.id == 0x4242
    assert not rig.dns.pending


def test_an_answer_from_another_source_is_not_relayed(rig: Rig) -> None:
    """Off-path: the forger even knows the query's ID, and sends from the upstream's address
    with another port, and from another address: the forwarder's socket is connected to the
    upstream, so the kernel drops both; the real answer still gets through."""
    rig.ask("spoof.berth-test")
    q, fwd_addr = rig.upstream_query()
    assert fwd_addr == rig.dns.upstream[0].getsockname()
    for src in ("127.0.0.1", "127.0.0.2"):
        forger = _udp(src)
        forger.sendto(rig.answer(q, "127.6.6.6"), fwd_addr)
        forger.close()
        rig.dns.on_answer(0)
    assert rig.client_gets() is None
    rig.upstream.sendto(rig.answer(q, "127.0.0.1"), fwd_addr)
    rig.dns.on_answer(0)
    got = rig.client_gets()
    assert got is not None and str(got.a.rdata) == "127.0.0.1"


def test_an_answer_to_another_question_is_not_relayed(rig: Rig) -> None:
    rig.ask("asked.berth-test")
    q, fwd_addr = rig.upstream_query()
    rig.upstream.sendto(rig.answer(q, "127.7.7.7", name="other.berth-test"), fwd_addr)
    rig.dns.on_answer(0)
    other = DNSRecord.question("asked.berth-test", "AAAA")  # same name, another type
    other.header.id = q.header.id
    rig.upstream.sendto(bytes(other.reply().pack()), fwd_addr)
    rig.dns.on_answer(0)
    assert rig.client_gets() is None
    rig.upstream.sendto(rig.answer(q, "127.0.0.1"), fwd_addr)
    rig.dns.on_answer(0)
    got = rig.client_gets()
    assert got is not None and str(got.a.rdata) == "127.0.0.1"


def test_the_upstream_sees_an_id_of_ours_not_the_clients(rig: Rig) -> None:
    seen = set()
    for _ in range(4):
        rig.ask("again.berth-test", qid=7)
        q, _ = rig.upstream_query()
        seen.add(q.header.id)
    assert len(rig.dns.pending) == len(seen) == 4


def test_no_forwarding_means_servfail_at_once_and_nothing_sent(tmp_path: Path) -> None:
    """A container whose networks are all internal: names the server does not know are not
    forwarded (Docker's answer: SERVFAIL), its own names still are answered."""
    r = Rig(tmp_path, forward=False)
    try:
        r.ask("outside.berth-test")
        got = r.client_gets()
        assert got is not None and got.header.rcode == RCODE.SERVFAIL
        r.upstream.settimeout(0.2)
        with pytest.raises(TimeoutError):
            r.upstream.recv(4096)
        r.ask("web")
        got = r.client_gets()
        assert got is not None and str(got.a.rdata) == "10.9.0.2"
    finally:
        r.close()
