"""The CRI's streaming server: the URLs that Exec, Attach and PortForward answer with, served
over WebSocket with Kubernetes' channel protocol (`v5.channel.k8s.io`, `v4.channel.k8s.io`,
`channel.k8s.io`): each binary message starts with its channel's byte: 0 stdin, 1 stdout,
2 stderr, 3 the error channel (v4 and later: the exit as a Status object, at the end), 4 a
terminal resize ({"Width", "Height"}, clamped as over SPDY; a size that is none is skipped),
255 a stream's close (v5). Port forwarding (`portforward.k8s.io`, `v4.channel.k8s.io`) gives
each port a data and an error channel (2i, 2i+1), whose first message is the port, two bytes
little-endian. The server pings each WebSocket every HEARTBEAT seconds.

A request with `Upgrade: SPDY/3.1` (what an API server hands a kubelet, and a kubelet the
runtime, for `kubectl exec`, `attach` and `port-forward`) is served over SPDY instead
(berth.cri.spdystreams). The server listens on 127.0.0.1 (a random port) and each URL
holds a one-time token that expires after a minute, as kubelets' own streaming servers do.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
import socket
import struct
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSMsgType, web

from berth.containers import ContainerService
from berth.containers.channel import T_STDERR, T_STDOUT, Attachment
from berth.containers.execs import ExecConfig, ExecService, ExecStartError
from berth.cri import spdystreams
from berth.cri.spdystreams import exit_status, resize_to, status_json
from berth.errors import BerthError, InvalidArgument

log = logging.getLogger(__name__)
# a ping every HEARTBEAT seconds: a client that stops answering (a peer gone without a close)
# no longer holds its exec or attach, and its stream, open
HEARTBEAT = 30.0

TOKEN_TTL = 60.0
CHANNEL_PROTOCOLS = ("v5.channel.k8s.io", "v4.channel.k8s.io", "channel.k8s.io")
PORTFORWARD_PROTOCOLS = ("v4.channel.k8s.io", "portforward.k8s.io")
STDIN, STDOUT, STDERR, ERROR, RESIZE, CLOSE = 0, 1, 2, 3, 4, 255


@dataclass(slots=True, kw_only=True)
class StreamRequest:
    kind: str  # exec, attach, portforward
    container_id: str = ""
    cmd: list[str] = field(default_factory=list)
    tty: bool = False
    stdin: bool = False
    stdout: bool = True
    stderr: bool = True
    target: str = ""  # portforward: the host the pod's ports are reached on
    ports: list[int] = field(default_factory=list)
    expires: float = 0.0

    def exec_config(self) -> ExecConfig:
        """The exec this request runs (over WebSocket or SPDY): a tty has no stderr."""
        return ExecConfig(
            cmd=tuple(self.cmd),
            tty=self.tty,
            attach_stdin=self.stdin,
            attach_stdout=self.stdout,
            attach_stderr=self.stderr and not self.tty,
        )


class StreamServer:
    def __init__(self, containers: ContainerService, execs: ExecService) -> None:
        self.containers = containers
        self.execs = execs
        self.requests: dict[str, StreamRequest] = {}
        self.runner: web.AppRunner | None = None
        self.base = ""

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> None:
        app = web.Application()
        path = "/{kind:exec|attach|portforward}/{token}"
        app.router.add_get(path, self._serve)
        app.router.add_post(path, self._serve)  # what SPDY clients (client-go) send
        self.runner = web.AppRunner(
            app, access_log=None, handle_signals=False, shutdown_timeout=1.0
        )
        await self.runner.setup()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        await web.SockSite(self.runner, sock).start()
        self.base = f"http://{host}:{sock.getsockname()[1]}"

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()
            self.runner = None

    def register(self, req: StreamRequest) -> str:
        """The URL for `req` (a one-time token)."""
        now = time.monotonic()
        for t in [t for t, r in self.requests.items() if r.expires < now]:
            del self.requests[t]
        req.expires = now + TOKEN_TTL
        token = secrets.token_urlsafe(16)
        self.requests[token] = req
        return f"{self.base}/{req.kind}/{token}"

    async def _serve(self, request: web.Request) -> web.StreamResponse:
        req = self.requests.pop(request.match_info["token"], None)
        if req is None or req.kind != request.match_info["kind"] or req.expires < time.monotonic():
            raise web.HTTPNotFound(text="unknown or expired stream token\n")
        if spdystreams.is_spdy(request):
            return await self._serve_spdy(request, req)
        protocols = PORTFORWARD_PROTOCOLS if req.kind == "portforward" else CHANNEL_PROTOCOLS
        ws = web.WebSocketResponse(protocols=protocols, max_msg_size=16 << 20, heartbeat=HEARTBEAT)
        if not ws.can_prepare(request).ok:
            raise web.HTTPBadRequest(text="expected a WebSocket or SPDY/3.1 upgrade\n")
        if req.kind == "portforward" and not req.ports:
            raise web.HTTPBadRequest(text="WebSocket port forwarding needs the ports asked for\n")
        await ws.prepare(request)
        try:
            if req.kind == "exec":
                await self._exec(req, ws)
            elif req.kind == "attach":
                await self._attach(req, ws)
            else:
                await self._portforward(req, ws)
        except (BerthError, ExecStartError) as e:  # a command that cannot start, too
            # v4 and later: a Status (InternalError), as for an exit; before, the text
            why = (
                str(e).encode() if ws.ws_protocol == "channel.k8s.io" else status_json(None, str(e))
            )
            with contextlib.suppress(ConnectionError, RuntimeError):
                await ws.send_bytes(bytes([ERROR]) + why)
        finally:
            await ws.close()
        return ws

    async def _serve_spdy(self, request: web.Request, req: StreamRequest) -> web.StreamResponse:
        if req.kind == "portforward":
            protocol = spdystreams.negotiate(request, (spdystreams.PORTFORWARD_PROTOCOL,))
        else:
            protocol = spdystreams.negotiate(request, spdystreams.REMOTECOMMAND_PROTOCOLS)
        resp, session = await spdystreams.upgrade(request, protocol)
        reading = asyncio.get_running_loop().create_task(session.run())
        try:
            if req.kind == "portforward":
                await spdystreams.serve_portforward(req, session)
            else:
                await spdystreams.serve_command(self, req, session, protocol)
        except (BerthError, TimeoutError, ConnectionError) as e:
            log.info("SPDY %s stream: %s", req.kind, e or "timed out")
        finally:
            await session.close()
            reading.cancel()
            with contextlib.suppress(BaseException):
                await reading
        return resp

    @staticmethod
    async def _pump_out(att: Attachment, ws: web.WebSocketResponse) -> None:
        async for stream, data in att.output():
            chan = STDERR if stream == T_STDERR else STDOUT if stream == T_STDOUT else None
            if chan is not None:
                await ws.send_bytes(bytes([chan]) + data)

    async def _pump_in(self, ws: web.WebSocketResponse, att: Attachment, resize: Any) -> None:
        """The client's stdin and resizes, until it closes (or closes stdin, v5)."""
        async for msg in ws:
            if msg.type != WSMsgType.BINARY or not msg.data:
                continue
            chan, data = msg.data[0], msg.data[1:]
            if chan == STDIN and data:
                await att.send_stdin(data)
            elif chan == RESIZE:
                try:
                    size = json.loads(data)
                except (ValueError, RecursionError):  # RecursionError: nested past the parser
                    continue
                resize_to(size, resize)
            elif chan == CLOSE and data[:1] == bytes([STDIN]):
                await att.end_stdin()
        await att.end_stdin()

    async def _exec(self, req: StreamRequest, ws: web.WebSocketResponse) -> None:
        eid = self.execs.create(req.container_id, req.exec_config())
        att = self.execs.attach(eid)
        try:
            await self.execs.start(eid)
            inp = asyncio.get_running_loop().create_task(
                self._pump_in(ws, att, lambda h, w: self.execs.resize(eid, h, w))
            )
            try:
                await self._pump_out(att, ws)
                code = await self.execs.wait(eid, 10.0)
            finally:
                inp.cancel()
                with contextlib.suppress(BaseException):
                    await inp
            if ws.ws_protocol != "channel.k8s.io":
                await ws.send_bytes(bytes([ERROR]) + exit_status(code))
        finally:
            att.close()

    async def _attach(self, req: StreamRequest, ws: web.WebSocketResponse) -> None:
        att = self.containers.attach(req.container_id, stdout=req.stdout, stderr=req.stderr)
        try:
            inp = asyncio.get_running_loop().create_task(
                self._pump_in(ws, att, lambda h, w: self.containers.resize(req.container_id, h, w))
            )
            out = asyncio.get_running_loop().create_task(self._pump_out(att, ws))
            await asyncio.wait({inp, out}, return_when=asyncio.FIRST_COMPLETED)
            for t in (inp, out):
                t.cancel()
                with contextlib.suppress(BaseException):
                    await t
        finally:
            att.close()

    async def _portforward(self, req: StreamRequest, ws: web.WebSocketResponse) -> None:
        """One connection per port asked for, to the pod's address (over the bridge that
        CNI put it on: the daemon never enters a pod's network namespace)."""
        ports = req.ports
        writers: dict[int, asyncio.StreamWriter] = {}
        tasks = []
        for i, port in enumerate(ports):
            hello = struct.pack("<H", port)
            await ws.send_bytes(bytes([2 * i]) + hello)
            await ws.send_bytes(bytes([2 * i + 1]) + hello)
            try:
                reader, writer = await asyncio.open_connection(req.target, port)
            except OSError as e:
                await ws.send_bytes(
                    bytes([2 * i + 1]) + (f"failed to connect to {req.target}:{port}: {e}").encode()
                )
                continue
            writers[2 * i] = writer
            tasks.append(asyncio.get_running_loop().create_task(self._copy_back(reader, ws, 2 * i)))
        try:
            async for msg in ws:
                if msg.type == WSMsgType.BINARY and msg.data and msg.data[0] in writers:
                    w = writers[msg.data[0]]
                    w.write(msg.data[1:])
                    await w.drain()
        finally:
            for t in tasks:
                t.cancel()
            for w in writers.values():
                w.close()

    @staticmethod
    async def _copy_back(
        reader: asyncio.StreamReader, ws: web.WebSocketResponse, chan: int
    ) -> None:
        while data := await reader.read(32 * 1024):
            await ws.send_bytes(bytes([chan]) + data)


def check_ports(ports: list[int]) -> list[int]:
    """The ports a PortForward names (none over SPDY: its streams name them)."""
    if any(not 0 < p < 65536 for p in ports):
        raise InvalidArgument(f"invalid ports {ports}")
    return ports


__all__ = ["StreamRequest", "StreamServer", "check_ports", "exit_status"]
