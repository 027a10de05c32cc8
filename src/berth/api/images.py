"""The image routes: list, inspect, history, tag, remove, prune, save, load, import, and the
distribution ones (pull, push, search, `GET /distribution/{name}/json`, `POST /auth`) with
their JSON progress streams. The services publish the events.

Imports the image service, its distribution service and `errors`.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import json
import logging
from collections.abc import AsyncIterable
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web

from berth import reference
from berth.errors import BerthError, InvalidArgument, NotFound
from berth.images import (
    HistoryLine,
    ImageDetails,
    ImageService,
    ImageSummary,
    Removed,
    RunConfig,
    host_arch,
    rfc3339,
)
from berth.images.distribution import Distribution, Platform, RegistryImage, SearchResult

from .wire import (
    SyncReader,
    SyncWriter,
    error_message,
    filters,
    json_response,
    json_text,
    qbool,
    qint,
    read_json,
    stream_response,
)

log = logging.getLogger(__name__)

# the fields of a container's config that an image's inspect always shows
_RUN_CONFIG_BASE: dict[str, Any] = {
    "Hostname": "",
    "Domainname": "",
    "User": "",
    "AttachStdin": False,
    "AttachStdout": False,
    "AttachStderr": False,
    "Tty": False,
    "OpenStdin": False,
    "StdinOnce": False,
    "Env": None,
    "Cmd": None,
    "Image": "",
    "Volumes": None,
    "WorkingDir": "",
    "Entrypoint": None,
    "OnBuild": None,
    "Labels": None,
}


def summary_json(s: ImageSummary) -> dict[str, Any]:
    """An image of `GET /images/json` (and of `GET /system/df`)."""
    return {
        "Containers": s.containers,
        "Created": s.created,
        "Id": s.id,
        "Labels": dict(s.labels) if s.labels is not None else None,
        "ParentId": "",
        "RepoDigests": s.repo_digests,
        "RepoTags": s.repo_tags,
        "SharedSize": s.shared_size,
        "Size": s.size,
        "VirtualSize": s.size,
    }


def run_config_json(rc: RunConfig) -> dict[str, Any]:
    """An image's `Config` in dockerd's shape: every field of a container's config, what the
    image's document has of the rest as it came."""

    def listed(v: tuple[str, ...] | None) -> list[str] | None:
        return None if v is None else list(v)

    out = {
        **_RUN_CONFIG_BASE,
        **rc.other,
        "User": rc.user,
        "Env": listed(rc.env),
        "Cmd": listed(rc.cmd),
        "Entrypoint": listed(rc.entrypoint),
        "WorkingDir": rc.working_dir,
        "Labels": None if rc.labels is None else dict(rc.labels),
        "Volumes": None if rc.volumes is None else {v: {} for v in rc.volumes},
    }
    if rc.exposed_ports is not None:
        out["ExposedPorts"] = {p: {} for p in rc.exposed_ports}
    if rc.stop_signal is not None:
        out["StopSignal"] = rc.stop_signal
    return out


def inspect_json(d: ImageDetails) -> dict[str, Any]:
    """`GET /images/{name}/json`."""
    img, spec = d.image, d.spec
    out = {
        "Id": img.id,
        "RepoTags": d.repo_tags,
        "RepoDigests": d.repo_digests,
        "Parent": "",
        "Comment": spec.comment,
        "Created": spec.created or rfc3339(img.created),
        "DockerVersion": "",
        "Author": spec.author,
        "Config": run_config_json(spec.config),
        "Architecture": spec.architecture or host_arch(),
        "Os": spec.os or "linux",
        "Size": img.size,
        "VirtualSize": img.size,
        "GraphDriver": {
            "Name": "overlay2",
            "Data": {
                "LowerDir": ":".join(reversed(d.layer_dirs[:-1])) or None,
                "UpperDir": d.layer_dirs[-1] if d.layer_dirs else None,
            },
        },
        "RootFS": {"Type": "layers", "Layers": list(spec.diff_ids)},
        "Metadata": {"LastTagTime": "0001-01-01T00:00:00Z"},
    }
    if spec.variant:
        out["Variant"] = spec.variant
    return out


def removed_json(r: Removed) -> dict[str, str]:
    """A line of `DELETE /images/{name}` (and of the prune's ImagesDeleted)."""
    return {"Deleted": r.ref} if r.deleted else {"Untagged": r.ref}


def platform_json(p: Platform) -> dict[str, Any]:
    """OCI's platform JSON: the fields that are set."""
    out: dict[str, Any] = {
        "architecture": p.architecture,
        "os": p.os,
        "os.version": p.os_version,
        "os.features": list(p.os_features),
        "variant": p.variant,
    }
    return {k: v for k, v in out.items() if v}


def registry_image_json(r: RegistryImage) -> dict[str, Any]:
    """`GET /distribution/{name}/json`."""
    return {
        "Descriptor": {"mediaType": r.media_type, "digest": r.digest, "size": r.size},
        "Platforms": [platform_json(p) for p in r.platforms],
    }


def search_json(r: SearchResult) -> dict[str, Any]:
    """A result of `GET /images/search`."""
    return {
        "name": r.name,
        "description": r.description,
        "star_count": r.star_count,
        "is_official": r.is_official,
        "is_automated": r.is_automated,
    }


def history_json(h: HistoryLine) -> dict[str, Any]:
    """A line of `GET /images/{name}/history`."""
    return {
        "Id": h.id,
        "Created": h.created,
        "CreatedBy": h.created_by,
        "Tags": h.tags,
        "Size": h.size,
        "Comment": h.comment,
    }


async def progress(request: web.Request, messages: AsyncIterable[Any]) -> web.StreamResponse:
    """A JSON message stream. An error before the first message is an HTTP error; a later one
    is an `errorDetail` message, as dockerd writes them."""
    it = aiter(messages)
    try:
        first = await anext(it)
    except StopAsyncIteration:
        first = None
    resp = stream_response()
    await resp.prepare(request)
    try:
        if first is not None:
            await resp.write(json.dumps(first).encode() + b"\r\n")
        async for m in it:
            await resp.write(json.dumps(m).encode() + b"\r\n")
    except BerthError as e:
        await resp.write(error_message(e.message))
    except (ConnectionResetError, asyncio.CancelledError):
        with contextlib.suppress(BaseException):
            await it.aclose()  # type: ignore[attr-defined]
        raise
    except Exception as e:  # noqa: BLE001 - the stream has begun: the error goes in it
        log.exception("%s %s failed", request.method, request.path)
        await resp.write(error_message(str(e) or type(e).__name__))
    await resp.write_eof()
    return resp


def check_server_address(server: str) -> None:
    """A login's registry, as `docker login` names it (`host[:port]`, or a URL of one): a
    client's text that is no host name is refused here, before it becomes a URL."""
    s = server.strip()
    try:
        if "://" in s:
            s = urlsplit(s).netloc
        domain = s.rstrip("/").split("/", 1)[0]
        if domain:
            reference.parse(domain.lower() + "/x")
    except (ValueError, InvalidArgument):
        raise InvalidArgument(f"invalid registry address: {server!r}") from None


class ImageHandlers:
    def __init__(self, images: ImageService, distribution: Distribution | None) -> None:
        self.images = images
        self._distribution = distribution

    def _dist(self) -> Distribution:
        if self._distribution is None:
            raise NotFound("this daemon has no registry client")
        return self._distribution

    # --- distribution -----------------------------------------------------------------------
    async def create(self, request: web.Request) -> web.StreamResponse:
        """`POST /images/create`: a pull (fromImage) or an import (fromSrc=-)."""
        q = request.query
        if q.get("fromSrc") is None:
            if not q.get("fromImage"):
                raise InvalidArgument("fromImage or fromSrc is required")
            dist = self._dist()
            return await progress(
                request,
                dist.pull(
                    q["fromImage"],
                    q.get("tag", ""),
                    platform=q.get("platform", ""),
                    auth=dist.credentials(request.headers.get("X-Registry-Auth")),
                ),
            )
        if q["fromSrc"] != "-":
            raise InvalidArgument("importing from a URL is not supported: use fromSrc=-")
        reader = SyncReader(request, asyncio.get_running_loop())
        # errors before the stream starts are plain HTTP errors, as in Docker
        image_id = await asyncio.to_thread(
            self.images.import_,
            reader,  # type: ignore[arg-type]
            repo=q.get("repo", ""),
            tag=q.get("tag", ""),
            changes=q.getall("changes", []),
            message=q.get("message", ""),
        )
        resp = stream_response()
        await resp.prepare(request)
        await resp.write((json.dumps({"status": image_id}) + "\r\n").encode())
        await resp.write_eof()
        return resp

    async def search(self, request: web.Request) -> web.StreamResponse:
        dist = self._dist()
        term = request.query.get("term", "")
        if not term:
            raise InvalidArgument("term is required")
        found = await dist.search(
            term,
            limit=qint(request, "limit", 25) or 25,
            filters=filters(request),
            auth=dist.credentials(request.headers.get("X-Registry-Auth")),
        )
        return json_response([search_json(r) for r in found])

    async def distribution_inspect(self, request: web.Request) -> web.StreamResponse:
        dist = self._dist()
        return json_response(
            registry_image_json(
                await dist.inspect(
                    request.match_info["name"],
                    auth=dist.credentials(request.headers.get("X-Registry-Auth")),
                )
            )
        )

    async def push(self, request: web.Request) -> web.StreamResponse:
        dist = self._dist()
        return await progress(
            request,
            dist.push(
                request.match_info["name"],
                request.query.get("tag", ""),
                auth=dist.credentials(request.headers.get("X-Registry-Auth")),
            ),
        )

    async def auth(self, request: web.Request) -> web.StreamResponse:
        dist = self._dist()
        body = await read_json(request)
        server = next((v for k, v in body.items() if k.lower() == "serveraddress"), None)
        check_server_address(json_text(server, "serveraddress"))
        await dist.login(body)
        return json_response({"Status": "Login Succeeded", "IdentityToken": ""})

    # --- local images -----------------------------------------------------------------------
    async def list(self, request: web.Request) -> web.StreamResponse:
        images = await asyncio.to_thread(
            self.images.list, all_=qbool(request, "all"), filters=filters(request)
        )
        return json_response([summary_json(s) for s in images])

    async def inspect(self, request: web.Request) -> web.StreamResponse:
        return json_response(
            inspect_json(await asyncio.to_thread(self.images.inspect, request.match_info["name"]))
        )

    async def history(self, request: web.Request) -> web.StreamResponse:
        lines = await asyncio.to_thread(self.images.history, request.match_info["name"])
        return json_response([history_json(h) for h in lines])

    async def tag(self, request: web.Request) -> web.StreamResponse:
        repo = request.query.get("repo", "")
        if not repo:
            raise InvalidArgument("repository name cannot be empty")
        await asyncio.to_thread(
            self.images.tag, request.match_info["name"], repo, request.query.get("tag", "")
        )
        return web.Response(status=201)

    async def delete(self, request: web.Request) -> web.StreamResponse:
        removed = await asyncio.to_thread(
            self.images.remove, request.match_info["name"], force=qbool(request, "force")
        )
        return json_response([removed_json(r) for r in removed])

    async def prune(self, request: web.Request) -> web.StreamResponse:
        f = filters(request)
        all_ = any(v.lower() in ("false", "0") for v in f.get("dangling", []))
        removed = await asyncio.to_thread(self.images.prune, all_=all_)
        # the layers' bytes are not counted (SpaceReclaimed 0)
        return json_response(
            {"ImagesDeleted": [removed_json(r) for r in removed] or None, "SpaceReclaimed": 0}
        )

    async def save(self, request: web.Request) -> web.StreamResponse:
        return await self._save(request, request.query.getall("names", []))

    async def save_one(self, request: web.Request) -> web.StreamResponse:
        return await self._save(request, [request.match_info["name"]])

    async def _save(self, request: web.Request, names: builtins.list[str]) -> web.StreamResponse:
        if not names:
            raise InvalidArgument("no image names given")
        for n in names:
            await asyncio.to_thread(self.images.resolve, n)  # a 404 before the stream starts
        resp = stream_response("application/x-tar")
        await resp.prepare(request)
        w = SyncWriter(resp, asyncio.get_running_loop())

        def run() -> None:
            self.images.save(names, w)  # type: ignore[arg-type]
            w.flush()

        await asyncio.to_thread(run)
        await resp.write_eof()
        return resp

    async def load(self, request: web.Request) -> web.StreamResponse:
        reader = SyncReader(request, asyncio.get_running_loop())
        error = ""
        try:
            lines = await asyncio.to_thread(lambda: [*self.images.load(reader)])  # type: ignore[arg-type]
        except InvalidArgument as e:
            # as dockerd: a bad archive is a 200 whose stream carries the error (the docker
            # CLI prints it as it is; docker-py raises ImageLoadError)
            lines, error = [], e.message
        resp = stream_response()
        await resp.prepare(request)
        for line in lines:
            await resp.write((json.dumps({"stream": line + "\n"}) + "\r\n").encode())
        if error:
            await resp.write(error_message(error))
        await resp.write_eof()
        return resp


__all__ = [
    "ImageHandlers",
    "history_json",
    "inspect_json",
    "platform_json",
    "progress",
    "registry_image_json",
    "removed_json",
    "run_config_json",
    "search_json",
    "summary_json",
]
