"""Kubernetes' streaming protocols over SPDY/3.1 (berth.cri.spdy), as kubelets serve them to
`kubectl exec`, `attach` and `port-forward` (through an API server and a kubelet).

The request is an HTTP GET with `Upgrade: SPDY/3.1` and the protocols the client speaks in
`X-Stream-Protocol-Version`; the answer is 101 with the one chosen, then SPDY on the connection.

Exec and attach (`remotecommand`): the client opens a stream per standard stream, each with a
`streamType` header: `error`, `stdin`, `stdout`, `stderr` (not with a tty) and `resize` (with a
tty). The versions: `channel.k8s.io` (v1) and `v2.channel.k8s.io` (the same streams, v2 opening
the error stream first), `v3.channel.k8s.io` (adds `resize`: JSON `{"Width","Height"}` objects
one after another), `v4.channel.k8s.io` (the error stream carries a metav1.Status as JSON: the
exit code as `NonZeroExitCode` with an `ExitCode` cause; before v4 it carries the message text
of a failure and nothing on success).

Port forwarding (`portforward.k8s.io`): per connection to a port, a stream pair with
`streamType` `error` and `data`, the same `port` and `requestID` (without one, as older clients
do, the data stream's ID is the error stream's + 2); data is copied both ways, a failure is
written on the error stream.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable
from typing import Any

from aiohttp import web

from berth.containers.channel import T_STDERR, T_STDOUT, Attachment
from berth.containers.execs import ExecStartError
from berth.cri.spdy import REFUSED_STREAM, Session, Stream
from berth.errors import BerthError, InvalidArgument

log = logging.getLogger(__name__)

REMOTECOMMAND_PROTOCOLS = (
    "v4.channel.k8s.io",
    "v3.channel.k8s.io",
    "v2.channel.k8s.io",
    "channel.k8s.io",
)
PORTFORWARD_PROTOCOL = "portforward.k8s.io"
STREAM_TIMEOUT = 30.0  # for the client to open its streams, as kubelets wait
CONNECT_TIMEOUT = 10.0
MAX_RESIZE_BUFFER = 4096
# a terminal size a client may ask (rows, columns), as the dashboard's terminal: beyond them
# clamped (a pty's winsize is 16-bit; nothing needs more)
ROWS = (2, 500)
COLUMNS = (10, 1000)
MAX_PENDING_PAIRS = 32  # port-forward: half-opened pairs waiting for their other stream


def is_spdy(request: web.Request) -> bool:
    return "spdy/3.1" in request.headers.get("Upgrade", "").lower()


def negotiate(request: web.Request, supported: tuple[str, ...]) -> str:
    """The first protocol of the client's that berth speaks. A client must name some, as
    kubelets (since 1.x) and containerd ask."""
    offered = [
        p.strip()
        for h in request.headers.getall("X-Stream-Protocol-Version", [])
        for p in h.split(",")
        if p.strip()
    ]
    if not offered:
        raise web.HTTPBadRequest(text="unable to upgrade: X-Stream-Protocol-Version is required\n")
    for p in offered:
        if p in supported:
            return p
    raise web.HTTPForbidden(
        text=f"unable to negotiate protocol: client supports {offered}, "
        f"server supports {list(supported)}\n",
        headers={"X-Accepted-Stream-Protocol-Versions": ", ".join(supported)},
    )


async def upgrade(request: web.Request, protocol: str) -> tuple[web.StreamResponse, Session]:
    """Answer 101 and take the connection over from aiohttp (which knows no SPDY)."""
    headers = {
        "Connection": "Upgrade",
        "Upgrade": "SPDY/3.1",
        "X-Stream-Protocol-Version": protocol,
    }
    resp = web.StreamResponse(status=101, reason="Switching Protocols", headers=headers)
    await resp.prepare(request)
    request.protocol.keep_alive(False)
    transport = request.transport
    if transport is None:
        raise ConnectionResetError("the client went away")
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=1 << 20, loop=loop)
    proto = asyncio.StreamReaderProtocol(reader, loop=loop)
    transport.set_protocol(proto)
    proto.connection_made(transport)
    transport.resume_reading()
    return resp, Session(reader, asyncio.StreamWriter(transport, proto, reader, loop))


async def open_streams(session: Session, want: set[str]) -> dict[str, Stream]:
    """The streams `want` (by streamType), each answered as it comes; others are refused."""
    got: dict[str, Stream] = {}
    async with asyncio.timeout(STREAM_TIMEOUT):
        while not want <= got.keys():
            s = await session.accept()
            if s is None:
                raise InvalidArgument("the client went away before opening its streams")
            kind = s.header("streamType")
            if kind not in want or kind in got:
                await s.reset(REFUSED_STREAM)
                continue
            await s.reply()
            got[kind] = s
    return got


def exit_status(code: int | None) -> bytes:
    """The error channel's last word: a metav1.Status, as kubelets write it."""
    if code == 0:
        return json.dumps({"metadata": {}, "status": "Success"}).encode()
    return json.dumps(
        {
            "metadata": {},
            "status": "Failure",
            "message": f"command terminated with non-zero exit code: {code}",
            "reason": "NonZeroExitCode",
            "details": {"causes": [{"reason": "ExitCode", "message": str(code)}]},
        }
    ).encode()


def status_json(code: int | None, message: str = "") -> bytes:
    """A metav1.Status as v4 writes it: success, a non-zero exit, or an internal error."""
    if message:
        return json.dumps(
            {
                "metadata": {},
                "status": "Failure",
                "message": message,
                "reason": "InternalError",
                "details": {"causes": [{"message": message}]},
                "code": 500,
            }
        ).encode()
    return exit_status(code)


async def write_status(error: Stream, protocol: str, code: int | None, message: str = "") -> None:
    if protocol == "v4.channel.k8s.io":
        await error.write(status_json(code, message))
    elif message or code != 0:
        await error.write(
            (message or f"command terminated with non-zero exit code: {code}").encode()
        )


async def _pump_stdin(s: Stream, att: Attachment) -> None:
    while data := await s.read():
        await att.send_stdin(data)
    await att.end_stdin()


def terminal_size(size: Any) -> tuple[int, int] | None:
    """A client's `{"Height": H, "Width": W}`, clamped to ROWS and COLUMNS; None where it is no
    size (not an object, not numbers, an infinite or NaN one)."""
    if not isinstance(size, dict):
        return None
    try:
        h, w = int(size["Height"]), int(size["Width"])
    except (KeyError, TypeError, ValueError, OverflowError):
        return None
    return min(max(h, ROWS[0]), ROWS[1]), min(max(w, COLUMNS[0]), COLUMNS[1])


def resize_to(size: Any, resize: Callable[[int, int], None]) -> None:
    """Resize to a client's size where it is one; a container or exec that is gone (or a
    size the shim refuses) ends nothing."""
    hw = terminal_size(size)
    if hw is not None:
        with contextlib.suppress(BerthError):
            resize(*hw)


async def _pump_resize(s: Stream, resize: Callable[[int, int], None]) -> None:
    """JSON terminal sizes one after another; of those that came together, the last counts."""
    buf = ""
    dec = json.JSONDecoder()
    while data := await s.read():
        buf += data.decode("utf-8", "replace")
        pos, last = 0, None
        while True:
            while pos < len(buf) and buf[pos] in " \t\r\n":
                pos += 1
            try:
                size, pos = dec.raw_decode(buf, pos)
            except ValueError:
                break
            except RecursionError:  # nested too deep to be a size
                raise InvalidArgument("resize stream: not a JSON terminal size") from None
            last = size
        buf = buf[pos:]
        if len(buf) > MAX_RESIZE_BUFFER:
            raise InvalidArgument("resize stream: not a JSON terminal size")
        if last is not None:
            resize_to(last, resize)


async def _pump_out(att: Attachment, streams: dict[str, Stream]) -> None:
    async for kind, data in att.output():
        name = "stderr" if kind == T_STDERR else "stdout" if kind == T_STDOUT else ""
        if name in streams:
            await streams[name].write(data)


async def serve_command(server: Any, req: Any, session: Session, protocol: str) -> None:
    """Exec or attach over `session`; `server` is the StreamServer (its containers, execs)."""
    want = {"error"}
    want |= {"stdin"} if req.stdin else set()
    want |= {"stdout"} if req.stdout else set()
    want |= {"stderr"} if req.stderr and not req.tty else set()
    if req.tty and protocol in ("v3.channel.k8s.io", "v4.channel.k8s.io"):
        want.add("resize")
    streams = await open_streams(session, want)
    for name in ("error", "stdout", "stderr"):
        if name in streams:
            streams[name].discard_input()
    error = streams["error"]
    code: int | None = 0
    message = ""
    tasks: list[asyncio.Task[Any]] = []
    loop = asyncio.get_running_loop()
    att: Attachment | None = None
    try:
        resize: Callable[[int, int], None]
        if req.kind == "exec":
            eid = server.execs.create(req.container_id, req.exec_config())
            att = server.execs.attach(eid)
            await server.execs.start(eid)

            def resize(h: int, w: int) -> None:
                server.execs.resize(eid, h, w)
        else:
            cid = req.container_id
            att = server.containers.attach(cid, stdout=req.stdout, stderr=req.stderr)

            def resize(h: int, w: int) -> None:
                server.containers.resize(cid, h, w)

        if "stdin" in streams:
            tasks.append(loop.create_task(_pump_stdin(streams["stdin"], att)))
        if "resize" in streams:
            tasks.append(loop.create_task(_pump_resize(streams["resize"], resize)))
        out = loop.create_task(_pump_out(att, streams))
        gone = loop.create_task(session.closed.wait())
        tasks += [out, gone]
        await asyncio.wait({out, gone}, return_when=asyncio.FIRST_COMPLETED)
        if session.closed.is_set():
            return
        await out
        if req.kind == "exec":
            code = await server.execs.wait(eid, 10.0)
    except (BerthError, ExecStartError) as e:
        code, message = None, str(e)
    except Exception as e:  # a bug: the client hears of it, the daemon's log has the trace
        log.exception("SPDY %s", req.kind)
        code, message = None, f"internal error: {e!r}"
    finally:
        for t in tasks:
            t.cancel()
            with contextlib.suppress(BaseException):
                await t
        if att is not None:
            att.close()
    with contextlib.suppress(ConnectionError):
        await write_status(error, protocol, code, message)
        for s in streams.values():
            await s.close()


def _request_id(s: Stream) -> str:
    rid = s.header("requestID")
    if rid:
        return rid
    return str(s.id - 2 if s.header("streamType") == "data" else s.id)


async def _forward(req: Any, port_s: str, data: Stream, error: Stream) -> None:
    """One connection to the pod's port, carried by `data`; a failure goes to `error`."""
    error.discard_input()
    writer: asyncio.StreamWriter | None = None
    loop = asyncio.get_running_loop()
    try:
        try:
            port = int(port_s)
            if not 0 < port < 65536 or (req.ports and port not in req.ports):
                raise ValueError(port)
        except ValueError:
            raise InvalidArgument(f"port {port_s!r} may not be forwarded") from None
        try:
            async with asyncio.timeout(CONNECT_TIMEOUT):
                reader, writer = await asyncio.open_connection(req.target, port)
        except (OSError, TimeoutError) as e:
            raise InvalidArgument(f"failed to connect to {req.target}:{port}: {e}") from None

        async def up() -> None:
            assert writer is not None
            while chunk := await data.read():
                writer.write(chunk)
                await writer.drain()
            if writer.can_write_eof():
                writer.write_eof()
            await data.reset_by_peer.wait()

        async def down() -> None:
            while chunk := await reader.read(32 << 10):
                await data.write(chunk)

        tasks = {loop.create_task(up()), loop.create_task(down())}
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for t in tasks:
                t.cancel()
                with contextlib.suppress(BaseException):
                    await t
    except (BerthError, ConnectionError) as e:
        with contextlib.suppress(ConnectionError):
            await error.write(f"error forwarding port {port_s}: {e}".encode())
    finally:
        if writer is not None:
            writer.close()
        data.discard_input()
        with contextlib.suppress(ConnectionError):
            await data.close()
            await error.close()


async def serve_portforward(req: Any, session: Session) -> None:
    pending: dict[str, dict[str, Stream]] = {}
    tasks: set[asyncio.Task[None]] = set()
    loop = asyncio.get_running_loop()
    try:
        while (s := await session.accept()) is not None:
            kind, rid = s.header("streamType"), _request_id(s)
            pair = pending.get(rid, {})
            if kind not in ("data", "error") or kind in pair or not s.header("port"):
                await s.reset(REFUSED_STREAM)
                continue
            if not pair and len(pending) >= MAX_PENDING_PAIRS:
                await s.reset(REFUSED_STREAM)
                continue
            await s.reply()
            pair[kind] = s
            pending[rid] = pair
            if len(pair) == 2:
                del pending[rid]
                t = loop.create_task(_forward(req, s.header("port"), pair["data"], pair["error"]))
                tasks.add(t)
                t.add_done_callback(tasks.discard)
    finally:
        for t in list(tasks):
            t.cancel()
            with contextlib.suppress(BaseException):
                await t


__all__ = [
    "PORTFORWARD_PROTOCOL",
    "REMOTECOMMAND_PROTOCOLS",
    "is_spdy",
    "exit_status",
    "negotiate",
    "resize_to",
    "serve_command",
    "serve_portforward",
    "status_json",
    "terminal_size",
    "upgrade",
]
