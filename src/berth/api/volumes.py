"""The volume routes: list, create, inspect, remove, prune; the volume service publishes the
events.

Imports the volume service and `errors`.
"""

from __future__ import annotations

import asyncio

from aiohttp import web

from berth.errors import NotFound
from berth.volumes import VolumeService

from .wire import filters, json_response, qbool, read_json


class VolumeHandlers:
    def __init__(self, volumes: VolumeService | None) -> None:
        self._volumes = volumes

    def _vols(self) -> VolumeService:
        if self._volumes is None:
            raise NotFound("volumes are not set up")
        return self._volumes

    async def list(self, request: web.Request) -> web.StreamResponse:
        return json_response(self._vols().list(filters(request)))

    async def create(self, request: web.Request) -> web.StreamResponse:
        b = await read_json(request)
        doc = self._vols().create(
            b.get("Name") or "", driver=b.get("Driver") or "local",
            options=b.get("DriverOpts") or {}, labels=b.get("Labels") or {})
        return json_response(doc, 201)

    async def inspect(self, request: web.Request) -> web.StreamResponse:
        return json_response(self._vols().get(request.match_info["name"]))

    async def delete(self, request: web.Request) -> web.StreamResponse:
        self._vols().remove(request.match_info["name"], force=qbool(request, "force"))
        return web.Response(status=204)

    async def prune(self, request: web.Request) -> web.StreamResponse:
        return json_response(await asyncio.to_thread(self._vols().prune, filters(request)))


__all__ = ["VolumeHandlers"]
