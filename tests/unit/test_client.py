"""berth.client: the routes it sends and what it returns of the answers, against a fake
daemon on a unix socket (canned answers, every request recorded)."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from berth.client import Client
from berth.errors import Conflict, NotFound


class FakeDaemon:
    """Answers each request with the (status, JSON) queued for its `METHOD /path`."""

    def __init__(self, path: Path) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(str(path))
        self.sock.listen(8)
        self.answers: dict[str, tuple[int, Any]] = {}
        self.requests: list[tuple[str, str, bytes]] = []
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                buf = b""
                while b"\r\n\r\n" not in buf:
                    buf += conn.recv(65536)
                head, _, body = buf.partition(b"\r\n\r\n")
                lines = head.decode().split("\r\n")
                method, target, _ = lines[0].split(" ")
                length = next(
                    (
                        int(h.split(":")[1])
                        for h in lines[1:]
                        if h.lower().startswith("content-length:")
                    ),
                    0,
                )
                while len(body) < length:
                    body += conn.recv(65536)
                self.requests.append((method, target, body))
                path = target.split("?")[0].split("/", 2)[2]  # without /v1.50
                status, doc = self.answers.get(f"{method} /{path}", (404, {"message": "no route"}))
                data = json.dumps(doc).encode() if doc is not None else b""
                conn.sendall(
                    f"HTTP/1.1 {status} X\r\nContent-Type: application/json\r\n"
                    f"Content-Length: {len(data)}\r\n\r\n".encode()
                    + data
                )

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[FakeDaemon]:
    d = FakeDaemon(tmp_path / "d.sock")
    yield d
    d.close()


@pytest.fixture
def client(daemon: FakeDaemon, tmp_path: Path) -> Client:
    return Client(f"unix://{tmp_path / 'd.sock'}")


def test_container_list(daemon: FakeDaemon, client: Client) -> None:
    summary = {
        "Id": "abc",
        "Names": ["/web"],
        "Image": "busybox",
        "Ports": [],
        "NetworkSettings": {"Networks": {"bridge": {}}},
        "SizeRw": 5,
    }
    daemon.answers["GET /containers/json"] = (200, [summary])
    assert client.containers(all=True, filters='{"name":["web"]}') == [summary]
    method, target, _ = daemon.requests[0]
    assert method == "GET" and target.startswith("/v1.50/containers/json?")
    assert "all=1" in target and "filters=%7B%22name%22" in target and "size" not in target


def test_inspect_passes_the_json_through(daemon: FakeDaemon, client: Client) -> None:
    doc = {"Id": "abc", "State": {"Running": True}, "Config": {"Tty": True, "X": [1]}}
    daemon.answers["GET /containers/web/json"] = (200, doc)
    assert client.inspect_container("web", size=True) == doc
    assert "size=1" in daemon.requests[0][1]


def test_create_start_wait(daemon: FakeDaemon, client: Client) -> None:
    daemon.answers["POST /containers/create"] = (201, {"Id": "new", "Warnings": ["low mem"]})
    daemon.answers["POST /containers/new/start"] = (204, None)
    daemon.answers["POST /containers/new/wait"] = (
        200,
        {"StatusCode": 3, "Error": {"Message": "oops"}},
    )
    created = client.create_container({"Image": "busybox"}, "n1")
    assert created == {"Id": "new", "Warnings": ["low mem"]}
    waiting = client.begin_wait("new", "next-exit")
    client.start_container("new")
    assert waiting.result() == {"StatusCode": 3, "Error": {"Message": "oops"}}
    targets = [(m, t) for m, t, _ in daemon.requests]
    assert targets[0] == ("POST", "/v1.50/containers/create?name=n1")
    assert json.loads(daemon.requests[0][2]) == {"Image": "busybox"}
    assert ("POST", "/v1.50/containers/new/wait?condition=next-exit") in targets


def test_errors_come_from_the_status(daemon: FakeDaemon, client: Client) -> None:
    daemon.answers["DELETE /containers/web"] = (409, {"message": "container is running"})
    with pytest.raises(Conflict, match="container is running"):
        client.remove_container("web", force=False)
    with pytest.raises(NotFound, match="no route"):
        client.start_container("nothing")


def test_names_are_quoted_in_paths(daemon: FakeDaemon, client: Client) -> None:
    daemon.answers["POST /images/reg:5000/a/b:1/tag"] = (201, None)
    client.tag_image("reg:5000/a/b:1", "x y", "t")
    assert daemon.requests[0][1] == "/v1.50/images/reg:5000/a/b:1/tag?repo=x%20y&tag=t"
    with pytest.raises(NotFound):
        client.stop_container("a?b", timeout=3)
    assert daemon.requests[1][1] == "/v1.50/containers/a%3Fb/stop?t=3"


def test_prune_results(daemon: FakeDaemon, client: Client) -> None:
    daemon.answers["POST /images/prune"] = (
        200,
        {"ImagesDeleted": [{"Untagged": "a:1"}, {"Deleted": "sha256:1"}], "SpaceReclaimed": 10},
    )
    daemon.answers["POST /volumes/prune"] = (200, {"VolumesDeleted": ["v1"], "SpaceReclaimed": 1})
    assert client.prune_images()["ImagesDeleted"] == [{"Untagged": "a:1"}, {"Deleted": "sha256:1"}]
    assert client.prune_volumes('{"all":["true"]}') == {
        "VolumesDeleted": ["v1"],
        "SpaceReclaimed": 1,
    }
    assert "filters=%7B%22all%22" in daemon.requests[1][1]


def test_exec_round_trip(daemon: FakeDaemon, client: Client) -> None:
    daemon.answers["POST /containers/web/exec"] = (201, {"Id": "e1"})
    daemon.answers["POST /exec/e1/start"] = (200, None)
    daemon.answers["GET /exec/e1/json"] = (200, {"ID": "e1", "Running": False, "ExitCode": 2})
    eid = client.create_exec("web", {"Cmd": ["true"]})["Id"]
    assert client.start_exec(eid, tty=False, detach=True) is None
    assert client.inspect_exec(eid).get("ExitCode") == 2
    assert json.loads(daemon.requests[1][2]) == {"Detach": True, "Tty": False, "ConsoleSize": None}


def test_the_typed_results_cost_nothing_at_run_time() -> None:
    """berth.client.types (TypedDicts, which need `typing`) is read by mypy only."""
    import subprocess
    import sys

    code = "import sys, berth.client\nprint('berth.client.types' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
