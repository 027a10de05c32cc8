"""The dashboard's terminal pump against what a client can send: resize messages that are no
size (an infinite number, JSON nested past the parser's depth, wrong types), after which the
terminal must still carry keys; and nothing is sent to the process after the page closed."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import WSMsgType

from berth.containers.channel import Attachment
from berth.ui import streams


class Msg:
    def __init__(self, type_: WSMsgType, data: Any) -> None:
        self.type, self.data = type_, data


class FakeWs:
    def __init__(self, msgs: list[Msg]) -> None:
        self.msgs = msgs
        self.closed = False

    def __aiter__(self) -> FakeWs:
        return self

    async def __anext__(self) -> Msg:
        await asyncio.sleep(0)
        if not self.msgs:
            raise StopAsyncIteration
        return self.msgs.pop(0)

    async def send_bytes(self, data: bytes) -> None:
        pass

    async def close(self) -> None:
        self.closed = True


class FakeAtt:
    def __init__(self) -> None:
        self.stdin: list[bytes] = []
        self.ended = self.closed = False

    async def output(self) -> Any:
        await asyncio.Event().wait()
        yield 1, b""

    async def cut_off(self) -> None:
        await asyncio.Event().wait()

    async def send_stdin(self, data: bytes) -> None:
        assert not self.ended, "input after the end of stdin"
        self.stdin.append(data)

    async def end_stdin(self) -> None:
        self.ended = True

    def close(self) -> None:
        self.closed = True

    serve = Attachment.serve  # the real ending of a stream, over this fake's parts


def test_hostile_resizes_leave_the_terminal_working() -> None:
    sizes: list[tuple[int, int]] = []
    hostile = [
        '{"resize": [1e999, 5]}',
        '{"resize": [-1e999, 5]}',
        '{"resize": [NaN, 5]}',
        '{"resize": ' + "[" * 200_000 + "]}",
        '{"resize": {"a": 1, "b": 2}}',
        '{"resize": "ab"}',
        '{"resize": [1, 2, 3]}',
        "[1, 2]",
        "not json",
    ]
    msgs = [Msg(WSMsgType.TEXT, m) for m in hostile]
    msgs += [Msg(WSMsgType.TEXT, '{"resize": [10000000, -5]}'), Msg(WSMsgType.BINARY, b"ls\n")]
    ws, att = FakeWs(msgs), FakeAtt()
    asyncio.run(
        asyncio.wait_for(
            streams._pump(ws, att, lambda r, c: sizes.append((r, c))),  # type: ignore[arg-type]
            10,
        )
    )
    assert att.stdin == [b"ls\n"]  # the keys after the hostile sizes still arrive
    assert sizes == [(500, 10)]  # and a size out of bounds is clamped
    assert att.ended and att.closed and ws.closed


def test_the_static_handler_serves_the_bundle_only() -> None:
    """Without a session (the bundle is public), names that climb out of the static directory
    or name a file beside the bundle are 404s; the page itself needs the session."""
    from tests.unit.test_ui import run

    async def go(client: Any, *_: Any) -> None:
        r = await client.get("/static/app.css")
        assert r.status == 200 and r.headers["X-Content-Type-Options"] == "nosniff"
        for path in (
            "/static/..%2f__init__.py",
            "/static/..%2F..%2Fauth.py",
            "/static/%2e%2e/server.py",
            "/static/index.html",  # the page's template: through `/` only
            "/static/chunk-AAAAAAAA.js.map",
            "/static/chunk-../../x.js",
            "/static/app.js%00.txt",
        ):
            r = await client.get(path)
            assert r.status in (400, 401, 404), (path, r.status)
            assert "csrf" not in await r.text()

    run(go)
