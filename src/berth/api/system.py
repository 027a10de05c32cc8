"""The system routes: ping, version, info, events, df, and swarm mode's routes answered as a
dockerd outside a swarm.

Imports the services it reports on, `events` and `errors`.
"""

from __future__ import annotations

import asyncio
import json
import os
import platform
import time
from collections.abc import Callable
from typing import Any

from aiohttp import web

from berth.containers import ContainerService
from berth.errors import InvalidArgument, Unavailable
from berth.events import EventBus, matches
from berth.images import ImageService, host_arch
from berth.volumes import VolumeService

from .containers_wire import container_summary
from .images import summary_json
from .plugins import NOT_A_SWARM_MANAGER
from .volumes import usage_json
from .wire import (
    API_VERSION,
    ENGINE_VERSION,
    MIN_API_VERSION,
    filters,
    json_response,
    stream_response,
)

DF_TYPES = ("container", "image", "volume", "build-cache")
# the Engine API's swarm-mode routes (v1.50: Swarm, Node, Service, Task, Secret, Config)
SWARM_ROUTES = [
    ("GET", "/swarm"),
    ("POST", "/swarm/init"),
    ("POST", "/swarm/join"),
    ("POST", "/swarm/leave"),
    ("POST", "/swarm/update"),
    ("GET", "/swarm/unlockkey"),
    ("POST", "/swarm/unlock"),
    ("GET", "/nodes"),
    ("GET", "/nodes/{id}"),
    ("DELETE", "/nodes/{id}"),
    ("POST", "/nodes/{id}/update"),
    ("GET", "/services"),
    ("POST", "/services/create"),
    ("GET", "/services/{id}"),
    ("DELETE", "/services/{id}"),
    ("POST", "/services/{id}/update"),
    ("GET", "/services/{id}/logs"),
    ("GET", "/tasks"),
    ("GET", "/tasks/{id}"),
    ("GET", "/tasks/{id}/logs"),
    *[
        (m, f"/{kind}{p}")
        for kind in ("secrets", "configs")
        for m, p in (
            ("GET", ""),
            ("POST", "/create"),
            ("GET", "/{id}"),
            ("DELETE", "/{id}"),
            ("POST", "/{id}/update"),
        )
    ],
]


def _timestamp(request: web.Request, name: str) -> float | None:
    v = request.query.get(name)
    if not v:
        return None
    try:
        return float(v)
    except ValueError:
        raise InvalidArgument(f"invalid {name} timestamp: {v}") from None


class SystemHandlers:
    def __init__(
        self,
        *,
        containers: ContainerService,
        images: ImageService,
        volumes: VolumeService | None,
        events: EventBus,
        info: Callable[[], dict[str, Any]],
    ) -> None:
        self.containers = containers
        self.images = images
        self.volumes = volumes
        self.events = events
        self.info_fn = info

    async def not_in_a_swarm(self, request: web.Request) -> web.StreamResponse:
        """Swarm mode's routes answer as a dockerd that is not in a swarm: 503, in its words.
        Clients tolerate that (`POST /swarm/leave?force=1` in a test's set-up), not a 404."""
        path = request.path.rstrip("/")
        if path.endswith("/swarm/leave"):
            raise Unavailable("This node is not part of a swarm")
        if path.endswith(("/swarm/init", "/swarm/join")):
            raise Unavailable(
                "berth does not support swarm mode: it runs containers on one "
                "machine (use compose, or Kubernetes through berth's CRI)"
            )
        raise Unavailable(NOT_A_SWARM_MANAGER)

    async def ping(self, request: web.Request) -> web.StreamResponse:
        resp = web.Response(
            text="OK" if request.method == "GET" else None, content_type="text/plain"
        )
        resp.headers.update(
            {
                "Builder-Version": "1",
                "Swarm": "inactive",
                "Cache-Control": "no-cache, no-store, must-revalidate",
                "Pragma": "no-cache",
            }
        )
        return resp

    async def version(self, request: web.Request) -> web.StreamResponse:
        u = os.uname()
        go = "python" + platform.python_version()
        details = {
            "ApiVersion": API_VERSION,
            "Arch": host_arch(),
            "BuildTime": "",
            "Experimental": "false",
            "GitCommit": "",
            "GoVersion": go,
            "KernelVersion": u.release,
            "MinAPIVersion": MIN_API_VERSION,
            "Os": "linux",
        }
        return json_response(
            {
                "Platform": {"Name": "berth"},
                "Components": [{"Name": "Engine", "Version": ENGINE_VERSION, "Details": details}],
                "Version": ENGINE_VERSION,
                "ApiVersion": API_VERSION,
                "MinAPIVersion": MIN_API_VERSION,
                "GitCommit": "",
                "GoVersion": go,
                "Os": "linux",
                "Arch": host_arch(),
                "KernelVersion": u.release,
                "BuildTime": "",
            }
        )

    async def info(self, request: web.Request) -> web.StreamResponse:
        return json_response(self.info_fn())

    async def df(self, request: web.Request) -> web.StreamResponse:
        kinds = request.query.getall("type", []) or list(DF_TYPES)
        for kind in kinds:
            if kind not in DF_TYPES:
                raise InvalidArgument(f"unknown object type: {kind}")
        out: dict[str, Any] = {}
        if "image" in kinds:
            out["LayersSize"], images = await asyncio.to_thread(self.images.disk_usage)
            out["Images"] = [summary_json(s) for s in images]
        if "container" in kinds:
            views = await asyncio.to_thread(self.containers.list, all_=True, size=True)
            out["Containers"] = [container_summary(v) for v in views]
        if "volume" in kinds:
            usage = await asyncio.to_thread(self.volumes.usage) if self.volumes is not None else []
            out["Volumes"] = [usage_json(u) for u in usage]
        if "build-cache" in kinds:
            out["BuildCache"] = []  # the classic builder's cache is images (as dockerd's)
        return json_response(out)

    async def event_stream(self, request: web.Request) -> web.StreamResponse:
        since, until = _timestamp(request, "since"), _timestamp(request, "until")
        selected = filters(request)
        q = self.events.subscribe()
        resp = stream_response()
        try:
            await resp.prepare(request)
            if since is not None:
                for ev in list(self.events.recent):
                    t = ev["timeNano"] / 1e9
                    if t >= since and (until is None or t <= until) and matches(ev, selected):
                        await resp.write(json.dumps(ev).encode() + b"\n")
            while True:
                left = None if until is None else until - time.time()
                if left is not None and left <= 0:
                    break
                try:
                    ev = await asyncio.wait_for(q.get(), left)
                except TimeoutError:
                    break
                if matches(ev, selected):
                    await resp.write(json.dumps(ev).encode() + b"\n")
            await resp.write_eof()
        except ConnectionResetError:
            pass
        finally:
            self.events.unsubscribe(q)
        return resp


__all__ = ["SystemHandlers", "SWARM_ROUTES", "DF_TYPES"]
