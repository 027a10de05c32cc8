"""The fast path of an unchanged `up -d` (compose.upcache) against a fake daemon: a hit when
nothing changed, and a miss on each thing that would make the full `up` do something."""

from __future__ import annotations

import json
import os
import textwrap
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from berth.compose import LoadOptions, load_project
from berth.compose.labels import config_hash
from berth.compose.upcache import Inputs, converged, entry_path, save
from berth.errors import NotFound

FILE = """\
services:
  web:
    image: busybox
    environment: {GREETING: "${GREETING:-hi}"}
    env_file: [{path: ./extra.env, required: false}]
    depends_on: {db: {condition: service_healthy}}
  db:
    image: busybox
    volumes: ["data:/data"]
    networks: [default, ext]
networks:
  ext: {external: true}
volumes:
  data: {}
"""
IMAGE = "sha256:" + "b" * 64


class FakeClient:
    """GET only: the containers, images, networks and volumes the test sets."""

    def __init__(self) -> None:
        self.containers: list[dict[str, Any]] = []
        self.images = {"busybox": IMAGE}
        self.networks = ["p_default", "ext"]
        self.volumes = ["p_data"]
        self.calls: list[str] = []

    def get(self, path: str, query: Any = None) -> Any:
        self.calls.append(path)
        if path == "/containers/json":
            return self.containers
        if path.startswith("/images/"):
            ref = path.split("/")[2]
            if ref not in self.images:
                raise NotFound(f"no such image: {ref}")
            return {"Id": self.images[ref]}
        if path == "/networks":
            return [{"Name": n} for n in self.networks if n != "ext"]
        if path == "/volumes":
            return {"Volumes": [{"Name": n} for n in self.volumes]}
        if path.startswith("/networks/"):
            if path.split("/")[2] not in self.networks:
                raise NotFound("no such network")
            return {}
        raise AssertionError(path)


@pytest.fixture
def setup(tmp_path: Path) -> tuple[Path, Path, FakeClient, dict[str, str]]:
    work = tmp_path / "proj"
    work.mkdir()
    (work / "compose.yaml").write_text(FILE)
    cache = tmp_path / "cache"
    environ = {"HOME": "/root"}
    inputs = Inputs(environ)
    opts = LoadOptions(environ=environ, cwd=str(work), project_name="p", inputs=inputs)
    project, warnings = load_project(opts)
    path = Path(entry_path(str(cache), str(work), ["p"], environ))
    save(str(path), inputs, project, warnings, config_hash)
    client = FakeClient()
    for svc in project.services.values():
        client.containers.append(
            {
                "Names": [f"/p-{svc.name}-1"],
                "State": "running",
                "Status": "Up 3 seconds (healthy)" if svc.name == "db" else "Up 3 seconds",
                "Labels": {
                    "com.docker.compose.project": "p",
                    "com.docker.compose.service": svc.name,
                    "com.docker.compose.oneoff": "False",
                    "com.docker.compose.config-hash": config_hash(svc),
                    "com.docker.compose.image": IMAGE,
                },
            }
        )
    return work, path, client, environ


def test_a_hit_when_nothing_changed(setup: Any) -> None:
    work, path, client, environ = setup
    assert oct(path.parent.stat().st_mode & 0o777) == "0o700"
    entry = json.loads(path.read_text())
    # what the load read, the optional env file's absence and the override's among them
    assert entry["files"][str(work / "extra.env")] is None
    assert entry["files"][str(work / "compose.override.yaml")] is None
    assert entry["env"]["GREETING"] is None
    assert converged(str(path), environ, client) == ([], ["p-db-1", "p-web-1"])
    # a one-off container of the project changes nothing
    client.containers.append(
        {
            "Names": ["/p-web-run-1"],
            "State": "exited",
            "Labels": {"com.docker.compose.project": "p", "com.docker.compose.oneoff": "True"},
        }
    )
    assert converged(str(path), environ, client) is not None


@pytest.mark.parametrize(
    "change",
    [
        "file",
        "override",
        "env_file",
        "variable",
        "orphan",
        "stopped",
        "hash",
        "image",
        "image gone",
        "unhealthy",
        "scaled",
        "network",
        "volume",
        "external",
        "entry",
    ],
)
def test_a_miss_on_each_change(setup: Any, change: str) -> None:
    work, path, client, environ = setup
    web, db = client.containers[1], client.containers[0]
    if change == "file":
        (work / "compose.yaml").write_text(FILE.replace("hi", "hello"))
    elif change == "override":
        (work / "compose.override.yaml").write_text("services: {}\n")
    elif change == "env_file":
        (work / "extra.env").write_text("X=1\n")
    elif change == "variable":
        environ = {**environ, "GREETING": "hello"}
    elif change == "orphan":
        client.containers.append(
            {**web, "Labels": {**web["Labels"], "com.docker.compose.service": "old"}}
        )
    elif change == "stopped":
        web["State"] = "exited"
    elif change == "hash":
        web["Labels"] = {**web["Labels"], "com.docker.compose.config-hash": "0" * 64}
    elif change == "image":
        client.images["busybox"] = "sha256:" + "c" * 64
    elif change == "image gone":
        del client.images["busybox"]
    elif change == "unhealthy":
        db["Status"] = "Up 3 seconds (unhealthy)"
    elif change == "scaled":
        client.containers.append({**web, "Names": ["/p-web-2"]})
    elif change == "network":
        client.networks.remove("p_default")
    elif change == "volume":
        client.volumes.clear()
    elif change == "external":
        client.networks.remove("ext")
    elif change == "entry":
        path.write_text("{not json")
    assert converged(str(path), environ, client) is None


def test_no_entry_for_a_pulling_project_nor_in_an_open_directory(tmp_path: Path) -> None:
    (tmp_path / "compose.yaml").write_text("services:\n  a: {image: x, pull_policy: always}\n")
    inputs = Inputs({})
    opts = LoadOptions(environ={}, cwd=str(tmp_path), project_name="p")
    project, _ = load_project(replace(opts, inputs=inputs))
    path = tmp_path / "c" / "e.json"
    save(str(path), inputs, project, [], config_hash)
    assert not path.exists()
    (tmp_path / "compose.yaml").write_text("services:\n  a: {image: x}\n")
    project, _ = load_project(replace(opts, inputs=inputs))
    (tmp_path / "c").mkdir(mode=0o777)
    os.chmod(tmp_path / "c", 0o777)  # others could write it: it is not trusted
    save(str(path), inputs, project, [], config_hash)
    assert not path.exists()
    os.chmod(tmp_path / "c", 0o700)
    save(str(path), inputs, project, [], config_hash)
    assert path.exists()
    os.chmod(tmp_path / "c", 0o777)
    assert converged(str(path), {}, FakeClient()) is None  # type: ignore[arg-type]


def test_the_entry_follows_the_options_and_compose_variables(tmp_path: Path) -> None:
    a = entry_path(str(tmp_path), "/w", ["p"], {"HOME": "/"})
    assert a == entry_path(str(tmp_path), "/w", ["p"], {"HOME": "/elsewhere"})
    assert a != entry_path(str(tmp_path), "/w", ["q"], {})
    assert a != entry_path(str(tmp_path), "/v", ["p"], {})
    assert a != entry_path(str(tmp_path), "/w", ["p"], {"COMPOSE_PROFILES": "x"})


def test_variables_in_dotenv_and_includes_are_noted(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("TAG=${BASE:-1}\n")
    (tmp_path / "inc").mkdir()
    (tmp_path / "inc" / "compose.yaml").write_text(
        textwrap.dedent("""\
        services:
          inc: {image: "busybox:${INCTAG:-x}"}
        """)
    )
    (tmp_path / "compose.yaml").write_text(
        textwrap.dedent("""\
        include: [inc/compose.yaml]
        services:
          a: {image: "busybox:${TAG}"}
        """)
    )
    inputs = Inputs({"BASE": "2"})
    load_project(
        LoadOptions(environ={"BASE": "2"}, cwd=str(tmp_path), project_name="p", inputs=inputs)
    )
    assert inputs.env["BASE"] == "2" and inputs.env["INCTAG"] is None
    assert "TAG" in inputs.env
    assert inputs.files[str(tmp_path / ".env")] is not None
    assert inputs.files[str(tmp_path / "inc" / "compose.yaml")] is not None


def test_the_fast_path_loads_no_yaml_nor_model() -> None:
    import subprocess
    import sys

    code = (
        "import sys, berth.cli.compose, berth.cli.compose_common, berth.compose.upcache, "
        "berth.cli.composeprogress; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('yaml', 'jsonschema') "
        "or m in ('berth.compose.model', 'berth.compose.loader', "
        "'berth.cli.compose_tools', 'berth.cli.compose_up', 'dataclasses')))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"
