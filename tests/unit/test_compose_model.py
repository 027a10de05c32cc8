"""berth compose's model: file discovery, the environment, interpolation, merge, extends,
include, profiles, validation errors and the canonical form `config` prints."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

import pytest

from berth.compose import ComposeFileError, LoadOptions, load_project
from berth.compose.interpolate import InterpolationError, Interpolator, parse_env_file
from berth.compose.labels import config_hash
from berth.compose.model import Condition, MountType
from berth.compose.normalize import parse_ports, parse_volume


def write(d: Path, name: str, text: str) -> Path:
    p = d / name
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(textwrap.dedent(text))
    return p


def load(d: Path, *files: str, env: dict[str, str] | None = None, **kw: Any) -> Any:
    project, warnings = load_project(LoadOptions(files=files, environ=env or {}, cwd=str(d), **kw))
    return project


# --- interpolation ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("$A", "a"),
        ("${A}", "a"),
        ("x${A}y", "xay"),
        ("$$A", "$A"),
        ("$$", "$"),
        ("${UNSET:-d}", "d"),
        ("${EMPTY:-d}", "d"),
        ("${EMPTY-d}", ""),
        ("${UNSET-d}", "d"),
        ("${A:+r}", "r"),
        ("${EMPTY:+r}", ""),
        ("${EMPTY+r}", "r"),
        ("${UNSET+r}", ""),
        ("${UNSET:-${A}}", "a"),
        ("${UNSET:-${UNSET2:-deep}}", "deep"),
        ("${A:?err}", "a"),
        ("a $ b", "a $ b"),
        ("$1", "$1"),
        ("${A}${A}", "aa"),
    ],
)
def test_interpolation(text: str, expected: str) -> None:
    assert Interpolator({"A": "a", "EMPTY": ""})(text) == expected


def test_interpolation_errors_and_missing() -> None:
    i = Interpolator({"EMPTY": ""})
    with pytest.raises(InterpolationError, match="required variable X is missing a value: give X"):
        i("${X:?give X}")
    with pytest.raises(InterpolationError, match="required variable EMPTY"):
        i("${EMPTY:?}")
    assert i("${EMPTY?}") == ""
    with pytest.raises(InterpolationError, match="invalid interpolation format"):
        i("${A")
    with pytest.raises(InterpolationError, match="invalid interpolation format"):
        i("${}")
    assert i("$NOPE and ${NOPE}") == " and "
    assert i.missing == ["NOPE"]


def test_env_file_format() -> None:
    text = textwrap.dedent("""\
        # comment
        A=1
        export B="two ${A}"
        C='lit ${A}'
        D=val # comment
        E=val# not a comment
        F="q\\"uote\\n"
        G='it\\'s'
        H
        I=
        J=${OUT:-dflt}
        """)
    env = parse_env_file(text, lambda k: {"OUT": None}.get(k))
    assert env == {
        "A": "1",
        "B": "two 1",
        "C": "lit ${A}",
        "D": "val",
        "E": "val# not a comment",
        "F": 'q"uote\n',
        "G": "it's",
        "H": None,
        "I": "",
        "J": "dflt",
    }


# --- files, names, environment -----------------------------------------------------------------


def test_discovery_upward_with_override_and_project_name(tmp_path: Path) -> None:
    top = tmp_path / "My App"
    write(top, "compose.yaml", "services:\n  web:\n    image: busybox\n")
    write(top, "compose.override.yaml", "services:\n  web:\n    command: echo hi\n")
    sub = top / "a" / "b"
    sub.mkdir(parents=True)
    p = load(sub)
    assert p.name == "myapp"
    assert p.working_dir == top
    assert [f.name for f in p.config_files] == ["compose.yaml", "compose.override.yaml"]
    assert p.services["web"].command == ("echo", "hi")


def test_docker_compose_yml_is_found_and_no_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ComposeFileError, match="no configuration file provided"):
        load(tmp_path)
    write(tmp_path, "docker-compose.yml", "services:\n  s:\n    image: busybox\n")
    assert list(load(tmp_path).services) == ["s"]


def test_project_name_precedence(tmp_path: Path) -> None:
    write(tmp_path, "compose.yaml", "name: fromfile\nservices:\n  s:\n    image: busybox\n")
    assert load(tmp_path).name == "fromfile"
    assert load(tmp_path, env={"COMPOSE_PROJECT_NAME": "fromenv"}).name == "fromenv"
    assert (
        load(tmp_path, env={"COMPOSE_PROJECT_NAME": "fromenv"}, project_name="flag").name == "flag"
    )
    with pytest.raises(ComposeFileError, match="invalid project name"):
        load(tmp_path, project_name="Bad Name")


def test_dotenv_env_file_and_environment_precedence(tmp_path: Path) -> None:
    write(
        tmp_path,
        "compose.yaml",
        """\
        services:
          s:
            image: ${IMG}
            environment:
              TAG: ${TAG}
              FROMHOST:
              ABSENT:
        """,
    )
    write(tmp_path, ".env", "IMG=busybox\nTAG=dotenv\nCOMPOSE_PROJECT_NAME=dotname\n")
    write(tmp_path, "other.env", "IMG=other\nTAG=other\n")
    p = load(tmp_path, env={"TAG": "host", "FROMHOST": "h"})
    s = p.services["s"]
    assert (s.image, s.environment) == ("busybox", {"TAG": "host", "FROMHOST": "h"})
    assert p.name == "dotname"
    p = load(tmp_path, env_files=("other.env",))
    assert p.services["s"].image == "other"
    with pytest.raises(ComposeFileError, match="couldn't find env file"):
        load(tmp_path, env_files=("missing.env",))


def test_project_directory_changes_the_base_of_paths(tmp_path: Path) -> None:
    write(
        tmp_path,
        "files/compose.yaml",
        """\
        services:
          s:
            image: busybox
            volumes: ["./data:/data"]
        """,
    )
    (tmp_path / "elsewhere").mkdir()
    p = load(tmp_path, "files/compose.yaml", project_directory="elsewhere")
    assert p.working_dir == tmp_path / "elsewhere"
    assert p.services["s"].mounts[0].source == str(tmp_path / "elsewhere" / "data")
    assert p.name == "elsewhere"


def test_env_file_key_of_a_service(tmp_path: Path) -> None:
    write(
        tmp_path,
        "compose.yaml",
        """\
        services:
          s:
            image: busybox
            env_file: [a.env, {path: b.env, required: false}, {path: gone.env, required: false}]
            environment: [B=override]
        """,
    )
    write(tmp_path, "a.env", "A=1\nB=2\n")
    write(tmp_path, "b.env", "C=${A}3\n")
    assert load(tmp_path).services["s"].environment == {"A": "1", "B": "override", "C": "13"}


# --- merge, anchors, extends, include, profiles ------------------------------------------------


def test_merge_of_several_files(tmp_path: Path) -> None:
    write(
        tmp_path,
        "a.yaml",
        """\
        services:
          web:
            image: busybox
            command: [a]
            environment: {A: "1", B: "1"}
            ports: ["8080:80"]
            volumes: ["v1:/data", "/host:/other"]
            labels: [x=1]
            dns: 1.1.1.1
          gone:
            image: busybox
        volumes: {v1: {}, v2: {}}
        """,
    )
    write(
        tmp_path,
        "b.yaml",
        """\
        services:
          web:
            command: [b, c]
            environment: [B=2, C=3]
            ports: ["8080:80", "9090:90"]
            volumes: ["v2:/data:ro"]
            labels: {y: "2"}
            dns: [8.8.8.8]
          gone: !reset null
        """,
    )
    p = load(tmp_path, "a.yaml", "b.yaml")
    web = p.services["web"]
    assert web.command == ("b", "c")
    assert web.environment == {"A": "1", "B": "2", "C": "3"}
    assert [(x.published, x.target) for x in web.ports] == [("8080", 80), ("9090", 90)]
    assert [(m.source, m.target, m.read_only) for m in web.mounts] == [
        ("v2", "/data", True),
        ("/host", "/other", False),
    ]
    assert web.labels == {"x": "1", "y": "2"}
    assert web.dns == ("1.1.1.1", "8.8.8.8")
    assert list(p.services) == ["web"]


def test_override_tag_replaces(tmp_path: Path) -> None:
    write(tmp_path, "a.yaml", "services:\n  s:\n    image: busybox\n    ports: ['1:1', '2:2']\n")
    write(tmp_path, "b.yaml", "services:\n  s:\n    ports: !override ['3:3']\n")
    assert [x.published for x in load(tmp_path, "a.yaml", "b.yaml").services["s"].ports] == ["3"]


def test_anchors_and_extensions(tmp_path: Path) -> None:
    write(
        tmp_path,
        "compose.yaml",
        """\
        x-base: &base
          image: busybox
          environment: {SHARED: "yes"}
        services:
          a: {<<: *base, command: [one]}
          b:
            <<: *base
            environment: {OWN: "1"}
        """,
    )
    p = load(tmp_path)
    assert p.services["a"].environment == {"SHARED": "yes"}
    assert p.services["b"].environment == {"OWN": "1"}
    assert p.canonical["x-base"]["image"] == "busybox"


def test_extends_same_file_other_file_and_cycles(tmp_path: Path) -> None:
    write(
        tmp_path,
        "common/base.yaml",
        """\
        services:
          base:
            image: busybox
            user: root
            volumes: ["./data:/data"]
            environment: {TZ: utc, PORT: "80"}
            security_opt: [label:role:ROLE]
        """,
    )
    write(
        tmp_path,
        "compose.yaml",
        """\
        services:
          common:
            extends: {file: common/base.yaml, service: base}
            environment: {PORT: "8080"}
            security_opt: [label:user:USER]
          cli:
            extends: {service: common}
            command: [sh]
        """,
    )
    p = load(tmp_path)
    cli = p.services["cli"]
    assert cli.user == "root" and cli.command == ("sh",)
    assert cli.environment == {"TZ": "utc", "PORT": "8080"}
    assert cli.security_opt == ("label:role:ROLE", "label:user:USER")
    # the extended file's relative paths are its own
    assert cli.mounts[0].source == str(tmp_path / "common" / "data")
    write(
        tmp_path,
        "cycle.yaml",
        """\
        services:
          a: {image: busybox, extends: b}
          b: {image: busybox, extends: a}
        """,
    )
    with pytest.raises(ComposeFileError, match="circular reference"):
        load(tmp_path, "cycle.yaml")
    write(tmp_path, "missing.yaml", "services:\n  a: {image: busybox, extends: nope}\n")
    with pytest.raises(ComposeFileError, match="service not found"):
        load(tmp_path, "missing.yaml")


def test_include(tmp_path: Path) -> None:
    write(
        tmp_path,
        "db/compose.yaml",
        """\
        services:
          db:
            image: busybox
            volumes: ["./init:/init", "dbdata:/var/lib/db"]
            environment: {WHO: "${WHO}"}
        volumes:
          dbdata: {}
        """,
    )
    write(tmp_path, "db/.env", "WHO=included\n")
    write(
        tmp_path,
        "compose.yaml",
        """\
        include:
          - db/compose.yaml
        services:
          web: {image: busybox, depends_on: [db]}
        """,
    )
    p = load(tmp_path)
    assert sorted(p.services) == ["db", "web"]
    db = p.services["db"]
    assert db.mounts[0].source == str(tmp_path / "db" / "init")
    assert db.environment == {"WHO": "included"}
    assert p.volumes["dbdata"].name == f"{p.name}_dbdata"
    write(
        tmp_path,
        "clash.yaml",
        """\
        include: [db/compose.yaml]
        services:
          db: {image: busybox}
        """,
    )
    with pytest.raises(ComposeFileError, match="conflicts with imported resource"):
        load(tmp_path, "clash.yaml")


def test_profiles(tmp_path: Path) -> None:
    write(
        tmp_path,
        "compose.yaml",
        """\
        services:
          web: {image: busybox}
          debug: {image: busybox, profiles: [debug]}
          tools: {image: busybox, profiles: [tools], depends_on: [helper]}
          helper: {image: busybox, profiles: [helper]}
        """,
    )
    assert list(load(tmp_path).services) == ["web"]
    assert sorted(load(tmp_path, profiles=("debug",)).services) == ["debug", "web"]
    assert sorted(load(tmp_path, env={"COMPOSE_PROFILES": "debug,tools,helper"}).services) == [
        "debug",
        "helper",
        "tools",
        "web",
    ]
    assert sorted(load(tmp_path, enable=("tools",)).services) == ["helper", "tools", "web"]
    assert len(load(tmp_path, profiles=("*",)).services) == 4


# --- validation ---------------------------------------------------------------------------------


def test_schema_error_names_file_line_and_path(tmp_path: Path) -> None:
    f = write(
        tmp_path,
        "compose.yaml",
        """\
        services:
          web:
            image: busybox
            ports:
              - 80
            restart_policy: always
        """,
    )
    with pytest.raises(ComposeFileError) as e:
        load(tmp_path)
    assert str(e.value) == (
        f"validating {f}:6: services.web: Additional property restart_policy is not allowed"
    )
    write(tmp_path, "compose.yaml", "services:\n  web:\n    image: busybox\n    ports: 80\n")
    with pytest.raises(
        ComposeFileError,
        match=r"compose.yaml:4: services.web.ports: 80 is "
        "not of type 'array'",
    ):
        load(tmp_path)


def test_yaml_errors_and_refusals(tmp_path: Path) -> None:
    write(tmp_path, "compose.yaml", "services:\n  web: [\n")
    with pytest.raises(ComposeFileError, match=r"compose.yaml:\d+: invalid YAML"):
        load(tmp_path)
    write(tmp_path, "compose.yaml", "- a list\n")
    with pytest.raises(ComposeFileError, match="must be a mapping"):
        load(tmp_path)
    # a billion laughs: the expanded tree is bounded
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    for i in range(1, 8):
        lines.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]")
    write(tmp_path, "compose.yaml", "\n".join(lines) + "\nservices: {}\n")
    with pytest.raises(ComposeFileError, match="expands to more than"):
        load(tmp_path)
    write(tmp_path, "compose.yaml", "services:\n  s: {image: busybox, depends_on: [nope]}\n")
    with pytest.raises(ComposeFileError, match="depends on undefined service 'nope'"):
        load(tmp_path)
    write(
        tmp_path,
        "compose.yaml",
        """\
        services:
          a: {image: busybox, depends_on: [b]}
          b: {image: busybox, depends_on: [a]}
        """,
    )
    with pytest.raises(ComposeFileError, match="dependency cycle"):
        load(tmp_path)
    write(tmp_path, "compose.yaml", "services:\n  s: {command: [x]}\n")
    with pytest.raises(ComposeFileError, match="neither an image nor a build"):
        load(tmp_path)
    write(tmp_path, "compose.yaml", "services:\n  s: {image: busybox, volumes: [nope:/x]}\n")
    with pytest.raises(ComposeFileError, match="undefined volume nope"):
        load(tmp_path)


# --- the canonical model -----------------------------------------------------------------------


def test_ports_short_and_long() -> None:
    got = parse_ports(
        [
            "80",
            "8080:80",
            "127.0.0.1:8081:81/udp",
            "9000-9001:90-91",
            "[::1]:7000:70",
            "127.0.0.1::82",
            "5000-5010:50",
            {"target": 443, "published": 8443, "host_ip": "127.0.0.1"},
        ],
        "p",
    )
    assert [
        (p.get("host_ip", ""), p.get("published"), p["target"], p["protocol"]) for p in got
    ] == [
        ("", None, 80, "tcp"),
        ("", "8080", 80, "tcp"),
        ("127.0.0.1", "8081", 81, "udp"),
        ("", "9000", 90, "tcp"),
        ("", "9001", 91, "tcp"),
        ("::1", "7000", 70, "tcp"),
        ("127.0.0.1", None, 82, "tcp"),
        ("", "5000-5010", 50, "tcp"),
        ("127.0.0.1", "8443", 443, "tcp"),
    ]
    with pytest.raises(ComposeFileError):
        parse_ports(["99999:80"], "p")


def test_volumes_short_and_long(tmp_path: Path) -> None:
    assert parse_volume("/data", tmp_path, "v") == {"type": "volume", "target": "/data"}
    assert parse_volume("named:/d:ro,nocopy", tmp_path, "v") == {
        "type": "volume",
        "source": "named",
        "target": "/d",
        "read_only": True,
        "volume": {"nocopy": True},
    }
    assert parse_volume("./rel:/d", tmp_path, "v")["source"] == str(tmp_path / "rel")
    long = parse_volume({"type": "tmpfs", "target": "/t", "tmpfs": {"size": "1m"}}, tmp_path, "v")
    assert long["type"] == "tmpfs"
    with pytest.raises(ComposeFileError, match="invalid volume mode"):
        parse_volume("a:/b:bogus", tmp_path, "v")


def test_typed_model(tmp_path: Path) -> None:
    write(
        tmp_path,
        "compose.yaml",
        """\
        services:
          web:
            image: busybox
            command: httpd -f -p "8 0"
            depends_on:
              db: {condition: service_healthy, restart: true}
            networks:
              front: {aliases: [www], ipv4_address: 10.5.0.5}
              back:
            volumes: [{type: tmpfs, target: /t, tmpfs: {size: 1m}}, data:/data]
            deploy: {replicas: 2, resources: {limits: {memory: 64m, cpus: "0.5"}}}
            restart: on-failure:3
            stop_grace_period: 1m30s
            ulimits: {nofile: {soft: 10, hard: 20}, nproc: 5}
          db:
            image: busybox
            healthcheck: {test: "true", interval: 500ms, retries: "3"}
            network_mode: none
        networks:
          front: {}
          back: {external: true, name: shared}
        volumes:
          data: {external: true}
        """,
    )
    p = load(tmp_path)
    web, db = p.services["web"], p.services["db"]
    assert web.command == ("httpd", "-f", "-p", "8 0")
    assert web.depends_on[0].condition is Condition.HEALTHY and web.depends_on[0].restart
    assert [(n.name, n.aliases) for n in web.networks] == [("back", ()), ("front", ("www",))]
    assert web.mounts[0].type is MountType.TMPFS and web.mounts[0].tmpfs_size == 1 << 20
    assert (web.replicas, web.mem_limit, web.nano_cpus) == (2, 64 << 20, 500_000_000)
    assert web.stop_grace_period_s == 90.0 and web.restart == "on-failure:3"
    assert web.ulimits == {"nofile": (10, 20), "nproc": (5, 5)}
    assert db.healthcheck is not None
    assert db.healthcheck.test == ("CMD-SHELL", "true") and db.healthcheck.interval_s == 0.5
    assert db.healthcheck.retries == 3 and db.network_mode == "none" and db.networks == ()
    assert p.networks["back"].name == "shared" and p.networks["back"].external
    assert p.networks["front"].name == f"{p.name}_front"
    assert p.volumes["data"].name == "data" and "default" not in p.networks
    assert p.order() == ["db", "web"]


def test_config_hash_follows_the_configuration(tmp_path: Path) -> None:
    write(tmp_path, "compose.yaml", "services:\n  s: {image: busybox, command: [a]}\n")
    h1 = config_hash(load(tmp_path).services["s"])
    assert h1 == config_hash(load(tmp_path).services["s"])
    write(tmp_path, "compose.yaml", "services:\n  s: {image: busybox, command: [a], scale: 3}\n")
    assert config_hash(load(tmp_path).services["s"]) == h1
    write(tmp_path, "compose.yaml", "services:\n  s: {image: busybox, command: [b]}\n")
    assert config_hash(load(tmp_path).services["s"]) != h1


# --- `berth compose config` --------------------------------------------------------------------


def test_config_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from berth.cli import main as m

    write(
        tmp_path,
        "compose.yaml",
        """\
        services:
          web: {image: busybox, depends_on: [db], volumes: [data:/d]}
          db: {image: "busybox:${TAG:-latest}"}
        volumes: {data: {}}
        """,
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DOCKER_HOST", "unix:///nowhere.sock")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))  # not the user's cache
    monkeypatch.delenv("COMPOSE_PROJECT_NAME", raising=False)
    assert m.run(["compose", "-p", "proj", "config", "--services"]) == 0
    assert capsys.readouterr().out == "db\nweb\n"
    assert m.run(["compose", "config", "--volumes"]) == 0
    assert capsys.readouterr().out == "data\n"
    assert m.run(["compose", "-p", "proj", "config", "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["name"] == "proj" and data["services"]["db"]["image"] == "busybox:latest"
    assert data["networks"] == {"default": {"name": "proj_default"}}
    assert m.run(["compose", "config", "-q"]) == 0
    assert capsys.readouterr().out == ""
    assert m.run(["compose", "-p", "proj", "config"]) == 0
    import yaml

    assert yaml.safe_load(capsys.readouterr().out) == data
    write(tmp_path, "compose.yaml", "services:\n  web: {image: busybox, bogus: 1}\n")
    assert m.run(["compose", "config", "-q"]) == 1
    assert "services.web: Additional property bogus is not allowed" in capsys.readouterr().err
    assert m.run(["compose", "nope"]) == 1


def test_validated_trees_are_remembered_and_invalid_ones_are_not(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    write(tmp_path, "compose.yaml", "services:\n  s: {image: busybox}\n")
    load(tmp_path, cache_dir=str(cache))
    markers = list(cache.iterdir())
    assert len(markers) == 1 and markers[0].stat().st_size == 0
    assert cache.stat().st_mode & 0o777 == 0o700
    load(tmp_path, cache_dir=str(cache))
    assert list(cache.iterdir()) == markers
    write(tmp_path, "compose.yaml", "services:\n  s: {image: busybox, bogus: 1}\n")
    for _ in range(2):
        with pytest.raises(ComposeFileError, match="bogus"):
            load(tmp_path, cache_dir=str(cache))
    assert list(cache.iterdir()) == markers


def test_compose_file_variable_and_its_separator(tmp_path: Path) -> None:
    write(tmp_path, "a.yaml", "services:\n  s: {image: busybox, command: [a]}\n")
    write(tmp_path, "b.yaml", "services:\n  s: {command: [b]}\n")
    p = load(tmp_path, env={"COMPOSE_FILE": "a.yaml:b.yaml"})
    assert p.services["s"].command == ("b",)
    p = load(tmp_path, env={"COMPOSE_FILE": "a.yaml;b.yaml", "COMPOSE_PATH_SEPARATOR": ";"})
    assert [f.name for f in p.config_files] == ["a.yaml", "b.yaml"]


def test_include_with_project_directory_and_env_file(tmp_path: Path) -> None:
    write(
        tmp_path,
        "lib/svc.yaml",
        """\
        services:
          lib:
            image: "busybox:${LIB_TAG}"
            volumes: ["./state:/state"]
        """,
    )
    write(tmp_path, "lib/lib.env", "LIB_TAG=1.36\n")
    (tmp_path / "libroot").mkdir()
    write(
        tmp_path,
        "compose.yaml",
        """\
        include:
          - path: [lib/svc.yaml]
            project_directory: libroot
            env_file: lib/lib.env
        services:
          app: {image: busybox, depends_on: [lib]}
        """,
    )
    p = load(tmp_path)
    lib = p.services["lib"]
    assert lib.image == "busybox:1.36"
    assert lib.mounts[0].source == str(tmp_path / "libroot" / "state")
    write(tmp_path, "loop.yaml", "include: [loop.yaml]\nservices: {}\n")
    with pytest.raises(ComposeFileError, match="include cycle"):
        load(tmp_path, "loop.yaml")
