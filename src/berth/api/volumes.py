"""The volume routes: list, create, inspect, remove, prune; the volume service publishes the
events. Docker's JSON of a volume is made here, from the service's `VolumeRecord`.

Imports the volume service and `errors`. The service's methods block (SQLite, a volume's
directory made or removed): they run in worker threads.
"""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web

from berth.errors import NotFound
from berth.volumes import VolumePruneReport, VolumeRecord, VolumeService, VolumeUsage
from berth.volumes.records import format_created

from .wire import filters, json_response, json_strings, json_text, qbool, read_json


def volume_json(v: VolumeRecord) -> dict[str, Any]:
    """`GET /volumes/{name}` in dockerd's shape."""
    return {
        "CreatedAt": format_created(v.created),
        "Driver": v.driver,
        "Labels": v.all_labels(),
        "Mountpoint": v.mountpoint,
        "Name": v.name,
        "Options": dict(v.options) or None,
        "Scope": v.scope.value,
    }


def usage_json(u: VolumeUsage) -> dict[str, Any]:
    """A volume of `GET /system/df`."""
    return {**volume_json(u.volume), "UsageData": {"Size": u.size, "RefCount": u.ref_count}}


def prune_json(r: VolumePruneReport) -> dict[str, Any]:
    return {"VolumesDeleted": r.deleted or None, "SpaceReclaimed": r.reclaimed}


class VolumeHandlers:
    def __init__(self, volumes: VolumeService | None) -> None:
        self._volumes = volumes

    def _vols(self) -> VolumeService:
        if self._volumes is None:
            raise NotFound("volumes are not set up")
        return self._volumes

    async def list(self, request: web.Request) -> web.StreamResponse:
        vols = await asyncio.to_thread(self._vols().list, filters(request))
        return json_response({"Volumes": [volume_json(v) for v in vols], "Warnings": None})

    async def create(self, request: web.Request) -> web.StreamResponse:
        b = await read_json(request)
        vol = await asyncio.to_thread(
            self._vols().create,
            json_text(b.get("Name"), "Name"),
            driver=json_text(b.get("Driver"), "Driver") or "local",
            options=json_strings(b.get("DriverOpts"), "DriverOpts"),
            labels=json_strings(b.get("Labels"), "Labels"),
        )
        return json_response(volume_json(vol), 201)

    async def inspect(self, request: web.Request) -> web.StreamResponse:
        vol = await asyncio.to_thread(self._vols().get, request.match_info["name"])
        return json_response(volume_json(vol))

    async def delete(self, request: web.Request) -> web.StreamResponse:
        await asyncio.to_thread(
            self._vols().remove, request.match_info["name"], force=qbool(request, "force")
        )
        return web.Response(status=204)

    async def prune(self, request: web.Request) -> web.StreamResponse:
        return json_response(
            prune_json(await asyncio.to_thread(self._vols().prune, filters(request)))
        )


__all__ = ["VolumeHandlers", "prune_json", "usage_json", "volume_json"]
