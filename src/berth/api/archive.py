"""`HEAD`, `GET` and `PUT /containers/{id}/archive`: what `docker cp` and docker-py's
get_archive/put_archive call. The work is `berth.containers.archive`'s, in a worker thread."""

from __future__ import annotations

import asyncio
import base64
import datetime
import json
from typing import Any

from aiohttp import web

from berth.containers import ContainerService
from berth.containers.archive import ArchiveService, PathStat
from berth.errors import InvalidArgument

from .wire import SyncReader, SyncWriter, qbool

STAT_HEADER = "X-Docker-Container-Path-Stat"


def _path(request: web.Request) -> str:
    path = request.query.get("path")
    if not path:
        raise InvalidArgument("bad parameter: path cannot be empty")
    return path


def stat_header(ps: PathStat) -> str:
    """Docker's container.PathStat as JSON, base64 (mtime as Go marshals a time.Time)."""
    mtime = datetime.datetime.fromtimestamp(ps.mtime, datetime.UTC)
    doc = {
        "name": ps.name,
        "size": ps.size,
        "mode": ps.mode,
        "mtime": mtime.isoformat().replace("+00:00", "Z"),
        "linkTarget": ps.link_target,
    }
    return base64.b64encode(json.dumps(doc).encode()).decode()


async def archive_head(request: web.Request, service: ContainerService) -> web.StreamResponse:
    ps = await asyncio.to_thread(
        ArchiveService(service).stat, request.match_info["id"], _path(request)
    )
    return web.Response(
        status=200, headers={STAT_HEADER: stat_header(ps), "Content-Type": "application/json"}
    )


async def archive_get(request: web.Request, service: ContainerService) -> web.StreamResponse:
    loop = asyncio.get_running_loop()
    ref, path = request.match_info["id"], _path(request)
    resp = web.StreamResponse(status=200)
    resp.content_type = "application/x-tar"
    w = SyncWriter(resp, loop)
    started = False

    def on_stat(ps: PathStat) -> None:
        # the walk has found the entry and holds it: now the 200 with its stat
        nonlocal started
        resp.headers[STAT_HEADER] = stat_header(ps)
        asyncio.run_coroutine_threadsafe(resp.prepare(request), loop).result()
        started = True

    def run() -> None:
        ArchiveService(service).archive(ref, path, w, on_stat)  # type: ignore[arg-type]
        w.flush()

    try:
        await asyncio.to_thread(run)
    except Exception:
        if not started:
            raise  # an error response, as usual
        # the 200 is sent: a cut tar is how the client learns of it
        if request.transport is not None:
            request.transport.close()
        raise
    await resp.write_eof()
    return resp


async def archive_put(request: web.Request, service: ContainerService) -> web.StreamResponse:
    reader = SyncReader(request, asyncio.get_running_loop())
    ref, path = request.match_info["id"], _path(request)
    kw: dict[str, Any] = {
        "no_overwrite_dir_non_dir": qbool(request, "noOverwriteDirNonDir"),
        "copy_uid_gid": qbool(request, "copyUIDGID"),
    }
    await asyncio.to_thread(
        ArchiveService(service).extract,
        ref,
        path,
        reader,  # type: ignore[arg-type]
        **kw,
    )
    return web.Response(status=200)


__all__ = ["archive_head", "archive_get", "archive_put", "stat_header", "STAT_HEADER"]
