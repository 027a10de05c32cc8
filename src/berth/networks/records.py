"""The network service's typed records: a network (`NetworkRecord`) with its IPAM pools
(`IpamConfig`), and a container's endpoint on it (`Endpoint`); how they are stored.

Docker's JSON for them is made at the API edge (`api.networks`), never here. The stored form
is berth's own (`FORMAT`); documents of data roots from before it (Docker's inspect shape with
a private `_bridge` key) are still read.

Imports `errors`.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from berth.errors import InvalidArgument

FORMAT = "berth.network.v2"
BRIDGE_NAME_OPT = "com.docker.network.bridge.name"
MTU_OPT = "com.docker.network.driver.mtu"
PREDEFINED = ("bridge", "host", "none")


class Driver(StrEnum):
    BRIDGE = "bridge"
    MACVLAN = "macvlan"
    IPVLAN = "ipvlan"
    HOST = "host"
    NULL = "null"


@dataclass(frozen=True, slots=True, kw_only=True)
class IpamConfig:
    """One address pool of a network: a subnet, the bridge's address in it, the sub-range
    containers get addresses from, and addresses kept out of allocation."""

    subnet: str
    gateway: str = ""  # the bridge's address on this subnet, as used
    ip_range: str = ""
    aux_addresses: dict[str, str] = field(default_factory=dict)
    # dockerd shows Gateway only where the user gave it or where the whole pool was chosen
    # for them; a subnet given without a gateway shows none
    gateway_shown: bool = True

    @property
    def network(self) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
        return ipaddress.ip_network(self.subnet)

    @property
    def v6(self) -> bool:
        return self.network.version == 6

    def encode(self) -> dict[str, Any]:
        return {
            "subnet": self.subnet,
            "gateway": self.gateway,
            "ip_range": self.ip_range,
            "aux_addresses": dict(self.aux_addresses),
            "gateway_shown": self.gateway_shown,
        }

    @classmethod
    def decode(cls, d: dict[str, Any]) -> IpamConfig:
        return cls(
            subnet=str(d["subnet"]),
            gateway=str(d.get("gateway") or ""),
            ip_range=str(d.get("ip_range") or ""),
            aux_addresses={str(k): str(v) for k, v in (d.get("aux_addresses") or {}).items()},
            gateway_shown=bool(d.get("gateway_shown", True)),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class NetworkRecord:
    id: str
    name: str
    driver: Driver
    created: str  # RFC 3339, UTC
    ipam: tuple[IpamConfig, ...] = ()
    ipam_driver: str = "default"
    ipam_options: dict[str, str] = field(default_factory=dict)
    enable_ipv6: bool = False
    internal: bool = False
    attachable: bool = False
    options: dict[str, str] = field(default_factory=dict)  # as the user set them
    labels: dict[str, str] = field(default_factory=dict)
    bridge: str = ""  # the kernel bridge of a bridge network

    @property
    def predefined(self) -> bool:
        return self.name in PREDEFINED

    @property
    def ipv4(self) -> IpamConfig | None:
        return next((c for c in self.ipam if not c.v6), None)

    @property
    def ipv6(self) -> IpamConfig | None:
        """The IPv6 pool, if IPv6 is on (a v6 subnet of a network without it stays unused,
        as in dockerd)."""
        return next((c for c in self.ipam if c.v6), None) if self.enable_ipv6 else None

    @property
    def mtu(self) -> int:
        """The MTU of the bridge and the containers' links (0: the kernel's default)."""
        return mtu_of(self.options)

    @property
    def parent(self) -> str:
        return self.options.get("parent", "")

    @property
    def mode(self) -> str:
        return self.options.get(f"{self.driver}_mode", "")

    def encode(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "id": self.id,
            "name": self.name,
            "driver": str(self.driver),
            "created": self.created,
            "ipam": [c.encode() for c in self.ipam],
            "ipam_driver": self.ipam_driver,
            "ipam_options": dict(self.ipam_options),
            "enable_ipv6": self.enable_ipv6,
            "internal": self.internal,
            "attachable": self.attachable,
            "options": dict(self.options),
            "labels": dict(self.labels),
            "bridge": self.bridge,
        }

    @classmethod
    def decode(cls, d: dict[str, Any]) -> NetworkRecord:
        """A stored network: berth's own form, or the Docker-shaped document of a data root
        from before it."""
        if d.get("format") != FORMAT:
            return cls._decode_legacy(d)
        return cls(
            id=str(d["id"]),
            name=str(d["name"]),
            driver=Driver(d["driver"]),
            created=str(d["created"]),
            ipam=tuple(IpamConfig.decode(c) for c in d.get("ipam") or []),
            ipam_driver=str(d.get("ipam_driver") or "default"),
            ipam_options=_strs(d.get("ipam_options")),
            enable_ipv6=bool(d.get("enable_ipv6")),
            internal=bool(d.get("internal")),
            attachable=bool(d.get("attachable")),
            options=_strs(d.get("options")),
            labels=_strs(d.get("labels")),
            bridge=str(d.get("bridge") or ""),
        )

    @classmethod
    def _decode_legacy(cls, d: dict[str, Any]) -> NetworkRecord:
        ipam = d.get("IPAM") or {}
        options = _strs(d.get("Options"))
        return cls(
            id=str(d["Id"]),
            name=str(d["Name"]),
            driver=Driver(d.get("Driver") or "bridge"),
            created=str(d.get("Created") or ""),
            ipam=tuple(
                IpamConfig(
                    subnet=str(c["Subnet"]),
                    gateway=str(c.get("Gateway") or ""),
                    ip_range=str(c.get("IPRange") or ""),
                    aux_addresses=_strs(c.get("AuxiliaryAddresses")),
                )
                for c in ipam.get("Config") or []
            ),
            ipam_driver=str(ipam.get("Driver") or "default"),
            ipam_options=_strs(ipam.get("Options")),
            enable_ipv6=bool(d.get("EnableIPv6")),
            internal=bool(d.get("Internal")),
            attachable=bool(d.get("Attachable")),
            options=options,
            labels=_strs(d.get("Labels")),
            bridge=str(d.get("_bridge") or options.get(BRIDGE_NAME_OPT, "")),
        )


@dataclass(slots=True, kw_only=True)
class Endpoint:
    """A container's attachment to a network for one run: its addresses and its link."""

    network: str  # the network's id
    name: str  # the container's name
    aliases: list[str]
    ip: str
    prefix: int
    gateway: str  # "" on an internal network: no default route
    mac: str
    endpoint: str  # the endpoint's id
    bridge: str
    host_if: str  # the host side of the veth pair
    ifname: str  # eth0, eth1, ... inside the container
    kind: str = "veth"  # veth | macvlan | ipvlan
    parent: str = ""
    mode: str = ""
    ip6: str = ""
    prefix6: int = 0
    gateway6: str = ""
    link_local: list[str] = field(default_factory=list)
    driver_opts: dict[str, str] = field(default_factory=dict)
    mtu: int = 0
    # what the container asked for (inspect's IPAMConfig)
    requested_ip: str = ""
    requested_ip6: str = ""

    def to_dict(self) -> dict[str, Any]:
        """The form the container service keeps in its record (and hands to its shim)."""
        return {
            "network": self.network,
            "name": self.name,
            "aliases": list(self.aliases),
            "ip": self.ip,
            "prefix": self.prefix,
            "gateway": self.gateway,
            "mac": self.mac,
            "endpoint": self.endpoint,
            "bridge": self.bridge,
            "host_if": self.host_if,
            "ifname": self.ifname,
            "kind": self.kind,
            "parent": self.parent,
            "mode": self.mode,
            "ip6": self.ip6,
            "prefix6": self.prefix6,
            "gateway6": self.gateway6,
            "link_local": list(self.link_local),
            "driver_opts": dict(self.driver_opts),
            "mtu": self.mtu,
            "requested_ip": self.requested_ip,
            "requested_ip6": self.requested_ip6,
            # the fields the shim's plumbing reads (linux.netlink.Endpoint)
            "address": f"{self.ip}/{self.prefix}" if self.ip else "",
            "address6": f"{self.ip6}/{self.prefix6}" if self.ip6 else "",
            "link_local_ips": ",".join(self.link_local),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Endpoint:
        return cls(
            network=str(d["network"]),
            name=str(d.get("name") or ""),
            aliases=[str(a) for a in d.get("aliases") or []],
            ip=str(d["ip"]),
            prefix=int(d.get("prefix") or 0),
            gateway=str(d.get("gateway") or ""),
            mac=str(d.get("mac") or ""),
            endpoint=str(d.get("endpoint") or ""),
            bridge=str(d.get("bridge") or ""),
            host_if=str(d.get("host_if") or ""),
            ifname=str(d.get("ifname") or "eth0"),
            kind=str(d.get("kind") or "veth"),
            parent=str(d.get("parent") or ""),
            mode=str(d.get("mode") or ""),
            ip6=str(d.get("ip6") or ""),
            prefix6=int(d.get("prefix6") or 0),
            gateway6=str(d.get("gateway6") or ""),
            link_local=[str(a) for a in d.get("link_local") or []],
            driver_opts=_strs(d.get("driver_opts")),
            mtu=int(d.get("mtu") or 0),
            requested_ip=str(d.get("requested_ip") or ""),
            requested_ip6=str(d.get("requested_ip6") or ""),
        )


def mtu_of(options: dict[str, str]) -> int:
    raw = options.get(MTU_OPT, "")
    if not raw:
        return 0
    try:
        mtu = int(raw)
    except ValueError:
        raise InvalidArgument(f"invalid MTU number: {raw}") from None
    if not 68 <= mtu <= 65535:
        raise InvalidArgument(f"invalid MTU number: {raw}")
    return mtu


def _strs(d: Any) -> dict[str, str]:
    return {str(k): str(v) for k, v in (d or {}).items()}


__all__ = [
    "BRIDGE_NAME_OPT",
    "Driver",
    "Endpoint",
    "FORMAT",
    "IpamConfig",
    "MTU_OPT",
    "NetworkRecord",
    "PREDEFINED",
    "mtu_of",
]
