"""`GET /containers/{id}/attach/ws`: the attach stream over a WebSocket, for browser consoles.

As dockerd: the container's output goes out as binary messages, raw (stdout and stderr
together, no multiplexing header, with or without a tty); each message the client sends is
the process's input. The query is the attach's (`logs`, `stream`, `stdin`, `stdout`, `stderr`,
`detachKeys`)."""

from __future__ import annotations

from aiohttp import WSMsgType, web

from berth.containers import ContainerService
from berth.containers.channel import Attachment, DetachScanner, parse_detach_keys
from berth.errors import InvalidArgument


def _flag(request: web.Request, name: str) -> bool:
    return request.query.get(name, "").lower() in ("1", "true", "yes")


async def attach_ws(request: web.Request, containers: ContainerService) -> web.StreamResponse:
    doc = containers.inspect(request.match_info["id"])
    try:
        keys = parse_detach_keys(request.query.get("detachKeys") or "ctrl-p,ctrl-q")
    except ValueError as e:
        raise InvalidArgument(str(e)) from None
    ws = web.WebSocketResponse()
    # checked before the attachment exists: a request that is no WebSocket handshake left
    # one behind, subscribed to the container's output for as long as the daemon ran
    if not ws.can_prepare(request).ok:
        raise InvalidArgument(
            "attach/ws needs a WebSocket handshake (Connection: Upgrade, "
            "Upgrade: websocket, Sec-WebSocket-Key and -Version)"
        )
    att = containers.attach(
        doc.record.id,
        stdout=_flag(request, "stdout"),
        stderr=_flag(request, "stderr"),
        logs=_flag(request, "logs"),
    )
    if not _flag(request, "stream"):
        att.close()
        att.queue.put_nowait(None)
    try:
        await ws.prepare(request)
    except BaseException:
        att.close()
        raise
    await _pump(ws, att, stdin=_flag(request, "stdin"), keys=keys)
    return ws


async def _pump(ws: web.WebSocketResponse, att: Attachment, *, stdin: bool, keys: bytes) -> None:
    """Output to the client and its input to the process, until the process ends, the client
    goes, or it sends the detach keys (the process goes on)."""

    async def output() -> None:
        async for _stream, data in att.output():
            if ws.closed:
                return
            await ws.send_bytes(data)

    async def input_() -> None:
        scan = DetachScanner(keys)
        async for msg in ws:
            if msg.type not in (WSMsgType.BINARY, WSMsgType.TEXT) or not stdin:
                continue
            raw = msg.data if isinstance(msg.data, bytes) else str(msg.data).encode()
            data, detached = scan.feed(raw)
            if data:
                await att.send_stdin(data)
            if detached:
                return
        if stdin:  # the client closed the socket
            await att.end_stdin()

    try:
        await att.serve(output(), input_())
    finally:
        await ws.close()
