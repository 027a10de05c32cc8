"""The per-container monitor: holds the container's stdio, writes its log, records its exit.

Imports `runtime.process`, `cgroups`, `linux`. One monitor per running container, forked from the
fork server (so no interpreter start per container) and re-parented to init: it outlives the
daemon. It talks to the daemon over the connection it was handed, in JSON lines:

  daemon → monitor   one request line (see `Request`)
  monitor → daemon   {"pid": N, "monitor": M} once the process has exec'd, or {"error", "code"} if it could not;
                     then {"exit": code, "oom": bool, "finished_at": ns} when it ends.

Every message is also written to the container's state directory (`pid`, `exit.json`, both
atomically), so a daemon that was not there to hear it can read it later.
"""

from __future__ import annotations

import json
import os
import selectors
import signal
import socket
import time
from dataclasses import dataclass

from berth import cgroups, linux
from berth.runtime import process

# Docker's json-file driver splits long lines into 16 KiB entries
_MAX_LINE = 16 * 1024


@dataclass(frozen=True, slots=True, kw_only=True)
class Request:
    id: str
    bundle: str
    log_path: str
    state_dir: str
    rootfs_mount: dict | None = None  # type: ignore[type-arg]  # {"type","source","options"}

    @classmethod
    def decode(cls, d: dict) -> Request:  # type: ignore[type-arg]
        return cls(id=d["id"], bundle=d["bundle"], log_path=d["log_path"],
                   state_dir=d["state_dir"], rootfs_mount=d.get("rootfs_mount"))


def write_atomic(path: str, data: bytes) -> None:
    tmp = f"{path}.{os.getpid()}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.rename(tmp, path)


def rfc3339nano(ns: int) -> str:
    secs, frac = divmod(ns, 1_000_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs)) + f".{frac:09d}Z"


class _Channel:
    """The connection to the daemon; a daemon that went away is not an error."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock: socket.socket | None = sock

    def send(self, msg: dict) -> None:  # type: ignore[type-arg]
        if self.sock is None:
            return
        try:
            self.sock.sendall((json.dumps(msg) + "\n").encode())
        except OSError:
            self.close()

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None


class _LogWriter:
    """Docker's json-file format: one JSON object per line, {"log","stream","time"}."""

    def __init__(self, path: str) -> None:
        self.fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o640)
        self.partial: dict[str, bytes] = {"stdout": b"", "stderr": b""}

    def feed(self, stream: str, data: bytes) -> None:
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
        if out:
            os.write(self.fd, b"".join(out))

    def flush(self, stream: str) -> None:
        if self.partial[stream]:
            os.write(self.fd, self._entry(stream, self.partial[stream], rfc3339nano(time.time_ns())))
            self.partial[stream] = b""

    @staticmethod
    def _entry(stream: str, data: bytes, now: str) -> bytes:
        return (json.dumps({"log": data.decode("utf-8", errors="replace"), "stream": stream,
                            "time": now}, ensure_ascii=False) + "\n").encode()

    def close(self) -> None:
        os.close(self.fd)


def run(req: Request, chan_sock: socket.socket) -> int:
    """The monitor's life. Returns the container's exit code."""
    chan = _Channel(chan_sock)
    os.makedirs(req.state_dir, exist_ok=True)
    with open(os.path.join(req.bundle, "config.json")) as f:
        spec = json.load(f)
    linux.set_child_subreaper()
    # a mount namespace of the monitor's own: the rootfs mount is invisible on the host and
    # goes away with the last process of this container, whatever happens to us
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
    cg: cgroups.CgroupManager | None = None
    if lx.get("cgroupsPath"):
        cg = cgroups.detect(lx["cgroupsPath"])
        try:
            cg.create(cgroups.Resources.from_spec(lx.get("resources") or {}))
        except Exception as e:
            cg.remove()
            return _failed(req, chan, f"failed to create cgroup: {e}", 125)

    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    null = os.open("/dev/null", os.O_RDONLY | os.O_CLOEXEC)
    try:
        pid, exec_r = process.spawn(spec, req.bundle, process.Stdio(null, out_w, err_w),
                                    join_cgroup=cg.add if cg else None)
    except process.StartError as e:
        if cg:
            cg.remove()
        return _failed(req, chan, e.message, e.code)
    finally:
        os.close(out_w)
        os.close(err_w)
        os.close(null)
    write_atomic(os.path.join(req.state_dir, "pid"), str(pid).encode())
    try:
        process.wait_exec(exec_r)
    except process.StartError as e:
        _reap(pid)
        if cg:
            cg.remove()
        return _failed(req, chan, e.message, e.code)
    chan.send({"pid": pid, "monitor": os.getpid()})

    logw = _LogWriter(req.log_path)
    status = _pump(pid, {out_r: "stdout", err_r: "stderr"}, logw)
    logw.close()
    oom = bool(cg and cg.oom_killed())
    if cg:
        cg.remove()
    code = os.waitstatus_to_exitcode(status)
    if code < 0:
        code = 128 - code  # killed by signal N: 128+N, as a shell reports it
    finished = time.time_ns()
    record = {"exit": code, "oom": oom, "finished_at": finished}
    write_atomic(os.path.join(req.state_dir, "exit.json"), json.dumps(record).encode())
    chan.send(record)
    chan.close()
    return code


def _failed(req: Request, chan: _Channel, message: str, code: int) -> int:
    record = {"error": message, "code": code, "exit": code, "oom": False,
              "finished_at": time.time_ns()}
    write_atomic(os.path.join(req.state_dir, "exit.json"), json.dumps(record).encode())
    chan.send(record)
    chan.close()
    return code


def _reap(pid: int) -> int:
    while True:
        try:
            return os.waitpid(pid, 0)[1]
        except ChildProcessError:
            return 0
        except InterruptedError:
            continue


def _pump(pid: int, pipes: dict[int, str], logw: _LogWriter) -> int:
    """Copy output into the log until the pipes close and the init is reaped."""
    sel = selectors.DefaultSelector()
    for fd, name in pipes.items():
        sel.register(fd, selectors.EVENT_READ, name)
    status: int | None = None
    open_fds = set(pipes)
    while open_fds:
        events = sel.select(timeout=0.5 if status is None else 0.05)
        if not events:
            if status is not None:
                break  # the init is gone but someone outside holds a pipe: stop waiting
            try:
                wpid, st = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                wpid, st = pid, 0
            if wpid == pid:
                status = st
            continue
        for key, _ in events:
            fd = key.fd
            data = os.read(fd, 65536)
            if data:
                logw.feed(key.data, data)
            else:
                sel.unregister(fd)
                os.close(fd)
                open_fds.discard(fd)
                logw.flush(key.data)
    for fd in open_fds:
        logw.flush(pipes[fd])
        sel.unregister(fd)
        os.close(fd)
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


def serve_connection(conn: socket.socket) -> None:
    """Entry in the forked monitor: read the request line and run. Never returns."""
    code = 1
    try:
        os.setsid()
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        buf = b""
        while not buf.endswith(b"\n"):
            chunk = conn.recv(65536)
            if not chunk:
                os._exit(1)
            buf += chunk
        req = Request.decode(json.loads(buf))
        code = run(req, conn)
    except BaseException as e:  # noqa: BLE001 - the monitor's edge: report, then exit
        try:
            conn.sendall((json.dumps({"error": f"monitor: {e}", "code": 125}) + "\n").encode())
        except OSError:
            pass
        code = 125
    finally:
        os._exit(code & 0xFF)


__all__ = ["Request", "run", "serve_connection", "write_atomic", "rfc3339nano"]
