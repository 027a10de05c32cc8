"""What a shim host (`shim.host`) does for each container it holds: the watches on its
descriptors (`Watches`, the host's one selector), and the serving of its stdio and channels
(`Held`): output read in bounded chunks and passed to its log and channels, input written
without blocking, frames from the daemon (stdin, resize, control) acted on.

The host's loop, the starts and the ends of containers are `shim.host`'s.
"""

from __future__ import annotations

import contextlib
import errno
import os
import selectors
import socket
import time
from dataclasses import dataclass, field
from typing import Any

from berth import cgroups
from berth.shim import monitor, protocol, runtimes
from berth.shim.dns import DnsServer
from berth.shim.protocol import (
    T_CLOSE_STDIN,
    T_CONTROL,
    T_RESIZE,
    T_STDERR,
    T_STDIN,
    T_STDOUT,
    StartRequest,
)
from berth.shim.queued import QueuedChannel
from berth.shim.starter import log
from berth.shim.stdio import LogWriter, Stdio

# a read of a container's output: bounded, so every container gets its turn
READ_SIZE = 65536


class Watches:
    """The host's selector: each watch's data is (kind, what), `what` being the container (or
    the container and one of its descriptors or channels) the event is for."""

    def __init__(self) -> None:
        self.sel = selectors.DefaultSelector()

    def watch(self, fileobj: Any, data: tuple[str, Any], mask: int = selectors.EVENT_READ) -> None:
        try:
            self.sel.register(fileobj, mask, data)
        except KeyError:
            old = self.sel.get_key(fileobj)
            if (
                old.fileobj is not fileobj
                if not isinstance(fileobj, int)
                else _owner(old.data) is not _owner(data)
            ):
                # a number left registered by something closed: now another's (defensive;
                # every close unwatches first)
                log(f"shim host: a stale watch of {fileobj!r} replaced")
                self.sel.unregister(fileobj)
                self.sel.register(fileobj, mask, data)
                return
            self.sel.modify(fileobj, mask, data)

    def unwatch(self, fileobj: Any) -> None:
        with contextlib.suppress(KeyError, ValueError, OSError):
            self.sel.unregister(fileobj)

    def channel(self, sock: socket.socket) -> QueuedChannel:
        return QueuedChannel(sock, on_close=self.unwatch)

    def chan_mask(self, c: Held, ch: QueuedChannel) -> None:
        """Watch a channel for what it needs now: its input unless the container's input
        waits; writability while anything is queued."""
        if ch.sock is None:
            with contextlib.suppress(ValueError):
                c.chans.remove(ch)
            return
        mask = 0 if c.stdin_buf else selectors.EVENT_READ
        if ch.out:
            mask |= selectors.EVENT_WRITE
        if mask:
            self.watch(ch.sock, ("chan", (c, ch)), mask)
        else:
            self.unwatch(ch.sock)

    def io_mask(self, c: Held) -> None:
        """Watch the container's output (unless a channel is full: backpressure) and, while
        its input waits, the input's descriptor (a tty's master is both: one watch)."""
        paused = any(ch.full for ch in c.chans)
        stdin = c.stdio.stdin_fd() if c.stdin_buf else -1
        watched = set()
        for fd in {*c.stdio.fds, *([stdin] if stdin >= 0 else [])}:
            mask = 0
            if fd in c.open_out and not paused:
                mask |= selectors.EVENT_READ
            if fd == stdin:
                mask |= selectors.EVENT_WRITE
            if mask:
                self.watch(fd, ("io", (c, fd)), mask)
                watched.add(fd)
        for fd in c.watched - watched:
            self.unwatch(fd)
        c.watched = watched

    def sent(self, c: Held) -> None:
        """After output went to the channels: drop the closed ones, watch the others, and
        pause the output while one is full."""
        for ch in list(c.chans):
            self.chan_mask(c, ch)
        self.io_mask(c)

    def watch_dns(self, c: Held) -> None:
        assert c.dns is not None
        self.watch(c.dns.sock, ("dns", c))
        for i, up in enumerate(c.dns.upstream):
            self.watch(up, ("dns-up", (c, i)))


def _owner(data: tuple[str, Any]) -> Any:
    """Whose a watch is: a container's descriptor's, or the object's it names."""
    kind, what = data
    return what[0] if kind == "io" else what


@dataclass(eq=False)
class Held:
    """One container the host holds, and the serving of its stdio and channels."""

    req: StartRequest
    rt: runtimes.Runtime
    stdio: Stdio
    cg: cgroups.CgroupManager | None
    chans: list[QueuedChannel]
    w: Watches  # the host's
    forked_at: float = 0.0  # when its starter was forked
    pid: int = 0
    logw: LogWriter | None = None
    listener: socket.socket | None = None
    dns: DnsServer | None = None
    open_out: set[int] = field(default_factory=set)
    status: int | None = None
    last_output: float = 0.0
    stdin_buf: bytearray = field(default_factory=bytearray)
    # frames that came after input the container has not taken yet
    later: list[tuple[QueuedChannel, tuple[int, bytes]]] = field(default_factory=list)
    watched: set[int] = field(default_factory=set)  # its stdio descriptors being watched

    def output(self, fd: int) -> None:
        try:
            data = os.read(fd, READ_SIZE)
        except BlockingIOError:
            return
        except OSError as e:  # EIO: the pty's last holder closed it
            if e.errno != errno.EIO:
                raise
            data = b""
        if not data:
            self.open_out.discard(fd)
            self.w.io_mask(self)
            return
        self.last_output = time.monotonic()
        self.pass_on(fd, data)
        self.w.sent(self)

    def pass_on(self, fd: int, data: bytes) -> None:
        typ = T_STDERR if self.stdio.fds.get(fd) == T_STDERR else T_STDOUT
        if self.logw is not None:
            self.logw.feed("stderr" if typ == T_STDERR else "stdout", data)
        for ch in self.chans:
            ch.send(typ, data)

    def accept(self) -> None:
        assert self.listener is not None
        try:
            conn, _ = self.listener.accept()
        except OSError:
            return  # EAGAIN, ECONNABORTED, EMFILE: the listener stays, the next one is served
        os.set_inheritable(conn.fileno(), False)
        ch = self.w.channel(conn)
        self.chans.append(ch)
        ch.control(protocol.Ready(pid=self.pid, monitor=os.getpid()))
        self.w.sent(self)

    def channel_input(self, ch: QueuedChannel) -> None:
        frames = ch.read_frames()
        if frames is None:
            ch.close()
            return
        self.frames(ch, frames)

    def frames(self, ch: QueuedChannel, frames: list[tuple[int, bytes]]) -> None:
        for i, (typ, payload) in enumerate(frames):
            if self.stdin_buf:
                # input waits for the container: what came after it waits too, in order
                self.later.extend((ch, f) for f in frames[i:])
                return
            if typ == T_STDIN:
                self.stdin(payload)
            elif typ == T_CLOSE_STDIN:
                if self.stdio.tty:
                    self.stdin(b"\x04")  # a tty's EOF is ^D: it queues as input does
                else:
                    self.w.unwatch(self.stdio.stdin_fd())  # still its own number: unwatched
                    self.watched.discard(self.stdio.stdin_fd())
                    self.stdio.close_stdin()
            elif typ == T_RESIZE:
                with contextlib.suppress(Exception):
                    size = protocol.Resize.decode(payload)
                    self.stdio.resize(size.h, size.w)
            elif typ == T_CONTROL:
                answer, started = monitor.command(
                    self.rt, runtimes.Handle(self.pid), payload, self.dns
                )
                if started is not None:
                    self.dns = started
                    self.w.watch_dns(self)
                if answer is not None and ch.sock is not None:
                    ch.control(answer)

    def stdin(self, data: bytes) -> None:
        fd = self.stdio.stdin_fd()
        if fd < 0:
            return
        if not self.stdin_buf:
            try:
                n = os.write(fd, data)
            except BlockingIOError:
                n = 0
            except OSError:
                return
            data = data[n:]
        if data:
            # the container does not keep up: hold its input, and read no more of it
            self.stdin_buf += data
            self.w.sent(self)

    def flush_stdin(self) -> None:
        fd = self.stdio.stdin_fd()
        try:
            n = os.write(fd, self.stdin_buf) if fd >= 0 else len(self.stdin_buf)
        except BlockingIOError:
            return
        except OSError:
            n = len(self.stdin_buf)
        del self.stdin_buf[:n]
        if not self.stdin_buf:
            later, self.later = self.later, []
            for ch, f in later:
                self.frames(ch, [f])
        self.w.sent(self)

    def release(self) -> None:
        """Stop watching and close what the host holds of the container."""
        for fd in {*self.stdio.fds, *self.watched, self.stdio.stdin_fd()} - {-1}:
            self.w.unwatch(fd)
        self.watched = set()
        self.stdio.close()
        if self.logw is not None:
            with contextlib.suppress(OSError):
                self.logw.close()
            self.logw = None
        if self.dns is not None:
            self.w.unwatch(self.dns.sock)
            for up in self.dns.upstream:
                self.w.unwatch(up)
            self.dns.close()
            self.dns = None
        if self.listener is not None:
            self.w.unwatch(self.listener)
            self.listener.close()
            self.listener = None
            with contextlib.suppress(OSError):
                os.unlink(self.req.socket)


__all__ = ["READ_SIZE", "Held", "Watches"]
