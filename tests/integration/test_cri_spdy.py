"""berthd's CRI streaming server over SPDY/3.1, driven by a client of real spdystream (the
library Kubernetes' client-go speaks SPDY with; Debian's golang-github-docker-spdystream-dev),
tests/cri_spdy_client, built once per session with Debian's Go in GOPATH mode, offline: exec with
stdin, stdout, stderr and the exit code on each protocol version, a tty and its resize, attach,
port-forward (streams paired by requestID and by stream ID, two ports on one connection, a port
nothing listens on), and the server's answers to a client that breaks the protocol. The pods
are on a bridge of this module's own (10.202.67.0/25)."""

from __future__ import annotations

import json
import os
import shutil
import socket
import struct
import subprocess
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from berth.cri.spdy import DICTIONARY

from .test_cri import Cri, running_cri

pytest.importorskip("grpc")

ROOT = Path(__file__).resolve().parents[2]
GOPATH = "/usr/share/gocode"
SPDYSTREAM = f"{GOPATH}/src/github.com/moby/spdystream"
SUBNET = "10.202.67.0/25"
Pod = tuple[str, str, dict[str, Any]]  # sandbox ID, the server container's ID, pod config


@pytest.fixture(scope="session")
def spdy_client(tmp_path_factory: pytest.TempPathFactory) -> Path:
    go = shutil.which("go")
    if go is None or not os.path.isdir(SPDYSTREAM):
        pytest.skip("needs Debian's golang-go and golang-github-docker-spdystream-dev")
    out = tmp_path_factory.mktemp("spdy-client")
    env = {
        **os.environ,
        "GO111MODULE": "off",
        "GOPATH": GOPATH,
        "GOPROXY": "off",
        "GOFLAGS": "",
        "GOCACHE": str(out / "cache"),
        "CGO_ENABLED": "0",
    }
    subprocess.run(
        [go, "build", "-o", str(out / "client"), "."],
        cwd=ROOT / "tests" / "cri_spdy_client",
        env=env,
        check=True,
        timeout=300,
    )
    shutil.rmtree(out / "cache", ignore_errors=True)
    return out / "client"


@pytest.fixture(scope="module")
def cri(tmp_path_factory: pytest.TempPathFactory, rootfs_tar: Path) -> Iterator[Cri]:
    with running_cri(tmp_path_factory.mktemp("cri-spdy"), rootfs_tar, SUBNET) as c:
        yield c


@pytest.fixture(scope="module")
def pod(cri: Cri) -> Iterator[Pod]:
    """A pod whose container prints a tick every 0.2 s and serves 8080 (pong) and 8081 (echo)."""
    sid, config = cri.pod("spdy")
    try:
        cid = cri.container(
            sid,
            config,
            "srv",
            [
                "sh",
                "-c",
                "(while true; do echo tick; sleep 0.2; done) & "
                "(while true; do nc -l -p 8081 -e cat; done) & "
                "while true; do nc -l -p 8080 -e echo pong; done",
            ],
        )
        yield sid, cid, config
    finally:
        cri.runtime("StopPodSandbox", pod_sandbox_id=sid)
        cri.runtime("RemovePodSandbox", pod_sandbox_id=sid)


def client(binary: Path, url: str, *args: str) -> dict[str, Any]:
    p = subprocess.run(
        [str(binary), *args, url], capture_output=True, text=True, timeout=60, check=False
    )
    assert p.returncode == 0, p.stderr
    got: dict[str, Any] = json.loads(p.stdout)
    assert not got.get("errors"), got
    return got


def exec_url(cri: Cri, cid: str, cmd: list[str], **flags: bool) -> str:
    fields = {"stdin": False, "stdout": True, "stderr": True, "tty": False, **flags}
    url: str = cri.runtime("Exec", container_id=cid, cmd=cmd, **fields).url
    return url


def test_exec_v4(cri: Cri, pod: Pod, spdy_client: Path, tmp_path: Path) -> None:
    """stdin in, stdout and stderr out, the exit code as a v4 Status on the error stream."""
    _, cid, _ = pod
    script = "read x; echo got $x; echo oops >&2; exit 3"
    url = exec_url(cri, cid, ["sh", "-c", script], stdin=True)
    got = client(spdy_client, url, "-stdin", r"hello\n", "-stdout", "-stderr")
    assert got["protocol"] == "v4.channel.k8s.io"
    assert got["streams"]["stdout"] == "got hello\n"
    assert got["streams"]["stderr"] == "oops\n"
    assert got["status"]["status"] == "Failure"
    assert got["status"]["reason"] == "NonZeroExitCode"
    assert got["status"]["details"]["causes"] == [{"reason": "ExitCode", "message": "3"}]

    # a command that is not there: a Status all the same
    url = exec_url(cri, cid, ["/no/such/command"])
    got = client(spdy_client, url, "-stdout", "-stderr")
    assert got["status"]["status"] == "Failure"
    assert "/no/such/command" in got["status"]["message"]

    url = exec_url(cri, cid, ["echo", "fine"])
    got = client(spdy_client, url, "-stdout", "-stderr")
    assert got["streams"]["stdout"] == "fine\n"
    assert got["status"] == {"metadata": {}, "status": "Success"}
    # a URL's token is good once, over SPDY as over WebSocket
    p = subprocess.run([str(spdy_client), "-stdout", url], capture_output=True, text=True)
    assert p.returncode == 1 and "404" in p.stderr

    # a larger input and output than one frame or one window (64 KiB) holds
    url = exec_url(
        cri, cid, ["sh", "-c", "wc -c; head -c 300000 /dev/zero | tr '\\0' x"], stdin=True
    )
    (tmp_path / "big").write_bytes(b"y" * 200_000)
    got = client(spdy_client, url, "-stdin-file", str(tmp_path / "big"), "-stdout", "-stderr")
    out = got["streams"]["stdout"]
    assert out.startswith("200000\n") and out[7:] == "x" * 300_000


@pytest.mark.parametrize("protocol", ["v3.channel.k8s.io", "v2.channel.k8s.io", "channel.k8s.io"])
def test_exec_older_protocols(cri: Cri, pod: Pod, spdy_client: Path, protocol: str) -> None:
    """Before v4 the error stream carries a failure's message and nothing on success (kubelets
    reset v1's error stream as soon as it is open, so a v1 client of theirs hears of no
    failure; berth's tells it)."""
    _, cid, _ = pod
    url = exec_url(cri, cid, ["sh", "-c", "echo out; exit 7"])
    got = client(spdy_client, url, "-protocols", protocol, "-stdout", "-stderr")
    assert got["protocol"] == protocol
    assert got["streams"]["stdout"] == "out\n"
    assert "non-zero exit code: 7" in got["streams"]["error"]
    assert "status" not in got
    url = exec_url(cri, cid, ["true"], stderr=False)
    got = client(spdy_client, url, "-protocols", protocol, "-stdout")
    assert got["streams"]["error"] == ""


def test_protocol_not_spoken(cri: Cri, pod: Pod, spdy_client: Path) -> None:
    """A client that names no protocol, or none berth speaks, is refused (as by kubelets)."""
    _, cid, _ = pod
    url = exec_url(cri, cid, ["true"])
    p = subprocess.run(
        [str(spdy_client), "-protocols", "", "-stdout", url], capture_output=True, text=True
    )
    assert p.returncode == 1 and "400" in p.stderr and "X-Stream-Protocol-Version" in p.stderr
    url = exec_url(cri, cid, ["true"])
    p = subprocess.run(
        [str(spdy_client), "-protocols", "v9.channel.k8s.io", "-stdout", url],
        capture_output=True,
        text=True,
    )
    assert p.returncode == 1 and "403" in p.stderr and "v4.channel.k8s.io" in p.stderr


def test_exec_tty_resize(cri: Cri, pod: Pod, spdy_client: Path) -> None:
    """With a tty: no stderr stream, and the resize stream sets the terminal's size."""
    _, cid, _ = pod
    url = exec_url(cri, cid, ["sh", "-c", "sleep 0.5; stty size; exit 2"], tty=True, stderr=False)
    got = client(spdy_client, url, "-tty", "-stdout", "-resize", "100x37")
    assert "stderr" not in got["streams"]
    assert got["streams"]["stdout"].strip() == "37 100"
    assert got["status"]["details"]["causes"][0]["message"] == "2"


def test_attach(cri: Cri, pod: Pod, spdy_client: Path) -> None:
    _, cid, _ = pod
    url: str = cri.runtime("Attach", container_id=cid, stdout=True, stderr=True).url
    got = client(spdy_client, url, "-method", "GET", "-stdout", "-stderr", "-until", "tick")
    assert "tick\n" in got["streams"]["stdout"]


def test_attach_stdin_and_tty(cri: Cri, pod: Pod, spdy_client: Path) -> None:
    """Attach to a container that reads its stdin; and to one with a tty, resized."""
    sid, _, config = pod
    cid = cri.container(
        sid, config, "reader", ["sh", "-c", "read x; echo got $x; sleep 100"], stdin=True
    )
    url: str = cri.runtime("Attach", container_id=cid, stdin=True, stdout=True).url
    got = client(spdy_client, url, "-stdin", r"hello\n", "-stdout", "-until", "got hello")
    assert got["streams"]["stdout"] == "got hello\n"

    script = "while true; do stty size; sleep 0.3; done"
    cid = cri.container(sid, config, "tty", ["sh", "-c", script], stdin=True, tty=True)
    url = cri.runtime("Attach", container_id=cid, stdin=True, stdout=True, tty=True).url
    args = ["-stdin-open", "-stdout", "-tty", "-resize", "90x33", "-until", "33 90"]
    got = client(spdy_client, url, *args)
    assert "33 90" in got["streams"]["stdout"]


def test_portforward(cri: Cri, pod: Pod, spdy_client: Path) -> None:
    """Two ports on one connection (streams paired by requestID); by stream ID, as older
    clients pair them; a port nothing listens on answers on its error stream."""
    sid, _, _ = pod
    url: str = cri.runtime("PortForward", pod_sandbox_id=sid).url
    args = ["-mode", "portforward", "-port", "8080,8081", "-send", r"ping\n", "-until", "ng\n"]
    got = client(spdy_client, url, *args)
    assert got["protocol"] == "portforward.k8s.io"
    assert got["streams"]["data:8080"] == "pong\n"
    assert got["streams"]["data:8081"] == "ping\n"
    assert got["streams"]["error:8080"] == got["streams"]["error:8081"] == ""

    url = cri.runtime("PortForward", pod_sandbox_id=sid).url
    got = client(spdy_client, url, "-mode", "portforward", "-port", "8080", "-no-request-id")
    assert got["streams"]["data:8080"] == "pong\n"

    url = cri.runtime("PortForward", pod_sandbox_id=sid).url
    got = client(spdy_client, url, "-mode", "portforward", "-port", "8099")
    assert "8099" in got["streams"]["error:8099"] and got["streams"]["data:8099"] == ""

    # the ports a PortForward names are the only ones its URL forwards
    url = cri.runtime("PortForward", pod_sandbox_id=sid, port=[8081]).url
    got = client(spdy_client, url, "-mode", "portforward", "-port", "8080")
    assert "may not be forwarded" in got["streams"]["error:8080"]


def _upgrade(url: str, protocol: str) -> socket.socket:
    u = urlsplit(url)
    s = socket.create_connection((u.hostname, u.port), timeout=10)
    s.sendall(
        f"POST {u.path} HTTP/1.1\r\nHost: {u.netloc}\r\nConnection: Upgrade\r\n"
        f"Upgrade: SPDY/3.1\r\nX-Stream-Protocol-Version: {protocol}\r\n\r\n".encode()
    )
    head = b""
    while b"\r\n\r\n" not in head:
        head += s.recv(1)
    assert head.startswith(b"HTTP/1.1 101"), head
    return s


def _frames(s: socket.socket) -> list[tuple[int, int, bytes]]:
    """(type or -1 for data, flags, payload) of what the server sends until it closes."""
    buf = b""
    while chunk := s.recv(65536):
        buf += chunk
    out = []
    while len(buf) >= 8:
        first, word = struct.unpack(">II", buf[:8])
        n = word & 0xFFFFFF
        out.append((first & 0xFFFF if first >> 31 else -1, word >> 24, buf[8 : 8 + n]))
        buf = buf[8 + n :]
    return out


def test_hostile_client(cri: Cri, pod: Pod, spdy_client: Path) -> None:
    """A frame that breaks the protocol ends the session with GOAWAY PROTOCOL_ERROR; a header
    block that inflates past its bound too; the daemon serves on."""
    _, cid, _ = pod
    bomb = zlib.compressobj(zdict=DICTIONARY)
    block = struct.pack(">I", 1) + struct.pack(">I", 1) + b"a" + struct.pack(">I", 4 << 20)
    block += b"\0" * (4 << 20)
    payload = bomb.compress(block) + bomb.flush(zlib.Z_SYNC_FLUSH)
    cases = [
        struct.pack(">HHI", 0x8002, 1, 10) + b"\0" * 10,  # SPDY/2
        struct.pack(">HHI", 0x8003, 1, 1 << 20) + b"\0" * 64,  # a control frame too large
        struct.pack(">HHI", 0x8003, 1, 10 + len(payload)) + struct.pack(">IIH", 1, 0, 0) + payload,
        struct.pack(">HHI", 0x8003, 6, 5) + b"\0" * 5,  # a PING of the wrong length
    ]
    for case in cases:
        url = exec_url(cri, cid, ["true"])
        with _upgrade(url, "v4.channel.k8s.io") as s:
            s.sendall(case)
            frames = _frames(s)
        assert frames and frames[-1][0] == 7, frames  # GOAWAY
        assert struct.unpack(">II", frames[-1][2])[1] == 1  # PROTOCOL_ERROR
    got = client(spdy_client, exec_url(cri, cid, ["echo", "still"], stderr=False), "-stdout")
    assert got["streams"]["stdout"] == "still\n"
