"""The exec routes: create, inspect, resize, and start (detached, or hijacked like attach).

Imports the exec service and `errors`.
"""

from __future__ import annotations

from aiohttp import web

from berth.containers.execs import ExecService, ExecStartError
from berth.errors import BerthError, InvalidArgument

from .containers_wire import exec_config, exec_inspect
from .hijack import detach_keys, hijack, pump, upgrade_response
from .wire import frame, json_response, qsize, read_json


class ExecHandlers:
    def __init__(self, execs: ExecService) -> None:
        self.execs = execs

    async def create(self, request: web.Request) -> web.StreamResponse:
        config = exec_config(await read_json(request))
        return json_response({"Id": self.execs.create(request.match_info["id"], config)}, 201)

    async def inspect(self, request: web.Request) -> web.StreamResponse:
        return json_response(exec_inspect(self.execs.inspect(request.match_info["id"])))

    async def resize(self, request: web.Request) -> web.StreamResponse:
        self.execs.resize(request.match_info["id"], *qsize(request))
        return web.Response(status=200)

    async def start(self, request: web.Request) -> web.StreamResponse:
        body = await read_json(request)
        eid = request.match_info["id"]
        ex = self.execs.inspect(eid)
        tty = bool(body.get("Tty", ex.config.tty))
        given = body.get("ConsoleSize")
        size = (int(given[0]), int(given[1])) if given else None
        if body.get("Detach"):
            try:
                await self.execs.start(eid, console_size=size)
            except ExecStartError as e:
                raise InvalidArgument(str(e)) from None
            return web.Response(status=200)
        keys = detach_keys(ex.config.detach_keys)
        att = self.execs.attach(eid)
        resp = upgrade_response(request, tty)
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
        await pump(conn, att, tty=tty, stdin=ex.config.attach_stdin, keys=keys)
        return resp


__all__ = ["ExecHandlers"]
