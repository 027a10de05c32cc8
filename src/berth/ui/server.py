"""The dashboard's web server: the page, its JSON routes over the services, and the actions.

`Dashboard` takes the services as the Engine API's `Api` does and makes an aiohttp
application of its own, which berthd serves on its own site (`--ui ADDR`). Every route is
behind `auth.Gate`: the token, the session cookie, and the session's secret on every
request but the page's and the bundle's.

Routes (all under the session):
  GET  /                               the page (nothing secret in it)
  GET  /static/...                     the built bundle (app.js, app.css, login.js, licences)
  GET  /api/containers                 rows of the containers page
  POST /api/containers                 create (and start) one from the form (`create`)
  GET  /api/containers/{id}            one container, readable (environment masked)
  GET  /api/containers/{id}/stats      SSE: a graph point a second
  GET  /api/containers/{id}/logs       SSE: the tail, then lines as they come
  GET  /api/containers/{id}/logs.txt   the whole log, as a download
  GET  /api/containers/{id}/top        processes
  GET  /api/containers/{id}/terminal   WebSocket: a shell (exec with a pty)
  GET  /api/containers/{id}/attach     WebSocket: the container's own console
  POST /api/containers/{id}/{start,stop,restart,kill,pause,unpause}
  DELETE /api/containers/{id}          remove (force)
  GET  /api/images, /api/images/{id}/history; DELETE /api/images/{id}; POST /api/images/prune
  POST /api/images/pull?ref=NAME       the registry's progress messages, a JSON line each
                                       (a JSON body {username, password}: that pull's login)
  GET  /api/networks; DELETE /api/networks/{id}
  GET  /api/volumes; DELETE /api/volumes/{name}
  GET  /api/volumes/{name}/files?path=, /api/volumes/{name}/file?path=   browse, read-only
  GET  /api/projects                   compose projects (by their labels)
  GET  /api/projects/{name}/logs       SSE: all its services' logs, interleaved
  POST /api/projects/{name}/{up,start,stop,restart,down}
  POST /api/projects/{name}/services/{service}/scale?replicas=N
  GET  /api/events                     SSE
  GET  /api/live                       WebSocket: every live view of the browser at once,
                                       multiplexed (`live`): the page uses it, not the SSE
  GET  /api/df                         disk usage
  POST /api/logout                     ends the session (its cookie is no longer let in)

Imports the services, the event bus and `errors`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import re
from collections.abc import Awaitable, Callable
from importlib import resources
from typing import Any

from aiohttp import web

from berth.containers import ContainerService
from berth.containers.execs import ExecService
from berth.errors import BerthError, InvalidArgument, Unavailable
from berth.events import EventBus
from berth.images import ImageService
from berth.images.distribution import Distribution
from berth.networks import NetworkService
from berth.registry.auth import AuthConfig
from berth.volumes import VolumeService

from . import create, live, projects, scaling, streams, volfiles
from .auth import NO_STORE, SESSION, Gate, Session
from .data import (
    container_detail,
    container_row,
    history_row,
    image_row,
    network_row,
    volume_row,
)

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
ACTIONS = ("start", "stop", "restart", "kill", "pause", "unpause")
CHUNK = re.compile(r"chunk-[A-Z0-9]{8}\.js")  # esbuild's chunk names (ui/frontend/build.mjs)
STATIC_FILES = {
    "app.js": "text/javascript",
    "app.css": "text/css",
    "LICENSES.txt": "text/plain",
    "favicon.svg": "image/svg+xml",
    "live-worker.js": "text/javascript",  # the shared worker that holds /api/live
    "login.js": "text/javascript",  # keeps the session's secret that the login's page gives
}


_live_socket = live.live


def static_dir() -> str:
    return str(resources.files("berth.ui") / "static")


@web.middleware
async def errors_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """berth's errors as `{"message": ...}` with their status, as the Engine API's."""
    try:
        return await handler(request)
    except BerthError as e:
        if e.status >= 500:
            log.error("%s %s: %s", request.method, request.path, e)
        return web.json_response({"message": e.message}, status=e.status)


async def read_json(request: web.Request) -> Any:
    """A request's JSON body (bounded by the application's client_max_size); a 400 if it is
    not JSON."""
    try:
        return await request.json()
    except ValueError:
        raise InvalidArgument("the request's body is not JSON") from None


def pull_auth(body: Any) -> AuthConfig:
    """The login a pull from the page gives for its registry: used for that pull only, never
    written anywhere nor sent back (as X-Registry-Auth's)."""
    if body is None:
        return AuthConfig()
    if not isinstance(body, dict):
        raise InvalidArgument("the pull's login: want an object")
    user, password = body.get("username") or "", body.get("password") or ""
    if not isinstance(user, str) or not isinstance(password, str):
        raise InvalidArgument("the pull's login: the user name and password are text")
    if len(user) > 1024 or len(password) > 8192:
        raise InvalidArgument("the pull's login: too long")
    if password and not user:
        raise InvalidArgument("the pull's login: a password needs a user name")
    return AuthConfig(username=user, password=password)


class Dashboard:
    def __init__(
        self,
        *,
        containers: ContainerService,
        images: ImageService,
        execs: ExecService,
        events: EventBus,
        networks: NetworkService | None = None,
        volumes: VolumeService | None = None,
        distribution: Distribution | None = None,
        gate: Gate,
    ) -> None:
        self.containers = containers
        self.images = images
        self.execs = execs
        self.events = events
        self.networks = networks
        self.volumes = volumes
        self.distribution = distribution
        self.gate = gate
        # the live ones (`_live`), with the session each runs for
        self.streams: dict[asyncio.Task[Any], Session] = {}
        # one change of a compose project at a time (two clicks of Scale must not both
        # pick the same free number)
        self.project_locks: dict[str, asyncio.Lock] = {}
        self.static = static_dir()
        with open(os.path.join(self.static, "index.html"), encoding="utf-8") as f:
            self.index_html = f.read()

    def app(self) -> web.Application:
        app = web.Application(
            middlewares=[self.gate.middleware, errors_middleware], client_max_size=1 << 16
        )
        r = app.router
        r.add_get("/", self.index)
        r.add_get("/static/{name}", self.static_file)
        r.add_get("/api/containers", self.container_list)
        r.add_post("/api/containers", self.container_create)
        r.add_get("/api/containers/{id}", self.container_get)
        live = self._live
        r.add_get("/api/containers/{id}/stats", live(lambda q: streams.stats(q, self.containers)))
        r.add_get("/api/containers/{id}/logs", live(lambda q: streams.logs(q, self.containers)))
        r.add_get(
            "/api/containers/{id}/logs.txt", lambda q: streams.download_logs(q, self.containers)
        )
        r.add_get("/api/containers/{id}/top", self.container_top)
        r.add_get(
            "/api/containers/{id}/terminal",
            live(lambda q: streams.terminal(q, self.containers, self.execs)),
        )
        r.add_get("/api/containers/{id}/attach", live(lambda q: streams.attach(q, self.containers)))
        r.add_post("/api/containers/{id}/{action}", self.container_action)
        r.add_delete("/api/containers/{id}", self.container_remove)
        r.add_get("/api/images", self.image_list)
        r.add_post("/api/images/prune", self.image_prune)
        r.add_post("/api/images/pull", self.image_pull)
        r.add_get("/api/images/{id}/history", self.image_history)
        r.add_delete("/api/images/{id}", self.image_remove)
        r.add_get("/api/networks", self.network_list)
        r.add_delete("/api/networks/{id}", self.network_remove)
        r.add_get("/api/volumes", self.volume_list)
        r.add_delete("/api/volumes/{name}", self.volume_remove)
        r.add_get("/api/volumes/{name}/files", self.volume_files)
        r.add_get("/api/volumes/{name}/file", self.volume_file)
        r.add_get("/api/projects", self.project_list)
        r.add_get("/api/projects/{name}/logs", live(lambda q: projects.logs(q, self.containers)))
        r.add_post("/api/projects/{name}/{action}", self.project_action)
        r.add_post("/api/projects/{name}/services/{service}/scale", self.project_scale)
        r.add_get("/api/events", live(lambda q: streams.events(q, self.events)))
        r.add_get("/api/live", live(lambda q: _live_socket(q, self.containers, self.events)))
        r.add_get("/api/df", self.df)
        r.add_post("/api/logout", self.logout)
        app.on_shutdown.append(self._end_streams)
        return app

    def _live(self, handler: Handler) -> Handler:
        """A stream that never ends by itself (SSE, a terminal, the live socket): it ends at
        berthd's shutdown, which does not wait for it, and when its session logs out (the
        gate checks a session when a stream opens, not while it runs)."""

        async def run(request: web.Request) -> web.StreamResponse:
            task = asyncio.current_task()
            assert task is not None
            self.streams[task] = request[SESSION]
            try:
                return await handler(request)
            finally:
                self.streams.pop(task, None)

        return run

    async def _end_streams(self, _app: web.Application) -> None:
        for task in list(self.streams):
            task.cancel()

    # --- the page ---------------------------------------------------------------------------
    async def index(self, request: web.Request) -> web.StreamResponse:
        """The page: the same for every session, nothing secret in it (the session's secret
        is in the origin's storage, `auth`)."""
        return web.Response(text=self.index_html, content_type="text/html", headers=NO_STORE)

    async def static_file(self, request: web.Request) -> web.StreamResponse:
        """The bundle's files, by name only (nothing beside them): app.js and app.css, asked
        again each time, and the chunks loaded later (the container page), whose names are
        their hashes and may be kept."""
        name = request.match_info["name"]
        ctype = STATIC_FILES.get(name)
        cache = "no-cache"
        if ctype is None and CHUNK.fullmatch(name):
            ctype, cache = "text/javascript", "max-age=31536000, immutable"
        path = os.path.join(self.static, name)
        if ctype is None or not os.path.isfile(path):
            raise web.HTTPNotFound()
        return web.FileResponse(path, headers={"Content-Type": ctype, "Cache-Control": cache})

    # --- containers -------------------------------------------------------------------------
    async def container_list(self, request: web.Request) -> web.StreamResponse:
        views = self.containers.list(all_=True)
        return web.json_response([container_row(v) for v in views])

    async def container_create(self, request: web.Request) -> web.StreamResponse:
        """A container of the form (`create`), started unless the form says not to. One that
        was made but did not start stays, as `docker run`'s does: the answer names it with
        the start's error and status."""
        form = create.parse(await read_json(request))
        cid, warnings = await self.containers.create(form.request, form.name)
        name = self.containers.inspect(cid).record.name.lstrip("/")
        out: dict[str, Any] = {"id": cid, "name": name, "warnings": warnings, "started": False}
        if form.start:
            try:
                await self.containers.start(cid)
            except BerthError as e:
                msg = f"created {name}, but it did not start: {e.message}"
                return web.json_response({**out, "message": msg}, status=e.status)
            out["started"] = True
        return web.json_response(out, status=201)

    async def container_get(self, request: web.Request) -> web.StreamResponse:
        return web.json_response(
            container_detail(self.containers.inspect(request.match_info["id"]))
        )

    async def container_top(self, request: web.Request) -> web.StreamResponse:
        table = await asyncio.to_thread(self.containers.top, request.match_info["id"], "-ef")
        return web.json_response({"titles": table.titles, "processes": table.processes})

    async def container_action(self, request: web.Request) -> web.StreamResponse:
        ref, action = request.match_info["id"], request.match_info["action"]
        if action not in ACTIONS:
            raise web.HTTPNotFound()
        c = self.containers
        if action == "start":
            await c.start(ref)
        elif action == "stop":
            await c.stop(ref)
        elif action == "restart":
            await c.restart(ref)
        elif action == "kill":
            await c.kill(ref)
        elif action == "pause":
            await c.pause(ref)
        else:
            await c.unpause(ref)
        return web.json_response({"ok": True})

    async def container_remove(self, request: web.Request) -> web.StreamResponse:
        await self.containers.remove(
            request.match_info["id"], force=request.query.get("force") == "1"
        )
        return web.json_response({"ok": True})

    # --- images -----------------------------------------------------------------------------
    async def image_list(self, request: web.Request) -> web.StreamResponse:
        images = await asyncio.to_thread(self.images.list)
        users: dict[str, list[str]] = {}
        for v in self.containers.list(all_=True):
            users.setdefault(v.record.image, []).append(v.record.name.lstrip("/"))
        return web.json_response([image_row(s, users.get(s.id, [])) for s in images])

    async def image_history(self, request: web.Request) -> web.StreamResponse:
        lines = await asyncio.to_thread(self.images.history, request.match_info["id"])
        return web.json_response([history_row(h) for h in lines])

    async def image_remove(self, request: web.Request) -> web.StreamResponse:
        removed = await asyncio.to_thread(
            self.images.remove, request.match_info["id"], force=request.query.get("force") == "1"
        )
        return web.json_response([{"ref": r.ref, "deleted": r.deleted} for r in removed])

    async def image_prune(self, request: web.Request) -> web.StreamResponse:
        all_ = request.query.get("all") == "1"
        removed = await asyncio.to_thread(self.images.prune, all_=all_)
        return web.json_response([{"ref": r.ref, "deleted": r.deleted} for r in removed])

    async def image_pull(self, request: web.Request) -> web.StreamResponse:
        """A pull, its progress a JSON line per message (Docker's: status, id of the layer,
        progressDetail). An error before the first message is an HTTP error; a later one is
        the last line, `{"error": ...}`. Anonymous, or with the login of the request's body
        (`pull_auth`), as X-Registry-Auth gives one to the Engine API's pull."""
        if self.distribution is None:
            raise Unavailable("pulling is not served by this daemon")
        ref = request.query.get("ref", "").strip()
        if not ref:
            raise InvalidArgument("name the image to pull")
        auth = pull_auth(await read_json(request) if request.can_read_body else None)
        it = aiter(self.distribution.pull(ref, auth=auth))
        try:
            first: dict[str, Any] | None = await anext(it)
        except StopAsyncIteration:
            first = None
        resp = web.StreamResponse(headers={"Content-Type": "application/x-ndjson", **NO_STORE})
        await resp.prepare(request)
        try:
            if first is not None:
                await resp.write(json.dumps(first).encode() + b"\n")
            async for m in it:
                await resp.write(json.dumps(m).encode() + b"\n")
        except BerthError as e:
            await resp.write(json.dumps({"error": e.message}).encode() + b"\n")
        except ConnectionResetError:
            with contextlib.suppress(BaseException):
                await it.aclose()  # type: ignore[attr-defined]
            return resp
        await resp.write_eof()
        return resp

    # --- networks and volumes ---------------------------------------------------------------
    def _nets(self) -> NetworkService:
        if self.networks is None:
            raise Unavailable("networks are not served by this daemon")
        return self.networks

    def _vols(self) -> VolumeService:
        if self.volumes is None:
            raise Unavailable("volumes are not served by this daemon")
        return self.volumes

    def _names(self) -> dict[str, str]:
        return {v.record.id: v.record.name.lstrip("/") for v in self.containers.list(all_=True)}

    async def network_list(self, request: web.Request) -> web.StreamResponse:
        names = self._names()
        return web.json_response([network_row(v, names) for v in self._nets().list()])

    async def network_remove(self, request: web.Request) -> web.StreamResponse:
        nets = self._nets()
        rec = nets.get(request.match_info["id"])
        if rec.predefined:
            raise InvalidArgument(f"{rec.name} is a pre-defined network and cannot be removed")
        await asyncio.to_thread(nets.remove, rec.id, self.containers.network_users(rec.name))
        return web.json_response({"ok": True})

    def _volume_users(self) -> dict[str, list[str]]:
        users: dict[str, list[str]] = {}
        for v in self.containers.list(all_=True):
            for m in v.record.mounts:
                if m.type == "volume" and m.name:
                    users.setdefault(m.name, []).append(v.record.name.lstrip("/"))
        return users

    async def volume_list(self, request: web.Request) -> web.StreamResponse:
        usage = await asyncio.to_thread(self._vols().usage)
        users = self._volume_users()
        return web.json_response([volume_row(u, users.get(u.volume.name, [])) for u in usage])

    async def volume_remove(self, request: web.Request) -> web.StreamResponse:
        await asyncio.to_thread(self._vols().remove, request.match_info["name"])
        return web.json_response({"ok": True})

    async def volume_files(self, request: web.Request) -> web.StreamResponse:
        vol = self._vols().get(request.match_info["name"])
        return web.json_response(
            await asyncio.to_thread(
                volfiles.list_dir, vol.mountpoint, request.query.get("path", "/")
            )
        )

    async def volume_file(self, request: web.Request) -> web.StreamResponse:
        """The first bytes of a file, as text in JSON (never served as a page of its own)."""
        vol = self._vols().get(request.match_info["name"])
        path = request.query.get("path", "")
        data, size = await asyncio.to_thread(volfiles.read_file, vol.mountpoint, path)
        binary = b"\x00" in data
        return web.json_response(
            {
                "path": path,
                "size": size,
                "shown": len(data),
                "binary": binary,
                "text": "" if binary else data.decode("utf-8", "replace"),
            }
        )

    # --- compose projects ------------------------------------------------------------------
    async def project_list(self, request: web.Request) -> web.StreamResponse:
        return web.json_response(
            projects.projects(self.containers.list(all_=True), self.containers.templates.all())
        )

    async def project_action(self, request: web.Request) -> web.StreamResponse:
        async with self._project_lock(request.match_info["name"]):
            return await self._project_action(request)

    def _project_lock(self, name: str) -> asyncio.Lock:
        """The project's lock: only of projects that exist (a name asked for is not kept)."""
        projects.project_members(self.containers, name)  # NotFound
        return self.project_locks.setdefault(name, asyncio.Lock())

    async def _project_action(self, request: web.Request) -> web.StreamResponse:
        verb = request.match_info["action"]
        if verb == "down":
            return web.json_response(
                {
                    "ok": True,
                    **await projects.down(
                        self.containers, self.networks, request.match_info["name"]
                    ),
                }
            )
        if verb == "up":
            started = await scaling.up(self.containers, request.match_info["name"])
            return web.json_response({"ok": True, "containers": started})
        if verb not in ("start", "stop", "restart"):
            raise web.HTTPNotFound()
        done = await projects.action(self.containers, request.match_info["name"], verb)
        return web.json_response({"ok": True, "containers": done})

    async def project_scale(self, request: web.Request) -> web.StreamResponse:
        asked = request.query.get("replicas", "")
        if not asked.isdigit():
            raise InvalidArgument("replicas must be a number")
        name = request.match_info["name"]
        async with self._project_lock(name):
            done = await scaling.scale(
                self.containers, name, request.match_info["service"], int(asked)
            )
        return web.json_response({"ok": True, **done})

    async def logout(self, request: web.Request) -> web.StreamResponse:
        sess = request[SESSION]
        for task, owner in list(self.streams.items()):
            if owner is sess:
                task.cancel()
        return self.gate.logout(request)

    # --- system -----------------------------------------------------------------------------
    async def df(self, request: web.Request) -> web.StreamResponse:
        layers, images = await asyncio.to_thread(self.images.disk_usage)
        views = await asyncio.to_thread(self.containers.list, all_=True, size=True)
        usage = await asyncio.to_thread(self._vols().usage) if self.volumes else []
        out: dict[str, Any] = {
            "images": {
                "count": len(images),
                "active": sum(1 for i in images if i.containers),
                "size": layers,
            },
            "containers": {
                "count": len(views),
                "active": sum(1 for v in views if v.record.state.running),
                "size": sum(v.size_rw or 0 for v in views),
            },
            "volumes": {
                "count": len(usage),
                "active": sum(1 for u in usage if u.ref_count),
                "size": sum(max(u.size, 0) for u in usage),
            },
        }
        return web.json_response(out)


__all__ = ["Dashboard", "static_dir"]
