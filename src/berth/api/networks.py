"""The network routes: list, inspect, create, remove, prune (the network service's policy and
events), connect and disconnect (the containers service's: it owns the endpoints).

Imports the network and containers services and `errors`.
"""

from __future__ import annotations

import asyncio

from aiohttp import web

from berth.containers import ContainerService
from berth.errors import NotFound
from berth.networks import NetworkService

from .wire import filters, json_response, read_json


class NetworkHandlers:
    def __init__(self, networks: NetworkService | None, containers: ContainerService) -> None:
        self._networks = networks
        self.containers = containers

    def _nets(self) -> NetworkService:
        if self._networks is None:
            raise NotFound("networks are not set up")
        return self._networks

    async def list(self, request: web.Request) -> web.StreamResponse:
        return json_response(self._nets().list(filters(request)))

    async def inspect(self, request: web.Request) -> web.StreamResponse:
        return json_response(self._nets().inspect(request.match_info["id"]))

    async def create(self, request: web.Request) -> web.StreamResponse:
        b = await read_json(request)
        cfg = ((b.get("IPAM") or {}).get("Config") or [{}])
        c = cfg[0] if cfg else {}
        doc = await asyncio.to_thread(
            self._nets().create, b.get("Name") or "", driver=b.get("Driver") or "bridge",
            subnet=c.get("Subnet", ""), gateway=c.get("Gateway", ""),
            ip_range=c.get("IPRange", ""), internal=bool(b.get("Internal")),
            options=b.get("Options") or {}, labels=b.get("Labels") or {})
        return json_response({"Id": doc["Id"], "Warning": ""}, 201)

    async def delete(self, request: web.Request) -> web.StreamResponse:
        nets = self._nets()
        doc = nets.resolve(request.match_info["id"])
        await asyncio.to_thread(nets.remove, doc["Id"], self.containers.network_users(doc["Name"]))
        return web.Response(status=204)

    async def prune(self, request: web.Request) -> web.StreamResponse:
        deleted = await asyncio.to_thread(self._nets().prune, self.containers.network_users,
                                          filters(request))
        return json_response({"NetworksDeleted": [d["Name"] for d in deleted] or None})

    async def connect(self, request: web.Request) -> web.StreamResponse:
        b = await read_json(request)
        await self.containers.connect(request.match_info["id"], b.get("Container", ""),
                                      b.get("EndpointConfig") or {})
        return web.Response(status=200)

    async def disconnect(self, request: web.Request) -> web.StreamResponse:
        b = await read_json(request)
        await self.containers.disconnect(request.match_info["id"], b.get("Container", ""),
                                         force=bool(b.get("Force")))
        return web.Response(status=200)


__all__ = ["NetworkHandlers"]
