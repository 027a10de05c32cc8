"""The monitor (the shim) of one process: holds its stdio, writes its log, forwards stdin,
window sizes and commands, answers its DNS queries, records its exit.

Imports `cgroups`, `linux`, `fs` and the shim's own modules (the runtime through
`shim.runtimes`). An exec gets a monitor of its own, forked from the fork server (so no
interpreter start per exec). Containers are held by shim hosts (`shim.host`), many to a
process, which start each one with `start_container` and serve it as `run` serves an exec.
What a monitor says to the daemon is `shim.protocol`'s.

The same channel is served to any later connection on the monitor's socket (a restarted
daemon reconnects there); output goes to every channel. Exit records are also written to the
state directory (`pid`, `exit.json`, atomically) for a daemon that was not there to hear them.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import selectors
import signal
import socket
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from berth import cgroups, linux
from berth.fs import atomic_write
from berth.shim import netsetup, protocol, runtimes
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
from berth.shim.stdio import Channel, LogWriter, Stdio


@dataclass(frozen=True, slots=True, kw_only=True)
class ShimConfig:
    """What the fork server tells the monitors it forks."""

    seccomp_cache: str = ""  # where compiled seccomp filters are kept
    network_server: str = ""  # the fork server with netlink, which plumbs interfaces


def run(req: StartRequest, chan_sock: socket.socket, cfg: ShimConfig | None = None) -> int:
    """The monitor's life. Returns the process's exit code."""
    cfg = cfg or ShimConfig()
    chans = [Channel(chan_sock)]
    os.makedirs(req.state_dir, exist_ok=True)
    linux.set_child_subreaper()
    rt = runtimes.for_request(req, cfg.seccomp_cache)
    dns: DnsServer | None = None
    cg: cgroups.CgroupManager | None = None
    if req.exec_pid:
        with open(os.path.join(req.bundle, "process.json")) as f:
            proc_spec = json.load(f)
        if req.tty and req.console_size:  # sized before the process can ask
            proc_spec["consoleSize"] = {"height": req.console_size[0], "width": req.console_size[1]}
        stdio = Stdio(req, rt.console_dir())
        try:
            h = rt.exec(proc_spec, stdio)
        except runtimes.StartError as e:
            return fail(req, chans, e.message, e.code)
        finally:
            stdio.after_spawn()
    else:
        stdio = Stdio(req, rt.console_dir())
        try:
            h, cg, dns = start_container(req, rt, stdio, cfg)
        except Failed as e:
            return fail(req, chans, e.message, e.code)
    pid = h.pid
    if req.exec_pid:
        atomic_write(os.path.join(req.state_dir, "pid"), str(pid).encode(), sync=False)
        stdio.receive_console()
        try:
            rt.wait_started(h)
        except runtimes.StartError as e:
            _reap(pid)
            return fail(req, chans, e.message, e.code)
    listener = _listen(req.socket) if req.socket else None
    chans[0].control(protocol.Ready(pid=pid, monitor=os.getpid()))

    logw = LogWriter(req.log_path, req.log_max_size, req.log_max_file)
    status = _loop(rt, h, stdio, logw, chans, listener, dns)
    logw.close()
    oom = bool(cg and cg.oom_killed())
    if not req.exec_pid:
        rt.delete()
    if cg:
        cg.remove()
    code = os.waitstatus_to_exitcode(status)
    if code < 0:
        code = 128 - code  # killed by signal N: 128+N, as a shell reports it
    record = protocol.Exit(exit=code, oom=oom, finished_at=time.time_ns())
    # a container's exit must survive a crash (live restore reads it); an exec's is in memory
    atomic_write(os.path.join(req.state_dir, "exit.json"), record.to_json(), sync=not req.exec_pid)
    if listener is not None:
        listener.close()
        with contextlib.suppress(Exception):
            os.unlink(req.socket)
    for ch in chans:
        ch.control(record)
        ch.close()
    return code


class Failed(Exception):
    """A container that could not be started: Docker's message and exit code. What the
    attempt made (cgroup, process) is undone already."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


def start_container(
    req: StartRequest, rt: runtimes.Runtime, stdio: Stdio, cfg: ShimConfig
) -> tuple[runtimes.Handle, cgroups.CgroupManager | None, DnsServer | None]:
    """Start the container of `req` from this process (it must be a child subreaper, or the
    child of one that outlives it: the init is its child): mounts in a mount namespace of its
    own, the cgroup, the process, its network and embedded DNS; returns once it has exec'd.
    Raises Failed."""
    dns: DnsServer | None = None
    cg: cgroups.CgroupManager | None = None
    with open(os.path.join(req.bundle, "config.json")) as f:
        spec = json.load(f)
    if req.tty and req.console_size:  # sized before the process can ask
        spec.setdefault("process", {})["consoleSize"] = {
            "height": req.console_size[0],
            "width": req.console_size[1],
        }
    # a mount namespace of the monitor's own: the rootfs mount is invisible on the host
    # and goes away with the last process of this container, whatever happens to us
    linux.unshare(linux.CLONE_NEWNS)
    # slave, not private, where a bind wants the host's later mounts (rootfsPropagation:
    # slave or shared): nothing goes back to the host either way
    prop = str(spec.get("linux", {}).get("rootfsPropagation") or "")
    linux.mount(
        None,
        "/",
        None,
        linux.MS_REC
        | (linux.MS_SLAVE if prop.lstrip("r") in ("slave", "shared") else linux.MS_PRIVATE),
    )
    rootfs = os.path.join(req.bundle, spec.get("root", {}).get("path", "rootfs"))
    if req.rootfs_mount:
        m = req.rootfs_mount
        os.makedirs(rootfs, exist_ok=True)
        if m.type == "bind":  # the copying driver: the container's own full copy
            linux.mount(m.source, rootfs, None, linux.MS_BIND | linux.MS_REC)
        else:
            linux.mount(m.source or m.type, rootfs, m.type, 0, ",".join(m.options))
    lx = spec.get("linux", {})
    if lx.get("cgroupsPath"):
        cg = cgroups.for_spec(lx["cgroupsPath"])
        try:
            rt.make_cgroup(cg, lx)
        except Exception as e:
            cg.remove()
            raise Failed(f"failed to create cgroup: {e}", 125) from None
    try:
        h = rt.create(spec, rootfs, stdio, cg, hold=bool(req.networks))
    except runtimes.StartError as e:
        if cg:
            cg.remove()
        raise Failed(e.message, e.code) from None
    finally:
        stdio.after_spawn()
    if req.networks:
        try:
            netsetup.setup_endpoints(h.pid, list(req.networks), cfg.network_server)
            if req.dns:
                dns = DnsServer(
                    netsetup.dns_socket(h.pid),
                    list(req.dns.hosts),
                    list(req.dns.upstream),
                    forward=req.dns.forward,
                    links=dict(req.dns.links),
                )
        except Exception as e:
            rt.abort(h)
            _reap(h.pid)
            if cg:
                cg.remove()
            raise Failed(f"failed to set up the container's network: {e}", 125) from None
    try:
        rt.start(h)
    except runtimes.StartError as e:
        rt.abort(h)
        _reap(h.pid)
        if cg:
            cg.remove()
        raise Failed(e.message, e.code) from None
    # the pid is only a hint (the channel carries it): no fsync on the start path
    atomic_write(os.path.join(req.state_dir, "pid"), str(h.pid).encode(), sync=False)
    stdio.receive_console()
    try:
        rt.wait_started(h)
    except runtimes.StartError as e:
        _reap(h.pid)
        if cg:
            cg.remove()
        raise Failed(e.message, e.code) from None
    return h, cg, dns


def _listen(path: str) -> socket.socket:
    # bound by a relative name from its directory: a unix socket path has at most 107 bytes
    os.chdir(os.path.dirname(path))
    name = os.path.basename(path)
    with contextlib.suppress(Exception):
        os.unlink(name)
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(name)
    os.chmod(name, 0o600)
    s.listen(8)
    return s


class _Sink(Protocol):
    def control(self, msg: protocol.ShimMessage) -> None: ...

    def close(self) -> None: ...


def fail(req: StartRequest, chans: Sequence[_Sink], message: str, code: int) -> int:
    """A start that failed: its exit record, in the state directory and to the daemon."""
    record = protocol.Exit(
        exit=code, oom=False, finished_at=time.time_ns(), error=message, code=code
    )
    atomic_write(os.path.join(req.state_dir, "exit.json"), record.to_json())
    for ch in chans:
        ch.control(record)
        ch.close()
    return code


def _reap(pid: int) -> int:
    while True:
        try:
            return os.waitpid(pid, 0)[1]
        except ChildProcessError:
            return 0
        except InterruptedError:
            continue


def _loop(
    rt: runtimes.Runtime,
    h: runtimes.Handle,
    stdio: Stdio,
    logw: LogWriter,
    chans: list[Channel],
    listener: socket.socket | None,
    dns: DnsServer | None = None,
) -> int:
    """Copy output to the log and the channels, stdin and resizes from the channels, until
    the output closes and the process is reaped."""
    pid = h.pid
    sel = selectors.DefaultSelector()
    for fd, typ in stdio.fds.items():
        sel.register(fd, selectors.EVENT_READ, ("out", typ))
    for ch in chans:
        assert ch.sock is not None
        sel.register(ch.sock, selectors.EVENT_READ, ("chan", ch))
    if listener is not None:
        sel.register(listener, selectors.EVENT_READ, ("listen", None))
    if dns is not None:
        sel.register(dns.sock, selectors.EVENT_READ, ("dns", None))
        for i, up in enumerate(dns.upstream):
            sel.register(up, selectors.EVENT_READ, ("dns-up", i))
    status: int | None = None
    open_out = set(stdio.fds)
    names = {T_STDOUT: "stdout", T_STDERR: "stderr"}
    while open_out:
        events = sel.select(timeout=0.5 if status is None else 0.05)
        if not events:
            if status is not None:
                break  # the process is gone but someone else holds its output open
            try:
                wpid, st = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                wpid, st = pid, 0
            if wpid == pid:
                status = st
            continue
        for key, _ in events:
            kind, what = key.data
            if kind == "out":
                try:
                    data = os.read(key.fd, 65536)
                except OSError as e:  # EIO: the pty's last holder closed it
                    if e.errno != errno.EIO:
                        raise
                    data = b""
                if data:
                    logw.feed(names[what], data)
                    for ch in chans:
                        ch.send(what, data)
                else:
                    sel.unregister(key.fd)
                    open_out.discard(key.fd)
            elif kind == "dns":
                dns.on_query()  # type: ignore[union-attr]
            elif kind == "dns-up":
                dns.on_answer(what)  # type: ignore[union-attr]
            elif kind == "listen":
                conn, _ = listener.accept()  # type: ignore[union-attr]
                ch = Channel(conn)
                chans.append(ch)
                sel.register(conn, selectors.EVENT_READ, ("chan", ch))
                ch.control(protocol.Ready(pid=pid, monitor=os.getpid()))
            else:
                ch = what
                frames = ch.read_frames()
                if frames is None:
                    sel.unregister(key.fileobj)
                    ch.close()
                    chans.remove(ch)
                    continue
                for typ, payload in frames:
                    if typ == T_STDIN:
                        stdio.write_stdin(payload)
                    elif typ == T_CLOSE_STDIN:
                        stdio.close_stdin()
                    elif typ == T_RESIZE:
                        with contextlib.suppress(Exception):
                            size = protocol.Resize.decode(payload)
                            stdio.resize(size.h, size.w)
                    elif typ == T_CONTROL:
                        answer, started = command(rt, h, payload, dns)
                        if started is not None:  # the first user-defined network joined
                            dns = started
                            sel.register(dns.sock, selectors.EVENT_READ, ("dns", None))
                            for i, up in enumerate(dns.upstream):
                                sel.register(up, selectors.EVENT_READ, ("dns-up", i))
                        if answer is not None:
                            ch.control(answer)
    logw.flush()
    for fd in stdio.fds:
        with contextlib.suppress(Exception):
            os.close(fd)
    if not stdio.tty:
        stdio.close_stdin()
    sel.close()
    if status is None:
        status = _reap(pid)
    # other children re-parented to us (subreaper) must not stay zombies
    while True:
        try:
            if os.waitpid(-1, os.WNOHANG)[0] == 0:
                break
        except ChildProcessError:
            break
    return status


def command(
    rt: runtimes.Runtime, h: runtimes.Handle, payload: bytes, dns: DnsServer | None
) -> tuple[protocol.Answer | None, DnsServer | None]:
    """A command from the daemon. Network connect/disconnect of a running container: (un)plug
    one interface; the new network's names join what the embedded DNS answers, which starts
    now if it did not run (the server started, if so). A signal has no answer."""
    try:
        cmd = protocol.decode_command(payload)
        if isinstance(cmd, protocol.Plug):
            ifname = netsetup.plug(h.pid, cmd.endpoint)
            started = None
            if dns is None and cmd.dns is not None:
                dns = started = DnsServer(
                    netsetup.dns_socket(h.pid),
                    list(cmd.dns.hosts),
                    list(cmd.dns.upstream),
                    forward=cmd.dns.forward,
                    links=dict(cmd.dns.links),
                )
            if dns is not None:
                dns.links.update(cmd.links)
            if dns is not None and cmd.hosts and cmd.hosts not in dns.tables:
                dns.tables.append(cmd.hosts)
            if dns is not None and cmd.dns_forward is not None:
                dns.forward = cmd.dns_forward
            return protocol.Plugged(ifname=ifname), started
        if isinstance(cmd, protocol.Unplug):
            if dns is not None and cmd.dns_forward is not None:
                dns.forward = cmd.dns_forward  # before: never more than it may
            if dns is not None and cmd.hosts in dns.tables:
                dns.tables.remove(cmd.hosts)
            netsetup.unplug(h.pid, cmd.ifname)
            return protocol.Unplugged(ifname=cmd.ifname), None
        rt.kill(h, cmd.signo)
        return None, None
    except Exception as e:  # noqa: BLE001 - the answer carries the error to the daemon
        return protocol.CommandFailed(why=str(e)), None


def read_request_line(conn: socket.socket) -> bytes:
    """The request line a connection starts with; b"" if it closed first."""
    buf = b""
    while b"\n" not in buf:
        chunk = conn.recv(65536)
        if not chunk:
            return b""
        buf += chunk
        if len(buf) > protocol.MAX_REQUEST:
            raise protocol.ProtocolError("protocol error: the request is too long")
    line, _, rest = buf.partition(b"\n")
    if rest:
        raise protocol.ProtocolError("protocol error: frames before the process has started")
    return line


def serve_connection(
    conn: socket.socket, cfg: ShimConfig | None = None, line: bytes | None = None
) -> None:
    """Entry in the forked monitor: read the request line (unless the fork server has) and
    run. Never returns."""
    code = 1
    try:
        # the fork server ignores SIGCHLD, which would reap our children before we wait
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        os.setsid()
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        if line is None:
            line = read_request_line(conn)
        if not line:
            os._exit(1)
        req = protocol.decode_request(line)
        if isinstance(req, protocol.NetSetupRequest):
            code = netsetup.serve(conn, req)
        else:
            code = run(req, conn, cfg)
    except BaseException as e:  # noqa: BLE001 - the monitor's edge: report, then exit
        with contextlib.suppress(OSError):
            conn.sendall(
                protocol.encode_control(protocol.StartFailed(error=f"monitor: {e}", code=125))
            )
        code = 125
    finally:
        os._exit(code & 0xFF)


__all__ = [
    "Failed",
    "ShimConfig",
    "command",
    "fail",
    "read_request_line",
    "run",
    "serve_connection",
    "start_container",
]
