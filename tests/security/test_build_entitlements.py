"""Build entitlements: a Dockerfile may not take the host's network for itself.

`RUN --network=host` runs only when the build asks for BuildKit's entitlement (`berth build
--allow network.host`) and the daemon grants it (`berthd --allow-insecure-entitlement
network.host`); `RUN --network=container:ID` is no BuildKit option and is always refused. The
target is a TCP listener on the host's 127.0.0.1, which a step can reach only from the host's
network namespace (or a container that shares it)."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.test_build import build, write

from .conftest import Daemon, running_daemon

pytestmark = pytest.mark.root


class Listener:
    """A TCP listener on the host's 127.0.0.1 (a free port) that records what connects."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.sock.settimeout(0.2)
        self.port = int(self.sock.getsockname()[1])
        self.seen: list[bytes] = []
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._serve, daemon=True)
        self._t.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with conn:
                conn.settimeout(5)
                data = b""
                with contextlib.suppress(OSError):
                    while chunk := conn.recv(4096):
                        data += chunk
                self.seen.append(data)

    def close(self) -> None:
        self._stop.set()
        self._t.join(5)
        self.sock.close()


@pytest.fixture
def listener() -> Iterator[Listener]:
    lst = Listener()
    try:
        yield lst
    finally:
        lst.close()


def _ctx(tmp_path: Path, port: int, network: str = "host") -> Path:
    return write(
        tmp_path / f"ctx-{network.replace(':', '-')}",
        {
            "Dockerfile": f"""\
FROM busybox
RUN echo before
RUN --network={network} echo from-the-build | nc -w 5 127.0.0.1 {port}
"""
        },
    )


def _refused(d: Daemon, ctx: Path, tag: str, wanted: str, *args: str) -> None:
    r = build(d, ctx, "-t", tag, *args)
    assert r.returncode != 0, r.stdout + r.stderr
    assert wanted in r.stderr, r.stderr
    assert "Dockerfile:3" in r.stderr, r.stderr  # the line is named
    assert d.berth("image", "inspect", tag).returncode == 1, "nothing is tagged"


def test_run_network_host_needs_the_builds_request(
    daemon: Daemon, tmp_path: Path, listener: Listener
) -> None:
    ctx = _ctx(tmp_path, listener.port)
    _refused(daemon, ctx, "ent-host:1", "network.host is not allowed")
    assert listener.seen == [], "the step reached the host's loopback"


def test_run_network_host_needs_the_daemons_consent(
    daemon: Daemon, tmp_path: Path, listener: Listener
) -> None:
    ctx = _ctx(tmp_path, listener.port)
    _refused(
        daemon,
        ctx,
        "ent-host:2",
        "granting entitlement network.host is not allowed by build daemon configuration",
        "--allow",
        "network.host",
    )
    assert listener.seen == [], "the step reached the host's loopback"
    r = build(daemon, ctx, "-t", "ent-host:3", "--allow", "security.insecure")
    assert r.returncode != 0 and "security.insecure is not supported" in r.stderr, r.stderr
    r = build(daemon, ctx, "-t", "ent-host:3", "--allow", "network.everything")
    assert r.returncode != 0 and "unknown entitlement" in r.stderr, r.stderr
    assert listener.seen == []


def test_run_network_host_with_both(tmp_path: Path, rootfs_tar: Path, listener: Listener) -> None:
    ctx = _ctx(tmp_path, listener.port)
    with running_daemon(
        tmp_path / "berthd", rootfs_tar, "--allow-insecure-entitlement", "network.host"
    ) as d:
        # the daemon's consent alone is not enough: the build must ask
        _refused(d, ctx, "ent-host:4", "network.host is not allowed")
        assert listener.seen == []
        r = build(d, ctx, "-t", "ent-host:5", "--allow", "network.host")
        assert r.returncode == 0, r.stdout + r.stderr
        assert listener.seen == [b"from-the-build\n"]
        # a cached step is no way round it
        _refused(d, ctx, "ent-host:6", "network.host is not allowed")
        assert len(listener.seen) == 1


def test_run_network_container_is_always_refused(
    daemon: Daemon, tmp_path: Path, listener: Listener
) -> None:
    # a container in the host's network namespace: joining it is joining the host's
    cid = daemon.ok("run", "-d", "--network", "host", "busybox", "sleep", "300").strip()
    try:
        ctx = _ctx(tmp_path, listener.port, f"container:{cid}")
        _refused(daemon, ctx, "ent-ctr:1", f'Dockerfile:3: invalid network mode "container:{cid}"')
        assert listener.seen == [], "the step joined a container in the host's network"
        ctx = _ctx(tmp_path, listener.port, "bridge")
        _refused(daemon, ctx, "ent-ctr:2", 'invalid network mode "bridge"')
    finally:
        daemon.berth("rm", "-f", cid)


def test_run_network_none_and_default_still_work(daemon: Daemon, tmp_path: Path) -> None:
    ctx = write(
        tmp_path / "ctx",
        {
            "Dockerfile": """\
FROM busybox
RUN --network=none sh -c '! ip link | grep -q eth0'
RUN --network=default sh -c 'ip link | grep -q eth0'
"""
        },
    )
    r = build(daemon, ctx, "-t", "ent-none:1")
    assert r.returncode == 0, r.stdout + r.stderr
    daemon.ok("rmi", "ent-none:1")


def _add_ctx(tmp_path: Path, url: str, name: str) -> Path:
    return write(
        tmp_path / f"ctx-add-{name}",
        {
            "Dockerfile": f"""\
FROM busybox
RUN echo before
ADD {url} /fetched
"""
        },
    )


def test_add_url_may_not_reach_the_host(daemon: Daemon, tmp_path: Path, listener: Listener) -> None:
    """berthd fetches ADD's URLs from the host's own namespace: its loopback, its own
    addresses (the bridge's gateway) and link-local ones are refused without network.host."""
    gateway = daemon.bip.split("/")[0]
    for name, url in (
        ("lo", f"http://127.0.0.1:{listener.port}/secret"),
        ("lo2", f"http://127.9.9.9:{listener.port}/secret"),
        ("gw", f"http://{gateway}:{listener.port}/secret"),
        ("ll", "http://169.254.169.254/latest/meta-data/"),
    ):
        r = build(daemon, _add_ctx(tmp_path, url, name), "-t", f"ent-add:{name}")
        assert r.returncode != 0, r.stdout + r.stderr
        assert "is this host's own address" in r.stderr, r.stderr
        assert "Dockerfile:3" in r.stderr
    assert listener.seen == [], "ADD reached the host's loopback"


def test_add_url_to_the_host_with_both(tmp_path: Path, rootfs_tar: Path) -> None:
    import http.server

    served = tmp_path / "www"
    served.mkdir()
    (served / "f").write_text("from the host\n")

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *a: object) -> None:
            pass

    srv = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), lambda *a: Quiet(*a, directory=str(served))
    )  # type: ignore[misc]
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        ctx = _add_ctx(tmp_path, f"http://127.0.0.1:{srv.server_address[1]}/f", "both")
        with running_daemon(
            tmp_path / "berthd", rootfs_tar, "--allow-insecure-entitlement", "network.host"
        ) as d:
            r = build(d, ctx, "-t", "ent-add:both")
            assert r.returncode != 0 and "is this host's own address" in r.stderr
            r = build(d, ctx, "-t", "ent-add:both", "--allow", "network.host")
            assert r.returncode == 0, r.stdout + r.stderr
            assert d.ok("run", "--rm", "ent-add:both", "cat", "/fetched") == "from the host\n"
    finally:
        srv.shutdown()
        srv.server_close()
