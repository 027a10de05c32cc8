"""The CRI streaming server's terminal sizes against what a client can send (review row L2):
over the WebSocket channel protocols and SPDY's resize stream alike, a size that is no size (an
infinite number, NaN, JSON nested past the parser's depth, wrong types) is skipped and one out
of bounds is clamped, and the stream's input carries on after them; the WebSocket is pinged."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp
import pytest

from berth.cri import spdystreams, streaming
from berth.cri.spdystreams import COLUMNS, ROWS, terminal_size
from berth.cri.streaming import RESIZE, STDIN, StreamRequest, StreamServer
from berth.errors import Conflict


@pytest.mark.parametrize(
    "size, want",
    [
        ({"Height": 24, "Width": 80}, (24, 80)),
        ({"Height": 0, "Width": 0}, (ROWS[0], COLUMNS[0])),
        ({"Height": -5, "Width": -1 << 70}, (ROWS[0], COLUMNS[0])),
        ({"Height": 1 << 70, "Width": 70000}, (ROWS[1], COLUMNS[1])),  # past a pty's 16 bits
        ({"Height": 1e300, "Width": "90"}, (ROWS[1], 90)),
        ({"Height": float("inf"), "Width": 80}, None),
        ({"Height": float("-inf"), "Width": 80}, None),
        ({"Height": float("nan"), "Width": 80}, None),
        ({"Height": [24], "Width": 80}, None),
        ({"Height": "tall", "Width": 80}, None),
        ({"Height": "9" * 5000, "Width": 80}, None),  # past int()'s digit limit
        ({"Width": 80}, None),
        ([24, 80], None),
        ("24x80", None),
        (None, None),
    ],
)
def test_terminal_size(size: Any, want: tuple[int, int] | None) -> None:
    assert terminal_size(size) == want


class FakeStream:
    def __init__(self, *chunks: bytes) -> None:
        self.chunks = list(chunks)

    async def read(self) -> bytes:
        return self.chunks.pop(0) if self.chunks else b""


def test_spdy_resize_stream_survives_hostile_sizes() -> None:
    sizes: list[tuple[int, int]] = []

    def resize(h: int, w: int) -> None:
        if h == 3:
            raise Conflict("exec is not running")  # ends nothing either
        sizes.append((h, w))

    stream = FakeStream(
        b'{"Height": 1e999, "Width": 80}\n',
        b'{"Height": -1e999, "Width": 80}\n',
        b'{"Height": NaN, "Width": 80}\n',
        b'{"Height": 3, "Width": 80}\n',
        b'{"Height": 100000, "Width": 5}\n',
        b'{"Height": 24, "Width": 80}\n',
    )
    asyncio.run(spdystreams._pump_resize(stream, resize))  # type: ignore[arg-type]
    assert sizes == [(ROWS[1], COLUMNS[0]), (24, 80)]


class FakeAtt:
    def __init__(self) -> None:
        self.stdin: list[bytes] = []
        self.ended = asyncio.Event()
        self.closed = False

    async def output(self) -> Any:
        await asyncio.Event().wait()
        yield 1, b""

    async def send_stdin(self, data: bytes) -> None:
        self.stdin.append(data)

    async def end_stdin(self) -> None:
        self.ended.set()

    def close(self) -> None:
        self.closed = True


class FakeContainers:
    def __init__(self) -> None:
        self.att = FakeAtt()
        self.sizes: list[tuple[int, int]] = []

    def attach(self, cid: str, *, stdout: bool, stderr: bool) -> FakeAtt:
        return self.att

    def resize(self, cid: str, h: int, w: int) -> None:
        self.sizes.append((h, w))


HOSTILE = [
    b'{"Height": 1e999, "Width": 80}',
    b'{"Height": -1e999, "Width": 80}',
    b'{"Height": NaN, "Width": 80}',
    b'{"Height": ' + b"[" * 200_000 + b"]}",  # RecursionError in json.loads
    b"[" * 200_000,
    b'{"Height": "tall", "Width": 80}',
    b'{"Height": 1, "Width": 2, "x": {"y": [1e999]}}',  # a size, clamped
    b"\xff\xfe not utf-8",
    b"not json",
    b"",
    b'{"Height": 70000, "Width": 70000}',
]


async def _serve_attach(monkeypatch: pytest.MonkeyPatch, client_msgs: list[bytes]) -> Any:
    monkeypatch.setattr(streaming, "HEARTBEAT", 0.2)
    containers = FakeContainers()
    server = StreamServer(containers, None)  # type: ignore[arg-type]
    await server.start()
    pinged = False
    try:
        url = server.register(StreamRequest(kind="attach", container_id="c", tty=True, stdin=True))
        async with (
            aiohttp.ClientSession() as http,
            http.ws_connect(url, protocols=("v4.channel.k8s.io",), autoping=False) as ws,
        ):
            for m in client_msgs:
                await ws.send_bytes(m)
            await ws.send_bytes(bytes([STDIN]) + b"ls\n")
            msg = await asyncio.wait_for(ws.receive(), 5.0)
            if msg.type == aiohttp.WSMsgType.PING:
                pinged = True
                await ws.pong(msg.data)
            while not containers.att.stdin:
                await asyncio.sleep(0.01)
    finally:
        await server.stop()
    return containers, pinged


def test_websocket_resizes_survive_hostile_json(monkeypatch: pytest.MonkeyPatch) -> None:
    msgs = [bytes([RESIZE]) + m for m in HOSTILE]
    msgs.append(bytes([RESIZE]) + json.dumps({"Height": 30, "Width": 100}).encode())
    containers, pinged = asyncio.run(_serve_attach(monkeypatch, msgs))
    assert containers.att.stdin == [b"ls\n"]  # input after the hostile sizes still arrives
    assert containers.sizes == [(ROWS[0], COLUMNS[0]), (ROWS[1], COLUMNS[1]), (30, 100)]
    assert pinged  # the server's heartbeat
    assert containers.att.closed
