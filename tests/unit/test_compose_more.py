"""berth compose's later keys and flags against fakes: `config --variables` and
`--no-interpolate`, build.ssh and build.platforms, the deploy keys, `pre_start`."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest

from berth.compose import LoadOptions, load_canonical
from berth.compose import labels as L
from berth.compose.interpolate import Variable, extract_variables
from berth.compose.loader import load
from berth.compose.orchestrator import ComposeError, UpOptions

from .test_compose_orchestrator import FakeEngine, orch, project


class BuildingEngine(FakeEngine):
    """FakeEngine that builds (any context becomes an image) and says its platform."""

    def __init__(self, arch: str = "x86_64") -> None:
        super().__init__()
        self.arch = arch
        self.built: list[dict[str, Any]] = []

    def version(self) -> dict[str, Any]:
        return {"Os": "linux", "Arch": self.arch}

    def build(self, tar: bytes, query: dict[str, Any], headers: dict[str, str]) -> Any:
        self.built.append(query)
        self.images[str(query["t"])] = "sha256:" + "c" * 64
        return iter([{"stream": "done"}])


def test_extract_variables() -> None:
    found = extract_variables(
        {"a": ["${A:?need A}", "$B-${C:-x${D}}"], "b": {"k": "${E+yes}"}, "n": 3, "esc": "$$F"}
    )
    assert found == {
        "A": Variable(name="A", required=True),
        "B": Variable(name="B"),
        "C": Variable(name="C", default="x${D}"),
        "D": Variable(name="D"),
        "E": Variable(name="E", alternate="yes"),
    }


def _write(tmp_path: Path, text: str) -> LoadOptions:
    (tmp_path / "compose.yaml").write_text(textwrap.dedent(text))
    return LoadOptions(environ={"TAG": "1.0"}, cwd=str(tmp_path), interpolate=False)


def test_no_interpolate_keeps_the_text_and_lists_the_variables(tmp_path: Path) -> None:
    opts = _write(
        tmp_path,
        """\
        services:
          web:
            image: "busybox:${TAG:-latest}"
            environment: {A: "${A:?set A}", B: "$$B"}
        """,
    )
    canonical, loaded = load_canonical(opts)
    web = canonical["services"]["web"]
    assert web["image"] == "busybox:${TAG:-latest}"
    assert web["environment"] == {"A": "${A:?set A}", "B": "$$B"}
    assert loaded.warnings == []  # nothing is missing: nothing was looked up
    assert sorted(load(opts).variables) == ["A", "TAG"]


def test_config_variables_table(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from berth.cli.compose import _print_variables

    _print_variables(
        {
            "PORT": Variable(name="PORT", default="8080"),
            "A": Variable(name="A", required=True, alternate="x"),
        },
        "",
    )
    assert capsys.readouterr().out.splitlines() == [
        "NAME                REQUIRED            DEFAULT VALUE       ALTERNATE VALUE",
        "A                   true                                    x",
        "PORT                false               8080                ",
    ]
    _print_variables({"A": Variable(name="A", required=True)}, "json")
    assert capsys.readouterr().out == (
        '{"A":{"Name":"A","DefaultValue":"","PresenceValue":"","Required":true}}\n'
    )


BUILD = """\
services:
  app:
    build:
      context: .
      {extra}
"""


def test_build_platforms_of_the_daemon_only(tmp_path: Path) -> None:
    e = BuildingEngine()
    o, _ = orch(project(tmp_path, BUILD.format(extra="platforms: [linux/amd64]")), e)
    o.images.context_tar = lambda ctx, df, inline: (b"", df)
    o.up(UpOptions())
    assert e.built and ("create", "p-app-1") in e.calls
    e = BuildingEngine()
    o, _ = orch(project(tmp_path, BUILD.format(extra="platforms: [linux/amd64, linux/arm64]")), e)
    o.images.context_tar = lambda ctx, df, inline: (b"", df)
    with pytest.raises(ComposeError, match=r"build.platforms 'linux/arm64'.*\(linux/amd64\)"):
        o.up(UpOptions())
    assert e.built == [] and e.calls == [("network", "p_default")]
    e = BuildingEngine(arch="aarch64")
    o, _ = orch(project(tmp_path, BUILD.format(extra="platforms: [linux/arm64/v8]")), e)
    o.images.context_tar = lambda ctx, df, inline: (b"", df)
    o.up(UpOptions())
    assert e.built


@pytest.mark.parametrize("ssh", ["ssh: [default]", "ssh: {mykey: /home/me/.ssh/id_ed25519}"])
def test_build_ssh_is_refused_naming_the_key(tmp_path: Path, ssh: str) -> None:
    e = BuildingEngine()
    o, _ = orch(project(tmp_path, BUILD.format(extra=ssh)), e)
    o.images.context_tar = lambda ctx, df, inline: (b"", df)
    with pytest.raises(
        ComposeError,
        match=r"build.ssh '(default|mykey=/home/me/.ssh/"
        r"id_ed25519)'.*--mount=type=ssh",
    ):
        o.up(UpOptions())
    assert e.built == []


def test_deploy_as_docker_compose_reads_it(tmp_path: Path) -> None:
    from berth.compose import load_project
    from berth.compose.spec import container_body

    (tmp_path / "compose.yaml").write_text(
        textwrap.dedent("""\
        services:
          app:
            image: busybox
            restart: "no"
            mem_limit: 1g
            deploy:
              mode: replicated
              replicas: 3
              labels: {swarm.only: "yes"}
              resources:
                limits: {cpus: "0.5", memory: 64m, pids: 20}
                reservations: {cpus: "0.25", memory: 16m}
              restart_policy: {condition: on-failure, max_attempts: 2, delay: 5s, window: 1m}
              update_config: {parallelism: 2, delay: 10s, order: start-first}
              rollback_config: {parallelism: 1}
              placement: {constraints: ["node.role == manager"]}
              endpoint_mode: dnsrr
          one:
            image: busybox
            deploy: {mode: global, replicas: 4, restart_policy: {condition: any}}
          never:
            image: busybox
            restart: always
            deploy: {restart_policy: {condition: none}}
        """)
    )
    p, warnings = load_project(LoadOptions(environ={}, cwd=str(tmp_path), project_name="p"))
    assert warnings == []  # swarm's keys are ignored without a word, as docker compose does
    app = p.services["app"]
    assert app.replicas == 3 and app.restart == "on-failure:2"
    hc = container_body(p, app, 1, "sha256:x", "p-app-1")["HostConfig"]
    assert (hc["NanoCpus"], hc["Memory"], hc["PidsLimit"], hc["MemoryReservation"]) == (
        500_000_000,
        64 << 20,
        20,
        16 << 20,
    )
    assert hc["RestartPolicy"] == {"Name": "on-failure", "MaximumRetryCount": 2}
    body = container_body(p, app, 1, "sha256:x", "p-app-1")
    assert "swarm.only" not in body["Labels"]
    assert p.services["one"].replicas == 1 and p.services["one"].restart == "always"
    assert p.services["never"].restart == "no"
    e = FakeEngine()
    o, _ = orch(p, e)
    o.up(UpOptions())
    assert sorted(n for op, n in e.calls if op == "create") == [
        "p-app-1",
        "p-app-2",
        "p-app-3",
        "p-never-1",
        "p-one-1",
    ]


class InitEngine(FakeEngine):
    """FakeEngine whose containers run to an exit code (`codes` by name, else 0)."""

    def __init__(self) -> None:
        super().__init__()
        self.codes: dict[str, int] = {}
        self.bodies: dict[str, dict[str, Any]] = {}

    def create(self, name: str, body: dict[str, Any]) -> str:
        self.bodies[name] = body
        return super().create(name, body)

    def wait(self, ref: str) -> int:
        c = self.containers_[self._find(ref)]
        c["state"] = "exited"
        return self.codes.get(c["name"], 0)

    def logs(self, ref: str, **kw: Any) -> Any:
        return iter([(2, b"migration failed\n")])


PRE_START = """\
services:
  db: {image: busybox}
  app:
    image: busybox
    scale: 2
    user: "1000"
    environment: {A: "1", B: "1"}
    volumes: ["data:/data"]
    pre_start:
      - command: ["sh", "-c", "migrate"]
        environment: {B: "2"}
      - image: busybox
        command: touch /data/ready
        per_replica: true
        privileged: "true"
volumes:
  data: {}
"""


def test_pre_start_runs_before_the_first_start_only(tmp_path: Path) -> None:
    e = InitEngine()
    o, events = orch(project(tmp_path, PRE_START), e)
    o.up(UpOptions())
    app = [c for c in e.calls if "app" in c[1]]
    assert app == [
        ("create", "p-app-1"),
        ("create", "p-app-pre_start-1"),
        ("start", "p-app-pre_start-1"),
        ("remove", "p-app-pre_start-1"),
        ("create", "p-app-1-pre_start-2"),
        ("start", "p-app-1-pre_start-2"),
        ("remove", "p-app-1-pre_start-2"),
        ("start", "p-app-1"),
        ("create", "p-app-2"),
        ("create", "p-app-2-pre_start-2"),
        ("start", "p-app-2-pre_start-2"),
        ("remove", "p-app-2-pre_start-2"),
        ("start", "p-app-2"),
    ]
    once = e.bodies["p-app-pre_start-1"]
    assert once["Cmd"] == ["sh", "-c", "migrate"] and once["User"] == "1000"
    assert sorted(once["Env"]) == ["A=1", "B=2"]
    assert once["Labels"][L.ONEOFF] == "True"
    app1 = next(cid for cid, c in e.containers_.items() if c["name"] == "p-app-1")
    assert once["HostConfig"]["VolumesFrom"] == [app1]
    assert "Privileged" not in once["HostConfig"]
    ep = once["NetworkingConfig"]["EndpointsConfig"]["p_default"]
    assert "Aliases" not in ep  # the service's name never resolves to a step
    each = e.bodies["p-app-2-pre_start-2"]
    assert each["Cmd"] == ["touch", "/data/ready"] and "User" not in each
    assert each["HostConfig"]["Privileged"] is True
    assert ("Container", "p-app-pre_start-1", "Exited") in events
    e.calls.clear()
    o, _ = orch(project(tmp_path, PRE_START), e)
    o.up(UpOptions())
    assert e.calls == []
    # scaled up while running: the new replica's own step, not the service's once-only one
    o, _ = orch(project(tmp_path, PRE_START.replace("scale: 2", "scale: 3")), e)
    o.up(UpOptions())
    assert [n for op, n in e.calls if op == "create"] == ["p-app-3", "p-app-3-pre_start-2"]


def test_a_failing_pre_start_step_stops_up_and_runs_again(tmp_path: Path) -> None:
    e = InitEngine()
    e.codes["p-app-pre_start-1"] = 3
    text = PRE_START.replace("scale: 2", "scale: 1")
    o, _ = orch(project(tmp_path, text), e)
    with pytest.raises(
        ComposeError,
        match=r"service 'app': pre_start step 1 \(sh -c migrate\) "
        r"exited with code 3: migration failed",
    ):
        o.up(UpOptions())
    assert ("start", "p-app-1") not in e.calls
    assert [c["name"] for c in e.containers_.values() if "pre_start" in c["name"]] == []
    e.codes.clear()
    e.calls.clear()
    o, _ = orch(project(tmp_path, text), e)
    o.up(UpOptions())  # the container never started: its steps run again
    assert e.calls[-1] == ("start", "p-app-1") and ("start", "p-app-pre_start-1") in e.calls


def test_pre_start_is_validated_by_the_added_schema(tmp_path: Path) -> None:
    from berth.compose import ComposeFileError

    with pytest.raises(
        ComposeFileError,
        match=r"pre_start.0: Additional property when is "
        "not allowed",
    ):
        project(
            tmp_path,
            "services:\n  a:\n    image: busybox\n    pre_start:\n"
            "      - {command: 'true', when: never}\n",
        )


def test_build_keys_not_acted_on_are_reported(tmp_path: Path) -> None:
    from berth.compose import load_project

    (tmp_path / "compose.yaml").write_text(
        textwrap.dedent("""\
        services:
          app:
            build:
              context: .
              cache_to: ["type=local,dest=/tmp/c"]
              additional_contexts: {other: ../other}
              platforms: [linux/amd64]
              x-mine: 1
        """)
    )
    _, warnings = load_project(LoadOptions(environ={}, cwd=str(tmp_path), project_name="p"))
    assert warnings == [
        "services.app.build.cache_to is not supported by berth compose and is ignored",
        "services.app.build.additional_contexts is not supported by berth compose and is ignored",
    ]


def test_a_service_platform_must_be_the_daemons(tmp_path: Path) -> None:
    e = BuildingEngine()
    o, _ = orch(project(tmp_path, "services:\n  a: {image: busybox, platform: linux/amd64}\n"), e)
    o.up(UpOptions())
    assert ("start", "p-a-1") in e.calls
    e = BuildingEngine()
    o, _ = orch(project(tmp_path, "services:\n  a: {image: busybox, platform: linux/s390x}\n"), e)
    with pytest.raises(
        ComposeError,
        match=r"service 'a': platform 'linux/s390x': berth builds "
        r"and runs the daemon's platform only \(linux/amd64\)",
    ):
        o.up(UpOptions())


def test_no_interpolate_reaches_included_files(tmp_path: Path) -> None:
    (tmp_path / "inc").mkdir()
    (tmp_path / "inc" / "compose.yaml").write_text(
        'services:\n  inc: {image: "busybox:${INC:-1}"}\n'
    )
    opts = _write(
        tmp_path,
        """\
        include: [inc/compose.yaml]
        services:
          web: {image: "busybox:${TAG}"}
        """,
    )
    canonical, _ = load_canonical(opts)
    assert canonical["services"]["inc"]["image"] == "busybox:${INC:-1}"
    assert load(opts).variables["INC"] == Variable(name="INC", default="1")


def test_a_pre_start_step_shares_the_network_of_the_service_it_names(tmp_path: Path) -> None:
    e = InitEngine()
    o, _ = orch(
        project(
            tmp_path,
            """\
        services:
          net: {image: busybox}
          app:
            image: busybox
            network_mode: "service:net"
            pre_start: [{command: "true"}]
        """,
        ),
        e,
    )
    o.up(UpOptions())
    assert e.bodies["p-app-pre_start-1"]["HostConfig"]["NetworkMode"] == "container:p-net-1"
    assert "NetworkingConfig" not in e.bodies["p-app-pre_start-1"]


def test_an_inline_dockerfile_is_sent_as_the_docker_cli_sends_one(tmp_path: Path) -> None:
    import io
    import tarfile

    from berth.cli.compose_common import _context_tar

    (tmp_path / "f.txt").write_text("x")
    (tmp_path / ".dockerignore").write_text("*.log\n")
    tar, name = _context_tar(str(tmp_path), "Dockerfile", "FROM busybox\nCOPY . /c\n")
    assert name.startswith(".dockerfile.")
    with tarfile.open(fileobj=io.BytesIO(tar)) as tf:
        files = {
            m.name: tf.extractfile(m).read()
            for m in tf.getmembers()  # type: ignore[union-attr]
            if m.isfile()
        }
    assert files[name] == b"FROM busybox\nCOPY . /c\n"
    assert files[".dockerignore"] == f"*.log\n\n{name}\n".encode()
    assert files["f.txt"] == b"x"
    tar, name = _context_tar(str(tmp_path), "Dockerfile", "")
    assert name == "Dockerfile"
