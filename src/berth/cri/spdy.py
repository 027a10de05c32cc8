"""SPDY/3.1 framing and a server-side session, as far as Kubernetes' streaming protocols use it
(the SPDY Protocol, draft 3 and 3.1: draft-mbelshe-httpbis-spdy-00 and Chromium's 3.1 notes).

Frames: a control frame is `1 | version(15) | type(16) | flags(8) | length(24) | payload`, a
data frame `0 | stream-id(31) | flags(8) | length(24) | data`. Name/value header blocks are
`count(32)` and that many `len(32) name len(32) value` pairs (several values of a name are joined
by NUL), compressed with one zlib stream per direction for the whole session, primed with the
dictionary of section 2.6.10.1 (`DICTIONARY`).

Everything the peer sends is bounded (frame sizes, decompressed header size and count, open
streams, data buffered per stream) and a frame that breaks the protocol ends the session with
GOAWAY PROTOCOL_ERROR (or a stream with RST_STREAM), never with an exception in the daemon.
Flow control: the session sends WINDOW_UPDATE for what it has read; it does not hold its own
sends to the peer's windows (spdystream, the client Kubernetes uses, neither sends nor reads
WINDOW_UPDATE).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import struct
import zlib
from collections.abc import Mapping
from dataclasses import dataclass

from berth.errors import BerthError

log = logging.getLogger(__name__)

VERSION = 3
SYN_STREAM, SYN_REPLY, RST_STREAM, SETTINGS = 1, 2, 3, 4
PING, GOAWAY, HEADERS, WINDOW_UPDATE = 6, 7, 8, 9
FLAG_FIN, FLAG_UNIDIRECTIONAL = 0x01, 0x02
# RST_STREAM status codes
PROTOCOL_ERROR, INVALID_STREAM, REFUSED_STREAM, UNSUPPORTED_VERSION = 1, 2, 3, 4
CANCEL, INTERNAL_ERROR, FLOW_CONTROL_ERROR, STREAM_IN_USE = 5, 6, 7, 8
STREAM_ALREADY_CLOSED, FRAME_TOO_LARGE = 9, 11
# GOAWAY status codes
GOAWAY_OK, GOAWAY_PROTOCOL_ERROR, GOAWAY_INTERNAL_ERROR = 0, 1, 2

MAX_DATA_FRAME = 1 << 20  # what a peer may send in one data frame
MAX_CONTROL_FRAME = 64 << 10
MAX_HEADER_BLOCK = 64 << 10  # decompressed
MAX_HEADERS = 64  # name/value pairs in one block
MAX_STREAMS = 100  # open at once, per session
STREAM_BUFFER = 16  # data frames read ahead on one stream before the session waits
SEND_CHUNK = 32 << 10
WINDOW_STEP = 32 << 10  # WINDOW_UPDATE once this much has been read

_WORDS = (
    "options head post put delete trace accept accept-charset accept-encoding accept-language "
    "accept-ranges age allow authorization cache-control connection content-base "
    "content-encoding content-language content-length content-location content-md5 "
    "content-range content-type date etag expect expires from host if-match "
    "if-modified-since if-none-match if-range if-unmodified-since last-modified location "
    "max-forwards pragma proxy-authenticate proxy-authorization range referer retry-after "
    "server te trailer transfer-encoding upgrade user-agent vary via warning www-authenticate "
    "method get status"
).split() + ["200 OK", "version", "HTTP/1.1", "url", "public", "set-cookie", "keep-alive", "origin"]
_TAIL = (
    "100101201202205206300302303304305306307402405406407408409410411412413414415416417502504505"
    "203 Non-Authoritative Information204 No Content301 Moved Permanently400 Bad Request"
    "401 Unauthorized403 Forbidden404 Not Found500 Internal Server Error501 Not Implemented"
    "503 Service UnavailableJan Feb Mar Apr May Jun Jul Aug Sept Oct Nov Dec 00:00:00 "
    "Mon, Tue, Wed, Thu, Fri, Sat, Sun, GMTchunked,text/html,image/png,image/jpg,image/gif,"
    "application/xml,application/xhtml+xml,text/plain,text/javascript,publicprivatemax-age="
    "gzip,deflate,sdchcharset=utf-8charset=iso-8859-1,utf-,*,enq=0."
)
# Section 2.6.10.1's dictionary: the words as length-prefixed strings, then the status lines,
# dates and media types run together (1,423 bytes).
DICTIONARY = b"".join(struct.pack(">I", len(w)) + w.encode() for w in _WORDS) + _TAIL.encode()


class SpdyError(BerthError):
    """The peer broke the protocol; `status` is what to tell it (GOAWAY or RST_STREAM)."""

    def __init__(self, message: str, status: int = PROTOCOL_ERROR, stream_id: int = 0) -> None:
        super().__init__(message)
        self.status = status
        self.stream_id = stream_id


Headers = dict[str, list[str]]


@dataclass(slots=True, frozen=True)
class DataFrame:
    stream_id: int
    data: bytes
    flags: int = 0


@dataclass(slots=True, frozen=True)
class ControlFrame:
    """A control frame, its header block (if it has one) already decoded."""

    type: int
    flags: int
    payload: bytes  # without the header block
    headers: Headers | None = None


class HeaderCodec:
    """The session's two zlib streams (one per direction), primed with DICTIONARY."""

    def __init__(self) -> None:
        self._inflate = zlib.decompressobj(zdict=DICTIONARY)
        self._deflate = zlib.compressobj(zdict=DICTIONARY)

    def decode(self, block: bytes) -> Headers:
        try:
            raw = self._inflate.decompress(block, MAX_HEADER_BLOCK + 1)
        except zlib.error as e:
            raise SpdyError(f"bad compressed header block: {e}") from None
        if len(raw) > MAX_HEADER_BLOCK or self._inflate.unconsumed_tail:
            raise SpdyError(f"header block larger than {MAX_HEADER_BLOCK} bytes")
        return parse_header_block(raw)

    def encode(self, headers: Mapping[str, str | list[str]]) -> bytes:
        raw = build_header_block(headers)
        return self._deflate.compress(raw) + self._deflate.flush(zlib.Z_SYNC_FLUSH)


def parse_header_block(raw: bytes) -> Headers:
    if len(raw) < 4:
        raise SpdyError("truncated header block")
    (count,) = struct.unpack_from(">I", raw)
    if count > MAX_HEADERS:
        raise SpdyError(f"{count} headers in one block (at most {MAX_HEADERS})")
    out: Headers = {}
    pos = 4
    for _ in range(count):
        fields = []
        for _what in ("name", "value"):
            if pos + 4 > len(raw):
                raise SpdyError("truncated header block")
            (n,) = struct.unpack_from(">I", raw, pos)
            pos += 4
            if pos + n > len(raw):
                raise SpdyError("truncated header block")
            fields.append(raw[pos : pos + n])
            pos += n
        name_b, value_b = fields
        try:
            name, value = name_b.decode("ascii"), value_b.decode("utf-8")
        except UnicodeDecodeError:
            raise SpdyError("header name or value is not text") from None
        if not name or name != name.lower():
            raise SpdyError(f"header name {name!r} is empty or not lowercase")
        if name in out:
            raise SpdyError(f"header {name!r} given twice")
        out[name] = value.split("\0")
    if pos != len(raw):
        raise SpdyError("trailing bytes after the header block")
    return out


def build_header_block(headers: Mapping[str, str | list[str]]) -> bytes:
    parts = [struct.pack(">I", len(headers))]
    for name, value in headers.items():
        v = "\0".join(value) if isinstance(value, list) else value
        for field in (name.lower().encode(), v.encode()):
            parts.append(struct.pack(">I", len(field)) + field)
    return b"".join(parts)


def control(type_: int, flags: int, payload: bytes) -> bytes:
    return struct.pack(">HHI", 0x8000 | VERSION, type_, flags << 24 | len(payload)) + payload


def data(stream_id: int, payload: bytes, flags: int = 0) -> bytes:
    return struct.pack(">II", stream_id & 0x7FFFFFFF, flags << 24 | len(payload)) + payload


_BLOCK_AT = {SYN_STREAM: 10, SYN_REPLY: 4, HEADERS: 4}  # where each one's header block starts
_FIXED = {RST_STREAM: 8, PING: 4, GOAWAY: 8, WINDOW_UPDATE: 8}


async def read_frame(reader: asyncio.StreamReader, codec: HeaderCodec) -> DataFrame | ControlFrame:
    """The next frame (IncompleteReadError at the end of the connection)."""
    head = await reader.readexactly(8)
    first, word = struct.unpack(">II", head)
    flags, length = word >> 24, word & 0xFFFFFF
    if not first & 0x80000000:
        if length > MAX_DATA_FRAME:
            raise SpdyError(f"data frame of {length} bytes (at most {MAX_DATA_FRAME})")
        return DataFrame(first & 0x7FFFFFFF, await reader.readexactly(length), flags)
    version, type_ = (first >> 16) & 0x7FFF, first & 0xFFFF
    if version != VERSION:
        raise SpdyError(f"SPDY version {version} (only 3 is spoken)", UNSUPPORTED_VERSION)
    if length > MAX_CONTROL_FRAME:
        raise SpdyError(f"control frame of {length} bytes (at most {MAX_CONTROL_FRAME})")
    payload = await reader.readexactly(length)
    if type_ in _BLOCK_AT:
        at = _BLOCK_AT[type_]
        if length < at:
            raise SpdyError(f"control frame type {type_} of {length} bytes is too short")
        return ControlFrame(type_, flags, payload[:at], codec.decode(payload[at:]))
    if type_ in _FIXED and length != _FIXED[type_]:
        raise SpdyError(f"control frame type {type_} of {length} bytes (not {_FIXED[type_]})")
    if type_ == SETTINGS:
        if length < 4 or length != 4 + 8 * struct.unpack_from(">I", payload)[0]:
            raise SpdyError("SETTINGS frame's length does not match its entries")
    return ControlFrame(type_, flags, payload)


def stream_id_of(payload: bytes) -> int:
    return int(struct.unpack_from(">I", payload)[0]) & 0x7FFFFFFF


class Stream:
    """One stream the peer opened: its headers, what it sent (read) and what we send."""

    def __init__(self, session: Session, stream_id: int, headers: Headers, fin: bool) -> None:
        self.session = session
        self.id = stream_id
        self.headers = headers
        self._inbox: asyncio.Queue[bytes] = asyncio.Queue(STREAM_BUFFER)
        self.remote_closed = False
        self.local_closed = False
        self.discarding = False
        self.replied = False
        self.reset_by_peer = asyncio.Event()  # RST_STREAM, or the session's end
        if fin:
            self._end()

    def header(self, name: str) -> str:
        return self.headers.get(name.lower(), [""])[0]

    def _end(self) -> None:
        if not self.remote_closed:
            self.remote_closed = True
            with contextlib.suppress(asyncio.QueueFull):
                self._inbox.put_nowait(b"")

    async def _deliver(self, data: bytes) -> None:
        if self.discarding:
            await self.session._consumed(self.id, len(data))
        elif data:
            await self._inbox.put(data)

    async def read(self) -> bytes:
        """What the peer sent next; b"" once it has closed its side (or reset the stream)."""
        if self.remote_closed and self._inbox.empty():
            return b""
        got = await self._inbox.get()
        if not got:
            self._inbox.put_nowait(b"")  # stays at its end for later reads
        else:
            await self.session._consumed(self.id, len(got))
        return got

    def discard_input(self) -> None:
        """This stream is only written to: whatever the peer sends on it is dropped."""
        self.discarding = True
        while not self._inbox.empty():
            self._inbox.get_nowait()
        if self.remote_closed:
            self._inbox.put_nowait(b"")

    async def reply(self, headers: Mapping[str, str | list[str]] | None = None) -> None:
        if not self.replied:
            self.replied = True
            await self.session._send_block(SYN_REPLY, 0, struct.pack(">I", self.id), headers or {})

    async def write(self, payload: bytes) -> None:
        if self.local_closed:
            return
        for i in range(0, len(payload), SEND_CHUNK):
            await self.session._send(data(self.id, payload[i : i + SEND_CHUNK]))

    async def close(self) -> None:
        """Our side is done (an empty data frame with FIN)."""
        if not self.local_closed:
            self.local_closed = True
            await self.session._send(data(self.id, b"", FLAG_FIN))
            self.session._forget_if_done(self)

    async def reset(self, status: int = CANCEL) -> None:
        if not (self.local_closed and self.remote_closed):
            self.local_closed = True
            self._end()
            await self.session._send(control(RST_STREAM, 0, struct.pack(">II", self.id, status)))
        self.session.streams.pop(self.id, None)


class Session:
    """The server's end of one SPDY connection: `run()` reads frames until the connection
    ends; the streams the peer opens come out of `accept()`."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.codec = HeaderCodec()
        self.streams: dict[int, Stream] = {}
        self.last_id = 0
        self._incoming: asyncio.Queue[Stream | None] = asyncio.Queue(MAX_STREAMS)
        self._lock = asyncio.Lock()
        self._unacked: dict[int, int] = {}
        self.closed = asyncio.Event()
        self.error: str | None = None
        self._goaway_sent = False

    async def accept(self) -> Stream | None:
        """The next stream the peer opens; None once the session is over."""
        if self.closed.is_set() and self._incoming.empty():
            return None
        got = await self._incoming.get()
        if got is None:
            self._incoming.put_nowait(None)
        return got

    async def run(self) -> None:
        try:
            while True:
                try:
                    frame = await read_frame(self.reader, self.codec)
                except (asyncio.IncompleteReadError, ConnectionError):
                    break
                if isinstance(frame, DataFrame):
                    await self._on_data(frame)
                elif not await self._on_control(frame):
                    break
        except SpdyError as e:
            self.error = str(e)
            log.info("SPDY session ended: %s", e)
            await self._goaway(GOAWAY_PROTOCOL_ERROR)
        finally:
            self._finish()

    def _finish(self) -> None:
        self.closed.set()
        for s in self.streams.values():
            s._end()
            s.reset_by_peer.set()
        with contextlib.suppress(asyncio.QueueFull):
            self._incoming.put_nowait(None)

    async def close(self) -> None:
        """GOAWAY (all well) and the end of the connection."""
        await self._goaway(GOAWAY_OK)
        self.writer.close()
        self._finish()

    async def _goaway(self, status: int) -> None:
        if not self._goaway_sent and not self.writer.is_closing():
            self._goaway_sent = True
            with contextlib.suppress(ConnectionError, RuntimeError):
                await self._send(control(GOAWAY, 0, struct.pack(">II", self.last_id, status)))

    async def _on_data(self, frame: DataFrame) -> None:
        s = self.streams.get(frame.stream_id)
        if s is None or s.remote_closed:
            status = INVALID_STREAM if s is None else STREAM_ALREADY_CLOSED
            await self._send(control(RST_STREAM, 0, struct.pack(">II", frame.stream_id, status)))
            return
        await s._deliver(frame.data)
        if frame.flags & FLAG_FIN:
            s._end()
            self._forget_if_done(s)

    async def _on_control(self, frame: ControlFrame) -> bool:
        """Handles one control frame; False at GOAWAY."""
        t = frame.type
        if t == SYN_STREAM:
            await self._on_syn_stream(frame)
        elif t == PING:
            (pid,) = struct.unpack(">I", frame.payload)
            if pid % 2 == 1:  # the client's pings are odd; even ones would answer ours
                await self._send(control(PING, 0, frame.payload))
        elif t == GOAWAY:
            return False
        elif t == RST_STREAM:
            s = self.streams.pop(stream_id_of(frame.payload), None)
            if s is not None:
                s.local_closed = True
                s._end()
                s.reset_by_peer.set()
        elif t in (SYN_REPLY, HEADERS):
            sid = stream_id_of(frame.payload)
            if t == SYN_REPLY or sid not in self.streams:
                raise SpdyError(f"unexpected {'SYN_REPLY' if t == SYN_REPLY else 'HEADERS'}")
            if frame.flags & FLAG_FIN:
                self.streams[sid]._end()
        # SETTINGS and WINDOW_UPDATE change nothing here (see the module's note on flow
        # control); unknown control frames are ignored, as the protocol asks
        return True

    async def _on_syn_stream(self, frame: ControlFrame) -> None:
        sid = stream_id_of(frame.payload)
        headers = frame.headers or {}
        if sid == 0 or sid % 2 == 0 or sid <= self.last_id:
            raise SpdyError(f"stream ID {sid} is not a new odd one (last {self.last_id})")
        self.last_id = sid
        if len(self.streams) >= MAX_STREAMS or self._incoming.full():
            await self._send(control(RST_STREAM, 0, struct.pack(">II", sid, REFUSED_STREAM)))
            return
        s = Stream(self, sid, headers, bool(frame.flags & FLAG_FIN))
        s.local_closed = bool(frame.flags & FLAG_UNIDIRECTIONAL)  # we may not send on it
        self.streams[sid] = s
        self._incoming.put_nowait(s)

    def _forget_if_done(self, s: Stream) -> None:
        if s.local_closed and s.remote_closed:
            self.streams.pop(s.id, None)
            self._unacked.pop(s.id, None)

    async def _consumed(self, sid: int, n: int) -> None:
        """Open the peer's window again (the stream's and the session's) for what was read."""
        total = self._unacked.get(sid, 0) + n
        if total < WINDOW_STEP:
            self._unacked[sid] = total
            return
        self._unacked[sid] = 0
        if sid in self.streams and not self.streams[sid].remote_closed:
            await self._send(control(WINDOW_UPDATE, 0, struct.pack(">II", sid, total)))
        await self._send(control(WINDOW_UPDATE, 0, struct.pack(">II", 0, total)))

    async def _send(self, frame: bytes) -> None:
        async with self._lock:
            if self.writer.is_closing():
                raise ConnectionResetError("the SPDY connection is closed")
            self.writer.write(frame)
            await self.writer.drain()

    async def _send_block(
        self, type_: int, flags: int, fixed: bytes, headers: Mapping[str, str | list[str]]
    ) -> None:
        async with self._lock:  # the compressor's state must follow the order on the wire
            if self.writer.is_closing():
                raise ConnectionResetError("the SPDY connection is closed")
            self.writer.write(control(type_, flags, fixed + self.codec.encode(headers)))
            await self.writer.drain()


__all__ = [
    "DICTIONARY",
    "ControlFrame",
    "DataFrame",
    "HeaderCodec",
    "Session",
    "SpdyError",
    "Stream",
    "read_frame",
]
