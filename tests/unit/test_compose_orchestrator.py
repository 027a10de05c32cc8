"""The compose orchestrator against a fake engine: what `up` creates and in which order, that a
second `up` does nothing, that a change recreates only its service (and its dependents), scale,
`down` and external objects; and the container bodies it sends."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest

from berth.compose import ComposeFileError, LoadOptions, load_project
from berth.compose import labels as L
from berth.compose.engine import (
    ContainerState,
    ContainerSummary,
    ImageInfo,
    NetworkInfo,
    VolumeInfo,
)
from berth.compose.orchestrator import ComposeError, Orchestrator, UpOptions
from berth.compose.spec import container_body
from berth.errors import NotFound


class FakeEngine:
    """The Engine's calls, in memory; `calls` records the ones that change something."""

    def __init__(self) -> None:
        self.containers_: dict[str, dict[str, Any]] = {}
        self.networks_: dict[str, dict[str, str]] = {}
        self.volumes_: dict[str, dict[str, str]] = {}
        self.images = {"busybox": "sha256:" + "b" * 64}
        self.calls: list[tuple[str, str]] = []
        self.n = 0
        self.templates: dict[str, dict[str, dict[str, Any]]] = {}  # berthd's records

    def _find(self, ref: str) -> str:
        for cid, c in self.containers_.items():
            if ref in (cid, c["name"]):
                return cid
        raise NotFound(f"no such container: {ref}")

    def containers(self, labels: list[str], all: bool = True) -> list[ContainerSummary]:
        out = []
        for cid, c in self.containers_.items():
            want = dict(x.split("=", 1) if "=" in x else (x, None) for x in labels)
            if any(
                k not in c["labels"] or (v is not None and c["labels"][k] != v)
                for k, v in want.items()
            ):
                continue
            if not all and c["state"] != "running":
                continue
            out.append(
                ContainerSummary(
                    id=cid,
                    name=c["name"],
                    image=c["body"]["Image"],
                    command="",
                    created=0,
                    state=c["state"],
                    status="",
                    labels=dict(c["labels"]),
                )
            )
        return out

    def inspect(self, ref: str) -> ContainerState:
        c = self.containers_[self._find(ref)]
        return ContainerState(
            id=self._find(ref),
            name=c["name"],
            status=c["state"],
            running=c["state"] == "running",
            exit_code=0,
            health=c.get("health", ""),
            image_id=c["body"]["Image"],
            tty=False,
            anonymous_volumes=c.get("anon", {}),
        )

    def create(self, name: str, body: dict[str, Any]) -> str:
        self.n += 1
        cid = f"{self.n:064x}"
        anon = {
            m["Target"]: m.get("Source") or f"anon{self.n}"
            for m in body["HostConfig"].get("Mounts") or []
            if m["Type"] == "volume" and not m.get("Source", "").startswith("p_")
        }
        self.containers_[cid] = {
            "name": name,
            "labels": body["Labels"],
            "state": "created",
            "body": body,
            "anon": anon,
            "health": "healthy" if "Healthcheck" in body else "",
        }
        self.calls.append(("create", name))
        return cid

    def start(self, ref: str) -> None:
        c = self.containers_[self._find(ref)]
        c["state"] = "running"
        self.calls.append(("start", c["name"]))

    def stop(self, ref: str, timeout: int | None = None) -> None:
        c = self.containers_[self._find(ref)]
        c["state"] = "exited"
        self.calls.append(("stop", c["name"]))

    def remove(self, ref: str, force: bool = False, volumes: bool = False) -> None:
        c = self.containers_.pop(self._find(ref))
        self.calls.append(("remove", c["name"]))

    def restart(self, ref: str, timeout: int | None = None) -> None:
        c = self.containers_[self._find(ref)]
        c["state"] = "running"
        self.calls.append(("restart", c["name"]))

    def put_archive(self, ref: str, path: str, tar: bytes) -> None:
        self.calls.append(("put_archive", self.containers_[self._find(ref)]["name"]))

    def exec_detached(self, ref: str, cmd: list[str]) -> None:
        self.calls.append(("exec", " ".join(cmd)))

    def rename(self, ref: str, name: str) -> None:
        self.containers_[self._find(ref)]["name"] = name

    def connect(self, network: str, container: str, aliases: list[str], ipv4: str = "") -> None:
        self.calls.append(("connect", network))

    def network(self, name: str) -> NetworkInfo | None:
        n = self.networks_.get(name)
        return NetworkInfo(id=name, name=name, labels=n) if n is not None else None

    def create_network(self, body: dict[str, Any]) -> None:
        self.networks_[body["Name"]] = body["Labels"]
        self.calls.append(("network", body["Name"]))

    def remove_network(self, name: str) -> None:
        del self.networks_[name]
        self.calls.append(("rm-network", name))

    def volume(self, name: str) -> VolumeInfo | None:
        v = self.volumes_.get(name)
        return VolumeInfo(name=name, labels=v) if v is not None else None

    def create_volume(self, body: dict[str, Any]) -> None:
        self.volumes_[body["Name"]] = body["Labels"]
        self.calls.append(("volume", body["Name"]))

    def remove_volume(self, name: str) -> None:
        del self.volumes_[name]
        self.calls.append(("rm-volume", name))

    def put_template(self, project: str, service: str, body: dict[str, Any]) -> None:
        self.templates.setdefault(project, {})[service] = body

    def remove_templates(self, project: str) -> None:
        self.templates.pop(project, None)

    def image(self, ref: str) -> ImageInfo | None:
        i = self.images.get(ref)
        return ImageInfo(id=i, tags=(ref,), size=0, created="") if i else None


FILE = """\
services:
  web:
    image: busybox
    environment: {V: "${V:-1}"}
    depends_on: [api]
  api:
    image: busybox
    volumes: ["data:/data", "/anon"]
    depends_on:
      db: {condition: service_healthy}
  db:
    image: busybox
    healthcheck: {test: "true", interval: 1s}
    networks: [default, back]
networks:
  back: {}
volumes:
  data: {}
"""


def project(tmp_path: Path, text: str = FILE, **env: str) -> Any:
    (tmp_path / "compose.yaml").write_text(textwrap.dedent(text))
    p, _ = load_project(LoadOptions(environ=env, cwd=str(tmp_path), project_name="p"))
    return p


def orch(p: Any, engine: FakeEngine) -> tuple[Orchestrator, list[tuple[str, str, str]]]:
    events: list[tuple[str, str, str]] = []
    warnings: list[str] = []
    o = Orchestrator(
        p,
        engine,
        lambda k, n, s: events.append((k, n, s)),  # type: ignore[arg-type]
        warnings.append,
        poll=0,
    )
    return o, events


def test_up_creates_in_dependency_order_then_does_nothing(tmp_path: Path) -> None:
    e = FakeEngine()
    o, events = orch(project(tmp_path), e)
    o.up(UpOptions())
    assert e.calls == [
        ("network", "p_back"),
        ("network", "p_default"),
        ("volume", "p_data"),
        ("create", "p-db-1"),
        ("connect", "p_default"),
        ("start", "p-db-1"),
        ("create", "p-api-1"),
        ("start", "p-api-1"),
        ("create", "p-web-1"),
        ("start", "p-web-1"),
    ]
    assert ("Container", "p-db-1", "Healthy") in events
    db = next(c for c in e.containers_.values() if c["name"] == "p-db-1")
    assert db["labels"][L.NUMBER] == "1" and db["labels"][L.ONEOFF] == "False"
    e.calls.clear()
    o, events = orch(project(tmp_path), e)
    o.up(UpOptions())
    assert e.calls == []
    assert {s for _, _, s in events} <= {"Running", "Waiting", "Healthy"}


def test_a_change_recreates_its_service_and_dependents_only(tmp_path: Path) -> None:
    e = FakeEngine()
    orch(project(tmp_path), e)[0].up(UpOptions())
    api_before = next(c for c in e.containers_.values() if c["name"] == "p-api-1")
    e.calls.clear()
    o, events = orch(project(tmp_path, V="2"), e)
    o.up(UpOptions())
    # the old container steps aside under `ID12_NAME` while the new one takes its name
    assert e.calls == [
        ("stop", "p-web-1"),
        ("create", "p-web-1"),
        ("remove", "000000000000_p-web-1"),
        ("start", "p-web-1"),
    ]
    assert ("Container", "p-web-1", "Recreated") in events
    # a change of api recreates web too, which depends on it; api keeps its anonymous volume
    (tmp_path / "compose.yaml").write_text(FILE.replace('/anon"]', "/anon\"]\n    user: '1'"))
    e.calls.clear()
    p2, _ = load_project(LoadOptions(environ={"V": "2"}, cwd=str(tmp_path), project_name="p"))
    orch(p2, e)[0].up(UpOptions())
    assert [c for c in e.calls if c[0] == "create"] == [
        ("create", "p-api-1"),
        ("create", "p-web-1"),
    ]
    api = next(c for c in e.containers_.values() if c["name"] == "p-api-1")
    anon = [m for m in api["body"]["HostConfig"]["Mounts"] if m["Target"] == "/anon"][0]
    assert anon["Source"] == api_before["anon"]["/anon"]
    e.calls.clear()
    orch(p2, e)[0].up(UpOptions(force_recreate=True, services=["db"], no_deps=True))
    assert [c for c in e.calls if c[0] == "create"] == [("create", "p-db-1")]


def test_stopped_containers_start_and_no_recreate(tmp_path: Path) -> None:
    e = FakeEngine()
    orch(project(tmp_path), e)[0].up(UpOptions())
    for c in e.containers_.values():
        c["state"] = "exited"
    e.calls.clear()
    orch(project(tmp_path, V="3"), e)[0].up(UpOptions(no_recreate=True))
    assert sorted(e.calls) == [("start", "p-api-1"), ("start", "p-db-1"), ("start", "p-web-1")]


def test_scale_up_and_down(tmp_path: Path) -> None:
    e = FakeEngine()
    o, _ = orch(project(tmp_path), e)
    o.up(UpOptions(scale={"web": 3}))
    names = sorted(c["name"] for c in e.containers_.values())
    assert names == ["p-api-1", "p-db-1", "p-web-1", "p-web-2", "p-web-3"]
    e.calls.clear()
    o.up(UpOptions(scale={"web": 1}))
    assert e.calls == [
        ("stop", "p-web-3"),
        ("remove", "p-web-3"),
        ("stop", "p-web-2"),
        ("remove", "p-web-2"),
    ]


def test_down_order_volumes_and_external_objects(tmp_path: Path) -> None:
    text = FILE + "  ext: {external: true}\n"
    text = text.replace('volumes: ["data:/data", "/anon"]', 'volumes: ["data:/data", "ext:/e"]')
    e = FakeEngine()
    e.volumes_["ext"] = {}
    e.networks_["p_other"] = {L.PROJECT: "someone-else"}
    p = project(tmp_path, text)
    o, _ = orch(p, e)
    o.up(UpOptions())
    assert "ext" in e.volumes_ and ("volume", "ext") not in e.calls
    e.calls.clear()
    o.down()
    assert [c for c in e.calls if c[0] == "remove"] == [
        ("remove", "p-web-1"),
        ("remove", "p-api-1"),
        ("remove", "p-db-1"),
    ]
    assert ("rm-network", "p_default") in e.calls and "p_data" in e.volumes_
    o.down(volumes=True)
    assert "p_data" not in e.volumes_ and "ext" in e.volumes_ and "p_other" in e.networks_


def test_missing_external_network_and_image(tmp_path: Path) -> None:
    e = FakeEngine()
    p = project(
        tmp_path,
        """\
        services:
          s: {image: busybox, networks: [n]}
        networks:
          n: {external: true}
        """,
    )
    with pytest.raises(
        ComposeError, match="network n declared as external, but could not be found"
    ):
        orch(p, e)[0].up(UpOptions())
    p = project(tmp_path, "services:\n  s: {image: nothere, pull_policy: never}\n")
    with pytest.raises(ComposeError, match="no such image: nothere"):
        orch(p, e)[0].up(UpOptions())


def test_orphans_are_reported_then_removed(tmp_path: Path) -> None:
    e = FakeEngine()
    orch(project(tmp_path), e)[0].up(UpOptions())
    p = project(tmp_path, "services:\n  db: {image: busybox, healthcheck: {test: 'true'}}\n")
    warnings: list[str] = []
    o = Orchestrator(p, e, lambda *a: None, warnings.append, poll=0)  # type: ignore[arg-type]
    o.up(UpOptions())
    assert "orphan containers (p-api-1, p-web-1)" in warnings[0]
    o.up(UpOptions(remove_orphans=True))
    assert sorted(c["name"] for c in e.containers_.values()) == ["p-db-1"]


def test_container_body(tmp_path: Path) -> None:
    (tmp_path / "s.txt").write_text("secret")
    p = project(
        tmp_path,
        """\
        services:
          web:
            image: busybox
            command: echo hi
            entrypoint: [sh, -c]
            environment: {A: "1"}
            ports: ["127.0.0.1:8080:80", "53:53/udp", "9000"]
            expose: ["3000"]
            volumes: ["./html:/html:ro", "data:/data", "/anon",
                      {type: tmpfs, target: /t, tmpfs: {size: 1024}}]
            tmpfs: /run
            networks:
              front: {aliases: [www], ipv4_address: 10.9.0.9}
            restart: on-failure:2
            healthcheck: {test: [CMD, "true"], interval: 1s, timeout: 500ms, retries: 3}
            stop_grace_period: 5s
            stop_signal: SIGINT
            cap_add: [NET_ADMIN]
            user: "1000"
            working_dir: /w
            hostname: h
            init: true
            read_only: true
            privileged: true
            extra_hosts: ["a.test=10.0.0.1"]
            sysctls: {net.core.somaxconn: "1024"}
            ulimits: {nofile: {soft: 100, hard: 200}}
            logging: {driver: json-file, options: {max-size: 1m}}
            secrets: [s]
            labels: {mine: "yes"}
        networks:
          front: {}
        volumes:
          data: {}
        secrets:
          s: {file: ./s.txt}
        """,
    )
    svc = p.services["web"]
    b = container_body(p, svc, 1, "sha256:x", "p-web-1")
    hc = b["HostConfig"]
    assert b["Image"] == "busybox" and b["Cmd"] == ["echo", "hi"]
    assert b["Entrypoint"] == ["sh", "-c"] and b["Env"] == ["A=1"]
    assert hc["PortBindings"] == {
        "80/tcp": [{"HostIp": "127.0.0.1", "HostPort": "8080"}],
        "53/udp": [{"HostIp": "", "HostPort": "53"}],
        "9000/tcp": [{"HostIp": "", "HostPort": ""}],
    }
    assert set(b["ExposedPorts"]) == {"80/tcp", "53/udp", "9000/tcp", "3000/tcp"}
    assert hc["Binds"] == [f"{tmp_path}/html:/html:ro", f"{tmp_path}/s.txt:/run/secrets/s:ro"]
    assert hc["Mounts"] == [
        {"Type": "volume", "Target": "/data", "ReadOnly": False, "Source": "p_data"},
        {"Type": "volume", "Target": "/anon", "ReadOnly": False},
        {"Type": "tmpfs", "Target": "/t", "TmpfsOptions": {"SizeBytes": 1024}},
    ]
    assert hc["Tmpfs"] == {"/run": ""}
    assert hc["NetworkMode"] == "p_front"
    assert b["NetworkingConfig"]["EndpointsConfig"]["p_front"] == {
        "Aliases": ["web", "p-web-1", "www"],
        "IPAMConfig": {"IPv4Address": "10.9.0.9"},
    }
    assert hc["RestartPolicy"] == {"Name": "on-failure", "MaximumRetryCount": 2}
    assert b["Healthcheck"] == {
        "Test": ["CMD", "true"],
        "Interval": 1_000_000_000,
        "Timeout": 500_000_000,
        "Retries": 3,
    }
    assert (b["StopTimeout"], b["StopSignal"]) == (5, "SIGINT")
    assert (b["User"], b["WorkingDir"], b["Hostname"]) == ("1000", "/w", "h")
    assert hc["CapAdd"] == ["NET_ADMIN"] and hc["Init"] and hc["ReadonlyRootfs"]
    assert hc["Privileged"] and hc["ExtraHosts"] == ["a.test:10.0.0.1"]
    assert hc["Sysctls"] == {"net.core.somaxconn": "1024"}
    assert hc["Ulimits"] == [{"Name": "nofile", "Soft": 100, "Hard": 200}]
    assert hc["LogConfig"] == {"Type": "json-file", "Config": {"max-size": "1m"}}
    assert b["Labels"]["mine"] == "yes" and b["Labels"][L.IMAGE] == "sha256:x"
    assert b["Labels"][L.CONFIG_HASH] == L.config_hash(svc)


def test_body_modes_links_volumes_from_and_ignored_keys(tmp_path: Path) -> None:
    (tmp_path / "compose.yaml").write_text(
        textwrap.dedent("""\
        services:
          db: {image: busybox}
          app:
            image: busybox
            links: ["db:database"]
            external_links: [other]
            volumes_from: ["db:ro", "container:plain"]
            ipc: "service:db"
            pid: host
            devices: ["/dev/null:/dev/nothing:r"]
            oom_score_adj: -10
            cpu_shares: 512
            isolation: default
            deploy: {mode: global}
        """)
    )
    p, warnings = load_project(LoadOptions(environ={}, cwd=str(tmp_path), project_name="p"))
    assert warnings == ["services.app.isolation is not supported by berth compose and is ignored"]
    app = p.services["app"]
    assert app.dependencies() == ["db"] and p.order() == ["db", "app"]
    b = container_body(p, app, 1, "sha256:x", "p-app-1", container_of=lambda s: f"p-{s}-1")
    hc = b["HostConfig"]
    assert hc["IpcMode"] == "container:p-db-1" and hc["PidMode"] == "host"
    assert hc["VolumesFrom"] == ["p-db-1:ro", "plain"]
    assert hc["Devices"] == [
        {"PathOnHost": "/dev/null", "PathInContainer": "/dev/nothing", "CgroupPermissions": "r"}
    ]
    assert (hc["OomScoreAdj"], hc["CpuShares"]) == (-10, 512)
    assert b["NetworkingConfig"]["EndpointsConfig"]["p_default"]["Links"] == [
        "p-db-1:database",
        "other:other",
    ]
    (tmp_path / "compose.yaml").write_text("services:\n  a: {image: busybox, links: [nope]}\n")
    with pytest.raises(ComposeFileError, match="undefined service 'nope'"):
        load_project(LoadOptions(environ={}, cwd=str(tmp_path)))


def test_progress_display() -> None:
    import io

    from berth.cli.composeprogress import Progress, mode_for

    assert mode_for("auto", "auto", True) == "tty" and mode_for("auto", "auto", False) == "plain"
    assert (
        mode_for("auto", "never", True) == "plain" and mode_for("quiet", "always", True) == "quiet"
    )
    out = io.StringIO()
    p = Progress(out, "plain")
    p("Container", "p-web-1", "Creating")
    p("Layer", "abc", "Downloading 1/2")
    p("Layer", "abc", "Pull complete")
    assert out.getvalue() == " Container p-web-1  Creating\n Layer abc  Pull complete\n"
    now = [0.0]
    out = io.StringIO()
    p = Progress(out, "tty", clock=lambda: now[0])
    p("Network", "p_default", "Creating")
    now[0] = 0.5
    p("Network", "p_default", "Created")
    p("Container", "p-web-1", "Error")
    screen = out.getvalue()
    # the second drawing goes back over the first (2 lines), then draws 3
    assert "\x1b[2A" in screen
    last = screen.rsplit("\x1b[2A", 1)[1]
    assert "[+] Running 2/2" in last
    assert "✔\x1b[0m Network p_default  Created" in last and "0.5s" in last
    assert "✘\x1b[0m Container p-web-1" in last
    Progress(io.StringIO(), "quiet")("Container", "x", "Created")


def test_down_of_named_services_leaves_the_rest(tmp_path: Path) -> None:
    e = FakeEngine()
    o, _ = orch(project(tmp_path), e)
    o.up(UpOptions())
    e.calls.clear()
    o.down(services=["web"])
    assert e.calls == [("stop", "p-web-1"), ("remove", "p-web-1")]
    assert sorted(c["name"] for c in e.containers_.values()) == ["p-api-1", "p-db-1"]


def test_watch_scan_diff_and_sync_tar(tmp_path: Path) -> None:
    import io
    import tarfile

    from berth.compose.model import WatchAction, WatchRule
    from berth.compose.watch import diff, scan, sync_tar

    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    (src / "a.txt").write_text("a")
    (src / "sub" / "b.py").write_text("b")
    (src / "x.tmp").write_text("x")
    (src / ".git").mkdir()
    (src / ".git" / "HEAD").write_text("ref")
    rule = WatchRule(path=str(src), action=WatchAction.SYNC, target="/app", ignore=("*.tmp",))
    before = scan(rule)
    assert sorted(before) == ["a.txt", "sub/b.py"]
    only_py = WatchRule(path=str(src), action=WatchAction.SYNC, target="/app", include=("**/*.py",))
    assert sorted(scan(only_py)) == ["sub/b.py"]
    (src / "a.txt").unlink()
    (src / "sub" / "b.py").write_text("bb")
    (src / "c.txt").write_text("c")
    changed, deleted = diff(before, scan(rule))
    assert (changed, deleted) == (("c.txt", "sub/b.py"), ("a.txt",))
    with tarfile.open(fileobj=io.BytesIO(sync_tar(rule, changed))) as tf:
        got = {m.name: tf.extractfile(m).read() for m in tf.getmembers()}  # type: ignore[union-attr]
    assert got == {"app/c.txt": b"c", "app/sub/b.py": b"bb"}


def test_watch_needs_rules_and_targets(tmp_path: Path) -> None:
    from berth.compose.watch import Watcher

    p = project(tmp_path, "services:\n  s: {image: busybox}\n")
    with pytest.raises(ComposeError, match="consider setting a 'develop' section"):
        Watcher(orch(p, FakeEngine())[0], [], print)
    (tmp_path / "compose.yaml").write_text(
        "services:\n  s: {image: busybox, develop: {watch: [{path: ., action: sync}]}}\n"
    )
    with pytest.raises(ComposeFileError, match="sync needs a target"):
        load_project(LoadOptions(environ={}, cwd=str(tmp_path)))


def test_restart_takes_the_dependents_that_ask_for_it_and_deploy_keys(tmp_path: Path) -> None:
    p = project(
        tmp_path,
        """\
        services:
          db: {image: busybox, deploy: {restart_policy: {condition: on-failure,
                                                         max_attempts: 4},
                                        resources: {reservations: {memory: 8m}}}}
          app: {image: busybox, depends_on: {db: {condition: service_started, restart: true}}}
          other: {image: busybox, depends_on: [db]}
          quiet: {image: busybox, attach: false}
        """,
    )
    assert p.services["db"].restart == "on-failure:4"
    assert p.services["db"].mem_reservation == 8 << 20
    assert not p.services["quiet"].attach and p.services["app"].attach
    e = FakeEngine()
    o, _ = orch(p, e)
    o.up(UpOptions())
    e.calls.clear()
    o.restart(["db"])
    assert e.calls == [("restart", "p-db-1"), ("restart", "p-app-1")]


def test_gpus_become_device_requests(tmp_path: Path) -> None:
    p = project(
        tmp_path,
        """\
        services:
          all: {image: busybox, gpus: all}
          some:
            image: busybox
            deploy:
              resources:
                reservations:
                  devices: [{driver: nvidia, count: 1, capabilities: [gpu, compute]}]
        """,
    )
    b = container_body(p, p.services["all"], 1, "sha256:x", "p-all-1")
    assert b["HostConfig"]["DeviceRequests"] == [
        {"Driver": "", "Count": -1, "DeviceIDs": None, "Capabilities": [["gpu"]]}
    ]
    b = container_body(p, p.services["some"], 1, "sha256:x", "p-some-1")
    assert b["HostConfig"]["DeviceRequests"] == [
        {"Driver": "nvidia", "Count": 1, "DeviceIDs": None, "Capabilities": [["gpu", "compute"]]}
    ]


def test_watch_actions(tmp_path: Path) -> None:
    from berth.compose.watch import Watcher

    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "a.txt").write_text("a")
    p = project(
        tmp_path,
        """\
        services:
          s:
            image: busybox
            develop:
              watch:
                - {path: ./src, action: sync+restart, target: /app}
                - {path: ./src, action: sync+exec, target: /app2, exec: {command: [reload]}}
        """,
    )
    e = FakeEngine()
    o, _ = orch(p, e)
    o.up(UpOptions())
    logs: list[str] = []
    w = Watcher(o, [], logs.append, interval=0)
    e.calls.clear()
    (tmp_path / "src" / "a.txt").unlink()
    (tmp_path / "src" / "b.txt").write_text("b")
    for change in w.poll():
        w.apply(change)
    assert e.calls == [
        ("put_archive", "p-s-1"),
        ("exec", "rm -rf -- /app/a.txt"),
        ("restart", "p-s-1"),
        ("put_archive", "p-s-1"),
        ("exec", "rm -rf -- /app2/a.txt"),
        ("exec", "reload"),
    ]
    assert w.poll() == []


def test_label_file_and_the_small_resource_keys(tmp_path: Path) -> None:
    (tmp_path / "labels.txt").write_text("team=core\nowner=file\n")
    p = project(
        tmp_path,
        """\
        services:
          s:
            image: busybox
            label_file: ./labels.txt
            labels: {owner: inline}
            mem_swappiness: 10
            oom_kill_disable: true
            cpu_quota: 50000
            cpu_period: 100000
            device_cgroup_rules: ["c 1:3 mr"]
        """,
    )
    svc = p.services["s"]
    assert svc.labels == {"team": "core", "owner": "inline"}
    hc = container_body(p, svc, 1, "sha256:x", "p-s-1")["HostConfig"]
    assert (hc["MemorySwappiness"], hc["OomKillDisable"]) == (10, True)
    assert (hc["CpuQuota"], hc["CpuPeriod"]) == (50000, 100000)
    assert hc["DeviceCgroupRules"] == ["c 1:3 mr"]


def test_parallel_limit() -> None:
    import threading
    import time

    from berth.compose.parallel import run_parallel as _parallel

    active = [0, 0]  # now, most at once
    lock = threading.Lock()

    def fn(x: int) -> int:
        with lock:
            active[0] += 1
            active[1] = max(active[1], active[0])
        time.sleep(0.02)
        with lock:
            active[0] -= 1
        return x * 2

    assert _parallel(fn, [1, 2, 3, 4, 5], limit=2) == [2, 4, 6, 8, 10]
    assert 1 <= active[1] <= 2  # never more than the limit

    def boom(x: int) -> int:
        if x == 2:
            raise ValueError("two")
        return x

    with pytest.raises(ValueError, match="two"):
        _parallel(boom, [1, 2, 3])
