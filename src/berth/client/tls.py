"""A TLS connection that one thread may read while another writes: an attach or exec session
sends stdin from a thread while the main one reads the output. OpenSSL's connection objects
must not be used by two threads at once (and `_ssl` lets go of the GIL inside them), so every
call into it holds a lock, and none blocks while holding it: the socket is non-blocking and
the waiting is done in select(2), outside the lock.

Imported only for a TLS endpoint (it imports ssl).
"""

from __future__ import annotations

import _thread
import select
import ssl
from typing import Any


class TLSConn:
    __slots__ = ("raw", "_lock")

    def __init__(self, raw: ssl.SSLSocket) -> None:
        self.raw = raw
        self._lock = _thread.allocate_lock()
        raw.setblocking(False)

    def _wait(self, write: bool) -> None:
        fd = self.raw.fileno()
        if fd < 0:
            raise OSError("the connection is closed")
        if write:
            select.select([], [fd], [])
        else:
            select.select([fd], [], [])

    def recv(self, n: int) -> bytes:
        while True:
            with self._lock:
                try:
                    return self.raw.recv(n)
                except ssl.SSLWantReadError:
                    write = False
                except ssl.SSLWantWriteError:
                    write = True
            self._wait(write)

    def sendall(self, data: bytes | bytearray | memoryview) -> None:
        view = memoryview(data).cast("B")
        while view:
            with self._lock:
                try:
                    sent = self.raw.send(view)
                except ssl.SSLWantWriteError:
                    sent, write = 0, True
                except ssl.SSLWantReadError:
                    sent, write = 0, False
            if sent:
                view = view[sent:]
            else:
                self._wait(write)

    def close_write(self) -> None:
        """The TCP connection's write side, as the docker CLI's own tlsClientCon.CloseWrite
        (SSLSocket.shutdown would drop the TLS layer, and the output still to come)."""
        import _socket

        with self._lock:
            _socket.socket.shutdown(self.raw, _socket.SHUT_WR)

    def close(self) -> None:
        self.raw.close()

    def fileno(self) -> int:
        return self.raw.fileno()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.raw, name)
