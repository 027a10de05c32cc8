"""The container routes: create, list, inspect, the lifecycle verbs, wait, logs, attach, stats,
top, update, export. Each parses its request, calls the containers service, writes the reply.

Imports the containers service and `errors`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json

from aiohttp import web

from berth.containers import ContainerService
from berth.errors import InvalidArgument

from . import archive, websocket
from .containers_wire import (
    container_inspect,
    container_stats,
    container_summary,
    create_request,
    update_request,
)
from .hijack import detach_keys, hijack, pump, upgrade_response
from .wire import (
    SyncWriter,
    filters,
    frame,
    json_response,
    qbool,
    qint,
    qsize,
    read_json,
    stream_response,
)


class ContainerHandlers:
    def __init__(self, containers: ContainerService) -> None:
        self.containers = containers

    async def create(self, request: web.Request) -> web.StreamResponse:
        req = create_request(await read_json(request))
        cid, warnings = await self.containers.create(req, request.query.get("name", ""))
        return json_response({"Id": cid, "Warnings": warnings}, 201)

    async def list(self, request: web.Request) -> web.StreamResponse:
        return json_response(
            [
                container_summary(v)
                for v in self.containers.list(
                    all_=qbool(request, "all"),
                    limit=qint(request, "limit", -1) or -1,
                    size=qbool(request, "size"),
                    filters=filters(request),
                )
            ]
        )

    async def inspect(self, request: web.Request) -> web.StreamResponse:
        return json_response(
            container_inspect(
                self.containers.inspect(request.match_info["id"], size=qbool(request, "size"))
            )
        )

    async def start(self, request: web.Request) -> web.StreamResponse:
        await self.containers.start(request.match_info["id"])
        return web.Response(status=204)

    async def stop(self, request: web.Request) -> web.StreamResponse:
        await self.containers.stop(
            request.match_info["id"], qint(request, "t"), request.query.get("signal")
        )
        return web.Response(status=204)

    async def restart(self, request: web.Request) -> web.StreamResponse:
        await self.containers.restart(
            request.match_info["id"], qint(request, "t"), request.query.get("signal")
        )
        return web.Response(status=204)

    async def kill(self, request: web.Request) -> web.StreamResponse:
        await self.containers.kill(request.match_info["id"], request.query.get("signal"))
        return web.Response(status=204)

    async def rename(self, request: web.Request) -> web.StreamResponse:
        await self.containers.rename(request.match_info["id"], request.query.get("name", ""))
        return web.Response(status=204)

    async def resize(self, request: web.Request) -> web.StreamResponse:
        self.containers.resize(request.match_info["id"], *qsize(request))
        return web.Response(status=200)

    async def delete(self, request: web.Request) -> web.StreamResponse:
        await self.containers.remove(
            request.match_info["id"],
            force=qbool(request, "force"),
            volumes=qbool(request, "v"),
            link=qbool(request, "link"),
        )
        return web.Response(status=204)

    async def prune(self, request: web.Request) -> web.StreamResponse:
        deleted = await self.containers.prune(filters(request))
        return json_response({"ContainersDeleted": deleted or None, "SpaceReclaimed": 0})

    async def wait(self, request: web.Request) -> web.StreamResponse:
        cid = self.containers.prepare_wait(request.match_info["id"])
        condition = request.query.get("condition", "not-running")
        if condition not in ("not-running", "next-exit", "removed", ""):
            raise InvalidArgument(f"invalid condition: {condition!r}")
        # the headers go out at once: the docker CLI waits for them before it starts
        resp = stream_response()
        await resp.prepare(request)
        res = await self.containers.wait(cid, condition)
        result = {"StatusCode": res.code, "Error": {"Message": res.error} if res.error else None}
        # `docker run -d` registers its wait and hangs up: nobody may be listening any more
        with contextlib.suppress(ConnectionResetError):
            await resp.write(json.dumps(result).encode() + b"\n")
            await resp.write_eof()
        return resp

    async def logs(self, request: web.Request) -> web.StreamResponse:
        doc = self.containers.resolve(request.match_info["id"])
        stdout, stderr = qbool(request, "stdout"), qbool(request, "stderr")
        if not stdout and not stderr:
            raise InvalidArgument("Bad parameters: you must choose at least one stream")
        tty = doc.config.tty
        entries = self.containers.logs(
            doc.id,
            follow=qbool(request, "follow"),
            stdout=stdout,
            stderr=stderr,
            since=float(request.query.get("since") or 0),
            until=float(request.query.get("until") or 0),
            tail=request.query.get("tail", "all"),
            timestamps=qbool(request, "timestamps"),
        )
        resp = stream_response(
            "application/vnd.docker.raw-stream"
            if tty
            else "application/vnd.docker.multiplexed-stream"
        )
        await resp.prepare(request)
        # a client that hangs up in the middle of `logs -f` ends only its own stream
        with contextlib.suppress(ConnectionResetError):
            async for stream, data in entries:
                await resp.write(data if tty else frame(stream, data))
            await resp.write_eof()
        return resp

    async def attach(self, request: web.Request) -> web.StreamResponse:
        doc = self.containers.resolve(request.match_info["id"])
        if not qbool(request, "stream") and not qbool(request, "logs"):
            raise InvalidArgument("Bad parameters: must set stream or logs")
        keys = detach_keys(request.query.get("detachKeys"))
        tty = doc.config.tty
        att = self.containers.attach(
            doc.id,
            stdout=qbool(request, "stdout"),
            stderr=qbool(request, "stderr"),
            logs=qbool(request, "logs"),
        )
        if not qbool(request, "stream"):
            att.close()
            att.queue.put_nowait(None)
        resp = upgrade_response(request, tty)
        conn = await hijack(request, resp)
        await pump(conn, att, tty=tty, stdin=qbool(request, "stdin"), keys=keys)
        return resp

    async def archive_head(self, request: web.Request) -> web.StreamResponse:
        return await archive.archive_head(request, service=self.containers)

    async def archive_get(self, request: web.Request) -> web.StreamResponse:
        return await archive.archive_get(request, service=self.containers)

    async def archive_put(self, request: web.Request) -> web.StreamResponse:
        return await archive.archive_put(request, service=self.containers)

    async def attach_ws(self, request: web.Request) -> web.StreamResponse:
        return await websocket.attach_ws(request, self.containers)

    async def stats(self, request: web.Request) -> web.StreamResponse:
        cid = self.containers.resolve(request.match_info["id"]).id
        stream = qbool(request, "stream", True) and not qbool(request, "one-shot")
        resp = stream_response()
        await resp.prepare(request)
        prev = self.containers.stats(cid)
        if not stream and not qbool(request, "one-shot"):
            await asyncio.sleep(1)  # one sample with a CPU delta, as docker stats --no-stream
        try:
            while True:
                cur = self.containers.stats(cid) if self.containers.exists(cid) else prev
                await resp.write(json.dumps(container_stats(cur, prev)).encode() + b"\n")
                if not stream or not self.containers.exists(cid):
                    break
                prev = cur
                await asyncio.sleep(1)
            await resp.write_eof()
        except ConnectionResetError:
            pass
        return resp

    async def top(self, request: web.Request) -> web.StreamResponse:
        table = await asyncio.to_thread(
            self.containers.top, request.match_info["id"], request.query.get("ps_args") or "-ef"
        )
        return json_response({"Titles": table.titles, "Processes": table.processes})

    async def pause(self, request: web.Request) -> web.StreamResponse:
        await self.containers.pause(request.match_info["id"])
        return web.Response(status=204)

    async def unpause(self, request: web.Request) -> web.StreamResponse:
        await self.containers.unpause(request.match_info["id"])
        return web.Response(status=204)

    async def update(self, request: web.Request) -> web.StreamResponse:
        warnings = await self.containers.update(
            request.match_info["id"], update_request(await read_json(request))
        )
        return json_response({"Warnings": warnings})

    async def export(self, request: web.Request) -> web.StreamResponse:
        self.containers.resolve(request.match_info["id"])
        resp = stream_response("application/x-tar")
        await resp.prepare(request)
        w = SyncWriter(resp, asyncio.get_running_loop())

        def run() -> None:
            self.containers.export(request.match_info["id"], w)  # type: ignore[arg-type]
            w.flush()

        await asyncio.to_thread(run)
        await resp.write_eof()
        return resp


__all__ = ["ContainerHandlers"]
