"""berth compose against a private berthd: a web server (busybox httpd) in front of a
database-like service with a named volume and a health check, on the project's network,
reached through a port published on 127.0.0.1; Docker Compose's names and labels; an
idempotent `up -d`; recreation of only what changed; stop/start/ps/logs; `down` and
`down -v`. Images are the local busybox and images built here: nothing is pulled."""

from __future__ import annotations

import json
import socket
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.conftest import Daemon

pytestmark = pytest.mark.root

COMPOSE = """\
services:
  web:
    image: busybox
    command: ["httpd", "-f", "-p", "80", "-h", "/www"]
    ports: ["127.0.0.1:${WEB_PORT}:80"]
    volumes: ["./www:/www:ro"]
    environment:
      GREETING: ${GREETING:-hello}
    depends_on:
      db:
        condition: service_healthy
  db:
    image: busybox
    command: ["sh", "-c", "echo stored > /var/lib/db/greeting; exec httpd -f -p 5432 -h /var/lib/db"]
    volumes: ["dbdata:/var/lib/db"]
    healthcheck:
      test: ["CMD-SHELL", "test -f /var/lib/db/greeting"]
      interval: 200ms
      retries: 20
volumes:
  dbdata: {}
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def http_get(port: int, path: str = "/", timeout: float = 10) -> str:
    """GET over a plain socket (no proxies, loopback only), retried until the server answers."""
    deadline = time.time() + timeout
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
                s.sendall(f"GET {path} HTTP/1.0\r\nHost: x\r\n\r\n".encode())
                data = b""
                while chunk := s.recv(65536):
                    data += chunk
            if data:
                return data.decode(errors="replace")
        except OSError:
            pass
        if time.time() > deadline:
            raise AssertionError(f"nothing answered on 127.0.0.1:{port}")
        time.sleep(0.1)


class Compose:
    def __init__(self, daemon: Daemon, workdir: Path, name: str, port: int) -> None:
        self.d = daemon
        self.dir = workdir
        self.name = name
        self.port = port

    def run(self, *args: str, env: dict[str, str] | None = None, timeout: float = 120) -> Any:
        import subprocess

        from tests.integration.conftest import BIN

        return subprocess.run(
            [str(BIN / "berth"), "compose", *args],
            cwd=self.dir,
            env={
                **self.d.env,
                "COMPOSE_PROJECT_NAME": self.name,
                "WEB_PORT": str(self.port),
                # the validation cache stays in the test's directory
                "XDG_CACHE_HOME": str(self.dir / ".cache"),
                **(env or {}),
            },
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def ok(self, *args: str, env: dict[str, str] | None = None) -> Any:
        r = self.run(*args, env=env)
        assert r.returncode == 0, f"compose {' '.join(args)}: {r.stdout}\n{r.stderr}"
        return r

    def containers(self) -> list[dict[str, Any]]:
        ids = self.d.ok(
            "ps", "-aq", "--filter", f"label=com.docker.compose.project={self.name}"
        ).split()
        out = []
        for i in ids:  # a container of `run --rm` may go between the list and the look
            r = self.d.berth("inspect", i)
            if r.returncode == 0:
                out.append(json.loads(r.stdout)[0])
        return out


@pytest.fixture
def app(daemon: Daemon, tmp_path: Path) -> Iterator[Compose]:
    (tmp_path / "www").mkdir()
    (tmp_path / "www" / "index.html").write_text("<h1>front page</h1>\n")
    (tmp_path / "compose.yaml").write_text(COMPOSE)
    c = Compose(daemon, tmp_path, f"cp{tmp_path.name[-6:].lower().replace('_', '')}", free_port())
    try:
        yield c
    finally:
        c.run("down", "-v", "--remove-orphans", "-t", "1")


def test_up_names_labels_network_volume_and_ports(app: Compose) -> None:
    r = app.ok("up", "-d")
    p = app.name
    assert f"Container {p}-db-1  Healthy" in r.stderr
    cs = {c["Name"].lstrip("/"): c for c in app.containers()}
    assert sorted(cs) == [f"{p}-db-1", f"{p}-web-1"]
    web = cs[f"{p}-web-1"]
    labels = web["Config"]["Labels"]
    assert labels["com.docker.compose.project"] == p
    assert labels["com.docker.compose.service"] == "web"
    assert labels["com.docker.compose.container-number"] == "1"
    assert labels["com.docker.compose.oneoff"] == "False"
    assert labels["com.docker.compose.project.working_dir"] == str(app.dir)
    assert labels["com.docker.compose.project.config_files"] == str(app.dir / "compose.yaml")
    assert labels["com.docker.compose.depends_on"] == "db:service_healthy:false"
    assert labels["com.docker.compose.image"] == web["Image"]
    assert len(labels["com.docker.compose.config-hash"]) == 64
    assert "com.docker.compose.version" in labels
    assert f"{p}_default" in web["NetworkSettings"]["Networks"]
    net = json.loads(app.d.ok("network", "inspect", f"{p}_default"))[0]
    assert net["Labels"]["com.docker.compose.network"] == "default"
    assert net["Labels"]["com.docker.compose.project"] == p
    vol = json.loads(app.d.ok("volume", "inspect", f"{p}_dbdata"))[0]
    assert vol["Labels"]["com.docker.compose.volume"] == "dbdata"
    # the web server, through the published port
    assert "<h1>front page</h1>" in http_get(app.port)
    # services find each other by name on the project's network
    deadline = time.time() + 15
    while True:
        out = app.ok(
            "exec",
            "-T",
            "web",
            "sh",
            "-c",
            "printf 'GET /greeting HTTP/1.0\\r\\n\\r\\n' | nc db 5432",
        ).stdout
        if "stored" in out or time.time() > deadline:
            break
        time.sleep(0.2)
    assert "stored" in out
    ps = app.ok("ps").stdout
    assert ps.splitlines()[0].split() == [
        "NAME",
        "IMAGE",
        "COMMAND",
        "SERVICE",
        "CREATED",
        "STATUS",
        "PORTS",
    ]
    assert f"127.0.0.1:{app.port}->80/tcp" in ps
    assert app.ok("ps", "--services").stdout.split() == ["db", "web"]
    assert f"{p}  " in app.ok("ls").stdout


def test_second_up_changes_nothing_and_a_change_recreates_only_its_service(app: Compose) -> None:
    app.ok("up", "-d")
    before = {c["Name"]: c["Id"] for c in app.containers()}
    r = app.ok("up", "-d")
    for word in ("Creat", "Recreat", "Starting", "Stopping"):
        assert word not in r.stderr, r.stderr
    assert {c["Name"]: c["Id"] for c in app.containers()} == before
    r = app.ok("up", "-d", env={"GREETING": "changed"})
    after = {c["Name"]: c["Id"] for c in app.containers()}
    p = app.name
    assert after[f"/{p}-db-1"] == before[f"/{p}-db-1"]
    assert after[f"/{p}-web-1"] != before[f"/{p}-web-1"]
    assert f"Container {p}-web-1  Recreated" in r.stderr
    web = app.d.inspect(f"{p}-web-1")
    assert "GREETING=changed" in web["Config"]["Env"]
    assert "<h1>front page</h1>" in http_get(app.port)
    # --force-recreate makes new containers of everything
    app.ok("up", "-d", "--force-recreate", env={"GREETING": "changed"})
    again = {c["Name"]: c["Id"] for c in app.containers()}
    assert not set(again.values()) & set(after.values())


def test_stop_start_logs_down_keeps_volumes_and_down_v_removes_them(app: Compose) -> None:
    p = app.name
    app.ok("up", "-d")
    app.ok("stop", "-t", "1")
    assert {c["State"]["Status"] for c in app.containers()} == {"exited"}
    assert app.ok("ps").stdout.count("\n") == 1
    assert len(app.ok("ps", "-a", "-q").stdout.split()) == 2
    app.ok("start")
    assert {c["State"]["Status"] for c in app.containers()} == {"running"}
    http_get(app.port)
    logs = app.ok("logs", "web").stdout
    assert logs == "" or logs.startswith(f"{p}-web-1")
    app.ok("down", "-t", "1")
    assert app.containers() == []
    assert app.d.berth("network", "inspect", f"{p}_default").returncode != 0
    assert app.d.berth("volume", "inspect", f"{p}_dbdata").returncode == 0
    # with no compose file, -p NAME alone: what carries the project's label goes
    app.ok("up", "-d")
    elsewhere = app.dir / "elsewhere"
    elsewhere.mkdir()
    app.dir, here = elsewhere, app.dir
    try:
        assert app.ok("-p", p, "ps", "--services").stdout.split() == ["db", "web"]
        app.ok("-p", p, "down", "-v", "-t", "1")
    finally:
        app.dir = here
    assert app.containers() == []
    assert app.d.berth("network", "inspect", f"{p}_default").returncode != 0
    assert app.d.berth("volume", "inspect", f"{p}_dbdata").returncode != 0


def test_down_never_touches_external_objects_and_orphans(app: Compose) -> None:
    ext = f"{app.name}-ext"
    app.d.ok("volume", "create", ext)
    app.d.ok("network", "create", ext)
    try:
        (app.dir / "compose.yaml").write_text(
            textwrap.dedent(f"""\
            services:
              a:
                image: busybox
                command: ["sleep", "1000"]
                volumes: ["shared:/shared"]
                networks: [outside]
              b:
                image: busybox
                command: ["sleep", "1000"]
            volumes:
              shared: {{external: true, name: {ext}}}
            networks:
              outside: {{external: true, name: {ext}}}
            """)
        )
        app.ok("up", "-d")
        a = app.d.inspect(f"{app.name}-a-1")
        assert ext in a["NetworkSettings"]["Networks"]
        # b leaves the file: an orphan, reported, then removed with --remove-orphans
        text = (app.dir / "compose.yaml").read_text()
        (app.dir / "compose.yaml").write_text(
            text.replace('  b:\n    image: busybox\n    command: ["sleep", "1000"]\n', "")
        )
        r = app.ok("up", "-d")
        assert "orphan containers" in r.stderr and f"{app.name}-b-1" in r.stderr
        r = app.ok("up", "-d", "--remove-orphans")
        assert len(app.containers()) == 1
        app.ok("down", "-v", "-t", "1")
        assert app.containers() == []
        assert app.d.berth("volume", "inspect", ext).returncode == 0
        assert app.d.berth("network", "inspect", ext).returncode == 0
    finally:
        app.run("down", "-t", "1")
        app.d.berth("volume", "rm", ext)
        app.d.berth("network", "rm", ext)


def test_depends_on_conditions_and_up_wait(app: Compose) -> None:
    (app.dir / "compose.yaml").write_text(
        textwrap.dedent("""\
        services:
          migrate:
            image: busybox
            command: ["sh", "-c", "echo migrated"]
          sick:
            image: busybox
            command: ["sleep", "1000"]
            healthcheck: {test: ["CMD", "false"], interval: 100ms, retries: 2}
          app:
            image: busybox
            command: ["sleep", "1000"]
            depends_on:
              migrate: {condition: service_completed_successfully}
          needs_sick:
            image: busybox
            command: ["sleep", "1000"]
            profiles: [sick]
            depends_on:
              sick: {condition: service_healthy}
          failing:
            image: busybox
            command: ["sh", "-c", "exit 3"]
            profiles: [failing]
          after_failing:
            image: busybox
            command: ["sleep", "1000"]
            profiles: [failing]
            depends_on:
              failing: {condition: service_completed_successfully}
        """)
    )
    # a one-off waits on its service's conditions as up does
    r = app.ok("run", "--rm", "-T", "app", "echo", "ran")
    assert r.stdout == "ran\n" and f"Container {app.name}-migrate-1  Exited" in r.stderr
    r = app.ok("up", "-d", "--wait", "app")
    assert app.d.inspect(f"{app.name}-app-1")["State"]["Running"]
    r = app.run("--profile", "sick", "up", "-d", "needs_sick")
    assert r.returncode == 1
    assert f"dependency failed to start: container {app.name}-sick-1 is unhealthy" in r.stderr
    r = app.run("--profile", "failing", "up", "-d", "after_failing")
    assert r.returncode == 1
    assert 'service "failing" didn\'t complete successfully: exit 3' in r.stderr


def test_build_run_exec_scale_and_the_small_verbs(app: Compose) -> None:
    (app.dir / "ctx").mkdir()
    (app.dir / "ctx" / "Dockerfile").write_text(
        'FROM busybox\nCOPY page.html /www/index.html\nCMD ["httpd", "-f", "-p", "80", '
        '"-h", "/www"]\n'
    )
    (app.dir / "ctx" / "page.html").write_text("built page\n")
    (app.dir / "compose.yaml").write_text(
        textwrap.dedent("""\
        services:
          site:
            build: ./ctx
            ports: ["127.0.0.1:${WEB_PORT}:80"]
          worker:
            image: busybox
            command: ["sleep", "1000"]
            scale: 2
        """)
    )
    r = app.ok("up", "-d")
    assert f"Image {app.name}-site  Built" in r.stderr
    assert "built page" in http_get(app.port)
    names = sorted(c["Name"].lstrip("/") for c in app.containers())
    assert names == [f"{app.name}-site-1", f"{app.name}-worker-1", f"{app.name}-worker-2"]
    app.ok("up", "-d", "--scale", "worker=1")
    assert len(app.containers()) == 2
    out = app.ok("run", "--rm", "-T", "-e", "X=1", "worker", "sh", "-c", "echo one-off $X")
    assert out.stdout == "one-off 1\n"
    assert [c for c in app.containers() if "-run-" in c["Name"]] == []
    assert app.ok("exec", "-T", "--index", "1", "worker", "echo", "inside").stdout == "inside\n"
    assert app.ok("port", "site", "80").stdout.strip() == f"127.0.0.1:{app.port}"
    app.ok("pause", "worker")
    assert app.d.inspect(f"{app.name}-worker-1")["State"]["Paused"]
    app.ok("unpause", "worker")
    app.ok("restart", "-t", "1", "worker")
    assert "PID" in app.ok("top", "worker").stdout
    app.ok("kill", "worker")
    assert not app.d.inspect(f"{app.name}-worker-1")["State"]["Running"]
    app.ok("rm", "-f", "worker")
    assert len(app.containers()) == 1
    assert f"{app.name}-site" in app.ok("images").stdout
    app.ok("down", "--rmi", "local", "-t", "1")
    assert app.d.berth("image", "inspect", f"{app.name}-site").returncode != 0


def test_docker_compose_1_29_and_berth_compose_see_each_others_projects(app: Compose) -> None:
    """The same file under docker-compose 1.29 (Debian's, docker-py over the API) and under
    berth compose, both against berthd: the objects have the same names and labels (berth's
    adds Compose v2's depends_on and image), each tool lists and removes the other's."""
    import shutil
    import subprocess

    if shutil.which("docker-compose") is None:
        pytest.skip("docker-compose (1.29, Debian's) is not installed")
    theirs = app.name + "dc"
    env = {**app.d.env, "WEB_PORT": str(free_port())}

    def dc(*args: str) -> subprocess.CompletedProcess[str]:
        r = subprocess.run(
            ["docker-compose", "-p", theirs, *args],
            cwd=app.dir,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert r.returncode == 0, f"docker-compose {' '.join(args)}: {r.stdout}\n{r.stderr}"
        return r

    try:
        dc("up", "-d")
        app.ok("up", "-d")
        mine = app.d.inspect(f"{app.name}-web-1")
        other = app.d.inspect(f"{theirs}_web_1")
        ml, ol = mine["Config"]["Labels"], other["Config"]["Labels"]
        assert set(ol) <= set(ml)
        for key in (
            "com.docker.compose.service",
            "com.docker.compose.container-number",
            "com.docker.compose.oneoff",
            "com.docker.compose.project.working_dir",
        ):
            assert ml[key] == ol[key], key
        assert mine["HostConfig"]["Binds"] == other["HostConfig"]["Binds"]
        assert mine["HostConfig"]["RestartPolicy"]["Name"] in ("", "no")
        for kind, name in (("network", "default"), ("volume", "dbdata")):
            a = json.loads(app.d.ok(kind, "inspect", f"{app.name}_{name}"))[0]["Labels"]
            b = json.loads(app.d.ok(kind, "inspect", f"{theirs}_{name}"))[0]["Labels"]
            assert set(a) == set(b)
            assert a[f"com.docker.compose.{kind}"] == b[f"com.docker.compose.{kind}"] == name
        assert "web" in mine["NetworkSettings"]["Networks"][f"{app.name}_default"]["Aliases"]
        # each sees the other's project
        ps = app.run("-p", theirs, "ps", "--services").stdout.split()
        assert ps == ["db", "web"]
        listed = subprocess.run(
            ["docker-compose", "-p", app.name, "ps", "-q"],
            cwd=app.dir,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert len(listed.stdout.split()) == 2
        assert theirs in app.ok("ls").stdout
        # and takes it down
        r = app.run("-p", theirs, "down", "-v", "-t", "1")
        assert r.returncode == 0, r.stderr
        assert app.d.berth("volume", "inspect", f"{theirs}_dbdata").returncode != 0
        dc_down = subprocess.run(
            ["docker-compose", "-p", app.name, "down", "-v", "-t", "1"],
            cwd=app.dir,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert dc_down.returncode == 0, dc_down.stderr
        assert app.containers() == []
        assert app.d.berth("network", "inspect", f"{app.name}_default").returncode != 0
    finally:
        subprocess.run(
            ["docker-compose", "-p", theirs, "down", "-v", "-t", "1"],
            cwd=app.dir,
            env=env,
            capture_output=True,
            timeout=120,
        )


def test_service_keys_reach_the_containers(app: Compose) -> None:
    p = app.name
    (app.dir / "secret.txt").write_text("s3cret\n")
    (app.dir / "app.env").write_text("FROM_FILE=yes\nSHARED=file\n")
    (app.dir / "compose.yaml").write_text(
        textwrap.dedent("""\
        services:
          web:
            image: busybox
            command: ["httpd", "-f", "-p", "80", "-h", "/www"]
            volumes: ["./www:/www:ro", "/anon", {type: tmpfs, target: /t}]
            networks:
              front: {aliases: [www.front]}
              back: {ipv4_address: 10.231.7.7}
            env_file: [app.env]
            environment: {SHARED: env}
            secrets: [pw, {source: inline, target: inline.txt}]
            configs: [{source: conf, target: /etc/app.conf}]
            hostname: webhost
            extra_hosts: ["db.test=10.1.2.3"]
            working_dir: /www
            restart: unless-stopped
            stop_signal: SIGINT
            stop_grace_period: 3s
            labels: {tier: front}
            init: true
            cap_add: [NET_ADMIN]
            ulimits: {nofile: {soft: 1000, hard: 2000}}
            deploy: {resources: {limits: {memory: 64m}}}
          sidecar:
            image: busybox
            command: ["sleep", "1000"]
            network_mode: "service:web"
            user: "1000"
            tmpfs: /scratch
          client:
            image: busybox
            command: ["sleep", "1000"]
            networks: [front]
        networks:
          front: {}
          back:
            ipam: {config: [{subnet: 10.231.7.0/24}]}
        secrets:
          pw: {file: ./secret.txt}
          inline: {environment: INLINE_SECRET}
        configs:
          conf: {content: "key=value"}
        """)
    )
    env = {"INLINE_SECRET": "from-env"}
    app.ok("up", "-d", env=env)
    web = app.d.inspect(f"{p}-web-1")
    hc, cfg = web["HostConfig"], web["Config"]
    assert "FROM_FILE=yes" in cfg["Env"] and "SHARED=env" in cfg["Env"]
    assert cfg["Hostname"] == "webhost" and cfg["WorkingDir"] == "/www"
    assert cfg["StopSignal"] == "SIGINT" and cfg["StopTimeout"] == 3
    assert cfg["Labels"]["tier"] == "front"
    assert hc["RestartPolicy"]["Name"] == "unless-stopped" and hc["Init"] is True
    assert hc["Memory"] == 64 << 20 and "NET_ADMIN" in hc["CapAdd"]
    assert hc["Ulimits"] == [{"Name": "nofile", "Soft": 1000, "Hard": 2000}]
    nets = web["NetworkSettings"]["Networks"]
    assert nets[f"{p}_back"]["IPAddress"] == "10.231.7.7"
    assert "www.front" in nets[f"{p}_front"]["Aliases"]

    def sh(service: str, script: str, expect: str = "") -> str:
        """The script's output; with `expect`, retried until it holds that (a server that
        has just started may not listen yet)."""
        deadline = time.time() + 15
        while True:
            out = str(app.ok("exec", "-T", service, "sh", "-c", script, env=env).stdout)
            # an exec seen once under load to answer nothing with status 0: asked again
            # (a bug left open on issue 17, not what this test is about)
            if (expect in out and out) or time.time() > deadline:
                return out
            time.sleep(0.2)

    assert (
        sh("web", "cat /run/secrets/pw /run/secrets/inline.txt /etc/app.conf")
        == "s3cret\nfrom-env" + "key=value"
    )
    assert "db.test" in sh("web", "cat /etc/hosts")
    assert " /t tmpfs" in sh("web", "cat /proc/mounts")
    # the sidecar shares web's network stack; the client finds web by its alias
    assert "front page" in sh(
        "sidecar", "printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc 127.0.0.1 80", "front page"
    )
    # (once, under load, an exec here printed nothing and exited 0: asked again)
    assert sh("sidecar", "id -u", "1000").strip() == "1000"
    assert " /scratch tmpfs" in sh("sidecar", "cat /proc/mounts")
    assert "front page" in sh(
        "client", "printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc www.front 80", "front page"
    )
    # an anonymous volume outlives the recreation of its container
    sh("web", "echo kept > /anon/f; echo written", "written")
    app.ok("up", "-d", "--force-recreate", "web", env=env)
    assert sh("web", "cat /anon/f") == "kept\n"


def test_attached_up_prefixes_logs_and_returns_the_exit_code(app: Compose) -> None:
    (app.dir / "compose.yaml").write_text(
        textwrap.dedent("""\
        services:
          job:
            image: busybox
            command: ["sh", "-c", "echo working; echo done; exit 3"]
          idle:
            image: busybox
            command: ["sleep", "1000"]
        """)
    )
    r = app.run("up", "--exit-code-from", "job", "-t", "1")
    assert r.returncode == 3, r.stderr
    assert f"{app.name}-job-1   | working" in r.stdout
    assert f"{app.name}-job-1 exited with code 3" in r.stdout
    assert not app.d.inspect(f"{app.name}-idle-1")["State"]["Running"]
    logs = app.ok("logs", "--no-log-prefix", "job").stdout
    assert logs == "working\ndone\n"
    # as docker compose: the exit code printed and returned
    w = app.run("wait", "job")
    assert (w.returncode, w.stdout) == (3, "3\n")


def test_links_volumes_from_and_ipc_of_a_service(app: Compose) -> None:
    (app.dir / "compose.yaml").write_text(
        textwrap.dedent("""\
        services:
          store:
            image: busybox
            command: ["sh", "-c", "echo shared > /vol/f; exec httpd -f -p 80 -h /vol"]
            volumes: ["/vol"]
          reader:
            image: busybox
            command: ["sleep", "1000"]
            volumes_from: ["store:ro"]
            links: ["store:legacy"]
            ipc: "service:store"
        """)
    )
    app.ok("up", "-d")
    deadline = time.time() + 15
    while True:
        r = app.ok(
            "exec",
            "-T",
            "reader",
            "sh",
            "-c",
            "cat /vol/f; printf 'GET /f HTTP/1.0\\r\\n\\r\\n' | nc legacy 80",
        ).stdout
        if r.rstrip().endswith("shared") or time.time() > deadline:
            break
        time.sleep(0.2)
    assert r.startswith("shared\n") and r.rstrip().endswith("shared")
    reader = app.d.inspect(f"{app.name}-reader-1")
    assert reader["HostConfig"]["IpcMode"] == f"container:{app.name}-store-1"


def test_watch_syncs_restarts_and_rebuilds(app: Compose) -> None:
    import signal
    import subprocess

    from tests.integration.conftest import BIN

    (app.dir / "ctx").mkdir()
    (app.dir / "ctx" / "Dockerfile").write_text("FROM busybox\nCOPY v.txt /v.txt\n")
    (app.dir / "ctx" / "v.txt").write_text("v1\n")
    (app.dir / "compose.yaml").write_text(
        textwrap.dedent("""\
        services:
          web:
            image: busybox
            command: ["sh", "-c", "mkdir -p /www && exec httpd -f -p 80 -h /www"]
            ports: ["127.0.0.1:${WEB_PORT}:80"]
            develop:
              watch:
                - {path: ./www, action: sync, target: /www, ignore: ["*.tmp"]}
          built:
            build: ./ctx
            command: ["sleep", "1000"]
            develop:
              watch:
                - {path: ./ctx, action: rebuild}
        """)
    )
    logf = open(app.dir / "watch.log", "w")  # noqa: SIM115 - closed below
    w = subprocess.Popen(
        [str(BIN / "berth"), "compose", "watch"],
        cwd=app.dir,
        env={
            **app.d.env,
            "COMPOSE_PROJECT_NAME": app.name,
            "WEB_PORT": str(app.port),
            "XDG_CACHE_HOME": str(app.dir / ".cache"),
        },
        stdout=subprocess.DEVNULL,
        stderr=logf,
    )
    try:
        deadline = time.time() + 60
        while "built" not in app.run("ps", "--services").stdout:
            assert time.time() < deadline and w.poll() is None, (app.dir / "watch.log").read_text()
            time.sleep(0.2)
        time.sleep(1)
        (app.dir / "www" / "new.html").write_text("synced\n")
        (app.dir / "www" / "skip.tmp").write_text("no\n")
        deadline = time.time() + 20
        while "synced" not in http_get(app.port, "/new.html"):
            assert time.time() < deadline
            time.sleep(0.2)
        assert " 404 " in http_get(app.port, "/skip.tmp").splitlines()[0]
        (app.dir / "www" / "new.html").unlink()
        deadline = time.time() + 20
        while " 404 " not in http_get(app.port, "/new.html").splitlines()[0]:
            assert time.time() < deadline
            time.sleep(0.2)
        before = app.d.inspect(f"{app.name}-built-1")["Id"]
        (app.dir / "ctx" / "v.txt").write_text("v2\n")
        deadline = time.time() + 60
        while True:
            r = app.run("exec", "-T", "built", "cat", "/v.txt")
            if r.stdout == "v2\n":
                break
            assert time.time() < deadline, r.stderr
            time.sleep(0.5)
        assert app.d.inspect(f"{app.name}-built-1")["Id"] != before
    finally:
        w.send_signal(signal.SIGINT)
        try:
            w.wait(20)
        except subprocess.TimeoutExpired:
            w.kill()
            w.wait()
        logf.close()
    log = (app.dir / "watch.log").read_text()
    assert w.returncode == 0, log
    assert "Syncing service 'web'" in log and "Rebuilding service 'built'" in log


@pytest.mark.registry
def test_build_push_and_pull_through_a_local_registry(app: Compose, tmp_path: Path) -> None:
    from tests.integration.registries import Registry, running

    with running(Registry(tmp_path / "registry")) as reg:
        ref = f"{reg.addr}/tests/compose-app:1"
        (app.dir / "ctx").mkdir()
        (app.dir / "ctx" / "Dockerfile").write_text("FROM busybox\nCOPY v.txt /v.txt\n")
        (app.dir / "ctx" / "v.txt").write_text("from the registry\n")
        (app.dir / "compose.yaml").write_text(
            textwrap.dedent(f"""\
            services:
              app:
                image: {ref}
                build: ./ctx
                command: ["sleep", "1000"]
            """)
        )
        r = app.ok("build")
        assert f"Image {ref}  Built" in r.stderr
        r = app.ok("push")
        assert f"Image {ref}  Pushed" in r.stderr
        app.d.ok("rmi", ref)
        r = app.ok("pull")
        assert f"Image {ref}  Pulled" in r.stderr
        assert "Pull complete" in r.stderr or "Already exists" in r.stderr
        app.ok("up", "-d", "--no-build")
        assert app.ok("exec", "-T", "app", "cat", "/v.txt").stdout == "from the registry\n"
        app.ok("down", "--rmi", "all", "-t", "1")
        assert app.d.berth("image", "inspect", ref).returncode != 0


def test_build_keys_args_target_secrets_and_tags(app: Compose) -> None:
    (app.dir / "ctx").mkdir()
    (app.dir / "ctx" / "Dockerfile").write_text(
        textwrap.dedent("""\
        FROM busybox AS base
        ARG GREETING=unset
        RUN echo "$GREETING" > /greeting
        RUN --mount=type=secret,id=token cat /run/secrets/token > /token
        FROM base AS final
        RUN echo final > /stage
        FROM base AS other
        RUN echo other > /stage
        """)
    )
    (app.dir / "ctx" / ".dockerignore").write_text("ignored.txt\n")
    (app.dir / "ctx" / "ignored.txt").write_text("x")
    (app.dir / "token.txt").write_text("t0ken")
    (app.dir / "compose.yaml").write_text(
        textwrap.dedent(f"""\
        services:
          app:
            build:
              context: ./ctx
              args: {{GREETING: hi}}
              target: other
              secrets: [token]
              tags: ["{app.name}-extra:2"]
            command: ["sleep", "1000"]
        secrets:
          token: {{file: ./token.txt}}
        """)
    )
    app.ok("up", "-d")
    out = app.ok("exec", "-T", "app", "cat", "/greeting", "/token", "/stage").stdout
    assert out == "hi\nt0kenother\n"
    assert app.d.berth("image", "inspect", f"{app.name}-extra:2").returncode == 0
    # --build rebuilds; with nothing changed the service keeps its container
    before = app.d.inspect(f"{app.name}-app-1")["Id"]
    app.ok("up", "-d", "--build")
    assert app.d.inspect(f"{app.name}-app-1")["Id"] == before
    app.d.berth("rmi", f"{app.name}-extra:2")


def test_tty_exec_logs_ps_formats_ctrl_c_and_a_port_conflict(app: Compose) -> None:
    import os
    import pty
    import signal
    import subprocess

    from tests.integration.conftest import BIN

    p = app.name
    (app.dir / "compose.yaml").write_text(
        textwrap.dedent("""\
        services:
          talker:
            image: busybox
            command: ["sh", "-c", "for i in 1 2 3; do echo line$$i; done; exec sleep 1000"]
          web:
            image: busybox
            command: ["httpd", "-f", "-p", "80"]
            ports: ["127.0.0.1:${WEB_PORT}:80"]
            profiles: [web]
        """)
    )
    env = {
        **app.d.env,
        "COMPOSE_PROJECT_NAME": p,
        "WEB_PORT": str(app.port),
        "XDG_CACHE_HOME": str(app.dir / ".cache"),
    }
    # attached: the logs, then Ctrl-C stops the containers
    up = subprocess.Popen(
        [str(BIN / "berth"), "compose", "up", "-t", "1"],
        cwd=app.dir,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert up.stdout is not None
    seen = ""
    deadline = time.time() + 30
    while "line3" not in seen:
        assert time.time() < deadline
        seen += up.stdout.readline()
    up.send_signal(signal.SIGINT)
    up.wait(30)
    up.stdout.close()
    assert up.returncode == 130
    assert f"{p}-talker-1  | line1" in seen
    assert not app.d.inspect(f"{p}-talker-1")["State"]["Running"]
    app.ok("start")
    # logs: --tail, -t
    assert app.ok("logs", "--tail", "1", "--no-log-prefix", "talker").stdout.endswith("line3\n")
    stamped = app.ok("logs", "-t", "talker").stdout.splitlines()[0]
    assert stamped.startswith(f"{p}-talker-1  | 20") and stamped.endswith("line1")
    rows = [json.loads(line) for line in app.ok("ps", "--format", "json").stdout.splitlines()]
    assert [(r["Name"], r["Service"], r["State"]) for r in rows] == [
        (f"{p}-talker-1", "talker", "running")
    ]
    assert app.ok("ps", "--status", "exited", "-q").stdout == ""
    assert (
        app.ok(
            "ps",
            "--format",
            '{{.Service}} {{.State}} {{.Label "com.docker.compose.container-number"}}',
        ).stdout
        == "talker running 1\n"
    )
    # exec allocates a TTY when it has one
    master, slave = pty.openpty()
    try:
        r = subprocess.run(
            [str(BIN / "berth"), "compose", "exec", "talker", "tty"],
            cwd=app.dir,
            env=env,
            stdin=slave,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            timeout=60,
        )
    finally:
        os.close(slave)
        os.close(master)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip().startswith(b"/dev/pts/")
    # a port already taken: up fails and says which container
    with socket.socket() as s:
        s.bind(("127.0.0.1", app.port))
        s.listen(1)
        r = app.run("--profile", "web", "up", "-d", "web")
    assert r.returncode == 1
    assert f"failed to start container {p}-web-1" in r.stderr


def test_run_flags_cp_and_an_unattached_service(app: Compose) -> None:
    p = app.name
    (app.dir / "compose.yaml").write_text(
        textwrap.dedent("""\
        services:
          dep:
            image: busybox
            command: ["sleep", "1000"]
          tool:
            image: busybox
            command: ["true"]
            depends_on: [dep]
          chatty:
            image: busybox
            command: ["sh", "-c", "echo from-chatty; sleep 1000"]
            attach: false
          job:
            image: busybox
            command: ["sh", "-c", "echo from-job"]
        volumes:
          data: {}
        """)
    )
    # run: --no-deps leaves dep alone; -v, -p and -l reach the one-off container
    out = app.ok(
        "run",
        "--rm",
        "-T",
        "--no-deps",
        "-v",
        "data:/data",
        "-v",
        f"{app.dir}:/host:ro",
        "tool",
        "sh",
        "-c",
        "ls /host; echo x > /data/f",
    )
    assert "compose.yaml" in out.stdout
    assert app.d.berth("inspect", f"{p}-dep-1").returncode != 0
    r = app.ok(
        "run",
        "-d",
        "-T",
        "--no-deps",
        "-p",
        f"127.0.0.1:{app.port}:80",
        "-l",
        "k=v",
        "tool",
        "httpd",
        "-f",
        "-p",
        "80",
    )
    cid = r.stdout.strip()
    info = app.d.inspect(cid)
    assert info["Config"]["Labels"]["k"] == "v"
    assert info["Config"]["Labels"]["com.docker.compose.oneoff"] == "True"
    assert info["Name"].startswith(f"/{p}-tool-run-")
    http_get(app.port)
    app.d.ok("rm", "-f", cid)
    # cp both ways through a service's container
    app.ok("up", "-d", "dep")
    (app.dir / "in.txt").write_text("copied in\n")
    app.ok("cp", str(app.dir / "in.txt"), "dep:/tmp/in.txt")
    app.ok("cp", "dep:/tmp/in.txt", str(app.dir / "back.txt"))
    assert (app.dir / "back.txt").read_text() == "copied in\n"
    # attached: a service with attach: false is not shown
    r = app.run("up", "--abort-on-container-exit", "-t", "1", "chatty", "job")
    assert "from-job" in r.stdout and "from-chatty" not in r.stdout


@pytest.fixture(scope="module")
def dockerd(tmp_path_factory: pytest.TempPathFactory, rootfs_tar: Path) -> Iterator[Any]:
    import shutil

    from .test_dockerd_compat import Dockerd

    if not shutil.which("dockerd") or not shutil.which("docker"):
        pytest.skip("no dockerd here to compare with (apt-get install docker.io)")
    d = Dockerd(tmp_path_factory.mktemp("compose-dockerd"))
    try:
        d.start()
        d.docker("import", str(rootfs_tar), "busybox")
        yield d
    finally:
        d.stop()


def test_berth_compose_drives_dockerd_as_it_drives_berthd(app: Compose, dockerd: Any) -> None:
    """berth compose talks only to the API: against a real dockerd it makes the same objects,
    with the same names and labels, as against berthd."""
    (app.dir / "compose.yaml").write_text(
        textwrap.dedent("""\
        services:
          web:
            image: busybox
            command: ["sh", "-c", "exec httpd -f -p 80 -h /www"]
            volumes: ["./www:/www:ro"]
            depends_on:
              db: {condition: service_healthy}
          db:
            image: busybox
            command: ["sh", "-c", "echo stored > /var/lib/db/greeting; exec httpd -f -p 5432 -h /var/lib/db"]
            volumes: ["dbdata:/var/lib/db"]
            healthcheck: {test: ["CMD-SHELL", "test -f /var/lib/db/greeting"], interval: 200ms}
        volumes:
          dbdata: {}
        """)
    )
    denv = {"DOCKER_HOST": dockerd.env["DOCKER_HOST"], "BERTH_HOST": dockerd.env["DOCKER_HOST"]}
    p = app.name

    def objects(inspect: Any) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name in (f"{p}-web-1", f"{p}-db-1"):
            c = json.loads(inspect("inspect", name))[0]
            out[name] = (
                {
                    k: v
                    for k, v in c["Config"]["Labels"].items()
                    if k not in ("com.docker.compose.config-hash", "com.docker.compose.image")
                },
                sorted(c["NetworkSettings"]["Networks"]),
                c["State"]["Health"]["Status"] if "Health" in c["State"] else "",
            )
        for kind, name in (("network", f"{p}_default"), ("volume", f"{p}_dbdata")):
            out[name] = json.loads(inspect(kind, "inspect", name))[0]["Labels"]
        return out

    try:
        r = app.run("up", "-d", env=denv)
        assert r.returncode == 0, r.stderr
        deadline = time.time() + 20
        while True:
            r = app.run(
                "exec",
                "-T",
                "web",
                "sh",
                "-c",
                "printf 'GET /greeting HTTP/1.0\\r\\n\\r\\n' | nc db 5432",
                env=denv,
            )
            if "stored" in r.stdout or time.time() > deadline:
                break
            time.sleep(0.3)
        assert "stored" in r.stdout, r.stderr
        theirs = objects(dockerd.docker)
        again = app.run("up", "-d", env=denv)
        assert "Creat" not in again.stderr and "Start" not in again.stderr
        app.ok("up", "-d")
        mine = objects(app.d.ok)
        assert mine == theirs
    finally:
        r = app.run("down", "-v", "-t", "1", env=denv)
    assert r.returncode == 0, r.stderr
    assert dockerd.docker("ps", "-aq", "--filter", f"label=com.docker.compose.project={p}") == ""
    assert p not in dockerd.docker("volume", "ls", "-q")
    assert f"{p}_default" not in dockerd.docker("network", "ls", "--format", "{{.Name}}")


def test_post_start_and_pre_stop_hooks(app: Compose) -> None:
    (app.dir / "out").mkdir()
    (app.dir / "out").chmod(0o777)  # the post_start hook writes as uid 1000
    (app.dir / "compose.yaml").write_text(
        textwrap.dedent("""\
        services:
          svc:
            image: busybox
            command: ["sleep", "1000"]
            volumes: ["./out:/out"]
            post_start:
              - command: ["sh", "-c", "echo \\"started as $$(id -u) $$HOOK\\" > /out/post"]
                user: "1000"
                environment: {HOOK: yes-env}
            pre_stop:
              - command: sh -c 'echo stopping > /out/pre'
          bad:
            image: busybox
            command: ["sleep", "1000"]
            profiles: [bad]
            post_start:
              - command: ["sh", "-c", "echo nope >&2; exit 4"]
        """)
    )
    app.ok("up", "-d")
    assert (app.dir / "out" / "post").read_text() == "started as 1000 yes-env\n"
    app.ok("stop", "-t", "1")
    assert (app.dir / "out" / "pre").read_text() == "stopping\n"
    r = app.run("--profile", "bad", "up", "-d", "bad")
    assert r.returncode == 1
    assert f"container {app.name}-bad-1: post_start hook" in r.stderr and "code 4" in r.stderr


def test_create_version_and_events(app: Compose) -> None:
    import subprocess

    from tests.integration.conftest import BIN

    p = app.name
    (app.dir / "compose.yaml").write_text(
        textwrap.dedent("""\
        services:
          one:
            image: busybox
            command: ["sleep", "1000"]
        """)
    )
    assert app.ok("version", "--short").stdout.strip().count(".") == 2
    assert "berth compose version v" in app.ok("version").stdout
    app.ok("create")
    assert app.d.inspect(f"{p}-one-1")["State"]["Status"] == "created"
    ev = subprocess.Popen(
        [str(BIN / "berth"), "compose", "events", "--json"],
        cwd=app.dir,
        env={**app.d.env, "COMPOSE_PROJECT_NAME": p, "XDG_CACHE_HOME": str(app.dir / ".cache")},
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        time.sleep(1)
        app.ok("start")
        assert ev.stdout is not None
        seen = []
        deadline = time.time() + 20
        while not any(e["action"] == "start" for e in seen):
            assert time.time() < deadline
            seen.append(json.loads(ev.stdout.readline()))
        start = next(e for e in seen if e["action"] == "start")
        assert start["service"] == "one" and start["type"] == "container"
    finally:
        ev.kill()
        ev.wait()
        if ev.stdout:
            ev.stdout.close()


def test_docker_compose_1_29_runs_a_richer_project_on_berthd(app: Compose) -> None:
    """A build service, a health-checked dependency, two networks (an alias, a fixed address
    on an IPAM subnet), a file secret, a tmpfs and an anonymous volume, under Debian's
    docker-compose 1.29 against berthd; then berth compose takes the project down."""
    import shutil
    import subprocess

    if shutil.which("docker-compose") is None:
        pytest.skip("docker-compose (1.29, Debian's) is not installed")
    (app.dir / "ctx").mkdir()
    (app.dir / "ctx" / "Dockerfile").write_text("FROM busybox\nCOPY v.txt /v.txt\n")
    (app.dir / "ctx" / "v.txt").write_text("v1\n")
    (app.dir / "secret.txt").write_text("s3\n")
    (app.dir / "compose.yaml").write_text(
        textwrap.dedent("""\
        services:
          built:
            build: ./ctx
            command: ["sleep", "1000"]
            depends_on:
              db: {condition: service_healthy}
            networks:
              front: {aliases: [b.front]}
            secrets: [pw]
            tmpfs: /scratch
            volumes: ["/anon"]
          db:
            image: busybox
            command: ["sh", "-c", "exec httpd -f -p 80 -h /"]
            healthcheck: {test: ["CMD", "true"], interval: 1s}
            networks:
              back: {ipv4_address: 10.232.9.9}
              front: {}
        networks:
          front: {}
          back:
            ipam: {config: [{subnet: 10.232.9.0/24}]}
        secrets:
          pw: {file: ./secret.txt}
        """)
    )
    env = {**app.d.env}

    def dc(*args: str) -> str:
        r = subprocess.run(
            ["docker-compose", "-p", app.name, *args],
            cwd=app.dir,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert r.returncode == 0, f"docker-compose {' '.join(args)}: {r.stdout}\n{r.stderr}"
        return r.stdout

    try:
        dc("up", "-d")
        out = dc(
            "exec",
            "-T",
            "built",
            "sh",
            "-c",
            "cat /run/secrets/pw /v.txt; grep -c ' /scratch tmpfs' /proc/mounts; "
            "printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc db 80 | head -1",
        )
        assert out.startswith("s3\nv1\n1\nHTTP/1.")  # db answered, found by name
        db = app.d.inspect(f"{app.name}_db_1")
        assert db["NetworkSettings"]["Networks"][f"{app.name}_back"]["IPAddress"] == "10.232.9.9"
        # berth compose sees the project and takes it down, built image and all
        assert app.ok("ps", "--services").stdout.split() == ["built", "db"]
        app.ok("down", "-v", "--rmi", "local", "-t", "1")
        assert app.containers() == []
        # Compose v2 names a built image PROJECT-SERVICE, 1.29 PROJECT_SERVICE: 1.29's stays
        assert app.d.berth("image", "inspect", f"{app.name}_built").returncode == 0
    finally:
        subprocess.run(
            ["docker-compose", "-p", app.name, "down", "-v", "--rmi", "local", "-t", "1"],
            cwd=app.dir,
            env=env,
            capture_output=True,
            timeout=120,
        )
