"""Resource floods: a container, an API client or a registry that tries to make berthd buffer
without bound or run out of fds and threads. Each test floods, then checks berthd's own RSS
(/proc/PID/status), fds (/proc/PID/fd) and threads, and that it still answers.

- attach: a container floods stdout while an attached client reads nothing;
- the loopback port proxy: thousands of connections to a published port;
- a registry (on 127.0.0.1) that answers a ping, a token or an error with a gigabyte.

berthd is started with a low soft RLIMIT_NOFILE, which it must raise to the hard limit."""

from __future__ import annotations

import contextlib
import http.server
import os
import resource
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.conftest import Daemon, running_daemon

pytestmark = pytest.mark.root

MiB = 1 << 20
RSS_GROWTH = 64 * MiB  # what berthd may grow by under any one flood


# --- berthd's resources ------------------------------------------------------------------------
def _status(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise AssertionError(f"no {field} in /proc/{pid}/status")


def rss(pid: int) -> int:
    return _status(pid, "VmRSS") * 1024


@contextlib.contextmanager
def peak_rss(pid: int) -> Iterator[list[int]]:
    """[start, peak] of berthd's RSS over the block, sampled every 20 ms."""
    out = [rss(pid)] * 2
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            with contextlib.suppress(OSError, AssertionError):
                out[1] = max(out[1], rss(pid))
            stop.wait(0.02)

    t = threading.Thread(target=sample, daemon=True)
    t.start()
    try:
        yield out
    finally:
        stop.set()
        t.join()
        out[1] = max(out[1], rss(pid))


def threads(pid: int) -> int:
    return _status(pid, "Threads")


def fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def nofile_limits(pid: int) -> tuple[int, int]:
    for line in Path(f"/proc/{pid}/limits").read_text().splitlines():
        if line.startswith("Max open files"):
            soft, hard = line.split()[3:5]
            return int(soft), int(hard)
    raise AssertionError("no Max open files")


@contextlib.contextmanager
def nofile(soft: int) -> Iterator[None]:
    """This process's soft RLIMIT_NOFILE set to `soft` (at most the hard limit) meanwhile."""
    old = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(soft, old[1]), old[1]))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, old)


_HARD = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
# berthd starts with this soft limit: low enough that 2000 proxied connections would exhaust
# it, and below the hard limit so that raising it shows
_LOW = min(4096, max(_HARD // 2, 256))


@pytest.fixture(scope="module")
def fd_daemon(tmp_path_factory: pytest.TempPathFactory, rootfs_tar: Path) -> Iterator[Daemon]:
    with nofile(_LOW):
        ctx = running_daemon(tmp_path_factory.mktemp("floods"), rootfs_tar)
        d = ctx.__enter__()
    try:
        yield d
    finally:
        ctx.__exit__(None, None, None)


def _pid(d: Daemon) -> int:
    assert d.proc is not None and d.proc.poll() is None, "berthd died"
    return d.proc.pid


def test_berthd_raises_its_fd_limit(fd_daemon: Daemon) -> None:
    soft, hard = nofile_limits(_pid(fd_daemon))
    assert soft == hard == _HARD and soft > _LOW
    # containers keep the limit berthd was started with (as under dockerd and containerd)
    out = fd_daemon.ok("run", "--rm", "busybox", "sh", "-c", "ulimit -n")
    assert out.strip() == str(_LOW)


# --- attach ------------------------------------------------------------------------------------
def _attach(d: Daemon, cid: str, rcvbuf: int = 0) -> socket.socket:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    if rcvbuf:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    s.settimeout(10)
    s.connect(str(d.sock))
    s.sendall(
        f"POST /v1.43/containers/{cid}/attach?stream=1&stdout=1&stderr=1 HTTP/1.1\r\n"
        "Host: berth\r\nConnection: Upgrade\r\nUpgrade: tcp\r\nContent-Length: 0\r\n\r\n".encode()
    )
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = s.recv(1)
        assert chunk, "berthd closed the attach"
        head += chunk
    assert head.startswith(b"HTTP/1.1 101"), head
    return s


def _log_state(path: str) -> tuple[int, int]:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return (0, 0)
    return (st.st_ino, st.st_size)


def test_attach_with_a_reader_that_reads_nothing(fd_daemon: Daemon) -> None:
    d = fd_daemon
    pid = _pid(d)
    # long lines: the monitor writes them to the log and to berthd as fast as it can
    cid = d.ok(
        "run", "-d", "busybox", "sh", "-c", "yes $(head -c 4000 /dev/zero | tr '\\0' a)"
    ).strip()
    stalled: socket.socket | None = None
    reader: socket.socket | None = None
    stop = threading.Event()
    got = [0]
    try:
        logpath = d.inspect(cid)["LogPath"]
        base = rss(pid)
        stalled = _attach(d, cid, rcvbuf=4096)  # attached, never reads
        reader = _attach(d, cid)  # attached, reads all

        def read() -> None:
            assert reader is not None
            with contextlib.suppress(OSError):
                while not stop.is_set():
                    n = len(reader.recv(1 << 20))
                    if not n:
                        return
                    got[0] += n

        t = threading.Thread(target=read, daemon=True)
        t.start()
        peak = base
        deadline = time.monotonic() + 8
        while time.monotonic() < deadline:
            peak = max(peak, rss(pid))
            if peak - base > RSS_GROWTH:
                break  # the old code: it only grows from here, stop before it hurts
            time.sleep(0.1)
        assert peak - base <= RSS_GROWTH, (
            f"berthd grew by {(peak - base) // MiB} MiB behind an attach that reads nothing"
        )
        # the container, its log and the other attached client all go on
        before, seen = _log_state(logpath), got[0]
        time.sleep(1)
        assert _log_state(logpath) != before, "the container's log stopped"
        assert got[0] > seen, "the client that reads got nothing more"
        assert d.inspect(cid)["State"]["Running"]
        assert cid[:12] in d.ok("ps", "-q")
        # the client that read nothing was cut off: its stream ends
        stalled.settimeout(5)
        with contextlib.suppress(ConnectionError):
            while stalled.recv(1 << 16):
                pass
    finally:
        stop.set()
        for s in (stalled, reader):
            if s is not None:
                s.close()
        d.berth("rm", "-f", cid)


def test_logs_of_a_flooded_log(fd_daemon: Daemon) -> None:
    """`logs` (and attach with logs=1) of a container that filled its log: berthd reads it as
    the client takes it, never whole."""
    import subprocess

    from tests.integration.conftest import BIN

    d = fd_daemon
    pid = _pid(d)
    # 100 MB of 4 KB lines: the default rotation keeps five files of 20 MiB
    cid = d.ok(
        "run",
        "-d",
        "busybox",
        "sh",
        "-c",
        "yes $(head -c 4000 /dev/zero | tr '\\0' a) | head -c 100000000",
    ).strip()
    try:
        assert d.ok("wait", cid).strip() == "0"
        logpath = Path(d.inspect(cid)["LogPath"])
        on_disk = sum(p.read_bytes().count(b"\n") for p in logpath.parent.glob(logpath.name + "*"))
        assert on_disk > 10000
        for args in (["--tail", "5"], []):
            with peak_rss(pid) as m:
                p = subprocess.Popen(
                    [str(BIN / "berth"), "logs", *args, cid],
                    env=d.env,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.DEVNULL,
                )
                lines = 0
                assert p.stdout is not None
                for _line in p.stdout:
                    lines += 1
                p.stdout.close()
                p.wait(60)
            grew = m[1] - m[0]
            assert grew <= RSS_GROWTH, f"berthd grew by {grew // MiB} MiB for logs {args}"
            assert lines == (5 if args else on_disk)
    finally:
        d.berth("rm", "-f", cid)


# --- the port proxy ----------------------------------------------------------------------------
def test_many_connections_to_a_published_port(fd_daemon: Daemon) -> None:
    d = fd_daemon
    pid = _pid(d)
    # busybox httpd forks a child per connection, which waits for a request: it holds them all
    cid = d.ok(
        "run", "-d", "-p", "127.0.0.1:0:80", "busybox", "httpd", "-f", "-p", "80", "-h", "/etc"
    ).strip()
    conns: list[socket.socket] = []
    try:
        port = int(d.inspect(cid)["NetworkSettings"]["Ports"]["80/tcp"][0]["HostPort"])
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:  # httpd up: one request answered
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", port), timeout=2) as s,
            ):
                s.sendall(b"GET /hostname HTTP/1.0\r\n\r\n")
                if s.recv(100).startswith(b"HTTP/1.1 200"):
                    break
            time.sleep(0.1)
        time.sleep(0.3)
        base_fds, base_threads = fds(pid), threads(pid)
        refused = 0
        with nofile(max(8192, resource.getrlimit(resource.RLIMIT_NOFILE)[0])):
            start = time.monotonic()
            for _ in range(2000):
                if time.monotonic() - start > 60:
                    break
                try:
                    conns.append(socket.create_connection(("127.0.0.1", port), timeout=2))
                except OSError:
                    refused += 1
            time.sleep(1)  # let the proxy connect what it accepted
            # berthd still answers, and what it holds stays bounded
            t0 = time.monotonic()
            assert cid[:12] in d.ok("ps", "-q")
            assert time.monotonic() - t0 < 20
            n_fds, n_threads = fds(pid), threads(pid)
            # at most 512 connections on one port, each 6 fds and 1 thread
            assert n_fds - base_fds <= 6 * 512 + 64, (
                f"berthd holds {n_fds} fds (from {base_fds}) for {len(conns)} connections"
            )
            assert n_threads - base_threads <= 512 + 16, (
                f"berthd runs {n_threads} threads (from {base_threads})"
            )
            # the proxied ones work: a request on one of the first connections is answered
            s = conns[0]
            s.settimeout(5)
            s.sendall(b"GET /hostname HTTP/1.0\r\n\r\n")
            assert s.recv(100).startswith(b"HTTP/1.1 200")
            # past the cap, connections are reset at once, not left hanging
            served = reset = 0
            for s in conns[1:]:
                s.setblocking(False)
                try:
                    reset += s.recv(1) == b""
                except BlockingIOError:
                    served += 1  # proxied: httpd waits for a request
                except ConnectionError:
                    reset += 1
            assert served < 512 and served + reset == len(conns) - 1
            assert len(conns) + refused == 2000
        for s in conns:
            s.close()
        conns.clear()
        # the proxy lets go of all of it once the clients have gone
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and (
            fds(pid) > base_fds + 16 or threads(pid) > base_threads + 4
        ):
            time.sleep(0.2)
        assert fds(pid) <= base_fds + 16 and threads(pid) <= base_threads + 4
    finally:
        for s in conns:
            s.close()
        d.berth("rm", "-f", cid)


# --- a registry that answers with a gigabyte ----------------------------------------------------
class _Flood(http.server.BaseHTTPRequestHandler):
    """A registry whose ping, token or error answer never ends (up to 1 GiB, made as sent)."""

    mode = "ping"
    stop = threading.Event()
    protocol_version = "HTTP/1.0"

    def log_message(self, *args: object) -> None:
        pass

    def _flood(
        self, status: int, length: bool = False, headers: dict[str, str] | None = None
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        if length:
            self.send_header("Content-Length", str(1 << 30))
        self.end_headers()
        chunk = b"x" * MiB
        with contextlib.suppress(OSError):
            for _ in range(1024):
                if self.stop.is_set():
                    return
                self.wfile.write(chunk)

    def do_GET(self) -> None:  # noqa: N802 - the http.server name
        host = f"127.0.0.1:{self.server.server_address[1]}"
        if self.path == "/v2/":
            if self.mode in ("ping", "ping-length"):
                return self._flood(200, length=self.mode == "ping-length")
            body = b"{}"
            self.send_response(401 if self.mode == "token" else 200)
            if self.mode == "token":
                self.send_header(
                    "WWW-Authenticate", f'Bearer realm="http://{host}/token",service="flood"'
                )
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return None
        if self.path.startswith("/token"):
            return self._flood(200)
        return self._flood(500)  # "error": every other answer is a gigantic error


@pytest.fixture
def flood_registry() -> Iterator[http.server.ThreadingHTTPServer]:
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Flood)
    srv.daemon_threads = True
    _Flood.stop.clear()
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    try:
        yield srv
    finally:
        _Flood.stop.set()
        srv.shutdown()
        srv.server_close()


@pytest.mark.parametrize("mode", ["ping", "ping-length", "token", "error"])
def test_registry_answers_a_gigabyte(
    fd_daemon: Daemon, flood_registry: http.server.ThreadingHTTPServer, mode: str
) -> None:
    import subprocess

    from tests.integration.conftest import BIN

    d = fd_daemon
    pid = _pid(d)
    _Flood.mode = mode
    ref = f"127.0.0.1:{flood_registry.server_address[1]}/flood/img:1"
    base = peak = rss(pid)
    p = subprocess.Popen(
        [str(BIN / "berth"), "pull", ref],
        env=d.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while p.poll() is None and time.monotonic() < deadline:
            peak = max(peak, rss(pid))
            if peak - base > RSS_GROWTH:
                _Flood.stop.set()  # the old code: it would read the whole gigabyte
                break
            time.sleep(0.05)
        out, err = p.communicate(timeout=60)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert peak - base <= RSS_GROWTH, (
        f"berthd grew by {(peak - base) // MiB} MiB reading a registry's {mode} answer"
    )
    assert p.returncode != 0
    assert "registry response too large" in err, err
    assert {"ping": "/v2/ ", "ping-length": "/v2/ ", "token": "/token ", "error": "/manifests/1 "}[
        mode
    ] in err, err
    d.ok("ps")  # berthd still answers
