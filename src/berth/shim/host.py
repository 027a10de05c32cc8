"""The shim host: one process that holds many running containers (their stdio, logs, channels
to the daemon, embedded DNS and exit status), where a monitor per container held one.

Why: a forked Python monitor costs about 2.3 MiB of its own memory (pages the interpreter
touches after the fork), whatever it holds; a container held by a host costs it the few objects
and descriptors that are the container's. A fork server hands each container start to its
current host, which serves up to `CAPACITY` starts over its life and is then retired (it takes
no more, and ends with its last container); execs keep a monitor of their own (short-lived).

How a container is started and held:
- The host forks a *starter* per container. The starter keeps only that container's descriptors
  (the others' stdio must never reach another container's init), takes a mount namespace of its
  own, mounts the rootfs, makes the cgroup and starts the process, plugs its network, opens its
  DNS socket, and waits until it has exec'd (`monitor.start_container`, the code a monitor runs).
  It then sends the host the process's pid (and the pty master and DNS socket, if any) and exits.
- The container's init was the starter's child: the host, a child subreaper, inherits it and is
  the one to reap it. An init that ends before the host has heard of it is kept as an early exit.
- The host then answers `Ready` on the daemon's channel, listens on the container's socket for
  later channels (a restarted daemon), and serves it as a monitor does.

Isolation of faults: nothing a container does can stall the others. Output is read in bounded
chunks, fairly; writes to the daemon are queued, never blocking (a daemon that stops reading a
container's channel loses that channel's output beyond a bound; the log keeps it); stdin is
written without blocking, and a container that does not read it stops the reading of its own
channels only (backpressure as before). An error while serving one container is confined to it.

Imports `cgroups`, `linux`, `fs` and the shim's own modules.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import selectors
import signal
import socket
import struct
import sys
import time
from dataclasses import dataclass, field
from typing import Any

from berth import cgroups
from berth.fs import atomic_write
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
from berth.shim.stdio import LogWriter, Stdio

# container starts a host takes over its life; then the fork server starts another
CAPACITY = 64
# output queued for one channel to the daemon beyond which output frames are dropped
QUEUE_LIMIT = 8 << 20
# how long output may still come after a container's init has ended (a process that kept
# its stdout open): as long as it keeps coming, and this long after it stops
QUIET_AFTER_EXIT = 0.05
_LEN = struct.Struct(">I")


class QueuedChannel:
    """A channel to the daemon that never blocks the host: what cannot be written now waits
    in a queue, written when the socket is writable."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock: socket.socket | None = sock
        sock.setblocking(False)
        self.buf = b""
        self.out = bytearray()
        self.dropped = 0

    def send(self, typ: int, payload: bytes) -> None:
        if len(self.out) > QUEUE_LIMIT:
            self.dropped += len(payload)
            return
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
                return
            except OSError:
                self.close()
                return
            del self.out[:n]

    def drain(self, timeout: float) -> None:
        """Write what is queued, waiting at most `timeout` (at the container's end)."""
        end = time.monotonic() + timeout
        while self.out and self.sock is not None and time.monotonic() < end:
            self.flush()
            if self.out and self.sock is not None:
                with selectors.DefaultSelector() as sel:
                    sel.register(self.sock, selectors.EVENT_WRITE)
                    sel.select(max(0.0, end - time.monotonic()))

    def read_frames(self) -> list[tuple[int, bytes]] | None:
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


@dataclass(eq=False)
class Held:
    """One container the host holds."""
    req: StartRequest
    rt: runtimes.Runtime
    stdio: Stdio
    cg: cgroups.CgroupManager | None
    chans: list[QueuedChannel]
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


@dataclass(eq=False)
class Starting:
    """A container whose starter is at work."""
    held: Held
    result: socket.socket
    starter: int


class Host:
    def __init__(self, ctl: socket.socket, cfg: monitor.ShimConfig) -> None:
        self.ctl: socket.socket | None = ctl
        self.cfg = cfg
        self.sel = selectors.DefaultSelector()
        self.held: dict[int, Held] = {}          # by the init's pid
        self.starting: dict[int, Starting] = {}  # by the starter's pid
        self.early: dict[int, int] = {}          # pid -> wait status, reaped before known
        self.wake_r, self.wake_w = os.pipe()

    # --- selector bookkeeping -------------------------------------------------------------
    def _watch(self, fileobj: Any, data: tuple[str, Any], mask: int = selectors.EVENT_READ
               ) -> None:
        try:
            self.sel.register(fileobj, mask, data)
        except KeyError:
            self.sel.modify(fileobj, mask, data)

    def _unwatch(self, fileobj: Any) -> None:
        with contextlib.suppress(KeyError, ValueError, OSError):
            self.sel.unregister(fileobj)

    def _chan_mask(self, c: Held, ch: QueuedChannel) -> None:
        if ch.sock is None:
            return
        mask = 0 if c.stdin_buf else selectors.EVENT_READ
        if ch.out:
            mask |= selectors.EVENT_WRITE
        if mask:
            self._watch(ch.sock, ("chan", (c, ch)), mask)
        else:
            self._unwatch(ch.sock)

    # --- the loop -------------------------------------------------------------------------
    def serve(self) -> None:
        os.set_blocking(self.wake_w, False)
        signal.set_wakeup_fd(self.wake_w)
        signal.signal(signal.SIGCHLD, lambda *_: None)
        self._watch(self.wake_r, ("wake", None))
        assert self.ctl is not None
        self._watch(self.ctl, ("ctl", None))
        while self.ctl is not None or self.held or self.starting:
            draining = any(c.status is not None for c in self.held.values())
            for key, mask in self.sel.select(timeout=QUIET_AFTER_EXIT if draining else 0.5):
                kind, what = key.data
                try:
                    self._event(kind, what, mask)
                except Exception as e:  # noqa: BLE001 - confined to the container it was for
                    _log(f"shim host: {kind}: {e!r}")
                    self._confine(kind, what, key.fileobj)
            self._reap()
            self._finish_ended()

    def _event(self, kind: str, what: Any, mask: int) -> None:
        if kind == "out":
            c, fd = what
            self._output(c, fd)
        elif kind == "chan":
            c, ch = what
            if mask & selectors.EVENT_WRITE:
                ch.flush()
            if mask & selectors.EVENT_READ:
                self._channel_input(c, ch)
            self._chan_mask(c, ch)
        elif kind == "stdin":
            self._flush_stdin(what)
        elif kind == "listen":
            self._accept(what)
        elif kind == "dns":
            what.dns.on_query()
        elif kind == "dns-up":
            c, i = what
            c.dns.on_answer(i)
        elif kind == "started":
            self._started(what)
        elif kind == "ctl":
            self._ctl()
        elif kind == "wake":
            with contextlib.suppress(BlockingIOError):
                os.read(self.wake_r, 512)

    def _confine(self, kind: str, what: Any, fileobj: Any) -> None:
        """After an unexpected error: stop serving the one thing it came from."""
        self._unwatch(fileobj)
        if kind == "chan":
            c, ch = what
            ch.close()
            with contextlib.suppress(ValueError):
                c.chans.remove(ch)
        elif kind == "out":
            c, fd = what
            c.open_out.discard(fd)

    # --- container starts -------------------------------------------------------------------
    def _ctl(self) -> None:
        """A start handed over by the fork server: [length][request line], the daemon's
        connection as the descriptor."""
        assert self.ctl is not None
        try:
            data, fds, _, _ = socket.recv_fds(self.ctl, 1 << 20, 1)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data, fds = b"", []
        for fd in fds:
            os.set_inheritable(fd, False)
        if not data:
            # the fork server went, or retired us: no more starts; we end with our last
            for fd in fds:
                os.close(fd)
            self._unwatch(self.ctl)
            self.ctl.close()
            self.ctl = None
            return
        (size,) = _LEN.unpack_from(data)
        while len(data) < _LEN.size + size:
            more = self.ctl.recv(_LEN.size + size - len(data))
            if not more:
                break
            data += more
        line = data[_LEN.size:_LEN.size + size]
        if not fds:
            return
        conn = socket.socket(fileno=fds[0])
        try:
            req = protocol.decode_request(line)
            if not isinstance(req, StartRequest) or req.exec_pid:
                raise protocol.ProtocolError("protocol error: not a container start")
        except Exception as e:  # noqa: BLE001 - reported on the connection it came on
            with contextlib.suppress(OSError):
                conn.sendall(protocol.encode_control(
                    protocol.StartFailed(error=f"monitor: {e}", code=125)))
            conn.close()
            return
        self._start(req, conn)

    def _start(self, req: StartRequest, conn: socket.socket) -> None:
        os.makedirs(req.state_dir, exist_ok=True)
        rt = runtimes.for_request(req, self.cfg.seccomp_cache)
        cg = None
        with open(os.path.join(req.bundle, "config.json")) as f:
            path = (json.load(f).get("linux") or {}).get("cgroupsPath")
        if path:
            cg = cgroups.for_spec(path)
        stdio = Stdio(req, rt.console_dir())
        c = Held(req=req, rt=rt, stdio=stdio, cg=cg, chans=[QueuedChannel(conn)])
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        keep = {0, 1, 2, theirs.fileno(), *stdio.keep_fds()}
        pid = os.fork()
        if pid == 0:  # the starter
            code = 0
            try:
                _starter(req, rt, stdio, self.cfg, theirs, keep)
            except BaseException:  # noqa: BLE001 - reported by its silence: the host says
                code = 1
            finally:
                os._exit(code)
        theirs.close()
        stdio.after_fork()
        ours.setblocking(False)
        self.starting[pid] = Starting(c, ours, pid)
        self._watch(ours, ("started", self.starting[pid]))

    def _started(self, s: Starting) -> None:
        """The starter's word: the pid (and the pty master, the DNS socket), or why not."""
        try:
            data, fds, _, _ = socket.recv_fds(s.result, 65536, 2)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data, fds = b"", []
        for fd in fds:
            os.set_inheritable(fd, False)
        self._unwatch(s.result)
        s.result.close()
        self.starting.pop(s.starter, None)
        c = s.held
        word: dict[str, Any] = json.loads(data) if data else {
            "error": "monitor: the container's starter died", "code": 125}
        if "error" in word:
            for fd in fds:
                os.close(fd)
            c.stdio.close()
            monitor.fail(c.req, c.chans, str(word["error"]), int(word.get("code", 125)))
            return
        c.pid = int(word["pid"])
        fds = list(fds)
        if word.get("master"):
            c.stdio.take_master(fds.pop(0))
        if word.get("dns") and fds and c.req.dns is not None:
            d = c.req.dns
            c.dns = DnsServer(fds.pop(0), list(d.hosts), list(d.upstream), forward=d.forward,
                              links=dict(d.links))
        for fd in fds:
            os.close(fd)
        c.logw = LogWriter(c.req.log_path, c.req.log_max_size, c.req.log_max_file)
        for fd in c.stdio.fds:
            os.set_blocking(fd, False)
            c.open_out.add(fd)
            self._watch(fd, ("out", (c, fd)))
        if c.stdio.stdin_fd() >= 0:
            os.set_blocking(c.stdio.stdin_fd(), False)
        if c.dns is not None:
            self._watch_dns(c)
        if c.req.socket:
            c.listener = _listen(c.req.socket)
            self._watch(c.listener, ("listen", c))
        self.held[c.pid] = c
        for ch in c.chans:
            ch.control(protocol.Ready(pid=c.pid, monitor=os.getpid()))
            self._chan_mask(c, ch)
        if c.pid in self.early:
            c.status = self.early.pop(c.pid)
            c.last_output = time.monotonic()

    def _watch_dns(self, c: Held) -> None:
        assert c.dns is not None
        self._watch(c.dns.sock, ("dns", c))
        for i, up in enumerate(c.dns.upstream):
            self._watch(up, ("dns-up", (c, i)))

    # --- serving a container ---------------------------------------------------------------
    def _output(self, c: Held, fd: int) -> None:
        try:
            data = os.read(fd, 65536)
        except BlockingIOError:
            return
        except OSError as e:  # EIO: the pty's last holder closed it
            if e.errno != errno.EIO:
                raise
            data = b""
        if not data:
            self._unwatch(fd)
            c.open_out.discard(fd)
            return
        c.last_output = time.monotonic()
        name = "stderr" if c.stdio.fds.get(fd) == T_STDERR else "stdout"
        assert c.logw is not None
        c.logw.feed(name, data)
        typ = T_STDERR if name == "stderr" else T_STDOUT
        for ch in list(c.chans):
            ch.send(typ, data)
            self._chan_mask(c, ch)

    def _accept(self, c: Held) -> None:
        assert c.listener is not None
        try:
            conn, _ = c.listener.accept()
        except (BlockingIOError, InterruptedError):
            return
        ch = QueuedChannel(conn)
        c.chans.append(ch)
        ch.control(protocol.Ready(pid=c.pid, monitor=os.getpid()))
        self._chan_mask(c, ch)

    def _channel_input(self, c: Held, ch: QueuedChannel) -> None:
        frames = ch.read_frames()
        if frames is None:
            self._unwatch(ch.sock)
            ch.close()
            with contextlib.suppress(ValueError):
                c.chans.remove(ch)
            return
        self._frames(c, ch, frames)

    def _frames(self, c: Held, ch: QueuedChannel, frames: list[tuple[int, bytes]]) -> None:
        for i, (typ, payload) in enumerate(frames):
            if c.stdin_buf:
                # input waits for the container: what came after it waits too, in order
                c.later.extend((ch, f) for f in frames[i:])
                return
            if typ == T_STDIN:
                self._stdin(c, payload)
            elif typ == T_CLOSE_STDIN:
                # in order: no channel is read while input waits for the container
                c.stdio.close_stdin()
            elif typ == T_RESIZE:
                with contextlib.suppress(Exception):
                    size = protocol.Resize.decode(payload)
                    c.stdio.resize(size.h, size.w)
            elif typ == T_CONTROL:
                answer, started = monitor.command(c.rt, runtimes.Handle(c.pid), payload, c.dns)
                if started is not None:
                    c.dns = started
                    self._watch_dns(c)
                if answer is not None:
                    ch.control(answer)

    def _stdin(self, c: Held, data: bytes) -> None:
        fd = c.stdio.stdin_fd()
        if fd < 0:
            return
        if not c.stdin_buf:
            try:
                n = os.write(fd, data)
            except BlockingIOError:
                n = 0
            except OSError:
                return
            data = data[n:]
        if data:
            # the container does not keep up: hold its input, and read no more of it
            c.stdin_buf += data
            self._watch(fd, ("stdin", c), selectors.EVENT_WRITE)
            for ch in c.chans:
                self._chan_mask(c, ch)

    def _flush_stdin(self, c: Held) -> None:
        fd = c.stdio.stdin_fd()
        try:
            n = os.write(fd, c.stdin_buf) if fd >= 0 else len(c.stdin_buf)
        except BlockingIOError:
            return
        except OSError:
            n = len(c.stdin_buf)
        del c.stdin_buf[:n]
        if not c.stdin_buf:
            self._unwatch(fd)
            later, c.later = c.later, []
            for ch, f in later:
                self._frames(c, ch, [f])
            for ch in c.chans:
                self._chan_mask(c, ch)

    # --- ends ---------------------------------------------------------------------------------
    def _reap(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            c = self.held.get(pid)
            if c is not None:
                c.status = status
                c.last_output = time.monotonic()
            elif pid not in self.starting:
                # an init whose starter has not spoken yet (or a runtime's helper): kept a while
                self.early[pid] = status
                while len(self.early) > 256:
                    del self.early[next(iter(self.early))]

    def _finish_ended(self) -> None:
        now = time.monotonic()
        for pid, c in list(self.held.items()):
            if c.status is None:
                continue
            if c.open_out and now - c.last_output < QUIET_AFTER_EXIT:
                continue
            del self.held[pid]
            try:
                self._finish(c)
            except Exception as e:  # noqa: BLE001 - one container's end, not the host's
                _log(f"shim host: end of {c.req.id[:12]}: {e!r}")

    def _finish(self, c: Held) -> None:
        assert c.status is not None
        for fd in list(c.stdio.fds):
            self._unwatch(fd)
        # what is still readable, then the log's last line
        for fd in list(c.open_out):
            with contextlib.suppress(OSError):
                while data := os.read(fd, 65536):
                    assert c.logw is not None
                    name = "stderr" if c.stdio.fds.get(fd) == T_STDERR else "stdout"
                    c.logw.feed(name, data)
                    for ch in c.chans:
                        ch.send(T_STDERR if name == "stderr" else T_STDOUT, data)
        if c.stdio.stdin_fd() >= 0:
            self._unwatch(c.stdio.stdin_fd())
        if c.logw is not None:
            c.logw.flush()
            c.logw.close()
        c.stdio.close()
        if c.dns is not None:
            self._unwatch(c.dns.sock)
            for up in c.dns.upstream:
                self._unwatch(up)
            c.dns.close()
        oom = bool(c.cg and c.cg.oom_killed())
        c.rt.delete()
        if c.cg:
            c.cg.remove()
        code = os.waitstatus_to_exitcode(c.status)
        if code < 0:
            code = 128 - code  # killed by signal N: 128+N, as a shell reports it
        record = protocol.Exit(exit=code, oom=oom, finished_at=time.time_ns())
        atomic_write(os.path.join(c.req.state_dir, "exit.json"), record.to_json())
        if c.listener is not None:
            self._unwatch(c.listener)
            c.listener.close()
            with contextlib.suppress(OSError):
                os.unlink(c.req.socket)
        for ch in c.chans:
            if ch.sock is not None:
                self._unwatch(ch.sock)
            ch.control(record)
            ch.drain(1.0)
            ch.close()


def _starter(req: StartRequest, rt: runtimes.Runtime, stdio: Stdio, cfg: monitor.ShimConfig,
             result: socket.socket, keep: set[int]) -> None:
    """In the starter (a child of the host): start the container and say how it went."""
    signal.set_wakeup_fd(-1)
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    # only this container's descriptors: the host's others (other containers' stdio and
    # channels) must never reach this container's init, not even before it execs
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        if fd not in keep:
            with contextlib.suppress(OSError):
                os.close(fd)
    try:
        h, cg, dns = monitor.start_container(req, rt, stdio, cfg)
    except monitor.Failed as e:
        result.send(json.dumps({"error": e.message, "code": e.code}).encode())
        return
    except Exception as e:  # noqa: BLE001 - the host reports it
        result.send(json.dumps({"error": f"monitor: {e}", "code": 125}).encode())
        return
    fds = []
    word: dict[str, Any] = {"pid": h.pid}
    if stdio.master >= 0:
        fds.append(stdio.master)
        word["master"] = True
    if dns is not None:
        fds.append(dns.sock.fileno())
        word["dns"] = True
    socket.send_fds(result, [json.dumps(word).encode()], fds)


def _listen(path: str) -> socket.socket:
    # bound by a relative name from its directory (a unix socket path has at most 107 bytes),
    # then back to /: the host must not hold a container's directory as its own
    os.chdir(os.path.dirname(path))
    try:
        name = os.path.basename(path)
        with contextlib.suppress(OSError):
            os.unlink(name)
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.bind(name)
        os.chmod(name, 0o600)
        s.listen(8)
        s.setblocking(False)
    finally:
        os.chdir("/")
    return s


def _log(msg: str) -> None:
    with contextlib.suppress(OSError):
        sys.stderr.write(msg + "\n")
        sys.stderr.flush()


def handoff(ctl: socket.socket, line: bytes, conn: socket.socket) -> None:
    """In the fork server: hand a container start to a host (blocking)."""
    data = _LEN.pack(len(line)) + line
    n = socket.send_fds(ctl, [data[:65536]], [conn.fileno()])
    if n < len(data):
        ctl.sendall(data[n:])


def run_host(ctl: socket.socket, cfg: monitor.ShimConfig) -> None:
    """Entry in a forked host. Never returns."""
    code = 0
    try:
        os.setsid()
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        from berth import linux
        linux.set_child_subreaper()
        Host(ctl, cfg).serve()
    except BaseException as e:  # noqa: BLE001 - the host's edge
        _log(f"shim host: {e!r}")
        code = 1
    finally:
        os._exit(code)


__all__ = ["CAPACITY", "Host", "QueuedChannel", "handoff", "run_host"]
