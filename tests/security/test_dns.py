"""DNS: the embedded DNS server (in each container's monitor, at 127.0.0.11) must not carry a
container on `--internal` networks to the outside (CVE-2024-29018), and must not take answers
from anyone but the upstream server it asked.

The upstream resolver is a stand-in of the test's own on a 127.x address (dnslib): it serves
only made-up names under .berth-test, and is the host resource that must stay untouched (not
asked). Nothing leaves the host."""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.conftest import Daemon

pytestmark = pytest.mark.root


class Upstream:
    """A resolver on ADDR:53 that answers A queries for *.berth-test with 127.0.0.1 (and
    AAAA with nothing), and records what it was asked. For `spoof.*` a forger on another
    address (and one on ADDR but another port) first sends an answer with 127.6.6.6 to the
    asker; for `mismatch.*` the first answer, from the right place with the right ID, is to
    another question (127.7.7.7). The real answer follows."""

    def __init__(self) -> None:
        from dnslib import QTYPE, RR, A, DNSRecord

        self.QTYPE, self.RR, self.A, self.DNSRecord = QTYPE, RR, A, DNSRecord
        tag = os.getpid() % 250 + 1
        self.addr = f"127.53.{tag}.1"
        self.forger_addr = f"127.54.{tag}.1"
        self.srv = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            self.srv.bind((self.addr, 53))
        except OSError as e:
            self.srv.close()
            pytest.skip(f"cannot play the upstream resolver on {self.addr}:53: {e}")
        self.srv.settimeout(0.2)
        self.asked: list[str] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _answer(self, q, ip: str, name: str = "") -> bytes:  # type: ignore[no-untyped-def]
        r = self.DNSRecord.parse(q.pack()).reply()
        if name:
            r.questions[0].qname = name
        if q.q.qtype == self.QTYPE.A:
            r.add_answer(self.RR(name or q.q.qname, self.QTYPE.A, rdata=self.A(ip), ttl=1))
        return bytes(r.pack())

    def _serve(self) -> None:
        while not self.stop.is_set():
            try:
                data, peer = self.srv.recvfrom(4096)
            except OSError:
                continue
            try:
                q = self.DNSRecord.parse(data)
            except Exception:  # noqa: BLE001
                continue
            name = str(q.q.qname)
            self.asked.append(name)
            if not name.endswith(".berth-test."):
                continue  # never answers for anything it does not serve
            if name.startswith("spoof."):
                for src in ((self.forger_addr, 0), (self.addr, 0)):
                    f = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                    f.bind(src)
                    f.sendto(self._answer(q, "127.6.6.6"), peer)
                    f.close()
                time.sleep(0.3)
            elif name.startswith("mismatch."):
                self.srv.sendto(self._answer(q, "127.7.7.7", "elsewhere.berth-test"), peer)
                time.sleep(0.3)
            self.srv.sendto(self._answer(q, "127.0.0.1"), peer)

    def close(self) -> None:
        self.stop.set()
        self.thread.join()
        self.srv.close()


@pytest.fixture(scope="module")
def upstream() -> Iterator[Upstream]:
    u = Upstream()
    try:
        yield u
    finally:
        u.close()


@pytest.fixture(scope="module")
def dnsd(
    tmp_path_factory: pytest.TempPathFactory, rootfs_tar: Path, upstream: Upstream
) -> Iterator[Daemon]:
    """A daemon whose upstream resolver is the stand-in (its --dns)."""
    if os.geteuid() != 0:
        pytest.skip("needs root (namespaces, mounts, cgroups)")
    d = Daemon(tmp_path_factory.mktemp("dnsd"))
    try:
        d.start(dns=upstream.addr)
        d.ok("import", str(rootfs_tar), "busybox")
        yield d
    finally:
        d.cleanup()


@pytest.fixture
def nets(dnsd: Daemon) -> Iterator[tuple[str, str]]:
    """An internal network and a normal one."""
    dnsd.ok("network", "create", "--internal", "dns-inner")
    dnsd.ok("network", "create", "dns-outer")
    try:
        yield "dns-inner", "dns-outer"
    finally:
        ids = dnsd.berth("ps", "-aq").stdout.split()
        if ids:
            dnsd.berth("rm", "-f", *ids)
        dnsd.berth("network", "rm", "dns-inner", "dns-outer")


def _nslookup(d: Daemon, *where: str, name: str) -> str:
    """busybox nslookup of `name` at the embedded server: its output (either stream)."""
    r = d.berth(*where, "nslookup", name, "127.0.0.11")
    return r.stdout + r.stderr


def _addresses(out: str) -> list[str]:
    """The addresses nslookup found (after the server's own lines)."""
    return (
        [
            line.split()[-1]
            for line in out.split("Name:", 1)[-1].splitlines()
            if line.startswith("Address") and "#53" not in line
        ]
        if "Name:" in out
        else []
    )


def test_internal_network_does_not_resolve_outside_names(
    dnsd: Daemon, upstream: Upstream, nets: tuple[str, str]
) -> None:
    inner, _ = nets
    out = _nslookup(
        dnsd, "run", "--rm", "--network", inner, "busybox", name="internal-only.berth-test"
    )
    assert _addresses(out) == [], out
    assert "SERVFAIL" in out, out  # Docker's answer, at once
    assert not [n for n in upstream.asked if n.startswith("internal-only.")], upstream.asked


def test_normal_network_still_forwards(
    dnsd: Daemon, upstream: Upstream, nets: tuple[str, str]
) -> None:
    """The control: the same query from a normal network reaches the upstream."""
    _, outer = nets
    out = _nslookup(dnsd, "run", "--rm", "--network", outer, "busybox", name="control.berth-test")
    assert _addresses(out) == ["127.0.0.1"], out
    assert "control.berth-test." in upstream.asked


def test_forwarding_follows_connect_and_disconnect(
    dnsd: Daemon, upstream: Upstream, nets: tuple[str, str]
) -> None:
    """As Docker: a container also on a non-internal network forwards; once it is only on
    internal ones again, it stops."""
    inner, outer = nets
    dnsd.ok("run", "-d", "--name", "dns-both", "--network", inner, "busybox", "sleep", "300")
    exe = ("exec", "dns-both")
    assert _addresses(_nslookup(dnsd, *exe, name="first.berth-test")) == []
    dnsd.ok("network", "connect", outer, "dns-both")
    assert _addresses(_nslookup(dnsd, *exe, name="second.berth-test")) == ["127.0.0.1"]
    dnsd.ok("network", "disconnect", outer, "dns-both")
    out = _nslookup(dnsd, *exe, name="third.berth-test")
    assert _addresses(out) == [] and "SERVFAIL" in out, out
    asked = {n.split(".")[0] for n in upstream.asked}
    assert "second" in asked and not asked & {"first", "third"}, upstream.asked


def test_answers_from_elsewhere_are_not_relayed(
    dnsd: Daemon, upstream: Upstream, nets: tuple[str, str]
) -> None:
    """Off-path forgers (another address; the server's address, another port) answer first,
    with the query's own ID: the container must see only the real answer."""
    _, outer = nets
    out = _nslookup(dnsd, "run", "--rm", "--network", outer, "busybox", name="spoof.berth-test")
    assert "spoof.berth-test." in upstream.asked
    assert _addresses(out) == ["127.0.0.1"], out


def test_answers_to_another_question_are_not_relayed(
    dnsd: Daemon, upstream: Upstream, nets: tuple[str, str]
) -> None:
    _, outer = nets
    out = _nslookup(dnsd, "run", "--rm", "--network", outer, "busybox", name="mismatch.berth-test")
    assert "mismatch.berth-test." in upstream.asked
    assert _addresses(out) == ["127.0.0.1"], out
