"""The network routes: list, inspect, create, remove, prune (the network service's policy and
events), connect and disconnect (the containers service's: it owns the endpoints). Docker's
JSON for a network is made here from the service's typed records, and a create request is
decoded here into typed pools.

Imports the network and containers services and `errors`.
"""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web

from berth.containers import ContainerService
from berth.errors import InvalidArgument, NotFound
from berth.networks import Endpoint, IpamConfig, NetworkRecord, NetworkService, NetworkView

from .containers_wire import endpoint_request
from .wire import filters, json_object, json_response, json_strings, json_text, read_json


def ipam_config_json(c: IpamConfig) -> dict[str, Any]:
    """One pool as dockerd shows it: empty fields left out."""
    out: dict[str, Any] = {"Subnet": c.subnet}
    if c.ip_range:
        out["IPRange"] = c.ip_range
    if c.gateway and c.gateway_shown:
        out["Gateway"] = c.gateway
    if c.aux_addresses:
        out["AuxiliaryAddresses"] = dict(c.aux_addresses)
    return out


def endpoint_json(ep: Endpoint) -> dict[str, Any]:
    return {
        "Name": ep.name,
        "EndpointID": ep.endpoint,
        "MacAddress": ep.mac,
        "IPv4Address": f"{ep.ip}/{ep.prefix}" if ep.ip else "",
        "IPv6Address": f"{ep.ip6}/{ep.prefix6}" if ep.ip6 else "",
    }


def network_json(view: NetworkView, *, enable_ipv4: bool = False) -> dict[str, Any]:
    """A network in the shape (and key order) of dockerd's inspect; with `enable_ipv4` (API
    1.47 on) the EnableIPv4 field too, true where the network has IPv4 addresses."""
    rec = view.record
    ipv4 = {"EnableIPv4": rec.ipv4 is not None} if enable_ipv4 else {}
    return {
        "Name": rec.name,
        "Id": rec.id,
        "Created": rec.created,
        "Scope": "local",
        "Driver": str(rec.driver),
        **ipv4,
        "EnableIPv6": rec.enable_ipv6,
        "IPAM": {
            "Driver": rec.ipam_driver,
            "Options": dict(rec.ipam_options),
            "Config": [ipam_config_json(c) for c in rec.ipam],
        },
        "Internal": rec.internal,
        "Attachable": rec.attachable,
        "Ingress": False,
        "ConfigFrom": {"Network": ""},
        "ConfigOnly": False,
        "Containers": {cid: endpoint_json(ep) for cid, ep in view.endpoints.items()},
        "Options": dict(rec.options),
        "Labels": dict(rec.labels),
    }


def decode_create(b: dict[str, Any]) -> dict[str, Any]:
    """The keyword arguments of `NetworkService.create` from a `POST /networks/create` body.
    What berth does not do (swarm's ingress and config-only networks) is refused."""
    if b.get("Ingress"):
        raise InvalidArgument("ingress network can only be created in swarm mode")
    if b.get("ConfigOnly") or json_object(b.get("ConfigFrom"), "ConfigFrom").get("Network"):
        raise InvalidArgument("config-only networks are not supported by berth")
    if (b.get("Scope") or "local") != "local":
        raise InvalidArgument(f"scope {b['Scope']!r} is not supported: only local")
    ipam = b.get("IPAM") or {}
    if not isinstance(ipam, dict) or not isinstance(ipam.get("Config") or [], list):
        raise InvalidArgument("invalid IPAM: an object with a Config list is expected")
    pools = []
    for c in ipam.get("Config") or []:
        if not isinstance(c, dict):
            raise InvalidArgument("invalid IPAM.Config: a list of objects is expected")
        pools.append(
            IpamConfig(
                subnet=json_text(c.get("Subnet"), "Subnet"),
                gateway=json_text(c.get("Gateway"), "Gateway"),
                ip_range=json_text(c.get("IPRange"), "IPRange"),
                aux_addresses=json_strings(c.get("AuxiliaryAddresses"), "AuxiliaryAddresses"),
            )
        )
    return {
        "name": json_text(b.get("Name"), "Name"),
        "driver": json_text(b.get("Driver"), "Driver") or "bridge",
        "ipam": pools,
        "ipam_driver": json_text(ipam.get("Driver"), "IPAM.Driver") or "default",
        "ipam_options": json_strings(ipam.get("Options"), "IPAM.Options"),
        "enable_ipv6": bool(b.get("EnableIPv6")),
        # API 1.48's IPv6-only networks: false only where given so
        "enable_ipv4": b.get("EnableIPv4") is not False,
        "internal": bool(b.get("Internal")),
        "attachable": bool(b.get("Attachable")),
        "options": json_strings(b.get("Options"), "Options"),
        "labels": json_strings(b.get("Labels"), "Labels"),
    }


def _shows_ipv4(request: web.Request) -> bool:
    """Whether the client's API version has a network's EnableIPv4 (1.47 on; no version in
    the path is the latest)."""
    version = request.match_info.get("version")
    if not version:
        return True
    major, _, minor = version.partition(".")
    return (int(major), int(minor or 0)) >= (1, 47)


class NetworkHandlers:
    def __init__(self, networks: NetworkService | None, containers: ContainerService) -> None:
        self._networks = networks
        self.containers = containers

    def _nets(self) -> NetworkService:
        if self._networks is None:
            raise NotFound("networks are not set up")
        return self._networks

    async def list(self, request: web.Request) -> web.StreamResponse:
        v4 = _shows_ipv4(request)
        return json_response(
            [network_json(v, enable_ipv4=v4) for v in self._nets().list(filters(request))]
        )

    async def inspect(self, request: web.Request) -> web.StreamResponse:
        return json_response(
            network_json(
                self._nets().inspect(request.match_info["id"]), enable_ipv4=_shows_ipv4(request)
            )
        )

    async def create(self, request: web.Request) -> web.StreamResponse:
        kwargs = decode_create(await read_json(request))
        rec: NetworkRecord = await asyncio.to_thread(self._nets().create, **kwargs)
        return json_response({"Id": rec.id, "Warning": ""}, 201)

    async def delete(self, request: web.Request) -> web.StreamResponse:
        nets = self._nets()
        rec = nets.get(request.match_info["id"])
        await asyncio.to_thread(nets.remove, rec.id, self.containers.network_users(rec.name))
        return web.Response(status=204)

    async def prune(self, request: web.Request) -> web.StreamResponse:
        deleted = await asyncio.to_thread(
            self._nets().prune, self.containers.network_users, filters(request)
        )
        return json_response({"NetworksDeleted": [rec.name for rec in deleted] or None})

    async def connect(self, request: web.Request) -> web.StreamResponse:
        b = await read_json(request)
        await self.containers.connect(
            request.match_info["id"],
            json_text(b.get("Container"), "Container"),
            endpoint_request(b.get("EndpointConfig"), "EndpointConfig"),
        )
        return web.Response(status=200)

    async def disconnect(self, request: web.Request) -> web.StreamResponse:
        b = await read_json(request)
        await self.containers.disconnect(
            request.match_info["id"],
            json_text(b.get("Container"), "Container"),
            force=bool(b.get("Force")),
        )
        return web.Response(status=200)


__all__ = ["NetworkHandlers", "decode_create", "network_json"]
