"""Container ports, typed: a port with its protocol (Docker's `"80/tcp"` key), a host binding of
it, and the port map that HostConfig.PortBindings and NetworkSettings.Ports both are.

The JSON forms (Docker's, and the record's stored one, which is the same) are made in
`berth.api.containers_wire` and `berth.containers.record`. Imports `errors`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from berth.errors import InvalidArgument

PROTOCOLS = ("tcp", "udp", "sctp")


@dataclass(frozen=True, slots=True, order=True)
class Port:
    """A container port and its protocol, as Docker writes it: `80/tcp` (a bare `80` is TCP)."""

    number: int
    proto: str = "tcp"

    def __str__(self) -> str:
        return f"{self.number}/{self.proto}"

    @classmethod
    def parse(cls, key: str) -> Port:
        """`80`, `80/tcp`, `53/udp`: dockerd's nat.NewPort wording where it is bad."""
        num, _, proto = str(key).partition("/")
        proto = (proto or "tcp").lower()
        if not num.isdigit() or not 0 <= int(num) <= 65535:
            raise InvalidArgument(f'invalid port specification: "{key}"')
        if proto not in PROTOCOLS:
            raise InvalidArgument(f"invalid proto: {proto}")
        return cls(int(num), proto)


@dataclass(frozen=True, slots=True)
class PortBinding:
    """One host address and port a container port is published on. The port is a string as in
    Docker's JSON: "" (or a range, in a request) lets the kernel pick."""

    host_ip: str = ""
    host_port: str = ""


# A port and its host bindings; None (in NetworkSettings.Ports) for a port that is exposed but
# not published, as dockerd shows it.
PortMap = dict[Port, tuple[PortBinding, ...] | None]


def port_set(keys: Iterable[str]) -> tuple[Port, ...]:
    """Config.ExposedPorts' keys, parsed, in their order, once each."""
    out: dict[Port, None] = {}
    for k in keys:
        out[Port.parse(k)] = None
    return tuple(out)


def port_map_to_json(ports: PortMap) -> dict[str, Any]:
    """A port map as stored, which is Docker's shape ({"80/tcp": [{"HostIp", "HostPort"}]})."""
    return {
        str(p): None
        if binds is None
        else [{"HostIp": b.host_ip, "HostPort": b.host_port} for b in binds]
        for p, binds in ports.items()
    }


def port_map_from_json(j: Mapping[str, Any] | None) -> PortMap:
    return {
        Port.parse(k): None
        if binds is None
        else tuple(
            PortBinding(str(b.get("HostIp") or ""), str(b.get("HostPort") or "")) for b in binds
        )
        for k, binds in (j or {}).items()
    }


__all__ = [
    "PROTOCOLS",
    "Port",
    "PortBinding",
    "PortMap",
    "port_map_from_json",
    "port_map_to_json",
    "port_set",
]
