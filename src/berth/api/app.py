"""The aiohttp application: the route table (each route with and without the /v1.xx prefix),
API version negotiation, and the middleware that turns `berth.errors` into Docker's
`{"message": ...}` with the error's status. `Api` takes the services it serves through its
constructor and hands each handler module only the ones it needs.

Imports the services, `events` and `errors`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from berth.builder import Builder
from berth.containers import ContainerService
from berth.containers.execs import ExecService
from berth.errors import BerthError, InvalidArgument, NotModified
from berth.events import EventBus
from berth.images import ImageService
from berth.images.distribution import Distribution
from berth.networks import NetworkService
from berth.volumes import VolumeService

from . import plugins
from .build import BuildHandlers
from .compose import ComposeHandlers
from .containers import ContainerHandlers
from .execs import ExecHandlers
from .images import ImageHandlers
from .networks import NetworkHandlers
from .system import SWARM_ROUTES, SystemHandlers
from .volumes import VolumeHandlers
from .wire import API_VERSION, ENGINE_VERSION, MIN_API_VERSION, json_response

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
VERSION_PREFIX = r"/v{version:[0-9]+\.[0-9]+}"


# A request's header bound: dockerd's server sets no MaxHeaderBytes, so Go's default applies,
# http.DefaultMaxHeaderBytes = 1 MB for the request line and the headers together. aiohttp
# bounds each line and each header field, and their count: a request line and a header field
# may each be as long as dockerd takes them whole (an X-Registry-Config with many registries'
# credentials, a long `filters`), and the count is aiohttp's own bound. A request over them
# gets aiohttp's 400 ("Got more than ... bytes"), where dockerd gives Go's plain-text 431.
MAX_HEADER_BYTES = 1 << 20
HEADER_LIMITS = {
    "max_line_size": MAX_HEADER_BYTES,
    "max_field_size": MAX_HEADER_BYTES,
    "max_headers": 128,
}


def _vtuple(v: str) -> tuple[int, ...]:
    try:
        return tuple(int(x) for x in v.split("."))
    except ValueError:
        raise InvalidArgument(f"invalid API version: {v}") from None


def check_version(version: str) -> None:
    """The /v1.xx prefix a client asked for, within [MIN_API_VERSION, API_VERSION]."""
    v = _vtuple(version)
    if v > _vtuple(API_VERSION):
        raise InvalidArgument(
            f"client version {version} is too new. Maximum supported API version is {API_VERSION}"
        )
    if v < _vtuple(MIN_API_VERSION):
        raise InvalidArgument(
            f"client version {version} is too old. Minimum "
            f"supported API version is {MIN_API_VERSION}, "
            "please upgrade your client to a newer version"
        )


def check_no_nul(request: web.Request) -> None:
    """No path or query parameter of the Engine API can hold a NUL byte (names, references,
    filters, a command's arguments all end at one in the kernel): refuse it here, before a
    handler passes it on to a file name or a subprocess, which raise on it."""
    if "\x00" in request.path or any("\x00" in k or "\x00" in v for k, v in request.query.items()):
        raise InvalidArgument("invalid request: a NUL byte in its path or query")


@web.middleware
async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    headers = {
        "Api-Version": API_VERSION,
        "Ostype": "linux",
        "Server": f"Docker/{ENGINE_VERSION} (linux)",
        "Docker-Experimental": "false",
    }
    try:
        version = request.match_info.get("version")
        if version:
            check_version(version)
        check_no_nul(request)
        resp = await handler(request)
    except NotModified:
        resp = web.Response(status=304)
    except BerthError as e:
        if e.status >= 500:
            log.error("%s %s: %s", request.method, request.path, e)
        resp = json_response({"message": e.message}, e.status)
    except web.HTTPException as e:
        if e.status == 404:
            resp = json_response({"message": "page not found"}, 404)
        elif e.status == 405:
            resp = json_response({"message": "method not allowed"}, 405)
        elif e.status >= 400:
            # aiohttp's own refusals (a websocket route asked without its upgrade, say) carry
            # Docker's body too: a client reads the message of every error the same way
            resp = json_response({"message": (e.text or e.reason).strip()}, e.status)
        else:
            raise
    except (ConnectionResetError, asyncio.CancelledError):
        raise
    except Exception as e:  # noqa: BLE001 - the API's edge: every error becomes a reply
        log.exception("%s %s failed", request.method, request.path)
        resp = json_response({"message": str(e) or type(e).__name__}, 500)
    if not resp.prepared:
        for k, val in headers.items():
            resp.headers.setdefault(k, val)
    return resp


class Api:
    def __init__(
        self,
        *,
        containers: ContainerService,
        images: ImageService,
        info: Callable[[], dict[str, Any]],
        execs: ExecService | None = None,
        events: EventBus | None = None,
        distribution: Distribution | None = None,
        builder: Builder | None = None,
        networks: NetworkService | None = None,
        volumes: VolumeService | None = None,
    ) -> None:
        self.events = events or EventBus()
        self.system = SystemHandlers(
            containers=containers, images=images, volumes=volumes, events=self.events, info=info
        )
        self.containers = ContainerHandlers(containers)
        self.execs = ExecHandlers(execs or ExecService(containers))
        self.images = ImageHandlers(images, distribution)
        self.build = BuildHandlers(builder)
        self.networks = NetworkHandlers(networks, containers)
        self.volumes = VolumeHandlers(volumes)
        self.compose = ComposeHandlers(containers)

    def routes(self) -> list[tuple[str, str, Handler]]:
        """(method, path, handler) in the order aiohttp tries them."""
        s, c, x, i, b = self.system, self.containers, self.execs, self.images, self.build
        n, v = self.networks, self.volumes
        routes: list[tuple[str, str, Handler]] = [
            ("HEAD", "/_ping", s.ping),
            ("GET", "/_ping", s.ping),
            ("GET", "/version", s.version),
            ("GET", "/info", s.info),
            ("GET", "/events", s.event_stream),
            ("GET", "/system/df", s.df),
            ("POST", "/images/create", i.create),
            ("POST", "/auth", i.auth),
            ("POST", "/build", b.build),
            ("POST", "/build/prune", b.prune),
            ("POST", "/commit", b.commit),
            ("GET", "/containers/{id}/changes", b.changes),
            ("POST", "/images/{name:.+}/push", i.push),
            ("GET", "/distribution/{name:.+}/json", i.distribution_inspect),
            ("GET", "/images/search", i.search),
            ("GET", "/images/json", i.list),
            ("GET", "/images/get", i.save),
            ("POST", "/images/load", i.load),
            ("POST", "/images/prune", i.prune),
            ("GET", "/images/{name:.+}/json", i.inspect),
            ("GET", "/images/{name:.+}/history", i.history),
            ("GET", "/images/{name:.+}/get", i.save_one),
            ("POST", "/images/{name:.+}/tag", i.tag),
            ("DELETE", "/images/{name:.+}", i.delete),
            ("POST", "/containers/create", c.create),
            ("GET", "/containers/json", c.list),
            ("POST", "/containers/prune", c.prune),
            ("GET", "/containers/{id}/json", c.inspect),
            ("POST", "/containers/{id}/start", c.start),
            ("POST", "/containers/{id}/stop", c.stop),
            ("POST", "/containers/{id}/restart", c.restart),
            ("POST", "/containers/{id}/kill", c.kill),
            ("POST", "/containers/{id}/wait", c.wait),
            ("POST", "/containers/{id}/rename", c.rename),
            ("POST", "/containers/{id}/attach", c.attach),
            ("GET", "/containers/{id}/attach/ws", c.attach_ws),
            ("POST", "/containers/{id}/resize", c.resize),
            ("GET", "/containers/{id}/logs", c.logs),
            ("POST", "/containers/{id}/exec", x.create),
            ("GET", "/containers/{id}/stats", c.stats),
            ("GET", "/containers/{id}/top", c.top),
            ("POST", "/containers/{id}/pause", c.pause),
            ("POST", "/containers/{id}/unpause", c.unpause),
            ("POST", "/containers/{id}/update", c.update),
            ("POST", "/exec/{id}/start", x.start),
            ("POST", "/exec/{id}/resize", x.resize),
            ("GET", "/exec/{id}/json", x.inspect),
            ("GET", "/containers/{id}/export", c.export),
            ("HEAD", "/containers/{id}/archive", c.archive_head),
            ("GET", "/containers/{id}/archive", c.archive_get),
            ("PUT", "/containers/{id}/archive", c.archive_put),
            ("DELETE", "/containers/{id}", c.delete),
            # `rm --link /PARENT/ALIAS`: the docker CLI sends the name's slashes as they are
            # (two segments only: a path that only this route matched would be a 405 for the
            # other methods, and the CLI takes only a 404 of a container's inspect to try an
            # image of that name)
            ("DELETE", "/containers/{id:/?[^/]+/[^/]+}", c.delete),
            ("GET", "/networks", n.list),
            ("POST", "/networks/create", n.create),
            ("POST", "/networks/prune", n.prune),
            ("GET", "/networks/{id}", n.inspect),
            ("DELETE", "/networks/{id}", n.delete),
            ("POST", "/networks/{id}/connect", n.connect),
            ("POST", "/networks/{id}/disconnect", n.disconnect),
            ("GET", "/volumes", v.list),
            ("POST", "/volumes/create", v.create),
            ("POST", "/volumes/prune", v.prune),
            ("GET", "/volumes/{name}", v.inspect),
            ("DELETE", "/volumes/{name}", v.delete),
            # berth's own: compose's service templates, for the dashboard (api/compose.py)
            ("PUT", "/berth/compose/{project}/services/{service}", self.compose.put_service),
            ("GET", "/berth/compose/{project}", self.compose.get),
            ("DELETE", "/berth/compose/{project}", self.compose.delete),
        ]
        routes += [(method, path, s.not_in_a_swarm) for method, path in SWARM_ROUTES]
        return routes + plugins.ROUTES

    def app(self) -> web.Application:
        # client_max_size=0: aiohttp's own body bound is off, as routes stream their bodies
        # (build contexts, image tarballs); the JSON ones are bounded in wire.read_json
        app = web.Application(
            middlewares=[middleware], client_max_size=0, handler_args=HEADER_LIMITS
        )
        for method, path, handler in self.routes():
            app.router.add_route(method, VERSION_PREFIX + path, handler)
            app.router.add_route(method, path, handler)
        return app


__all__ = [
    "Api",
    "middleware",
    "check_version",
    "check_no_nul",
    "MAX_HEADER_BYTES",
    "HEADER_LIMITS",
]
