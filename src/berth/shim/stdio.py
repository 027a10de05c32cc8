"""The shim's ends of things: its channels to the daemon, the container's stdio (pipes, or a
pty for a Tty) and the json-file log it writes.

Imports `shim.protocol` and `runtime.process` (for the child's ends of the stdio).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import struct
import termios
import time

from berth.runtime import process
from berth.shim import protocol

# a JSON string as json.dumps(ensure_ascii=False) writes it (the C encoder)
_json_string = json.encoder.encode_basestring

# Docker's json-file driver splits long lines into 16 KiB entries
_MAX_LINE = 16 * 1024


def rfc3339nano(ns: int) -> str:
    secs, frac = divmod(ns, 1_000_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs)) + f".{frac:09d}Z"


def set_winsize(fd: int, h: int, w: int) -> None:
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", h, w, 0, 0))


class Channel:
    """One connection to a daemon. Reads frames; a daemon that went away is not an error."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock: socket.socket | None = sock
        sock.settimeout(10)  # a daemon that stops reading must not stall the container forever
        self.buf = b""

    def send(self, typ: int, payload: bytes) -> None:
        if self.sock is None:
            return
        try:
            self.sock.sendall(protocol.frame(typ, payload))
        except OSError:
            self.close()

    def control(self, msg: protocol.ShimMessage) -> None:
        if self.sock is None:
            return
        try:
            self.sock.sendall(protocol.encode_control(msg))
        except OSError:
            self.close()

    def read_frames(self) -> list[tuple[int, bytes]] | None:
        """The complete frames now readable; None once the peer has gone."""
        assert self.sock is not None
        try:
            data = self.sock.recv(65536)
        except (BlockingIOError, InterruptedError):
            return []
        except OSError:
            data = b""
        if not data:
            return None
        out, self.buf = protocol.split_frames(self.buf + data)
        return out

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None


class LogWriter:
    """Docker's json-file format: one JSON object per line, {"log","stream","time"}; with
    `max_size`, rotated as Docker does: PATH.1 is the newest old file, at most `max_file`
    files in all."""

    def __init__(self, path: str, max_size: int = 0, max_file: int = 1) -> None:
        self.path = path
        self.max_size = max_size
        self.max_file = max_file
        self.fd = -1
        self.size = 0
        self.dropped = 0  # writes the disk refused
        if path:
            self._open()
        self.partial: dict[str, bytes] = {"stdout": b"", "stderr": b""}

    def _open(self) -> None:
        self.fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o640)
        self.size = os.fstat(self.fd).st_size

    def _write(self, data: bytes) -> None:
        if self.max_size and self.size and self.size + len(data) > self.max_size:
            os.close(self.fd)
            if self.max_file > 1:
                for i in range(self.max_file - 1, 0, -1):
                    src = self.path if i == 1 else f"{self.path}.{i - 1}"
                    with contextlib.suppress(FileNotFoundError):
                        os.rename(src, f"{self.path}.{i}")
            else:
                os.unlink(self.path)
            self._open()
        try:
            n = os.write(self.fd, data)
        except OSError:  # ENOSPC, EIO, EROFS
            n = -1
        if n < len(data):
            # a full (or failing) disk: these entries are dropped, as Docker's json-file
            # drops what it cannot write, and the output still reaches the attached clients
            # (before, the error cut it off: a failed build's RUN lost its own "No space left
            # on device"); a half-written entry is cut off, so the log stays whole lines
            self.dropped += 1
            if n > 0:
                with contextlib.suppress(OSError):
                    os.ftruncate(self.fd, self.size)
            return
        self.size += n

    def feed(self, stream: str, data: bytes) -> None:
        if self.fd < 0:
            return
        buf = self.partial[stream] + data
        out = []
        now = rfc3339nano(time.time_ns())
        start, end = 0, len(buf)
        # a line per entry, a long one cut every 16 KiB, as Docker's json-file; by index,
        # never re-slicing what is left (64 KiB of empty lines was 0.4 s of copying)
        while start < end:
            nl = buf.find(b"\n", start, start + _MAX_LINE)
            if nl < 0:
                if end - start < _MAX_LINE:
                    break
                out.append(self._entry(stream, buf[start : start + _MAX_LINE], now))
                start += _MAX_LINE
                continue
            out.append(self._entry(stream, buf[start : nl + 1], now))
            start = nl + 1
        self.partial[stream] = buf[start:]
        # rotation falls between entries, never inside one
        batch: list[bytes] = []
        size = 0
        for entry in out:
            if self.max_size and batch and self.size + size + len(entry) > self.max_size:
                self._write(b"".join(batch))
                batch, size = [], 0
            batch.append(entry)
            size += len(entry)
        if batch:
            self._write(b"".join(batch))

    def flush(self) -> None:
        for stream, data in self.partial.items():
            if data and self.fd >= 0:
                self._write(self._entry(stream, data, rfc3339nano(time.time_ns())))
            self.partial[stream] = b""

    @staticmethod
    def _entry(stream: str, data: bytes, now: str) -> bytes:
        # Docker's own bytes: {"log":"...","stream":"stdout","time":"..."} (no spaces)
        return (
            f'{{"log":{_json_string(data.decode("utf-8", errors="replace"))},'
            f'"stream":"{stream}","time":"{now}"}}\n'
        ).encode()

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)


class Stdio:
    """The monitor's ends of the container's stdio."""

    def __init__(self, req: protocol.StartRequest, console_dir: str = "") -> None:
        """`console_dir`: for an OCI runtime, which sends a terminal's master over a socket
        it is given the path of (--console-socket), where to make that socket; "" for
        berth's own, which gets one end of a socketpair."""
        self.tty = req.tty
        self.console_size = req.console_size
        self.master = -1
        self.stdin_w = -1
        self.fds: dict[int, int] = {}  # our read end -> stream type
        self.console_path = ""
        if req.tty and console_dir:
            # a unix socket path has at most 107 bytes: the runtime's root is short enough
            os.makedirs(console_dir, exist_ok=True)
            self.console_path = os.path.join(console_dir, f"console-{os.urandom(4).hex()}.sock")
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.console_path)
            self._console = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self._console.bind(self.console_path)
            self._console.listen(1)
            null = os.open("/dev/null", os.O_RDWR | os.O_CLOEXEC)
            self.child = process.Stdio(null, null, null)
            self._close_after_spawn = [null]
            return
        if req.tty:
            self._console, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
            self.child = process.Stdio(console=theirs.detach())
            self._close_after_spawn = [self.child.console]
            return
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        if req.stdin:
            in_r, self.stdin_w = os.pipe()
        else:
            in_r = os.open("/dev/null", os.O_RDONLY | os.O_CLOEXEC)
        self.child = process.Stdio(in_r, out_w, err_w)
        self.fds = {out_r: protocol.T_STDOUT, err_r: protocol.T_STDERR}
        self._close_after_spawn = [in_r, out_w, err_w]

    def receive_console(self) -> None:
        """The pty master the init sends before it execs (nothing if it failed first)."""
        if not self.tty or self._console.fileno() < 0:
            return  # no terminal, or received already
        try:
            if self.console_path:
                self._console.settimeout(10)
                conn, _ = self._console.accept()
                with conn:
                    _, fds, _, _ = socket.recv_fds(conn, 4096, 1)
                os.unlink(self.console_path)
            else:
                _, fds, _, _ = socket.recv_fds(self._console, 16, 1)
        except OSError:
            fds = []
        self._console.close()
        if fds:
            self.master = fds[0]
            os.set_blocking(self.master, True)
            if self.console_size:
                set_winsize(self.master, *self.console_size)
            self.fds[self.master] = protocol.T_STDOUT

    def after_spawn(self) -> None:
        for fd in self._close_after_spawn:
            os.close(fd)
        self._close_after_spawn = []

    # --- a shim host's: the process is started by a forked starter, which uses the child's
    # ends (and the console socket); the host keeps only its own
    def keep_fds(self) -> set[int]:
        """What a starter needs of these: the child's ends and the console socket."""
        keep = set(self._close_after_spawn)
        if self.tty and self._console.fileno() >= 0:
            keep.add(self._console.fileno())
        return keep

    def after_fork(self) -> None:
        """In the host, once the starter is forked: the child's ends and the console socket
        are the starter's now."""
        self.after_spawn()
        if self.tty:
            self._console.close()

    def take_master(self, fd: int) -> None:
        """The pty master the starter received."""
        self.master = fd
        self.fds[fd] = protocol.T_STDOUT

    def stdin_fd(self) -> int:
        return self.master if self.tty else self.stdin_w

    def close(self) -> None:
        """Close the host's ends (a container's end)."""
        for fd in list(self.fds):
            with contextlib.suppress(OSError):
                os.close(fd)
        self.fds = {}
        if self.stdin_w >= 0:
            with contextlib.suppress(OSError):
                os.close(self.stdin_w)
            self.stdin_w = -1
        self.master = -1
        self.after_spawn()

    def write_stdin(self, data: bytes) -> None:
        fd = self.master if self.tty else self.stdin_w
        if fd < 0:
            return
        try:
            os.write(fd, data)  # a short write on a full pipe blocks: stdin has backpressure
        except OSError:
            pass

    def close_stdin(self) -> None:
        if self.tty:
            # a Tty has no separate stdin: EOF is ^D at the start of a line
            self.write_stdin(b"\x04")
        elif self.stdin_w >= 0:
            os.close(self.stdin_w)
            self.stdin_w = -1

    def resize(self, h: int, w: int) -> None:
        if self.master >= 0:
            set_winsize(self.master, h, w)


__all__ = ["Channel", "LogWriter", "Stdio", "rfc3339nano", "set_winsize"]
