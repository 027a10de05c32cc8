"""The HTTP layer: the Docker Engine API over aiohttp. Parse a request, call one service,
write the response. Errors from `berth.errors` become Docker's `{"message": ...}` with the
error's status; nothing below this layer knows HTTP.

Imports the services, `errors`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import platform
import struct
import time
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any

from aiohttp import web

from berth import __version__
from berth.api import archive
from berth.build import Builder, check_entitlements
from berth.build import Options as BuildOptions
from berth.containers import ContainerService
from berth.containers.channel import Attachment, DetachScanner, parse_detach_keys
from berth.containers.execs import ExecService, ExecStartError
from berth.errors import BerthError, InvalidArgument, NotFound, NotModified, Unavailable
from berth.events import EventBus, matches
from berth.images import ImageService
from berth.images.distribution import Distribution
from berth.registry import AuthConfig

log = logging.getLogger(__name__)

API_VERSION = "1.50"          # the docker 28 CLI's own maximum
MIN_API_VERSION = "1.24"
# input an attach client sends ahead of the process: past this much, its connection is not read
STDIN_LIMIT = 1 << 20
ENGINE_VERSION = "28.0.0-berth." + __version__

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _vtuple(v: str) -> tuple[int, ...]:
    try:
        return tuple(int(x) for x in v.split("."))
    except ValueError:
        raise InvalidArgument(f"invalid API version: {v}") from None


def qbool(request: web.Request, name: str, default: bool = False) -> bool:
    v = request.query.get(name)
    if v is None:
        return default
    return v.strip().lower() not in ("", "0", "false", "no")


def qint(request: web.Request, name: str, default: int | None = None) -> int | None:
    v = request.query.get(name)
    if v in (None, ""):
        return default
    try:
        return int(v)
    except ValueError:
        raise InvalidArgument(f"invalid value for {name}: {v!r}") from None


def parse_filters(raw: str | None) -> dict[str, list[str]]:
    """`filters` in both shapes Docker accepts: {"k": ["v"]} and the legacy {"k": {"v": true}}."""
    if not raw:
        return {}
    try:
        data = json.loads(raw)
    except ValueError:
        raise InvalidArgument(f"invalid filters: {raw}") from None
    if not isinstance(data, dict):
        raise InvalidArgument(f"invalid filters: {raw}")
    out: dict[str, list[str]] = {}
    for k, v in data.items():
        if isinstance(v, dict):
            out[k] = [x for x, on in v.items() if on]
        elif isinstance(v, list):
            out[k] = [str(x) for x in v]
        else:
            out[k] = [str(v)]
    return out


def frame(stream: int, data: bytes) -> bytes:
    """Docker's multiplexed stream framing: [stream, 0, 0, 0, size32be] + payload."""
    return struct.pack(">BxxxI", stream, len(data)) + data


def json_response(data: Any, status: int = 200) -> web.Response:
    return web.Response(body=json.dumps(data).encode(), status=status,
                        content_type="application/json")


class SyncReader:
    """A blocking file-like view of the request body, for a worker thread."""

    def __init__(self, request: web.Request, loop: asyncio.AbstractEventLoop) -> None:
        self.content = request.content
        self.loop = loop
        self.buf = b""
        self.eof = False

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        while not self.eof and (n < 0 or len(self.buf) < n):
            chunk = asyncio.run_coroutine_threadsafe(self.content.readany(), self.loop).result()
            if not chunk:
                self.eof = True
                break
            self.buf += chunk
        if n < 0:
            out, self.buf = self.buf, b""
        else:
            out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def readinto(self, b: bytearray) -> int:
        data = self.read(len(b))
        b[:len(data)] = data
        return len(data)

    def peek(self, n: int = 1) -> bytes:
        if len(self.buf) < n:
            more = self.read(n)
            self.buf = more + self.buf
        return self.buf[:n]

    def close(self) -> None:
        pass

    @property
    def closed(self) -> bool:
        return False


class SyncWriter:
    """A blocking file-like that streams into an aiohttp response, for a worker thread."""

    def __init__(self, resp: web.StreamResponse, loop: asyncio.AbstractEventLoop) -> None:
        self.resp = resp
        self.loop = loop
        self.buf = bytearray()

    def write(self, data: bytes) -> int:
        self.buf += data
        if len(self.buf) >= 1 << 20:
            self.flush()
        return len(data)

    def flush(self) -> None:
        if self.buf:
            data, self.buf = bytes(self.buf), bytearray()
            asyncio.run_coroutine_threadsafe(self.resp.write(data), self.loop).result()

    def tell(self) -> int:
        return 0


class Hijacked(asyncio.Protocol):
    """A connection taken over from aiohttp after a `101 UPGRADED` (attach, exec start).

    The docker CLI half-closes its side when it has no more stdin (CloseWrite): the stream
    must stay open for output, which aiohttp's protocol would not allow. Bytes the client sends
    (stdin) arrive on `stdin`, b"" marks their end."""

    def __init__(self, transport: asyncio.Transport, original: asyncio.BaseProtocol) -> None:
        self.transport = transport
        self.original = original
        self.stdin: asyncio.Queue[bytes] = asyncio.Queue()
        self.lost = asyncio.Event()
        self._can_write = asyncio.Event()
        self._can_write.set()
        self._held = 0          # bytes of stdin queued: past STDIN_LIMIT, reading pauses
        self._paused = False

    def data_received(self, data: bytes) -> None:
        self.stdin.put_nowait(data)
        self._held += len(data)
        if self._held > STDIN_LIMIT and not self._paused:
            self._paused = True
            self.transport.pause_reading()

    async def read_stdin(self) -> bytes:
        """The next piece of the client's input; b"" at its end."""
        data = await self.stdin.get()
        self._held -= len(data)
        if self._paused and self._held <= STDIN_LIMIT // 2 and not self.transport.is_closing():
            self._paused = False
            self.transport.resume_reading()
        return data

    def eof_received(self) -> bool:
        self.stdin.put_nowait(b"")
        return True  # keep our side open for output

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost.set()
        self._can_write.set()
        self.stdin.put_nowait(b"")
        self.original.connection_lost(exc)

    def pause_writing(self) -> None:
        self._can_write.clear()

    def resume_writing(self) -> None:
        self._can_write.set()

    async def write(self, data: bytes) -> bool:
        """False once the client has gone."""
        if self.lost.is_set() or self.transport.is_closing():
            return False
        self.transport.write(data)
        await self._can_write.wait()
        return not self.lost.is_set()

    def close(self) -> None:
        if not self.transport.is_closing():
            self.transport.set_protocol(self.original)
            self.transport.close()

    def abort(self) -> None:
        """Close at once, dropping output the client has not read."""
        self.transport.set_protocol(self.original)
        self.transport.abort()


async def hijack(request: web.Request, resp: web.StreamResponse) -> Hijacked:
    await resp.prepare(request)
    transport = request.transport
    assert transport is not None
    original = transport.get_protocol()
    h = Hijacked(transport, original)
    transport.set_protocol(h)
    tail = getattr(original, "_message_tail", b"")
    if tail:
        h.data_received(tail)
        original._message_tail = b""  # type: ignore[attr-defined]
    return h


DF_TYPES = ("container", "image", "volume", "build-cache")
NOT_A_SWARM_MANAGER = ("This node is not a swarm manager. Use \"docker swarm init\" or "
                       "\"docker swarm join\" to connect this node to swarm and try again.")
# the Engine API's swarm-mode routes (v1.50: Swarm, Node, Service, Task, Secret, Config)
SWARM_ROUTES = [
    ("GET", "/swarm"), ("POST", "/swarm/init"), ("POST", "/swarm/join"),
    ("POST", "/swarm/leave"), ("POST", "/swarm/update"), ("GET", "/swarm/unlockkey"),
    ("POST", "/swarm/unlock"),
    ("GET", "/nodes"), ("GET", "/nodes/{id}"), ("DELETE", "/nodes/{id}"),
    ("POST", "/nodes/{id}/update"),
    ("GET", "/services"), ("POST", "/services/create"), ("GET", "/services/{id}"),
    ("DELETE", "/services/{id}"), ("POST", "/services/{id}/update"),
    ("GET", "/services/{id}/logs"),
    ("GET", "/tasks"), ("GET", "/tasks/{id}"), ("GET", "/tasks/{id}/logs"),
    *[(m, f"/{kind}{p}") for kind in ("secrets", "configs")
      for m, p in (("GET", ""), ("POST", "/create"), ("GET", "/{id}"), ("DELETE", "/{id}"),
                   ("POST", "/{id}/update"))],
]


class Api:
    def __init__(self, *, containers: ContainerService, images: ImageService,
                 info: Callable[[], dict[str, Any]], execs: ExecService | None = None,
                 events: EventBus | None = None,
                 distribution: Distribution | None = None,
                 builder: Builder | None = None) -> None:
        self.events = events or EventBus()
        self.distribution = distribution
        self.builder = builder
        self.containers = containers
        self.execs = execs or ExecService(containers)
        self.images = images
        self.info_fn = info

    # --- app --------------------------------------------------------------------------------
    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._middleware], client_max_size=0)
        routes: list[tuple[str, str, Handler]] = [
            ("HEAD", "/_ping", self.ping), ("GET", "/_ping", self.ping),
            ("GET", "/version", self.version), ("GET", "/info", self.info),
            ("GET", "/events", self.event_stream), ("GET", "/system/df", self.system_df),
            ("POST", "/images/create", self.image_create),
            ("POST", "/auth", self.auth),
            ("POST", "/build", self.build),
            ("POST", "/build/prune", self.build_prune),
            ("POST", "/commit", self.commit),
            ("GET", "/containers/{id}/changes", self.container_changes),
            ("POST", "/images/{name:.+}/push", self.image_push),
            ("GET", "/distribution/{name:.+}/json", self.distribution_inspect),
            ("GET", "/images/search", self.image_search),
            ("GET", "/images/json", self.image_list),
            ("GET", "/images/get", self.image_save),
            ("POST", "/images/load", self.image_load),
            ("POST", "/images/prune", self.image_prune),
            ("GET", "/images/{name:.+}/json", self.image_inspect),
            ("GET", "/images/{name:.+}/history", self.image_history),
            ("GET", "/images/{name:.+}/get", self.image_save_one),
            ("POST", "/images/{name:.+}/tag", self.image_tag),
            ("DELETE", "/images/{name:.+}", self.image_delete),
            ("POST", "/containers/create", self.container_create),
            ("GET", "/containers/json", self.container_list),
            ("POST", "/containers/prune", self.container_prune),
            ("GET", "/containers/{id}/json", self.container_inspect),
            ("POST", "/containers/{id}/start", self.container_start),
            ("POST", "/containers/{id}/stop", self.container_stop),
            ("POST", "/containers/{id}/restart", self.container_restart),
            ("POST", "/containers/{id}/kill", self.container_kill),
            ("POST", "/containers/{id}/wait", self.container_wait),
            ("POST", "/containers/{id}/rename", self.container_rename),
            ("POST", "/containers/{id}/attach", self.container_attach),
            ("POST", "/containers/{id}/resize", self.container_resize),
            ("GET", "/containers/{id}/logs", self.container_logs),
            ("POST", "/containers/{id}/exec", self.exec_create),
            ("GET", "/containers/{id}/stats", self.container_stats),
            ("GET", "/containers/{id}/top", self.container_top),
            ("POST", "/containers/{id}/pause", self.container_pause),
            ("POST", "/containers/{id}/unpause", self.container_unpause),
            ("POST", "/containers/{id}/update", self.container_update),
            ("POST", "/exec/{id}/start", self.exec_start),
            ("POST", "/exec/{id}/resize", self.exec_resize),
            ("GET", "/exec/{id}/json", self.exec_inspect),
            ("GET", "/containers/{id}/export", self.container_export),
            ("HEAD", "/containers/{id}/archive", partial(archive.archive_head, service=self.containers)),
            ("GET", "/containers/{id}/archive", partial(archive.archive_get, service=self.containers)),
            ("PUT", "/containers/{id}/archive", partial(archive.archive_put, service=self.containers)),
            ("DELETE", "/containers/{id}", self.container_delete),
            ("GET", "/networks", self.network_list),
            ("POST", "/networks/create", self.network_create),
            ("POST", "/networks/prune", self.network_prune),
            ("GET", "/networks/{id}", self.network_inspect),
            ("DELETE", "/networks/{id}", self.network_delete),
            ("POST", "/networks/{id}/connect", self.network_connect),
            ("POST", "/networks/{id}/disconnect", self.network_disconnect),
            ("GET", "/volumes", self.volume_list),
            ("POST", "/volumes/create", self.volume_create),
            ("POST", "/volumes/prune", self.volume_prune),
            ("GET", "/volumes/{name}", self.volume_inspect),
            ("DELETE", "/volumes/{name}", self.volume_delete),
        ]
        routes += [(method, path, self.not_in_a_swarm) for method, path in SWARM_ROUTES]
        for method, path, handler in routes:
            app.router.add_route(method, r"/v{version:[0-9]+\.[0-9]+}" + path, handler)
            app.router.add_route(method, path, handler)
        return app

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        headers = {"Api-Version": API_VERSION, "Ostype": "linux",
                   "Server": f"Docker/{ENGINE_VERSION} (linux)",
                   "Docker-Experimental": "false"}
        try:
            version = request.match_info.get("version")
            if version:
                v = _vtuple(version)
                if v > _vtuple(API_VERSION):
                    raise InvalidArgument(f"client version {version} is too new. Maximum "
                                          f"supported API version is {API_VERSION}")
                if v < _vtuple(MIN_API_VERSION):
                    raise InvalidArgument(f"client version {version} is too old. Minimum "
                                          f"supported API version is {MIN_API_VERSION}, "
                                          "please upgrade your client to a newer version")
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

    @staticmethod
    def _stream(request: web.Request, content_type: str = "application/json",
                status: int = 200) -> web.StreamResponse:
        resp = web.StreamResponse(status=status)
        resp.content_type = content_type
        resp.headers.update({"Api-Version": API_VERSION, "Ostype": "linux",
                             "Server": f"Docker/{ENGINE_VERSION} (linux)"})
        return resp

    @staticmethod
    async def _body(request: web.Request) -> Any:
        raw = await request.read()
        if not raw:
            return {}
        try:
            return json.loads(raw)
        except ValueError as e:
            raise InvalidArgument(f"invalid JSON body: {e}") from None

    # --- system -----------------------------------------------------------------------------
    async def not_in_a_swarm(self, request: web.Request) -> web.StreamResponse:
        """Swarm mode's routes answer as a dockerd that is not in a swarm: 503, in its words.
        Clients tolerate that (`POST /swarm/leave?force=1` in a test's set-up), not a 404."""
        path = request.path.rstrip("/")
        if path.endswith("/swarm/leave"):
            raise Unavailable("This node is not part of a swarm")
        if path.endswith(("/swarm/init", "/swarm/join")):
            raise Unavailable("berth does not support swarm mode: it runs containers on one "
                              "machine (use compose, or Kubernetes through berth's CRI)")
        raise Unavailable(NOT_A_SWARM_MANAGER)

    async def ping(self, request: web.Request) -> web.StreamResponse:
        resp = web.Response(text="OK" if request.method == "GET" else None,
                            content_type="text/plain")
        resp.headers.update({"Builder-Version": "1", "Swarm": "inactive",
                             "Cache-Control": "no-cache, no-store, must-revalidate",
                             "Pragma": "no-cache"})
        return resp

    async def version(self, request: web.Request) -> web.StreamResponse:
        u = os.uname()
        details = {"ApiVersion": API_VERSION, "Arch": _goarch(), "BuildTime": "",
                   "Experimental": "false", "GitCommit": "", "GoVersion": "python" +
                   platform.python_version(), "KernelVersion": u.release,
                   "MinAPIVersion": MIN_API_VERSION, "Os": "linux"}
        return json_response({
            "Platform": {"Name": "berth"},
            "Components": [{"Name": "Engine", "Version": ENGINE_VERSION, "Details": details}],
            "Version": ENGINE_VERSION, "ApiVersion": API_VERSION,
            "MinAPIVersion": MIN_API_VERSION, "GitCommit": "", "GoVersion":
            "python" + platform.python_version(), "Os": "linux", "Arch": _goarch(),
            "KernelVersion": u.release, "BuildTime": "",
        })

    async def info(self, request: web.Request) -> web.StreamResponse:
        return json_response(self.info_fn())

    async def system_df(self, request: web.Request) -> web.StreamResponse:
        kinds = request.query.getall("type", []) or list(DF_TYPES)
        for kind in kinds:
            if kind not in DF_TYPES:
                raise InvalidArgument(f"unknown object type: {kind}")
        out: dict[str, Any] = {}
        if "image" in kinds:
            out["LayersSize"], out["Images"] = await asyncio.to_thread(self.images.disk_usage)
        if "container" in kinds:
            out["Containers"] = await asyncio.to_thread(self.containers.list, all_=True,
                                                        size=True)
        if "volume" in kinds:
            out["Volumes"] = await asyncio.to_thread(self.containers.volumes.usage)
        if "build-cache" in kinds:
            out["BuildCache"] = []   # the classic builder's cache is images (as dockerd's)
        return json_response(out)

    async def event_stream(self, request: web.Request) -> web.StreamResponse:
        def when(name: str) -> float | None:
            v = request.query.get(name)
            if not v:
                return None
            try:
                return float(v)
            except ValueError:
                raise InvalidArgument(f"invalid {name} timestamp: {v}") from None
        since, until = when("since"), when("until")
        filters = parse_filters(request.query.get("filters"))
        q = self.events.subscribe()
        resp = self._stream(request)
        try:
            await resp.prepare(request)
            if since is not None:
                for ev in list(self.events.recent):
                    t = ev["timeNano"] / 1e9
                    if t >= since and (until is None or t <= until) and matches(ev, filters):
                        await resp.write(json.dumps(ev).encode() + b"\n")
            while True:
                left = None if until is None else until - time.time()
                if left is not None and left <= 0:
                    break
                try:
                    ev = await asyncio.wait_for(q.get(), left)
                except TimeoutError:
                    break
                if matches(ev, filters):
                    await resp.write(json.dumps(ev).encode() + b"\n")
            await resp.write_eof()
        except ConnectionResetError:
            pass
        finally:
            self.events.unsubscribe(q)
        return resp

    # --- images -----------------------------------------------------------------------------
    async def image_create(self, request: web.Request) -> web.StreamResponse:
        q = request.query
        if q.get("fromSrc") is None:
            if not q.get("fromImage"):
                raise InvalidArgument("fromImage or fromSrc is required")
            if self.distribution is None:
                raise NotFound("this daemon has no registry client")
            return await self._progress(request, self.distribution.pull(
                q["fromImage"], q.get("tag", ""), platform=q.get("platform", ""),
                auth=AuthConfig.from_header(request.headers.get("X-Registry-Auth"))))
        if q["fromSrc"] != "-":
            raise InvalidArgument("importing from a URL is not supported: use fromSrc=-")
        changes = q.getall("changes", [])
        loop = asyncio.get_running_loop()
        reader = SyncReader(request, loop)
        # errors before the stream starts are plain HTTP errors, as in Docker
        image_id = await asyncio.to_thread(
            self.images.import_, reader, repo=q.get("repo", ""), tag=q.get("tag", ""),  # type: ignore[arg-type]
            changes=changes, message=q.get("message", ""))
        self.events.publish("image", "import", image_id, {})
        resp = self._stream(request)
        await resp.prepare(request)
        await resp.write((json.dumps({"status": image_id}) + "\r\n").encode())
        await resp.write_eof()
        return resp

    async def image_search(self, request: web.Request) -> web.StreamResponse:
        if self.distribution is None:
            raise NotFound("this daemon has no registry client")
        term = request.query.get("term", "")
        if not term:
            raise InvalidArgument("term is required")
        return json_response(await self.distribution.search(
            term, limit=qint(request, "limit", 25) or 25,
            filters=parse_filters(request.query.get("filters")),
            auth=AuthConfig.from_header(request.headers.get("X-Registry-Auth"))))

    async def distribution_inspect(self, request: web.Request) -> web.StreamResponse:
        if self.distribution is None:
            raise NotFound("this daemon has no registry client")
        return json_response(await self.distribution.inspect(
            request.match_info["name"],
            auth=AuthConfig.from_header(request.headers.get("X-Registry-Auth"))))

    async def image_push(self, request: web.Request) -> web.StreamResponse:
        if self.distribution is None:
            raise NotFound("this daemon has no registry client")
        return await self._progress(request, self.distribution.push(
            request.match_info["name"], request.query.get("tag", ""),
            auth=AuthConfig.from_header(request.headers.get("X-Registry-Auth"))))

    async def _progress(self, request: web.Request, messages: Any) -> web.StreamResponse:
        """A JSON message stream. An error before the first message is an HTTP error; a
        later one is an `errorDetail` message, as dockerd writes them."""
        it = aiter(messages)
        try:
            first = await anext(it)
        except StopAsyncIteration:
            first = None
        resp = self._stream(request)
        await resp.prepare(request)
        try:
            if first is not None:
                await resp.write(json.dumps(first).encode() + b"\r\n")
            async for m in it:
                await resp.write(json.dumps(m).encode() + b"\r\n")
        except BerthError as e:
            await resp.write(json.dumps({"errorDetail": {"message": e.message},
                                         "error": e.message}).encode() + b"\r\n")
        except (ConnectionResetError, asyncio.CancelledError):
            with contextlib.suppress(BaseException):
                await it.aclose()
            raise
        except Exception as e:  # noqa: BLE001 - the stream has begun: the error goes in it
            log.exception("%s %s failed", request.method, request.path)
            msg = str(e) or type(e).__name__
            await resp.write(json.dumps({"errorDetail": {"message": msg},
                                         "error": msg}).encode() + b"\r\n")
        await resp.write_eof()
        return resp

    # --- build, commit, diff -------------------------------------------------------------------
    def _builder(self) -> Builder:
        if self.builder is None:
            raise NotFound("this daemon has no builder")
        return self.builder

    async def build(self, request: web.Request) -> web.StreamResponse:
        import base64
        b = self._builder()
        q = request.query
        if q.get("version", "1") == "2":
            raise InvalidArgument("BuildKit (version=2) is not supported: berth builds with the "
                                  "classic builder's API (DOCKER_BUILDKIT=0)")
        if q.get("remote"):
            raise InvalidArgument("building from a remote context is not supported: send the "
                                  "context as a tar stream")

        def js(name: str, default: Any) -> Any:
            raw = q.get(name)
            if not raw:
                return default
            try:
                return json.loads(raw)
            except ValueError:
                raise InvalidArgument(f"invalid {name}: not JSON") from None
        auth: dict[str, Any] = {}
        hdr = request.headers.get("X-Registry-Config")
        if hdr:
            try:
                auth = json.loads(base64.urlsafe_b64decode(hdr + "=" * (-len(hdr) % 4)))
            except ValueError:
                raise InvalidArgument("invalid X-Registry-Config header") from None
        secrets_hdr = request.headers.get("X-Berth-Build-Secrets")
        secrets: dict[str, bytes] = {}
        if secrets_hdr:
            try:
                secrets = {k: base64.b64decode(v) for k, v in json.loads(
                    base64.b64decode(secrets_hdr)).items()}
            except ValueError:
                raise InvalidArgument("invalid X-Berth-Build-Secrets header") from None
        # `allow`: the entitlements the build asks for (berth's own parameter; the classic
        # builder's API has none). Either repeated (allow=network.host&allow=...) or one JSON
        # list (allow=["network.host"]); both forms may be mixed.
        allow: list[str] = []
        for raw in q.getall("allow", []):
            if raw.lstrip().startswith("["):
                try:
                    names = json.loads(raw)
                except ValueError:
                    raise InvalidArgument("invalid allow: not a JSON list") from None
                if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
                    raise InvalidArgument("invalid allow: not a JSON list of names")
                allow += names
            elif raw:
                allow.append(raw)
        opts = BuildOptions(
            allow=check_entitlements(allow),
            tags=q.getall("t", []), dockerfile=q.get("dockerfile", "") or "Dockerfile",
            buildargs=js("buildargs", {}), labels=js("labels", {}), target=q.get("target", ""),
            nocache=qbool(request, "nocache"), pull=qbool(request, "pull"),
            quiet=qbool(request, "q"), cachefrom=js("cachefrom", []),
            network=q.get("networkmode", ""), platform=q.get("platform", ""),
            rm=q.get("rm", "1") not in ("0", "false", "False"),
            forcerm=qbool(request, "forcerm"), secrets=secrets,
            registry_auth=auth if isinstance(auth, dict) else {})
        for t in opts.tags:
            from berth import reference
            r = reference.parse(t)
            if r.digest:
                raise InvalidArgument(f"invalid tag {t!r}: a tag cannot hold a digest")
        loop = asyncio.get_running_loop()
        reader = SyncReader(request, loop)
        resp = self._stream(request)
        await resp.prepare(request)

        async def send(m: dict[str, Any]) -> None:
            if opts.quiet and "stream" in m and not m["stream"].startswith("sha256:"):
                return
            await resp.write(json.dumps(m).encode() + b"\r\n")
        image_id = ""
        try:
            async for m in b.build(reader, opts):  # type: ignore[arg-type]
                if "aux" in m:
                    image_id = m["aux"].get("ID", "")
                await send(m)
            if opts.quiet and image_id:
                await resp.write(json.dumps({"stream": image_id + "\n"}).encode() + b"\r\n")
        except BerthError as e:
            code = getattr(e, "code", 1)
            await resp.write(json.dumps({"errorDetail": {"code": code, "message": e.message},
                                         "error": e.message}).encode() + b"\r\n")
        except (ConnectionResetError, asyncio.CancelledError):
            raise
        except Exception as e:  # noqa: BLE001 - the stream has begun: the error goes in it
            log.exception("build failed")
            msg = str(e) or type(e).__name__
            await resp.write(json.dumps({"errorDetail": {"message": msg},
                                         "error": msg}).encode() + b"\r\n")
        await resp.write_eof()
        return resp

    async def build_prune(self, request: web.Request) -> web.StreamResponse:
        return json_response(await asyncio.to_thread(self._builder().prune))

    async def commit(self, request: web.Request) -> web.StreamResponse:
        q = request.query
        body = await self._body(request)
        image_id = await self._builder().commit(
            q.get("container", ""), repo=q.get("repo", ""), tag=q.get("tag", ""),
            comment=q.get("comment", ""), author=q.get("author", ""),
            changes=q.getall("changes", []), config=body if isinstance(body, dict) else None,
            pause=q.get("pause", "1") not in ("0", "false", "False"))
        self.events.publish("container", "commit", q.get("container", ""), {})
        return json_response({"Id": image_id}, 201)

    async def container_changes(self, request: web.Request) -> web.StreamResponse:
        return json_response(await asyncio.to_thread(self._builder().changes,
                                                     request.match_info["id"]) or None)

    async def auth(self, request: web.Request) -> web.StreamResponse:
        if self.distribution is None:
            raise NotFound("this daemon has no registry client")
        body = await self._body(request)
        await self.distribution.registry.login(AuthConfig.from_dict(body))
        return json_response({"Status": "Login Succeeded", "IdentityToken": ""})

    async def image_list(self, request: web.Request) -> web.StreamResponse:
        return json_response(self.images.list(all_=qbool(request, "all"),
                                              filters=parse_filters(request.query.get("filters"))))

    async def image_inspect(self, request: web.Request) -> web.StreamResponse:
        return json_response(self.images.inspect(request.match_info["name"]))

    async def image_history(self, request: web.Request) -> web.StreamResponse:
        return json_response(self.images.history(request.match_info["name"]))

    async def image_tag(self, request: web.Request) -> web.StreamResponse:
        repo = request.query.get("repo", "")
        if not repo:
            raise InvalidArgument("repository name cannot be empty")
        self.images.tag(request.match_info["name"], repo, request.query.get("tag", ""))
        self.events.publish("image", "tag", self.images.resolve(request.match_info["name"]).id,
                             {"name": repo})
        return web.Response(status=201)

    async def image_delete(self, request: web.Request) -> web.StreamResponse:
        res = await asyncio.to_thread(self.images.remove, request.match_info["name"],
                                      force=qbool(request, "force"))
        for r in res:
            if "Untagged" in r:
                self.events.publish("image", "untag", r["Untagged"], {})
            else:
                self.events.publish("image", "delete", r["Deleted"], {})
        return json_response(res)

    async def image_prune(self, request: web.Request) -> web.StreamResponse:
        f = parse_filters(request.query.get("filters"))
        all_ = any(v.lower() in ("false", "0") for v in f.get("dangling", []))
        return json_response(await asyncio.to_thread(self.images.prune, all_=all_))

    async def image_save(self, request: web.Request) -> web.StreamResponse:
        return await self._save(request, request.query.getall("names", []))

    async def image_save_one(self, request: web.Request) -> web.StreamResponse:
        return await self._save(request, [request.match_info["name"]])

    async def _save(self, request: web.Request, names: list[str]) -> web.StreamResponse:
        if not names:
            raise InvalidArgument("no image names given")
        for n in names:
            self.images.resolve(n)  # a 404 before the stream starts
        resp = self._stream(request, "application/x-tar")
        await resp.prepare(request)
        loop = asyncio.get_running_loop()
        w = SyncWriter(resp, loop)

        def run() -> None:
            self.images.save(names, w)  # type: ignore[arg-type]
            w.flush()
        await asyncio.to_thread(run)
        await resp.write_eof()
        for n in names:
            self.events.publish("image", "save", self.images.resolve(n).id, {"name": n})
        return resp

    async def image_load(self, request: web.Request) -> web.StreamResponse:
        loop = asyncio.get_running_loop()
        reader = SyncReader(request, loop)
        error = ""
        try:
            lines = await asyncio.to_thread(lambda: list(self.images.load(reader)))  # type: ignore[arg-type]
        except InvalidArgument as e:
            # as dockerd: a bad archive is a 200 whose stream carries the error (the docker
            # CLI prints it as it is; docker-py raises ImageLoadError)
            lines, error = [], e.message
        resp = self._stream(request)
        await resp.prepare(request)
        for line in lines:
            await resp.write((json.dumps({"stream": line + "\n"}) + "\r\n").encode())
        if error:
            await resp.write((json.dumps({"errorDetail": {"message": error},
                                          "error": error}) + "\r\n").encode())
        else:
            self.events.publish("image", "load", "", {})
        await resp.write_eof()
        return resp

    # --- containers -------------------------------------------------------------------------
    async def container_create(self, request: web.Request) -> web.StreamResponse:
        body = await self._body(request)
        cid, warnings = await self.containers.create(body, request.query.get("name", ""))
        return json_response({"Id": cid, "Warnings": warnings}, 201)

    async def container_list(self, request: web.Request) -> web.StreamResponse:
        return json_response(self.containers.list(
            all_=qbool(request, "all"), limit=qint(request, "limit", -1) or -1,
            size=qbool(request, "size"), filters=parse_filters(request.query.get("filters"))))

    async def container_inspect(self, request: web.Request) -> web.StreamResponse:
        return json_response(self.containers.inspect(request.match_info["id"],
                                                     size=qbool(request, "size")))

    async def container_start(self, request: web.Request) -> web.StreamResponse:
        await self.containers.start(request.match_info["id"])
        return web.Response(status=204)

    async def container_stop(self, request: web.Request) -> web.StreamResponse:
        await self.containers.stop(request.match_info["id"], qint(request, "t"),
                                   request.query.get("signal"))
        return web.Response(status=204)

    async def container_restart(self, request: web.Request) -> web.StreamResponse:
        await self.containers.restart(request.match_info["id"], qint(request, "t"),
                                      request.query.get("signal"))
        return web.Response(status=204)

    async def container_kill(self, request: web.Request) -> web.StreamResponse:
        await self.containers.kill(request.match_info["id"], request.query.get("signal"))
        return web.Response(status=204)

    async def container_rename(self, request: web.Request) -> web.StreamResponse:
        await self.containers.rename(request.match_info["id"], request.query.get("name", ""))
        return web.Response(status=204)

    @staticmethod
    def _size(request: web.Request) -> tuple[int, int]:
        h, w = qint(request, "h", 0), qint(request, "w", 0)
        if not h or not w or h < 0 or w < 0:
            raise InvalidArgument("Bad parameters: h and w are required")
        return h, w

    async def container_resize(self, request: web.Request) -> web.StreamResponse:
        self.containers.resize(request.match_info["id"], *self._size(request))
        return web.Response(status=200)

    async def container_delete(self, request: web.Request) -> web.StreamResponse:
        await self.containers.remove(request.match_info["id"], force=qbool(request, "force"),
                                     volumes=qbool(request, "v"))
        return web.Response(status=204)

    async def container_prune(self, request: web.Request) -> web.StreamResponse:
        return json_response(await self.containers.prune(
            parse_filters(request.query.get("filters"))))

    async def container_wait(self, request: web.Request) -> web.StreamResponse:
        cid = self.containers.prepare_wait(request.match_info["id"])
        condition = request.query.get("condition", "not-running")
        if condition not in ("not-running", "next-exit", "removed", ""):
            raise InvalidArgument(f"invalid condition: {condition!r}")
        # the headers go out at once: the docker CLI waits for them before it starts
        resp = self._stream(request)
        await resp.prepare(request)
        result = await self.containers.wait(cid, condition)
        # `docker run -d` registers its wait and hangs up: nobody may be listening any more
        with contextlib.suppress(ConnectionResetError):
            await resp.write(json.dumps(result).encode() + b"\n")
            await resp.write_eof()
        return resp

    async def container_logs(self, request: web.Request) -> web.StreamResponse:
        doc = self.containers.inspect(request.match_info["id"])
        stdout, stderr = qbool(request, "stdout"), qbool(request, "stderr")
        if not stdout and not stderr:
            raise InvalidArgument("Bad parameters: you must choose at least one stream")
        tty = doc["Config"]["Tty"]
        entries = self.containers.logs(
            doc["Id"], follow=qbool(request, "follow"), stdout=stdout, stderr=stderr,
            since=float(request.query.get("since") or 0),
            until=float(request.query.get("until") or 0),
            tail=request.query.get("tail", "all"), timestamps=qbool(request, "timestamps"))
        resp = self._stream(request, "application/vnd.docker.raw-stream" if tty
                            else "application/vnd.docker.multiplexed-stream")
        await resp.prepare(request)
        # a client that hangs up in the middle of `logs -f` ends only its own stream
        with contextlib.suppress(ConnectionResetError):
            async for stream, data in entries:
                await resp.write(data if tty else frame(stream, data))
            await resp.write_eof()
        return resp

    @staticmethod
    def _detach_keys(spec: str | None) -> bytes:
        try:
            return parse_detach_keys(spec or "ctrl-p,ctrl-q")
        except ValueError as e:
            raise InvalidArgument(str(e)) from None

    def _upgrade_response(self, request: web.Request, tty: bool) -> web.StreamResponse:
        upgrade = "upgrade" in request.headers.get("Connection", "").lower()
        resp = self._stream(request, "application/vnd.docker.raw-stream" if tty
                            else "application/vnd.docker.multiplexed-stream",
                            101 if upgrade else 200)
        if upgrade:
            resp.headers["Connection"] = "Upgrade"
            resp.headers["Upgrade"] = "tcp"
        resp.force_close()
        return resp

    @staticmethod
    async def _pump(conn: Hijacked, att: Attachment, *, tty: bool, stdin: bool,
                    keys: bytes) -> None:
        """Output to the client, its input to the process, until the process ends, the client
        goes, or it types the detach keys (the process goes on)."""
        async def output() -> None:
            async for stream, data in att.output():
                if not await conn.write(data if tty else frame(stream, data)):
                    return

        async def input_() -> None:
            scan = DetachScanner(keys)
            while True:
                data = await conn.read_stdin()
                if not data:
                    if stdin and not conn.lost.is_set():
                        await att.end_stdin()
                    if conn.lost.is_set():
                        return
                    await conn.lost.wait()
                    return
                if not stdin:
                    continue
                data, detached = scan.feed(data)
                if data:
                    await att.send_stdin(data)
                if detached:
                    return
        out_task = asyncio.ensure_future(output())
        in_task = asyncio.ensure_future(input_())
        # a client that stopped taking output is dropped, even while a write to it waits
        cut_task = asyncio.ensure_future(att.cut_off())
        tasks = (out_task, in_task, cut_task)
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for t in tasks:
                t.cancel()
            for t in tasks:
                with contextlib.suppress(BaseException):
                    await t
            att.close()
            if cut_task.done() and not cut_task.cancelled():
                conn.abort()
            else:
                conn.close()

    async def container_attach(self, request: web.Request) -> web.StreamResponse:
        doc = self.containers.inspect(request.match_info["id"])
        if not qbool(request, "stream") and not qbool(request, "logs"):
            raise InvalidArgument("Bad parameters: must set stream or logs")
        keys = self._detach_keys(request.query.get("detachKeys"))
        tty = doc["Config"]["Tty"]
        att = self.containers.attach(doc["Id"], stdout=qbool(request, "stdout"),
                                     stderr=qbool(request, "stderr"), logs=qbool(request, "logs"))
        if not qbool(request, "stream"):
            att.close()
            att.queue.put_nowait(None)
        resp = self._upgrade_response(request, tty)
        conn = await hijack(request, resp)
        await self._pump(conn, att, tty=tty, stdin=qbool(request, "stdin"), keys=keys)
        return resp

    async def container_stats(self, request: web.Request) -> web.StreamResponse:
        cid = self.containers.resolve(request.match_info["id"])["Id"]
        stream = qbool(request, "stream", True) and not qbool(request, "one-shot")
        resp = self._stream(request)
        await resp.prepare(request)
        prev = self.containers.stats(cid)
        if not stream and not qbool(request, "one-shot"):
            await asyncio.sleep(1)  # one sample with a CPU delta, as docker stats --no-stream
        try:
            while True:
                cur = (self.containers.stats(cid) if self.containers._docs.get(cid)
                       else prev)
                cur["precpu_stats"] = prev["cpu_stats"]
                cur["preread"] = prev["read"]
                await resp.write(json.dumps(cur).encode() + b"\n")
                if not stream or cid not in self.containers._docs:
                    break
                prev = cur
                await asyncio.sleep(1)
            await resp.write_eof()
        except ConnectionResetError:
            pass
        return resp

    async def container_top(self, request: web.Request) -> web.StreamResponse:
        return json_response(await asyncio.to_thread(
            self.containers.top, request.match_info["id"],
            request.query.get("ps_args") or "-ef"))

    async def container_pause(self, request: web.Request) -> web.StreamResponse:
        await self.containers.pause(request.match_info["id"])
        return web.Response(status=204)

    async def container_unpause(self, request: web.Request) -> web.StreamResponse:
        await self.containers.unpause(request.match_info["id"])
        return web.Response(status=204)

    async def container_update(self, request: web.Request) -> web.StreamResponse:
        warnings = await self.containers.update(request.match_info["id"],
                                                await self._body(request))
        return json_response({"Warnings": warnings})

    # --- networks ---------------------------------------------------------------------------
    def _nets(self) -> Any:
        if self.containers.networks is None:
            raise NotFound("networks are not set up")
        return self.containers.networks

    async def network_list(self, request: web.Request) -> web.StreamResponse:
        return json_response(self._nets().list(parse_filters(request.query.get("filters"))))

    async def network_inspect(self, request: web.Request) -> web.StreamResponse:
        return json_response(self._nets().inspect(request.match_info["id"]))

    async def network_create(self, request: web.Request) -> web.StreamResponse:
        b = await self._body(request)
        cfg = ((b.get("IPAM") or {}).get("Config") or [{}])
        c = cfg[0] if cfg else {}
        doc = await asyncio.to_thread(
            self._nets().create, b.get("Name") or "", driver=b.get("Driver") or "bridge",
            subnet=c.get("Subnet", ""), gateway=c.get("Gateway", ""),
            ip_range=c.get("IPRange", ""), internal=bool(b.get("Internal")),
            options=b.get("Options") or {}, labels=b.get("Labels") or {})
        self.events.publish("network", "create", doc["Id"], {"name": doc["Name"],
                                                             "type": doc["Driver"]})
        return json_response({"Id": doc["Id"], "Warning": ""}, 201)

    async def network_delete(self, request: web.Request) -> web.StreamResponse:
        doc = self._nets().resolve(request.match_info["id"])
        await asyncio.to_thread(self._nets().remove, doc["Id"],
                                self.containers.network_users(doc["Name"]))
        self.events.publish("network", "destroy", doc["Id"], {"name": doc["Name"]})
        return web.Response(status=204)

    async def network_prune(self, request: web.Request) -> web.StreamResponse:
        deleted = await asyncio.to_thread(self._nets().prune, self.containers.network_users,
                                          parse_filters(request.query.get("filters")))
        for doc in deleted:
            self.events.publish("network", "destroy", doc["Id"], {"name": doc["Name"]})
        return json_response({"NetworksDeleted": [d["Name"] for d in deleted] or None})

    async def network_connect(self, request: web.Request) -> web.StreamResponse:
        b = await self._body(request)
        await self.containers.connect(request.match_info["id"], b.get("Container", ""),
                                      b.get("EndpointConfig") or {})
        return web.Response(status=200)

    async def network_disconnect(self, request: web.Request) -> web.StreamResponse:
        b = await self._body(request)
        await self.containers.disconnect(request.match_info["id"], b.get("Container", ""),
                                         force=bool(b.get("Force")))
        return web.Response(status=200)

    # --- volumes ----------------------------------------------------------------------------
    async def volume_list(self, request: web.Request) -> web.StreamResponse:
        return json_response(self.containers.volumes.list(
            parse_filters(request.query.get("filters"))))

    async def volume_create(self, request: web.Request) -> web.StreamResponse:
        b = await self._body(request)
        doc = self.containers.volumes.create(
            b.get("Name") or "", driver=b.get("Driver") or "local",
            options=b.get("DriverOpts") or {}, labels=b.get("Labels") or {})
        self.events.publish("volume", "create", doc["Name"], {"driver": doc["Driver"]})
        return json_response(doc, 201)

    async def volume_inspect(self, request: web.Request) -> web.StreamResponse:
        return json_response(self.containers.volumes.get(request.match_info["name"]))

    async def volume_delete(self, request: web.Request) -> web.StreamResponse:
        self.containers.volumes.remove(request.match_info["name"], force=qbool(request, "force"))
        self.events.publish("volume", "destroy", request.match_info["name"], {})
        return web.Response(status=204)

    async def volume_prune(self, request: web.Request) -> web.StreamResponse:
        return json_response(await asyncio.to_thread(
            self.containers.volumes.prune, parse_filters(request.query.get("filters"))))

    # --- exec -------------------------------------------------------------------------------
    async def exec_create(self, request: web.Request) -> web.StreamResponse:
        body = await self._body(request)
        return json_response({"Id": self.execs.create(request.match_info["id"], body)}, 201)

    async def exec_inspect(self, request: web.Request) -> web.StreamResponse:
        return json_response(self.execs.inspect(request.match_info["id"]))

    async def exec_resize(self, request: web.Request) -> web.StreamResponse:
        self.execs.resize(request.match_info["id"], *self._size(request))
        return web.Response(status=200)

    async def exec_start(self, request: web.Request) -> web.StreamResponse:
        body = await self._body(request)
        eid = request.match_info["id"]
        info = self.execs.inspect(eid)
        tty = bool(body.get("Tty", info["ProcessConfig"]["tty"]))
        size = body.get("ConsoleSize")
        if body.get("Detach"):
            try:
                await self.execs.start(eid, console_size=size)
            except ExecStartError as e:
                raise InvalidArgument(str(e)) from None
            return web.Response(status=200)
        keys = self._detach_keys(info["DetachKeys"])
        att = self.execs.attach(eid)
        resp = self._upgrade_response(request, tty)
        conn = await hijack(request, resp)
        try:
            await self.execs.start(eid, console_size=size)
        except (ExecStartError, BerthError) as e:
            # after the upgrade an error can only go down the stream, as dockerd does
            msg = (str(e) + "\r\n").encode()
            await conn.write(msg if tty else frame(1, msg))
            att.close()
            conn.close()
            return resp
        await self._pump(conn, att, tty=tty, stdin=info["OpenStdin"], keys=keys)
        return resp

    async def container_export(self, request: web.Request) -> web.StreamResponse:
        self.containers.resolve(request.match_info["id"])
        resp = self._stream(request, "application/x-tar")
        await resp.prepare(request)
        loop = asyncio.get_running_loop()
        w = SyncWriter(resp, loop)

        def run() -> None:
            self.containers.export(request.match_info["id"], w)  # type: ignore[arg-type]
            w.flush()
        await asyncio.to_thread(run)
        await resp.write_eof()
        return resp


def _goarch() -> str:
    from berth.images import host_arch
    return host_arch()


__all__ = ["Api", "API_VERSION", "MIN_API_VERSION", "ENGINE_VERSION", "frame", "parse_filters"]
