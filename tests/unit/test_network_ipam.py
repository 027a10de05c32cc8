"""networks.ipam: a new network's pools and its endpoints' addresses, IPv4 and IPv6; and the
family of a published port's rules (networks.ports)."""

from __future__ import annotations

import ipaddress

import pytest

from berth.errors import Conflict, Forbidden, InvalidArgument, Unavailable
from berth.networks import IpamConfig, ipam


def _none(cidr: str) -> str | None:
    return None


def test_a_pool_asked_for_is_checked() -> None:
    p = ipam.pool(
        IpamConfig(subnet="fd00:b3:63::/64"), 6, used=[], free4="10.89.0.0/16", host_overlap=_none
    )
    assert (p.subnet, p.gateway, p.gateway_shown) == ("fd00:b3:63::/64", "fd00:b3:63::1", False)
    with pytest.raises(Forbidden):
        ipam.pool(
            IpamConfig(subnet="fd00:b3:63::/64"),
            6,
            used=[ipaddress.ip_network("fd00:b3:63::/48")],
            free4="",
            host_overlap=_none,
        )
    with pytest.raises(InvalidArgument):
        ipam.pool(
            IpamConfig(subnet="fd00:b3:63::/64", gateway="fd00:b3:64::1"),
            6,
            used=[],
            free4="",
            host_overlap=_none,
        )
    with pytest.raises(Forbidden):  # a link of the host has it (IPv4)
        ipam.pool(
            IpamConfig(subnet="10.1.0.0/24"), 4, used=[], free4="", host_overlap=lambda c: "eth9"
        )


def test_free_pools_skip_what_is_used() -> None:
    used = [ipaddress.ip_network("10.89.0.0/24")]
    p = ipam.pool(
        None,
        4,
        used=used,
        free4="10.89.0.0/16",
        host_overlap=lambda c: "x" if c == "10.89.1.0/24" else None,
    )
    assert (p.subnet, p.gateway) == ("10.89.2.0/24", "10.89.2.1")
    v6 = ipam.pool(None, 6, used=[], free4="", host_overlap=_none).network
    assert v6.prefixlen == 64 and v6.subnet_of(ipaddress.IPv6Network("fd00::/8"))


def test_addresses() -> None:
    pool = IpamConfig(
        subnet="fd00:b3:63::/64", gateway="fd00:b3:63::1", aux_addresses={"a": "fd00:b3:63::2"}
    )
    assert ipam.address("n", pool, "", set()) == "fd00:b3:63::3"
    assert ipam.address("n", pool, "", {"fd00:b3:63::3"}) == "fd00:b3:63::4"
    assert ipam.address("n", pool, "fd00:b3:63::50", set()) == "fd00:b3:63::50"
    with pytest.raises(Conflict):
        ipam.address("n", pool, "fd00:b3:63::2", set())
    with pytest.raises(InvalidArgument):
        ipam.address("n", pool, "fd00:b3:64::5", set())
    tiny = IpamConfig(subnet="10.1.0.0/30", gateway="10.1.0.1")
    with pytest.raises(Unavailable):
        ipam.address("n", tiny, "", {"10.1.0.2"})


def test_the_default_bridge_s_mac_derived_address() -> None:
    """dockerd 20.10's: fd00:b3:63:1::/64 and 02:42:0a:fc:3f:02 make
    fd00:b3:63:1:0:242:afc:3f02 (seen on dockerd)."""
    pool = IpamConfig(subnet="fd00:b3:63:1::/64", gateway="fd00:b3:63:1::1")
    mac = "02:42:0a:fc:3f:02"
    assert ipam.mac_derived(pool, mac, set()) == "fd00:b3:63:1:0:242:afc:3f02"
    assert ipam.mac_derived(pool, mac, {"fd00:b3:63:1:0:242:afc:3f02"}) == ""
    assert ipam.mac_derived(IpamConfig(subnet="fd00::/96"), mac, set()) == ""


def test_published_port_rules_per_family() -> None:
    """DNAT by the host address's family to the container's address of that family; none
    across families (the proxy alone carries those)."""
    from berth.networks.ports import PortMapper, Published

    pm = PortMapper("BERTH-x", lambda net: "br-x", iptables=False)

    def rules(host: str, ctr: str) -> list[tuple[str, str, list[str]]]:
        return pm._rules(
            Published(proto="tcp", host_ip=host, host_port=8080, ctr_ip=ctr, ctr_port=80), "br-x"
        )

    (b4, t4, nat4), _ = rules("0.0.0.0", "10.1.0.2")
    assert (b4, t4) == ("iptables", "nat") and nat4[-1] == "10.1.0.2:80" and "-d" not in nat4
    (b6, _, nat6), (_, t6, fwd6) = rules("::", "fd00::2")
    assert b6 == "ip6tables" and nat6[-1] == "[fd00::2]:80" and "-d" not in nat6
    assert t6 == "filter" and fwd6[:3] == ["BERTH-x-FWD", "-d", "fd00::2"]
    assert rules("::1", "fd00::2")[0][2][4:6] == ["-d", "::1"]
    assert rules("::", "10.1.0.2") == [] and rules("127.0.0.1", "fd00::2") == []


def test_a_random_port_taken_on_ipv6_alone_is_given_up_for_another() -> None:
    import asyncio
    import socket

    from berth.errors import Conflict as Taken
    from berth.networks.ports import PortMapper, Published

    class Flaky(PortMapper):
        refused: list[int] = []

        async def _open(self, p: Published, *, optional: bool = False) -> bool:
            if p.host_ip == "::" and not self.refused:
                self.refused.append(p.host_port)
                raise Taken("taken")
            return await super()._open(p, optional=optional)

    async def go() -> None:
        pm = Flaky("BERTH-x", lambda net: "br-x", iptables=False)
        try:
            ports = await pm.publish(
                "c" * 64, {"80/udp": [{"HostIp": "", "HostPort": ""}]}, "127.0.0.1", "n"
            )
        finally:
            pm.unpublish("c" * 64, "n")
        binds = ports["80/udp"]
        assert [b["HostIp"] for b in binds] in (["0.0.0.0", "::"], ["0.0.0.0"])
        assert len({b["HostPort"] for b in binds}) == 1 and pm.refused
        # the port given up is free again
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind(("0.0.0.0", pm.refused[0]))
        s.close()

    asyncio.run(go())
