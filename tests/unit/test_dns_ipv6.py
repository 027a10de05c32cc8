"""The embedded DNS server answers AAAA queries for the containers of IPv6 networks (their
tables hold both addresses), A queries with their IPv4 address only."""

from __future__ import annotations

import json
from pathlib import Path

from dnslib import QTYPE, DNSRecord

from .test_dns_forwarder import Rig


def _ask(rig: Rig, name: str, qtype: str) -> DNSRecord:
    q = DNSRecord.question(name, qtype)
    rig.client.sendto(q.pack(), rig.server)
    rig.dns.on_query()
    got = rig.client_gets()
    assert got is not None
    return got


def test_a_and_aaaa(tmp_path: Path) -> None:
    rig = Rig(tmp_path, forward=False)
    try:
        rig.table.write_text(json.dumps({"web": ["10.9.0.2", "fd00:9::2"], "old": ["10.9.0.3"]}))
        got = _ask(rig, "web", "AAAA")
        assert [(r.rtype, str(r.rdata)) for r in got.rr] == [(QTYPE.AAAA, "fd00:9::2")]
        got = _ask(rig, "web", "A")
        assert [(r.rtype, str(r.rdata)) for r in got.rr] == [(QTYPE.A, "10.9.0.2")]
        got = _ask(rig, "web", "ANY")
        assert len(got.rr) == 2
        got = _ask(rig, "old", "AAAA")  # known, but no IPv6 address: no answer, no error
        assert got.rr == [] and got.header.rcode == 0
    finally:
        rig.close()
