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

The host is cut in two: the loop, the starts and the ends of containers here; the watches on
a container's descriptors and the serving of its stdio and channels in `shim.held`.

Imports `cgroups`, `linux`, `fs` and the shim's own modules.
"""

from __future__ import annotations

import contextlib
import json
import os
import selectors
import signal
import socket
import time
import traceback
from dataclasses import dataclass
from typing import Any

from berth import cgroups
from berth.fs import atomic_write
from berth.shim import monitor, protocol, runtimes
from berth.shim.dns import DnsServer
from berth.shim.held import READ_SIZE, Held, Watches
from berth.shim.protocol import StartRequest
from berth.shim.queued import QueuedChannel
from berth.shim.starter import LEN, listen, log, starter
from berth.shim.stdio import LogWriter, Stdio

# container starts a host takes over its life; then the fork server starts another
CAPACITY = 64
# how long a channel may stay above HIGH_WATER (shim.queued) before it is given up (the
# monitor's write timed out after as long): the container's other channels and its log go on
STALL_LIMIT = 10.0
# how long output may still come after a container's init has ended (a process that kept
# its stdout open): as long as it keeps coming, and this long after it stops
QUIET_AFTER_EXIT = 0.05
# what is still read of a container's output at its end (a survivor may keep writing)
DRAIN_AT_END = 1 << 20
# exits reaped before the starter has told the pid, kept this long
EARLY_KEEP = 60.0


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
        self.w = Watches()  # one selector for all it holds
        self.held: dict[int, Held] = {}  # by the init's pid
        self.starting: dict[int, Starting] = {}  # by the starter's pid
        self.starters: set[int] = set()  # starters not reaped yet
        self.early: dict[int, tuple[int, float]] = {}  # pid -> (wait status, when reaped)
        self.closing: dict[QueuedChannel, float] = {}  # channels with a last word to write
        self.wake_r, self.wake_w = os.pipe()

    # --- the loop -------------------------------------------------------------------------
    def serve(self) -> None:
        os.set_blocking(self.wake_w, False)
        signal.set_wakeup_fd(self.wake_w)
        signal.signal(signal.SIGCHLD, lambda *_: None)
        self.w.watch(self.wake_r, ("wake", None))
        assert self.ctl is not None
        self.w.watch(self.ctl, ("ctl", None))
        while self.ctl is not None or self.held or self.starting or self.closing:
            draining = any(c.status is not None for c in self.held.values())
            for key, mask in self.w.sel.select(timeout=QUIET_AFTER_EXIT if draining else 0.5):
                kind, what = key.data
                try:
                    self._event(kind, what, mask)
                except Exception as e:  # noqa: BLE001 - confined to the container it was for
                    log(f"shim host: {kind}: {e!r}")
                    self._confine(kind, what, key.fileobj)
            self._reap()
            self._finish_ended()
            self._give_up_stalled()

    def _event(self, kind: str, what: Any, mask: int) -> None:
        if kind == "io":
            c, fd = what
            if mask & selectors.EVENT_READ:
                c.output(fd)
            if mask & selectors.EVENT_WRITE:
                c.flush_stdin()
        elif kind == "chan":
            c, ch = what
            if mask & selectors.EVENT_WRITE:
                ch.flush()
            if mask & selectors.EVENT_READ and ch.sock is not None:
                c.channel_input(ch)
            self.w.sent(c)
        elif kind == "closing":
            what.flush()
            if not what.out or what.sock is None:
                self.closing.pop(what, None)
                what.close()
        elif kind == "listen":
            what.accept()
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
        if kind == "chan":
            c, ch = what
            ch.close()
            self.w.sent(c)
        elif kind == "io":
            c, fd = what
            c.open_out.discard(fd)
            self.w.io_mask(c)
        elif kind == "ctl":
            self._retire()
        elif kind in ("dns", "dns-up", "listen", "wake"):
            pass  # a failed query, answer or accept: the next one is served
        else:
            self.w.unwatch(fileobj)

    def _retire(self) -> None:
        """No more starts: the fork server went, retired us, or its socket failed. We end
        with our last container."""
        if self.ctl is not None:
            self.w.unwatch(self.ctl)
            self.ctl.close()
            self.ctl = None

    def _give_up_stalled(self) -> None:
        now = time.monotonic()
        for c in list(self.held.values()):
            for ch in list(c.chans):
                if ch.full_since and now - ch.full_since > STALL_LIMIT:
                    log(
                        f"shim host: {c.req.id[:12]}: a channel read nothing for "
                        f"{STALL_LIMIT:.0f} s: closed"
                    )
                    ch.close()
                    self.w.sent(c)
        for ch, deadline in list(self.closing.items()):
            if now > deadline:
                self.closing.pop(ch, None)
                ch.close()

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
        if len(data) < LEN.size:
            for fd in fds:
                os.close(fd)
            self._retire()
            return
        (size,) = LEN.unpack_from(data)
        if size > protocol.MAX_REQUEST:
            for fd in fds:
                os.close(fd)
            self._retire()
            return
        while len(data) < LEN.size + size:
            more = self.ctl.recv(LEN.size + size - len(data))
            if not more:
                break
            data += more
        line = data[LEN.size : LEN.size + size]
        if not fds:
            return
        conn = socket.socket(fileno=fds[0])
        try:
            req = protocol.decode_request(line)
            if not isinstance(req, StartRequest) or req.exec_pid:
                raise protocol.ProtocolError("protocol error: not a container start")
            self._start(req, conn)
        except Exception as e:  # noqa: BLE001 - reported on the connection it came on
            log(f"shim host: a start failed: {''.join(traceback.format_exception(e))}")
            with contextlib.suppress(OSError):
                conn.setblocking(True)
                conn.settimeout(1)
                conn.sendall(
                    protocol.encode_control(protocol.StartFailed(error=f"monitor: {e}", code=125))
                )
            conn.close()

    def _start(self, req: StartRequest, conn: socket.socket) -> None:
        os.makedirs(req.state_dir, exist_ok=True)
        rt = runtimes.for_request(req, self.cfg.seccomp_cache)
        cg = None
        with open(os.path.join(req.bundle, "config.json")) as f:
            path = (json.load(f).get("linux") or {}).get("cgroupsPath")
        if path:
            cg = cgroups.for_spec(path)
        stdio = Stdio(req, rt.console_dir())
        try:
            ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
            keep = {0, 1, 2, theirs.fileno(), *stdio.keep_fds()}
            forked_at = time.monotonic()
            pid = os.fork()
        except BaseException:
            stdio.after_fork()
            stdio.close()
            raise
        if pid == 0:  # the starter
            code = 0
            try:
                starter(req, rt, stdio, self.cfg, theirs, keep)
            except BaseException:  # noqa: BLE001 - reported by its silence: the host says
                code = 1
            finally:
                os._exit(code)
        theirs.close()
        stdio.after_fork()
        ours.setblocking(False)
        self.starters.add(pid)
        c = Held(
            req=req,
            rt=rt,
            stdio=stdio,
            cg=cg,
            chans=[self.w.channel(conn)],
            w=self.w,
            forked_at=forked_at,
        )
        self.starting[pid] = Starting(c, ours, pid)
        self.w.watch(ours, ("started", self.starting[pid]))

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
        self.w.unwatch(s.result)
        s.result.close()
        self.starting.pop(s.starter, None)
        c = s.held
        try:
            word: dict[str, Any] = (
                json.loads(data)
                if data
                else {"error": "monitor: the container's starter died", "code": 125}
            )
        except ValueError:
            word = {"error": "monitor: the container's starter said nonsense", "code": 125}
        if "error" in word:
            for fd in fds:
                os.close(fd)
            c.stdio.close()
            self._fail(c, str(word["error"]), int(word.get("code", 125)))
            return
        c.pid = int(word["pid"])
        try:
            self._hold(c, word, list(fds))
        except Exception as e:  # noqa: BLE001 - this container's start fails, not the host
            log(f"shim host: {c.req.id[:12]}: {e!r}")
            with contextlib.suppress(ProcessLookupError):
                os.kill(c.pid, signal.SIGKILL)
            c.release()
            if c.cg:
                with contextlib.suppress(Exception):
                    c.cg.remove()
            self._fail(c, f"monitor: {e}", 125)

    def _fail(self, c: Held, message: str, code: int) -> None:
        record = protocol.Exit(
            exit=code, oom=False, finished_at=time.time_ns(), error=message, code=code
        )
        with contextlib.suppress(OSError):
            atomic_write(os.path.join(c.req.state_dir, "exit.json"), record.to_json())
        self._last_word(c, record)

    def _hold(self, c: Held, word: dict[str, Any], fds: list[int]) -> None:
        if word.get("master"):
            c.stdio.take_master(fds.pop(0))
        if word.get("dns") and fds and c.req.dns is not None:
            d = c.req.dns
            c.dns = DnsServer(
                fds.pop(0), list(d.hosts), list(d.upstream), forward=d.forward, links=dict(d.links)
            )
        for fd in fds:
            os.close(fd)
        c.logw = LogWriter(c.req.log_path, c.req.log_max_size, c.req.log_max_file)
        for fd in c.stdio.fds:
            os.set_blocking(fd, False)
            c.open_out.add(fd)
        if c.stdio.stdin_fd() >= 0:
            os.set_blocking(c.stdio.stdin_fd(), False)
        if c.req.socket:
            c.listener = listen(c.req.socket)
        # from here on nothing fails: the container is held
        if c.dns is not None:
            self.w.watch_dns(c)
        if c.listener is not None:
            self.w.watch(c.listener, ("listen", c))
        self.held[c.pid] = c
        for ch in c.chans:
            ch.control(protocol.Ready(pid=c.pid, monitor=os.getpid()))
        self.w.sent(c)
        early = self.early.pop(c.pid, None)
        if early is not None and early[1] >= c.forked_at:
            c.status = early[0]
            c.last_output = time.monotonic()

    # --- ends ---------------------------------------------------------------------------------
    def _reap(self) -> None:
        now = time.monotonic()
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
            if pid in self.starters:
                self.starters.discard(pid)
                continue
            c = self.held.get(pid)
            if c is not None:
                c.status = status
                c.last_output = now
            else:
                # an init whose starter has not spoken yet (or a runtime's helper, re-parented
                # to us): kept a while, and taken only by a container started before it ended
                self.early[pid] = (status, now)
        for pid in [p for p, (_, t) in self.early.items() if now - t > EARLY_KEEP]:
            del self.early[pid]

    def _finish_ended(self) -> None:
        now = time.monotonic()
        for pid, c in list(self.held.items()):
            if c.status is None:
                continue
            if (
                c.open_out
                and now - c.last_output < QUIET_AFTER_EXIT
                and not any(ch.full for ch in c.chans)
            ):
                continue
            del self.held[pid]
            try:
                self._finish(c)
            except Exception as e:  # noqa: BLE001 - one container's end, not the host's
                log(f"shim host: end of {c.req.id[:12]}: {e!r}")
                c.release()

    def _finish(self, c: Held) -> None:
        assert c.status is not None
        # what is still readable (bounded: a survivor may keep writing), then the log's
        # last line
        left = DRAIN_AT_END
        for fd in list(c.open_out):
            with contextlib.suppress(OSError):
                while left > 0 and (data := os.read(fd, min(READ_SIZE, left))):
                    left -= len(data)
                    c.pass_on(fd, data)
        if c.logw is not None:
            c.logw.flush()
        c.release()
        oom = bool(c.cg and c.cg.oom_killed())
        c.rt.delete()
        if c.cg:
            c.cg.remove()
        code = os.waitstatus_to_exitcode(c.status)
        if code < 0:
            code = 128 - code  # killed by signal N: 128+N, as a shell reports it
        record = protocol.Exit(exit=code, oom=oom, finished_at=time.time_ns())
        atomic_write(os.path.join(c.req.state_dir, "exit.json"), record.to_json())
        self._last_word(c, record)

    def _last_word(self, c: Held, record: protocol.Exit) -> None:
        """The exit record to every channel, written by the loop as the daemon takes it
        (never waited for here), then each is closed."""
        deadline = time.monotonic() + STALL_LIMIT
        for ch in c.chans:
            if ch.sock is None:
                continue
            ch.control(record)
            if not ch.out:
                ch.close()
                continue
            self.closing[ch] = deadline
            self.w.watch(ch.sock, ("closing", ch), selectors.EVENT_WRITE)
        c.chans = []


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
        log(f"shim host: {e!r}")
        code = 1
    finally:
        os._exit(code)


__all__ = ["CAPACITY", "Host", "run_host"]
