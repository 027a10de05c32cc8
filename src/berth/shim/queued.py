"""The shim host's channel to the daemon: queued, never blocking the host (`shim.host`).

Imports `shim.protocol`, `shim.stdio`.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable

from berth.shim import protocol
from berth.shim.stdio import Channel

# output queued for one channel to the daemon above which the container's output is no longer
# read (backpressure, lossless as the monitor's blocking write was)
HIGH_WATER = 1 << 20


class QueuedChannel(Channel):
    """A channel to the daemon that never blocks the host: what cannot be written now waits
    in a queue, written when the socket is writable (frames are read as the monitor's channel
    reads them). `on_close` is told before the socket closes (the host stops watching it
    while its number is still its own)."""

    def __init__(
        self,
        sock: socket.socket,  # not Channel's: no timeout, never blocking
        on_close: Callable[[socket.socket], None] | None = None,
    ) -> None:
        self.sock = sock
        sock.setblocking(False)
        self.on_close = on_close
        self.buf = b""
        self.out = bytearray()
        self.full_since = 0.0  # when the queue went above HIGH_WATER; 0 when below

    @property
    def full(self) -> bool:
        return len(self.out) > HIGH_WATER

    def send(self, typ: int, payload: bytes) -> None:
        self._queue(protocol.frame(typ, payload))

    def control(self, msg: protocol.ShimMessage) -> None:
        self._queue(protocol.encode_control(msg))

    def _queue(self, data: bytes) -> None:
        if self.sock is None:
            return
        self.out += data
        self.flush()

    def flush(self) -> None:
        while self.out and self.sock is not None:
            try:
                n = self.sock.send(self.out)
            except (BlockingIOError, InterruptedError):
                break
            except OSError:
                self.close()
                return
            del self.out[:n]
        if not self.full:
            self.full_since = 0.0
        elif not self.full_since:
            self.full_since = time.monotonic()

    def close(self) -> None:
        if self.sock is not None:
            if self.on_close is not None:
                self.on_close(self.sock)
            self.sock.close()
            self.sock = None
        self.out = bytearray()


__all__ = ["HIGH_WATER", "QueuedChannel"]
