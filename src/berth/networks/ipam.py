"""IPAM of bridge networks: a new network's pools (the subnet asked for, checked, or a free one
picked) and the addresses of its endpoints in them.

Pure functions over `IpamConfig`s: the service passes the pools in use and how to ask the host
whether a subnet is taken by a link's address (`linux.netlink.routes_overlap`).

Imports `networks.records`, `errors`.
"""

from __future__ import annotations

import ipaddress
import secrets
from collections.abc import Callable, Iterable

from berth.errors import Conflict, Forbidden, InvalidArgument, System, Unavailable
from berth.networks.records import IpamConfig

Net = ipaddress.IPv4Network | ipaddress.IPv6Network
# the host's link whose address overlaps a subnet, if one does ("" or None: none)
HostOverlap = Callable[[str], str | None]


def ip_network(text: str, what: str) -> Net:
    try:
        return ipaddress.ip_network(text)
    except ValueError as e:
        raise InvalidArgument(f"invalid {what} {text}: {e}") from None


def ip_address(text: str, what: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        raise InvalidArgument(f"invalid {what} {text}") from None


def pool(
    asked: IpamConfig | None,
    version: int,
    *,
    used: Iterable[Net],
    free4: str,
    host_overlap: HostOverlap,
) -> IpamConfig:
    """One pool of a new network, checked: the subnet asked for (or a free one: a /24 of
    `free4`, or a random unique local /64), its gateway (shown only if given, as dockerd), the
    range and auxiliary addresses in it. `used`: the subnets of the other networks."""
    used = list(used)
    if asked is None or not asked.subnet:
        if asked is not None and (asked.gateway or asked.ip_range):
            raise InvalidArgument("a gateway or ip-range needs a subnet")
        net: Net = free_subnet4(free4, used, host_overlap) if version == 4 else free_subnet6(used)
        return IpamConfig(subnet=str(net), gateway=str(next(net.hosts())))
    net = ip_network(asked.subnet, "subnet")
    if any(net.overlaps(u) for u in used):
        raise Forbidden("Pool overlaps with other one on this address space")
    taken = host_overlap(str(net)) if version == 4 else None
    if taken:
        raise Forbidden(f"Pool overlaps with other one on this address space ({taken})")
    gw = ip_address(asked.gateway, "gateway") if asked.gateway else next(net.hosts())
    if gw not in net:
        raise InvalidArgument(f"gateway {gw} is not in subnet {net}")
    if asked.ip_range and not ip_network(asked.ip_range, "ip-range").subnet_of(net):  # type: ignore[arg-type]
        raise InvalidArgument(f"ip-range {asked.ip_range} is not in subnet {net}")
    for key, addr in asked.aux_addresses.items():
        if ip_address(addr, "auxiliary address") not in net:
            raise InvalidArgument(
                f"auxiliary address: ({key}:{addr}) must belong to the master pool: {net}"
            )
    return IpamConfig(
        subnet=str(net),
        gateway=str(gw),
        ip_range=asked.ip_range,
        aux_addresses=dict(asked.aux_addresses),
        gateway_shown=bool(asked.gateway),
    )


def free_subnet4(space: str, used: list[Net], host_overlap: HostOverlap) -> ipaddress.IPv4Network:
    """The first /24 of `space` that no network and no link of the host uses."""
    for cand in ipaddress.ip_network(space).subnets(new_prefix=24):
        if not any(cand.overlaps(u) for u in used) and not host_overlap(str(cand)):
            return cand  # type: ignore[return-value]
    raise System("no free subnet left in the pool")


def free_subnet6(used: list[Net]) -> ipaddress.IPv6Network:
    """A /64 of a random unique local prefix (RFC 4193), as dockerd 27 picks one for
    `--ipv6` without a subnet."""
    for _ in range(16):
        cand = ipaddress.IPv6Network(((0xFD << 120) | (secrets.randbits(56) << 64), 64))
        if not any(cand.overlaps(u) for u in used):
            return cand
    raise System("no free IPv6 subnet found")


def mac_derived(pool: IpamConfig, mac: str, used: set[str]) -> str:
    """The IPv6 address dockerd gives a container on its default bridge: the subnet's prefix
    and the MAC in the last 48 bits, where the prefix leaves them; "" where it does not or
    the address is taken (the first free one is used then)."""
    net = pool.network
    if not pool.v6 or net.prefixlen > 80:
        return ""
    derived = str(ipaddress.IPv6Address(int(net.network_address) | int(mac.replace(":", ""), 16)))
    return "" if derived in used or derived == pool.gateway else derived


def address(network: str, pool: IpamConfig, want: str, used: set[str]) -> str:
    """`want` if free in `pool`, or the first free address of its range (`network` names the
    network in the error when none is left)."""
    net = pool.network
    taken = used | {pool.gateway} | set(pool.aux_addresses.values())
    family = "IPv6" if pool.v6 else "IPv4"
    if want:
        addr = ip_address(want, f"{family} address")
        if addr not in net:
            raise InvalidArgument(
                f"Invalid address {want}: It does not belong to any of this network's subnets"
            )
        if str(addr) in taken:
            raise Conflict(f"Address already in use: {want}")
        return str(addr)
    hosts = ipaddress.ip_network(pool.ip_range or pool.subnet).hosts()
    for n, h in enumerate(hosts):
        if str(h) not in taken:
            return str(h)
        if n > len(taken) + 1:  # a big (IPv6) range: what is taken is all there is
            break
    raise Unavailable(f"no available {family} addresses on network {network}")


__all__ = [
    "address",
    "free_subnet4",
    "free_subnet6",
    "ip_address",
    "ip_network",
    "mac_derived",
    "pool",
]
