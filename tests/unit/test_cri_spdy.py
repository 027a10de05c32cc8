"""berth.cri.spdy: SPDY/3.1 frames, header blocks and the server's session, against a client of
this file's own over a socket pair, with the hostile inputs it must bound (the Go client of
tests/integration/test_cri_spdy.py is the interoperability check)."""

from __future__ import annotations

import asyncio
import socket
import struct
import zlib
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from berth.cri import spdy
from berth.cri.spdy import HeaderCodec, Session, SpdyError


def test_dictionary() -> None:
    """Section 2.6.10.1's dictionary: its size and the Adler-32 that every SPDY/3 header
    block's zlib stream names as its DICTID (the Go client proves the bytes)."""
    assert len(spdy.DICTIONARY) == 1423
    assert spdy.DICTIONARY.startswith(b"\0\0\0\x07options\0\0\0\x04head")
    assert spdy.DICTIONARY.endswith(b"charset=iso-8859-1,utf-,*,enq=0.")
    assert zlib.adler32(spdy.DICTIONARY) == 0xE3C6A7C2


def test_header_blocks_share_one_zlib_stream() -> None:
    a, b = HeaderCodec(), HeaderCodec()
    first = a.encode({"streamType": "stdin", "port": ["1", "2"]})
    second = a.encode({"streamtype": "stdout"})
    assert b.decode(first) == {"streamtype": ["stdin"], "port": ["1", "2"]}
    assert b.decode(second) == {"streamtype": ["stdout"]}
    with pytest.raises(SpdyError, match="compressed"):
        HeaderCodec().decode(second)  # the second block alone lacks the stream's start


def _block(*pairs: tuple[bytes, bytes], count: int | None = None) -> bytes:
    out = struct.pack(">I", len(pairs) if count is None else count)
    for n, v in pairs:
        out += struct.pack(">I", len(n)) + n + struct.pack(">I", len(v)) + v
    return out


@pytest.mark.parametrize(
    ("raw", "match"),
    [
        (_block((b"Port", b"1")), "lowercase"),
        (_block((b"", b"1")), "empty"),
        (_block((b"a", b"1"), (b"a", b"2")), "twice"),
        (_block((b"a", b"1"), count=2), "truncated"),
        (_block((b"a", b"1")) + b"x", "trailing"),
        (_block((b"a", b"\xff")), "not text"),
        (_block(*[(b"h%d" % i, b"") for i in range(65)]), "at most"),
        (struct.pack(">I", 1) + struct.pack(">I", 1 << 30), "truncated"),
        (b"\0\0", "truncated"),
    ],
)
def test_header_block_rejects(raw: bytes, match: str) -> None:
    with pytest.raises(SpdyError, match=match):
        spdy.parse_header_block(raw)


def test_header_block_bomb_is_bounded() -> None:
    """A few KiB that inflate to 16 MiB stop at the bound, before they are all inflated."""
    z = zlib.compressobj(zdict=spdy.DICTIONARY)
    bomb = z.compress(_block((b"a", b"\0" * (16 << 20)))) + z.flush(zlib.Z_SYNC_FLUSH)
    assert len(bomb) < 64 << 10
    with pytest.raises(SpdyError, match="larger than"):
        HeaderCodec().decode(bomb)
    with pytest.raises(SpdyError, match="compressed"):
        HeaderCodec().decode(b"\x78\x9c garbage")


class Peer:
    """The client's end: frames out, frames in."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.codec = HeaderCodec()

    def send(self, raw: bytes) -> None:
        self.writer.write(raw)

    def syn(self, sid: int, headers: dict[str, str], flags: int = 0) -> None:
        fixed = struct.pack(">IIBB", sid, 0, 0, 0)
        self.send(spdy.control(spdy.SYN_STREAM, flags, fixed + self.codec.encode(headers)))

    async def frame(self) -> spdy.DataFrame | spdy.ControlFrame:
        async with asyncio.timeout(5):
            return await spdy.read_frame(self.reader, self.codec)

    async def closed(self) -> bool:
        async with asyncio.timeout(5):
            return await self.reader.read() == b""


def run_session(test: Callable[[Session, Peer], Awaitable[None]]) -> None:
    async def main() -> None:
        a, b = socket.socketpair()
        sr, sw = await asyncio.open_connection(sock=a)
        cr, cw = await asyncio.open_connection(sock=b)
        session = Session(sr, sw)
        task = asyncio.get_running_loop().create_task(session.run())
        try:
            await test(session, Peer(cr, cw))
        finally:
            await session.close()
            task.cancel()
            cw.close()

    asyncio.run(main())


def _fields(frame: Any) -> tuple[int, ...]:
    return struct.unpack(">%dI" % (len(frame.payload) // 4), frame.payload)


def test_streams_reply_data_and_fin() -> None:
    async def test(session: Session, peer: Peer) -> None:
        peer.syn(1, {"streamType": "stdin"})
        peer.send(spdy.data(1, b"hello"))
        peer.send(spdy.data(1, b"", spdy.FLAG_FIN))
        s = await session.accept()
        assert s is not None and s.header("streamType") == "stdin"
        await s.reply()
        reply = await peer.frame()
        assert isinstance(reply, spdy.ControlFrame) and reply.type == spdy.SYN_REPLY
        assert reply.headers == {} and _fields(reply) == (1,)
        assert await s.read() == b"hello"
        assert await s.read() == b"" and await s.read() == b""
        await s.write(b"x" * (spdy.SEND_CHUNK + 1))
        await s.close()
        sizes = [len(f.data) for f in [await peer.frame() for _ in range(3)] if hasattr(f, "data")]
        assert sizes == [spdy.SEND_CHUNK, 1, 0]
        assert 1 not in session.streams  # both sides closed: forgotten

    run_session(test)


def test_ping_window_update_and_unknown_frames() -> None:
    async def test(session: Session, peer: Peer) -> None:
        peer.send(spdy.control(spdy.SETTINGS, 0, struct.pack(">IBBHI", 1, 0, 0, 7, 1 << 20)))
        peer.send(spdy.control(10, 0, b"anything"))  # CREDENTIAL, or newer: ignored
        peer.send(spdy.control(spdy.PING, 0, struct.pack(">I", 2)))  # an answer: none back
        peer.send(spdy.control(spdy.PING, 0, struct.pack(">I", 3)))
        pong = await peer.frame()
        assert isinstance(pong, spdy.ControlFrame) and pong.type == spdy.PING
        assert _fields(pong) == (3,)
        peer.syn(1, {"streamtype": "data"})
        s = await session.accept()
        assert s is not None
        peer.send(spdy.data(1, b"y" * spdy.WINDOW_STEP))
        assert len(await s.read()) == spdy.WINDOW_STEP
        ups = [await peer.frame(), await peer.frame()]
        assert {_fields(f) for f in ups} == {(1, spdy.WINDOW_STEP), (0, spdy.WINDOW_STEP)}

    run_session(test)


def test_stream_errors_reset_the_stream() -> None:
    """Data on a stream that is not open, or after its FIN: RST_STREAM, the session goes on;
    streams past the bound are refused."""

    async def test(session: Session, peer: Peer) -> None:
        peer.send(spdy.data(9, b"stray"))
        rst = await peer.frame()
        assert isinstance(rst, spdy.ControlFrame) and rst.type == spdy.RST_STREAM
        assert _fields(rst) == (9, spdy.INVALID_STREAM)
        peer.syn(1, {"streamtype": "stdin"}, spdy.FLAG_FIN)
        peer.send(spdy.data(1, b"late"))
        assert _fields(await peer.frame()) == (1, spdy.STREAM_ALREADY_CLOSED)
        for i in range(spdy.MAX_STREAMS):
            peer.syn(3 + 2 * i, {"streamtype": "x"})
        assert _fields(await peer.frame()) == (3 + 2 * (spdy.MAX_STREAMS - 1), spdy.REFUSED_STREAM)
        # the peer resets a stream: its reader sees the end
        s = await session.accept()
        assert s is not None and s.id == 1
        s2 = await session.accept()
        assert s2 is not None and s2.id == 3
        peer.send(spdy.control(spdy.RST_STREAM, 0, struct.pack(">II", 3, spdy.CANCEL)))
        assert await s2.read() == b""
        assert s2.reset_by_peer.is_set()

    run_session(test)


@pytest.mark.parametrize(
    "raw",
    [
        spdy.control(spdy.SYN_STREAM, 0, b"\0" * 5),  # shorter than its fixed fields
        spdy.control(spdy.RST_STREAM, 0, b"\0" * 4),
        spdy.control(spdy.SETTINGS, 0, struct.pack(">I", 2) + b"\0" * 8),
        spdy.control(spdy.SYN_REPLY, 0, struct.pack(">I", 1) + HeaderCodec().encode({})),
        struct.pack(">HHI", 0x8002, spdy.SYN_STREAM, 10) + b"\0" * 10,  # SPDY/2
        struct.pack(">HHI", 0x8003, spdy.SYN_STREAM, spdy.MAX_CONTROL_FRAME + 1),
        struct.pack(">II", 1, spdy.MAX_DATA_FRAME + 1),
    ],
)
def test_protocol_errors_end_the_session(raw: bytes) -> None:
    async def test(session: Session, peer: Peer) -> None:
        peer.send(raw)
        goaway = await peer.frame()
        assert isinstance(goaway, spdy.ControlFrame) and goaway.type == spdy.GOAWAY
        assert _fields(goaway) == (0, spdy.GOAWAY_PROTOCOL_ERROR)
        assert await session.accept() is None
        assert session.error

    run_session(test)


def test_stream_ids_only_go_up() -> None:
    async def test(session: Session, peer: Peer) -> None:
        peer.syn(5, {"streamtype": "a"})
        peer.syn(3, {"streamtype": "b"})
        assert (await session.accept()) is not None
        goaway = await peer.frame()
        assert isinstance(goaway, spdy.ControlFrame) and _fields(goaway) == (5, 1)
        assert await session.accept() is None

    run_session(test)


def test_discarded_input_never_stalls_the_session() -> None:
    """A stream only written to drops what the peer sends on it: the other streams go on."""

    async def test(session: Session, peer: Peer) -> None:
        peer.syn(1, {"streamtype": "stdout"})
        peer.syn(3, {"streamtype": "stdin"})
        out, inp = await session.accept(), await session.accept()
        assert out is not None and inp is not None
        out.discard_input()
        for _ in range(spdy.STREAM_BUFFER * 4):
            peer.send(spdy.data(1, b"junk"))
        peer.send(spdy.data(3, b"real"))
        async with asyncio.timeout(5):
            assert await inp.read() == b"real"

    run_session(test)


def test_peer_goaway_and_eof_end_the_session() -> None:
    async def test(session: Session, peer: Peer) -> None:
        peer.syn(1, {"streamtype": "stdin"})
        s = await session.accept()
        assert s is not None
        peer.send(spdy.control(spdy.GOAWAY, 0, struct.pack(">II", 0, 0)))
        async with asyncio.timeout(5):
            await session.closed.wait()
        assert await s.read() == b""
        assert await session.accept() is None

    run_session(test)


class FakeStream:
    def __init__(self, *chunks: bytes) -> None:
        self.chunks = list(chunks)

    async def read(self) -> bytes:
        return self.chunks.pop(0) if self.chunks else b""


def test_resize_stream() -> None:
    """Sizes split across frames; of several in one frame only the last is applied; a stream
    of something else is cut off at a bound, not buffered."""
    from berth.cri import spdystreams
    from berth.errors import InvalidArgument

    sizes: list[tuple[int, int]] = []
    stream = FakeStream(
        b'{"Width": 80, "Hei',
        b'ght": 24}\n',
        b'{"Width": 1, "Height": 1}\n{"Width": 100, "Height": 37}\n',
        b'[1] "x" {"Height": "tall"}',
    )
    asyncio.run(spdystreams._pump_resize(stream, lambda h, w: sizes.append((h, w))))  # type: ignore[arg-type]
    assert sizes == [(24, 80), (37, 100)]
    for junk in (b"[" * 5000, b'{"Width": "' + b"x" * 5000):
        with pytest.raises(InvalidArgument, match="terminal size"):
            asyncio.run(spdystreams._pump_resize(FakeStream(junk), lambda h, w: None))  # type: ignore[arg-type]


def test_negotiate() -> None:
    from aiohttp import web
    from aiohttp.test_utils import make_mocked_request
    from multidict import CIMultiDict

    from berth.cri import spdystreams

    def req(*protocols: str) -> Any:
        h = CIMultiDict([("Upgrade", "SPDY/3.1")])
        for p in protocols:
            h.add("X-Stream-Protocol-Version", p)
        return make_mocked_request("POST", "/exec/x", headers=h)

    supported = spdystreams.REMOTECOMMAND_PROTOCOLS
    assert spdystreams.is_spdy(req())
    assert spdystreams.negotiate(req("v5.channel.k8s.io", "v3.channel.k8s.io"), supported) == (
        "v3.channel.k8s.io"
    )
    assert spdystreams.negotiate(req("v2.channel.k8s.io, v4.channel.k8s.io"), supported) == (
        "v2.channel.k8s.io"
    )
    with pytest.raises(web.HTTPForbidden):
        spdystreams.negotiate(req("v9.channel.k8s.io"), supported)
    with pytest.raises(web.HTTPBadRequest):
        spdystreams.negotiate(req(), supported)


def test_unidirectional_stream_is_not_written_to() -> None:
    async def test(session: Session, peer: Peer) -> None:
        peer.syn(1, {"streamtype": "x"}, spdy.FLAG_UNIDIRECTIONAL)
        peer.send(spdy.data(1, b"in"))
        s = await session.accept()
        assert s is not None and not s.remote_closed
        assert await s.read() == b"in"
        await s.write(b"out")  # dropped: the peer said it takes nothing on this stream
        peer.send(spdy.control(spdy.PING, 0, struct.pack(">I", 5)))
        first = await peer.frame()
        assert isinstance(first, spdy.ControlFrame) and first.type == spdy.PING

    run_session(test)
