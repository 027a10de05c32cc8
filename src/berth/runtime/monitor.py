"""The per-container monitor: holds the container's stdio (pipes, or a pty for a Tty), writes
its log, forwards stdin and window sizes, records its exit.

Imports `runtime.process`, `cgroups`, `linux`. One monitor per running container (or exec
process), forked from the fork server (so no interpreter start per container) and re-parented to
init: it outlives the daemon.

The daemon first writes one JSON request line (see `Request`). From then on both directions
carry frames, `[type, 0, 0, 0, size32be] + payload`, the shape of Docker's stream framing:

  monitor → daemon   1 stdout, 2 stderr: output as it comes (also written to the log);
                     10 control, JSON: {"pid", "monitor"} once the process has exec'd, or
                     {"error", "code"} if it could not; {"exit", "oom", "finished_at"} at its end.
  daemon → monitor   0 stdin data; 3 close stdin; 4 resize, JSON {"h", "w"};
                     10 command, JSON: {"plug": endpoint} or {"unplug": ifname}, with
                     "dns_forward": whether the embedded DNS forwards other names now (not if
                     all the container's networks are internal), answered with a control
                     message {"plugged"|"unplugged": ifname} or {"failed": why}.

The same channel is served to any later connection on the monitor's socket (a restarted
daemon reconnects there); output goes to every channel. Exit records are also written to the
state directory (`pid`, `exit.json`, atomically) for a daemon that was not there to hear them.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import selectors
import signal
import socket
import struct
import termios
import time
from dataclasses import dataclass

from berth import cgroups, linux
from berth.fs import atomic_write
from berth.linux import netlink, seccomp
from berth.runtime import process

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

# Docker's json-file driver splits long lines into 16 KiB entries
_MAX_LINE = 16 * 1024

T_STDIN, T_STDOUT, T_STDERR, T_CLOSE_STDIN, T_RESIZE, T_CONTROL = 0, 1, 2, 3, 4, 10
# where compiled seccomp filters are kept (the fork server sets it under its exec root)
SECCOMP_CACHE = ""
# the fork server with netlink loaded, which plumbs interfaces for monitors forked without it
NETWORK_SERVER = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class Request:
    id: str
    bundle: str
    log_path: str
    state_dir: str
    socket: str = ""                  # where later channels connect
    rootfs_mount: dict | None = None  # type: ignore[type-arg]  # {"type","source","options"}
    stdin: bool = False               # keep a stdin pipe (OpenStdin)
    tty: bool = False
    console_size: tuple[int, int] | None = None
    exec_pid: int = 0                 # an exec: join this container process instead
    log_max_size: int = 0             # bytes; 0: no rotation
    log_max_file: int = 1
    networks: tuple[dict, ...] = ()   # type: ignore[type-arg]  # netlink.Endpoint fields
    # {"hosts": [path], "upstream": [server], "forward": bool (no: all networks internal)}
    dns: dict | None = None           # type: ignore[type-arg]
    runtime: str = ""                 # an OCI runtime binary (runc, crun) instead of berth's
    runtime_root: str = ""
    container_id: str = ""            # an exec's container, by the runtime's id

    @classmethod
    def decode(cls, d: dict) -> Request:  # type: ignore[type-arg]
        cs = d.get("console_size")
        return cls(id=d["id"], bundle=d.get("bundle", ""), log_path=d.get("log_path", ""),
                   state_dir=d["state_dir"], socket=d.get("socket", ""),
                   rootfs_mount=d.get("rootfs_mount"), stdin=bool(d.get("stdin")),
                   tty=bool(d.get("tty")), console_size=(int(cs[0]), int(cs[1])) if cs else None,
                   exec_pid=int(d.get("exec_pid") or 0),
                   log_max_size=int(d.get("log_max_size") or 0),
                   log_max_file=max(1, int(d.get("log_max_file") or 1)),
                   networks=tuple(d.get("networks") or ()), dns=d.get("dns"),
                   runtime=d.get("runtime", ""), runtime_root=d.get("runtime_root", ""),
                   container_id=d.get("container_id", ""))


def frame(typ: int, payload: bytes) -> bytes:
    return struct.pack(">BxxxI", typ, len(payload)) + payload


def rfc3339nano(ns: int) -> str:
    secs, frac = divmod(ns, 1_000_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs)) + f".{frac:09d}Z"


def set_winsize(fd: int, h: int, w: int) -> None:
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", h, w, 0, 0))


class _Channel:
    """One connection to a daemon. Reads frames; a daemon that went away is not an error."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock: socket.socket | None = sock
        sock.settimeout(10)  # a daemon that stops reading must not stall the container forever
        self.buf = b""

    def send(self, typ: int, payload: bytes) -> None:
        if self.sock is None:
            return
        try:
            self.sock.sendall(frame(typ, payload))
        except OSError:
            self.close()

    def control(self, msg: dict) -> None:  # type: ignore[type-arg]
        self.send(T_CONTROL, json.dumps(msg).encode())

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
        self.buf += data
        out = []
        while len(self.buf) >= 8:
            size = struct.unpack(">I", self.buf[4:8])[0]
            if len(self.buf) < 8 + size:
                break
            out.append((self.buf[0], self.buf[8:8 + size]))
            self.buf = self.buf[8 + size:]
        return out

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None


class _LogWriter:
    """Docker's json-file format: one JSON object per line, {"log","stream","time"}; with
    `max_size`, rotated as Docker does: PATH.1 is the newest old file, at most `max_file`
    files in all."""

    def __init__(self, path: str, max_size: int = 0, max_file: int = 1) -> None:
        self.path = path
        self.max_size = max_size
        self.max_file = max_file
        self.fd = -1
        self.size = 0
        if path:
            self._open()
        self.partial: dict[str, bytes] = {"stdout": b"", "stderr": b""}

    def _open(self) -> None:
        self.fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC,
                          0o640)
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
        os.write(self.fd, data)
        self.size += len(data)

    def feed(self, stream: str, data: bytes) -> None:
        if self.fd < 0:
            return
        buf = self.partial[stream] + data
        out = []
        now = rfc3339nano(time.time_ns())
        while True:
            nl = buf.find(b"\n")
            if nl < 0:
                if len(buf) >= _MAX_LINE:
                    out.append(self._entry(stream, buf[:_MAX_LINE], now))
                    buf = buf[_MAX_LINE:]
                    continue
                break
            out.append(self._entry(stream, buf[:nl + 1], now))
            buf = buf[nl + 1:]
        self.partial[stream] = buf
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
        return (json.dumps({"log": data.decode("utf-8", errors="replace"), "stream": stream,
                            "time": now}, ensure_ascii=False) + "\n").encode()

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)


class _Stdio:
    """The monitor's ends of the container's stdio."""

    def __init__(self, req: Request) -> None:
        self.tty = req.tty
        self.console_size = req.console_size
        self.master = -1
        self.stdin_w = -1
        self.fds: dict[int, int] = {}  # our read end -> stream type
        self.console_path = ""
        if req.tty and req.runtime:
            # an OCI runtime connects to a socket path and sends the master (--console-socket)
            # a unix socket path has at most 107 bytes: the runtime's root is short enough
            os.makedirs(req.runtime_root, exist_ok=True)
            self.console_path = os.path.join(req.runtime_root,
                                             f"console-{os.urandom(4).hex()}.sock")
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
        self.fds = {out_r: T_STDOUT, err_r: T_STDERR}
        self._close_after_spawn = [in_r, out_w, err_w]

    def receive_console(self) -> None:
        """The pty master the init sends before it execs (nothing if it failed first)."""
        if not self.tty or self._console.fileno() < 0:
            return   # no terminal, or received already
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
            self.fds[self.master] = T_STDOUT

    def after_spawn(self) -> None:
        for fd in self._close_after_spawn:
            os.close(fd)
        self._close_after_spawn = []

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


class _Dns:
    """The embedded DNS server of a container on user-defined networks: at 127.0.0.11 in the
    container's network namespace, answering A queries for container names, aliases and short
    IDs from the tables the daemon writes (one per network), and, when `forward` is set,
    forwarding other names to the daemon's upstream resolvers from the host's namespace.

    `forward` is off for a container whose networks are all `--internal` (as Docker since
    CVE-2024-29018): such a container must not reach outside names through us, so other names
    get SERVFAIL at once (Docker's answer) and nothing leaves the monitor.

    Each upstream server has one UDP socket connect()ed to it: the kernel drops datagrams from
    any other source. A query goes up under an ID of ours (random, unique among those pending);
    an answer is relayed only if its ID is pending on that socket and its question is the one
    asked (name, type, class), with the client's ID put back."""

    MAX_PENDING = 1024
    TIMEOUT = 10.0

    def __init__(self, fd: int, tables: list[str], upstream: list[str], *,
                 forward: bool, port: int = 53) -> None:
        self.sock = socket.socket(fileno=fd)
        self.sock.setblocking(False)
        self.tables = tables
        self.forward = forward
        self.upstream: list[socket.socket] = []
        for server in upstream:
            family = socket.AF_INET6 if ":" in server else socket.AF_INET
            s = socket.socket(family, socket.SOCK_DGRAM)
            try:
                s.connect((server, port))
            except OSError:
                s.close()
                continue
            s.setblocking(False)
            self.upstream.append(s)
        # (upstream index, our query id) -> (client address, client's id, question, when)
        self.pending: dict[tuple[int, int], tuple[Any, bytes, tuple[str, int, int], float]] = {}
        self._cache: dict[str, tuple[float, dict[str, list[str]]]] = {}

    def close(self) -> None:
        for s in [self.sock, *self.upstream]:
            s.close()

    def _lookup(self, name: str) -> list[str]:
        name = name.rstrip(".").lower()
        out: list[str] = []
        for path in self.tables:
            try:
                mtime = os.stat(path).st_mtime
                cached = self._cache.get(path)
                if cached is None or cached[0] != mtime:
                    with open(path) as f:
                        self._cache[path] = (mtime, json.load(f))
                out += self._cache[path][1].get(name, [])
            except (OSError, ValueError):
                continue
        return out

    def _expire(self) -> None:
        now = time.monotonic()
        for k in [k for k, v in self.pending.items() if now - v[3] > self.TIMEOUT]:
            del self.pending[k]

    def on_query(self) -> None:
        from dnslib import QTYPE, RCODE, RR, A, DNSRecord
        try:
            data, addr = self.sock.recvfrom(4096)
        except OSError:
            return
        try:
            q = DNSRecord.parse(data)
        except Exception:  # noqa: BLE001 - not DNS: ignore it
            return
        if q.header.qr or len(q.questions) != 1:
            return  # an answer, or not one question: nothing we answer or forward
        name = str(q.q.qname)
        ips = self._lookup(name)
        if ips:
            reply = q.reply()
            if q.q.qtype in (QTYPE.A, QTYPE.ANY):
                for ip in ips:
                    reply.add_answer(RR(q.q.qname, QTYPE.A, rdata=A(ip), ttl=600))
            self.sock.sendto(reply.pack(), addr)
            return
        self._expire()
        if self.forward and len(self.pending) < self.MAX_PENDING:
            question = (name.lower(), int(q.q.qtype), int(q.q.qclass))
            for i, up in enumerate(self.upstream):
                ours = int.from_bytes(os.urandom(2), "big")
                while (i, ours) in self.pending:
                    ours = int.from_bytes(os.urandom(2), "big")
                try:
                    up.send(ours.to_bytes(2, "big") + data[2:])
                except OSError:
                    continue  # e.g. refused earlier: try the next server
                self.pending[(i, ours)] = (addr, data[:2], question, time.monotonic())
                return
        reply = q.reply()
        reply.header.rcode = RCODE.SERVFAIL
        with contextlib.suppress(OSError):
            self.sock.sendto(reply.pack(), addr)

    def on_answer(self, index: int) -> None:
        from dnslib import DNSRecord
        try:
            data = self.upstream[index].recv(65536)
        except OSError:
            return
        if len(data) < 12:
            return
        key = (index, int.from_bytes(data[:2], "big"))
        entry = self.pending.get(key)
        if entry is None:
            return
        try:
            a = DNSRecord.parse(data)
        except Exception:  # noqa: BLE001 - not DNS: drop it
            return
        if not a.header.qr or len(a.questions) != 1 or (
                str(a.q.qname).lower(), int(a.q.qtype), int(a.q.qclass)) != entry[2]:
            return  # not the answer to what we asked
        del self.pending[key]
        with contextlib.suppress(OSError):
            self.sock.sendto(entry[1] + data[2:], entry[0])


def run(req: Request, chan_sock: socket.socket) -> int:
    """The monitor's life. Returns the process's exit code."""
    chans = [_Channel(chan_sock)]
    os.makedirs(req.state_dir, exist_ok=True)
    linux.set_child_subreaper()
    dns: _Dns | None = None
    if req.exec_pid:
        with open(os.path.join(req.bundle, "process.json")) as f:
            proc_spec = json.load(f)
        if proc_spec.get("_seccomp") and SECCOMP_CACHE and not req.runtime:
            proc_spec["_seccomp_bpf"] = seccomp.cached_bpf(proc_spec["_seccomp"], SECCOMP_CACHE)
        if req.tty and req.console_size:  # sized before the process can ask
            proc_spec["consoleSize"] = {"height": req.console_size[0],
                                        "width": req.console_size[1]}
        stdio = _Stdio(req)
        try:
            if req.runtime:
                pid, exec_r = _oci_exec(req, proc_spec, stdio), -1
                stdio.receive_console()
            else:
                pid, exec_r = process.spawn_exec(req.exec_pid, proc_spec, stdio.child)
        except process.StartError as e:
            return _failed(req, chans, e.message, e.code)
        finally:
            stdio.after_spawn()
        cg: cgroups.CgroupManager | None = None
    else:
        with open(os.path.join(req.bundle, "config.json")) as f:
            spec = json.load(f)
        # a mount namespace of the monitor's own: the rootfs mount is invisible on the host
        # and goes away with the last process of this container, whatever happens to us
        linux.unshare(linux.CLONE_NEWNS)
        linux.mount(None, "/", None, linux.MS_REC | linux.MS_PRIVATE)
        rootfs = os.path.join(req.bundle, spec.get("root", {}).get("path", "rootfs"))
        if req.rootfs_mount:
            m = req.rootfs_mount
            os.makedirs(rootfs, exist_ok=True)
            if m["type"] == "bind":  # the copying driver: the container's own full copy
                linux.mount(m["source"], rootfs, None, linux.MS_BIND | linux.MS_REC)
            else:
                linux.mount(m.get("source", m["type"]), rootfs, m["type"], 0,
                            ",".join(m.get("options", [])))
        lx = spec.get("linux", {})
        if lx.get("seccomp") and SECCOMP_CACHE and not req.runtime:
            # not a runtime-spec field: only berth's own init reads it
            lx["_seccompBPF"] = seccomp.cached_bpf(lx["seccomp"], SECCOMP_CACHE)
        cg = None
        if lx.get("cgroupsPath"):
            cg = cgroups.for_spec(lx["cgroupsPath"])
            try:
                if not req.runtime:   # an OCI runtime makes the cgroup itself
                    cg.create(cgroups.Resources.from_spec(process.cgroup_resources(lx)))
            except Exception as e:
                cg.remove()
                return _failed(req, chans, f"failed to create cgroup: {e}", 125)
        stdio = _Stdio(req)
        go_r, go_w = os.pipe() if req.networks and not req.runtime else (-1, -1)
        try:
            if req.runtime:
                pid, exec_r = _oci_create(req, spec, rootfs, stdio), -1
                stdio.receive_console()   # sized before the process starts
            else:
                pid, exec_r = process.spawn(spec, req.bundle, stdio.child,
                                            cgroup=cg,
                                            go=(go_r, go_w) if req.networks else None)
        except process.StartError as e:
            if req.runtime:
                _oci_delete(req)
            if cg:
                cg.remove()
            return _failed(req, chans, e.message, e.code)
        finally:
            stdio.after_spawn()
            if go_r >= 0:
                os.close(go_r)
        if req.networks:
            try:
                _setup_endpoints(pid, list(req.networks))
                if req.dns:
                    dns = _Dns(netlink.udp_socket_in_netns(pid, "127.0.0.11", 53),
                               list(req.dns.get("hosts") or []),
                               list(req.dns.get("upstream") or []),
                               forward=bool(req.dns.get("forward")))
            except Exception as e:
                if req.runtime:
                    _oci_delete(req)
                else:
                    os.close(go_w)  # the init gives up on its own
                _reap(pid)
                if cg:
                    cg.remove()
                return _failed(req, chans, f"failed to set up the container's network: {e}",
                               125)
            if go_w >= 0:
                os.write(go_w, b"1")
                os.close(go_w)
        if req.runtime:
            try:
                _oci_start(req)
            except process.StartError as e:
                _oci_delete(req)
                _reap(pid)
                if cg:
                    cg.remove()
                return _failed(req, chans, e.message, e.code)
    # the pid is only a hint (the channel carries it): no fsync on the start path
    atomic_write(os.path.join(req.state_dir, "pid"), str(pid).encode(), sync=False)
    stdio.receive_console()
    try:
        if exec_r >= 0:
            process.wait_exec(exec_r)
    except process.StartError as e:
        _reap(pid)
        if cg:
            cg.remove()
        return _failed(req, chans, e.message, e.code)
    listener = _listen(req.socket) if req.socket else None
    chans[0].control({"pid": pid, "monitor": os.getpid()})

    logw = _LogWriter(req.log_path, req.log_max_size, req.log_max_file)
    status = _loop(pid, stdio, logw, chans, listener, dns)
    logw.close()
    oom = bool(cg and cg.oom_killed())
    if req.runtime and not req.exec_pid:
        _oci_delete(req)
    if cg:
        cg.remove()
    code = os.waitstatus_to_exitcode(status)
    if code < 0:
        code = 128 - code  # killed by signal N: 128+N, as a shell reports it
    record = {"exit": code, "oom": oom, "finished_at": time.time_ns()}
    # a container's exit must survive a crash (live restore reads it); an exec's is in memory
    atomic_write(os.path.join(req.state_dir, "exit.json"), json.dumps(record).encode(),
                 sync=not req.exec_pid)
    if listener is not None:
        listener.close()
        with contextlib.suppress(Exception):
            os.unlink(req.socket)
    for ch in chans:
        ch.control(record)
        ch.close()
    return code


# --- an OCI runtime (runc, crun) instead of berth's own ------------------------------------------
def _oci(req: Request) -> list[str]:
    return [req.runtime, "--root", req.runtime_root, "--log",
            os.path.join(req.state_dir, "runtime.log"), "--log-format", "json"]


def _oci_run(req: Request, args: list[str], stdio: _Stdio | None, what: str,
             code: int) -> None:
    """Run one runtime command; its failure becomes a StartError with its own message."""
    import subprocess
    os.makedirs(req.runtime_root, exist_ok=True)
    child = stdio.child if stdio is not None else None
    r = subprocess.run(_oci(req) + args, stdin=child.stdin if child else subprocess.DEVNULL,
                       stdout=child.stdout if child else subprocess.DEVNULL,
                       stderr=child.stderr if child else subprocess.DEVNULL,
                       close_fds=True, timeout=120)
    if r.returncode != 0:
        msg = ""
        with contextlib.suppress(OSError):
            with open(os.path.join(req.state_dir, "runtime.log")) as f:
                for line in f:
                    with contextlib.suppress(ValueError):
                        entry = json.loads(line)
                        if entry.get("level") in ("error", "fatal"):
                            msg = entry.get("msg", msg)
        msg = msg or f"{os.path.basename(req.runtime)} {what} failed ({r.returncode})"
        if "executable file not found" in msg or "no such file or directory" in msg:
            code = 127 if code == 125 else code
        elif "permission denied" in msg:
            code = 126 if code == 125 else code
        raise process.StartError(f"OCI runtime {what} failed: {msg}: unknown", code)


def _pid_file(req: Request, name: str) -> int:
    with open(os.path.join(req.state_dir, name)) as f:
        return int(f.read().strip())


def _oci_user(proc: dict, root: str, named: str | None) -> None:  # type: ignore[type-arg]
    """A user name becomes the numbers the runtime wants, read from the container's files."""
    if not named:
        return
    extra = [int(g) for g in (proc.get("user") or {}).get("additionalGids") or []]
    uid, gid, groups, home = process.resolve_user(named, extra, root)
    proc["user"] = {"uid": uid, "gid": gid, "additionalGids": groups}
    env = proc.setdefault("env", [])
    if not any(e.startswith("HOME=") for e in env):
        env.append("HOME=" + (home or "/"))


def _oci_create(req: Request, spec: dict, rootfs: str, stdio: _Stdio) -> int:  # type: ignore[type-arg]
    proc = spec["process"]
    _oci_user(proc, rootfs, (spec.get("annotations") or {}).get("berth.user"))
    proc["terminal"] = req.tty
    if req.tty and req.console_size:
        proc["consoleSize"] = {"height": req.console_size[0], "width": req.console_size[1]}
    # the container's environment is in it: 0600, as the daemon wrote it
    atomic_write(os.path.join(req.bundle, "config.json"), json.dumps(spec).encode(), sync=False)
    args = ["create", "--bundle", req.bundle, "--pid-file",
            os.path.join(req.state_dir, "init.pid")]
    if stdio.console_path:
        args += ["--console-socket", stdio.console_path]
    _oci_run(req, args + [req.id], stdio, "create", 125)
    return _pid_file(req, "init.pid")


def _oci_start(req: Request) -> None:
    _oci_run(req, ["start", req.id], None, "start", 125)


def _oci_delete(req: Request) -> None:
    with contextlib.suppress(Exception):
        _oci_run(req, ["delete", "--force", req.id], None, "delete", 125)


def _oci_exec(req: Request, proc: dict, stdio: _Stdio) -> int:  # type: ignore[type-arg]
    """`RUNTIME exec -d`: the process runs detached and is re-parented to us (a subreaper)."""
    user = proc.get("user") or "0"
    oci_proc: dict = {"terminal": req.tty, "args": proc["args"],  # type: ignore[type-arg]
                      "env": list(proc.get("env") or []), "cwd": proc.get("cwd") or "/",
                      "noNewPrivileges": bool(proc.get("noNewPrivileges"))}
    if not any(e.startswith("PATH=") for e in oci_proc["env"]):
        oci_proc["env"].insert(0, "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:"
                                  "/sbin:/bin")
    caps = (proc.get("capabilities") or {}).get("bounding")
    if caps is not None:
        oci_proc["capabilities"] = {"bounding": caps, "effective": caps, "permitted": caps}
    oci_proc["user"] = {"uid": 0, "gid": 0}
    _oci_user(oci_proc, f"/proc/{req.exec_pid}/root", user)
    if req.tty and req.console_size:
        oci_proc["consoleSize"] = {"height": req.console_size[0], "width": req.console_size[1]}
    path = os.path.join(req.state_dir, "process-oci.json")
    atomic_write(path, json.dumps(oci_proc).encode(), sync=False)
    args = ["exec", "--process", path, "--detach", "--pid-file",
            os.path.join(req.state_dir, "exec.pid")]
    if stdio.console_path:
        args += ["--console-socket", stdio.console_path]
    _oci_run(req, args + [req.container_id], stdio, "exec", 126)
    return _pid_file(req, "exec.pid")


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


def _failed(req: Request, chans: list[_Channel], message: str, code: int) -> int:
    record = {"error": message, "code": code, "exit": code, "oom": False,
              "finished_at": time.time_ns()}
    atomic_write(os.path.join(req.state_dir, "exit.json"), json.dumps(record).encode())
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


def _loop(pid: int, stdio: _Stdio, logw: _LogWriter, chans: list[_Channel],
          listener: socket.socket | None, dns: _Dns | None = None) -> int:
    """Copy output to the log and the channels, stdin and resizes from the channels, until
    the output closes and the process is reaped."""
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
                ch = _Channel(conn)
                chans.append(ch)
                sel.register(conn, selectors.EVENT_READ, ("chan", ch))
                ch.control({"pid": pid, "monitor": os.getpid()})
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
                            size = json.loads(payload)
                            stdio.resize(int(size["h"]), int(size["w"]))
                    elif typ == T_CONTROL:
                        ch.control(_command(pid, json.loads(payload), dns))
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


def _command(pid: int, cmd: dict, dns: _Dns | None) -> dict:  # type: ignore[type-arg]
    """network connect/disconnect of a running container: (un)plug one interface; the new
    network's names join what the embedded DNS answers."""
    try:
        if "plug" in cmd:
            ep = netlink.Endpoint.decode(cmd["plug"])
            netlink.setup_endpoints(pid, [ep])
            if dns is not None and cmd.get("hosts") and cmd["hosts"] not in dns.tables:
                dns.tables.append(cmd["hosts"])
            if dns is not None and "dns_forward" in cmd:
                dns.forward = bool(cmd["dns_forward"])
            return {"plugged": ep.ifname}
        if "unplug" in cmd:
            if dns is not None and "dns_forward" in cmd:
                dns.forward = bool(cmd["dns_forward"])  # before: never more than it may
            netlink.unplug(pid, cmd["unplug"])
            return {"unplugged": cmd["unplug"]}
        return {"failed": f"unknown command {sorted(cmd)}"}
    except Exception as e:  # noqa: BLE001 - the answer carries the error to the daemon
        return {"failed": str(e)}


def _setup_endpoints(pid: int, networks: list[dict]) -> None:  # type: ignore[type-arg]
    """Plug and configure the container's interfaces: here if netlink (pyroute2, ~140 ms to
    import) is loaded, else by a child of the fork server that has it (NETWORK_SERVER)."""
    if not NETWORK_SERVER:
        netlink.setup_endpoints(pid, [netlink.Endpoint.decode(e) for e in networks])
        return
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(NETWORK_SERVER)
    s.sendall(json.dumps({"netsetup": {"pid": pid, "networks": networks}}).encode() + b"\n")
    helper = _Channel(s)
    s.settimeout(60)  # plumbing may take longer than the channel's usual 10 s
    try:
        frames: list[tuple[int, bytes]] | None = []
        while frames == []:
            frames = helper.read_frames()
        if not frames:
            raise OSError("the network helper went away")
    finally:
        helper.close()
    answer = json.loads(frames[0][1])
    if "error" in answer:
        raise OSError(answer["error"])


def _serve_netsetup(conn: socket.socket, req: dict) -> int:  # type: ignore[type-arg]
    """The other side of _setup_endpoints, in a child of the fork server with netlink."""
    try:
        netlink.setup_endpoints(int(req["pid"]),
                                [netlink.Endpoint.decode(e) for e in req["networks"]])
        answer: dict[str, str] = {}
        code = 0
    except Exception as e:  # noqa: BLE001 - reported to the monitor that asked
        answer, code = {"error": str(e)}, 1
    with contextlib.suppress(OSError):
        conn.sendall(frame(T_CONTROL, json.dumps(answer).encode()))
    return code


def serve_connection(conn: socket.socket) -> None:
    """Entry in the forked monitor: read the request line and run. Never returns."""
    code = 1
    try:
        # the fork server ignores SIGCHLD, which would reap our children before we wait
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        os.setsid()
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        buf = b""
        while b"\n" not in buf:
            chunk = conn.recv(65536)
            if not chunk:
                os._exit(1)
            buf += chunk
        line, _, rest = buf.partition(b"\n")
        if rest:
            raise ValueError("protocol error: frames before the process has started")
        d = json.loads(line)
        code = _serve_netsetup(conn, d["netsetup"]) if "netsetup" in d else \
            run(Request.decode(d), conn)
    except BaseException as e:  # noqa: BLE001 - the monitor's edge: report, then exit
        try:
            conn.sendall(frame(T_CONTROL, json.dumps({"error": f"monitor: {e}",
                                                      "code": 125}).encode()))
        except OSError:
            pass
        code = 125
    finally:
        os._exit(code & 0xFF)


__all__ = ["Request", "run", "serve_connection", "rfc3339nano", "frame",
           "T_STDIN", "T_STDOUT", "T_STDERR", "T_CLOSE_STDIN", "T_RESIZE", "T_CONTROL"]
