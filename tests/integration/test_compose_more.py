"""berth compose's later keys against a private berthd: pre_start init containers, the deploy
keys reaching the containers, build.platforms and build.ssh, and `config --variables` and
`--no-interpolate`. Images are the local busybox and images built here: nothing is pulled."""

from __future__ import annotations

import json
import textwrap

import pytest

from tests.integration.test_compose import Compose
from tests.integration.test_compose import app as app  # noqa: F401 - the fixture

pytestmark = pytest.mark.root


def test_pre_start_steps_run_once_before_the_first_start(app: Compose) -> None:
    (app.dir / "compose.yaml").write_text(
        textwrap.dedent("""\
        services:
          svc:
            image: busybox
            command: ["sh", "-c", "cat /data/log > /data/seen; exec sleep 1000"]
            scale: 2
            volumes: ["data:/data"]
            environment: {WHO: service}
            pre_start:
              - command: ["sh", "-c", "echo once $$WHO >> /data/log"]
                environment: {WHO: step}
              - command: ["sh", "-c", "echo replica $$(hostname) >> /data/log"]
                per_replica: true
          bad:
            image: busybox
            command: ["sleep", "1000"]
            profiles: [bad]
            pre_start:
              - command: ["sh", "-c", "echo no database >&2; exit 3"]
        volumes:
          data: {}
        """)
    )
    app.ok("up", "-d")
    log = app.d.ok(
        "run", "--rm", "-v", f"{app.name}_data:/data", "busybox", "cat", "/data/log"
    ).splitlines()
    assert log[0] == "once step" and len(log) == 3
    assert [x.split()[0] for x in log[1:]] == ["replica", "replica"]
    # the service's container saw what its steps wrote: they ran before it started
    seen = app.d.ok(
        "run", "--rm", "-v", f"{app.name}_data:/data", "busybox", "cat", "/data/seen"
    ).splitlines()
    assert seen[0] == "once step"
    names = sorted(c["Name"].lstrip("/") for c in app.containers())
    assert names == [f"{app.name}-svc-1", f"{app.name}-svc-2"]  # no step is left behind
    app.ok("up", "-d")
    app.ok("restart", "-t", "0")
    again = app.d.ok(
        "run", "--rm", "-v", f"{app.name}_data:/data", "busybox", "cat", "/data/log"
    ).splitlines()
    assert again == log  # neither a second up nor a restart runs them again
    r = app.run("--profile", "bad", "up", "-d", "bad")
    assert r.returncode != 0
    assert "service 'bad': pre_start step 1" in r.stderr and "exited with code 3" in r.stderr
    assert "no database" in r.stderr
    bad = [c for c in app.containers() if c["Name"] == f"/{app.name}-bad-1"]
    assert bad and bad[0]["State"]["Status"] == "created"  # never started


def test_deploy_keys_reach_the_container(app: Compose) -> None:
    (app.dir / "compose.yaml").write_text(
        textwrap.dedent("""\
        services:
          svc:
            image: busybox
            command: ["sleep", "1000"]
            mem_limit: 1g
            deploy:
              replicas: 2
              labels: {swarm.only: "yes"}
              resources:
                limits: {cpus: "0.5", memory: 64m, pids: 50}
                reservations: {memory: 16m, cpus: "0.1"}
              restart_policy: {condition: on-failure, max_attempts: 3, delay: 1s}
              update_config: {parallelism: 1}
              placement: {constraints: ["node.role == manager"]}
        """)
    )
    r = app.ok("up", "-d")
    assert "WARN" not in r.stderr  # swarm's keys are ignored quietly, as docker compose does
    found = sorted(app.containers(), key=lambda c: str(c["Name"]))
    assert [c["Name"].lstrip("/") for c in found] == [f"{app.name}-svc-1", f"{app.name}-svc-2"]
    hc = found[0]["HostConfig"]
    assert (hc["NanoCpus"], hc["Memory"], hc["PidsLimit"], hc["MemoryReservation"]) == (
        500_000_000,
        64 << 20,
        50,
        16 << 20,
    )
    assert hc["RestartPolicy"] == {"Name": "on-failure", "MaximumRetryCount": 3}
    assert "swarm.only" not in found[0]["Config"]["Labels"]


def test_build_platforms_and_ssh(app: Compose) -> None:
    (app.dir / "ctx").mkdir()
    (app.dir / "ctx" / "Dockerfile").write_text("FROM busybox\nRUN echo built > /built\n")
    (app.dir / "compose.yaml").write_text(
        textwrap.dedent("""\
        services:
          here:
            build: {context: ctx, platforms: [linux/amd64], cache_from: [busybox]}
            command: ["sleep", "1000"]
          arm:
            build: {context: ctx, platforms: [linux/arm64]}
            profiles: [arm]
          ssh:
            build: {context: ctx, ssh: [default]}
            profiles: [ssh]
          inline:
            build:
              context: ctx
              dockerfile_inline: |
                FROM busybox
                COPY . /ctx
            command: ["sleep", "1000"]
            profiles: [inline]
        """)
    )
    arch = app.d.ok("version", "--format", "{{.Server.Arch}}").strip()
    if arch != "amd64":
        pytest.skip(f"the file names linux/amd64; this daemon is {arch}")
    app.ok("up", "-d", "here")
    out = app.d.ok("exec", f"{app.name}-here-1", "cat", "/built")
    assert out == "built\n"
    r = app.run("--profile", "arm", "build", "arm")
    assert r.returncode != 0
    assert "build.platforms 'linux/arm64'" in r.stderr and "(linux/amd64)" in r.stderr
    r = app.run("--profile", "ssh", "build", "ssh")
    assert r.returncode != 0
    assert "build.ssh 'default'" in r.stderr and "--mount=type=ssh" in r.stderr
    app.ok("--profile", "inline", "up", "-d", "inline")
    # the context, without the inline Dockerfile sent beside it
    out = app.d.ok("exec", f"{app.name}-inline-1", "ls", "-A", "/ctx")
    assert out.split() == ["Dockerfile"]


def test_config_variables_and_no_interpolate(app: Compose) -> None:
    (app.dir / "compose.yaml").write_text(
        textwrap.dedent("""\
        services:
          svc:
            image: "busybox:${TAG:-latest}"
            environment:
              NEED: ${NEED:?set it}
              ALT: ${ALT:+present}
              ESC: $$HOME
        """)
    )
    r = app.ok("config", "--variables")
    assert r.stdout.splitlines() == [
        "NAME                REQUIRED            DEFAULT VALUE       ALTERNATE VALUE",
        "ALT                 false                                   present",
        "NEED                true                                    ",
        "TAG                 false               latest              ",
    ]
    js = json.loads(app.ok("config", "--variables", "--format", "json").stdout)
    assert js["NEED"] == {"Name": "NEED", "DefaultValue": "", "PresenceValue": "", "Required": True}
    # NEED is unset: interpolating fails, not interpolating does not
    assert "required variable NEED is missing a value: set it" in app.run("config").stderr
    model = json.loads(app.ok("config", "--no-interpolate", "--format", "json").stdout)
    svc = model["services"]["svc"]
    assert svc["image"] == "busybox:${TAG:-latest}"
    assert svc["environment"] == {
        "NEED": "${NEED:?set it}",
        "ALT": "${ALT:+present}",
        "ESC": "$$HOME",
    }


def test_an_unchanged_up_is_answered_from_the_cache_and_a_change_is_not(app: Compose) -> None:
    (app.dir / "compose.yaml").write_text(
        textwrap.dedent("""\
        services:
          web:
            image: busybox
            command: ["sleep", "1000"]
            environment: {GREETING: "${GREETING}"}
            depends_on: {db: {condition: service_healthy}}
          db:
            image: busybox
            command: ["sleep", "1000"]
            healthcheck: {test: ["CMD", "true"], interval: 200ms}
        """)
    )
    (app.dir / ".env").write_text("GREETING=hello\n")

    def ids() -> dict[str, str]:
        return {c["Name"].lstrip("/"): c["Id"] for c in app.containers()}

    app.ok("up", "-d")
    entries = list((app.dir / ".cache" / "berth" / "compose-up").iterdir())
    assert len(entries) == 1
    first = ids()
    stamp = entries[0].stat().st_mtime_ns
    r = app.ok("up", "-d")
    assert f" Container {app.name}-web-1  Running" in r.stderr and ids() == first
    assert entries[0].stat().st_mtime_ns == stamp  # answered from it: not written again
    # a changed .env recreates web (its hash changed); db stays
    (app.dir / ".env").write_text("GREETING=bye\n")
    app.ok("up", "-d")
    after = ids()
    assert after[f"{app.name}-db-1"] == first[f"{app.name}-db-1"]
    assert after[f"{app.name}-web-1"] != first[f"{app.name}-web-1"]
    env = app.d.ok("inspect", "-f", "{{json .Config.Env}}", f"{app.name}-web-1")
    assert "GREETING=bye" in env
    # the process's environment wins over .env: a change there recreates too
    app.ok("up", "-d", env={"GREETING": "from-env"})
    env = app.d.ok("inspect", "-f", "{{json .Config.Env}}", f"{app.name}-web-1")
    assert "GREETING=from-env" in env
    # a container stopped behind compose's back is started again
    app.ok("up", "-d")
    app.d.ok("stop", "-t", "0", f"{app.name}-db-1")
    app.ok("up", "-d")
    st = app.d.ok("inspect", "-f", "{{.State.Status}}", f"{app.name}-db-1").strip()
    assert st == "running"
    # an orphan is still reported
    (app.dir / "compose.yaml").write_text(
        textwrap.dedent("""\
        services:
          db:
            image: busybox
            command: ["sleep", "1000"]
        """)
    )
    r = app.ok("up", "-d")
    assert "Found orphan containers" in r.stderr
    r = app.ok("up", "-d")
    assert "Found orphan containers" in r.stderr


def test_up_no_recreate_and_wait_timeout(app: Compose) -> None:
    text = textwrap.dedent("""\
        services:
          svc:
            image: busybox
            command: ["sleep", "1000"]
            environment: {V: "${V:-1}"}
          slow:
            image: busybox
            command: ["sleep", "1000"]
            profiles: [slow]
            healthcheck: {test: ["CMD", "true"], interval: 1h, start_period: 1h}
        """)
    (app.dir / "compose.yaml").write_text(text)
    app.ok("up", "-d")
    before = app.d.ok("inspect", "-f", "{{.Id}}", f"{app.name}-svc-1")
    app.ok("up", "-d", "--no-recreate", env={"V": "2"})  # changed, but kept
    assert app.d.ok("inspect", "-f", "{{.Id}}", f"{app.name}-svc-1") == before
    r = app.run("--profile", "slow", "up", "-d", "--wait", "--wait-timeout", "1", "slow")
    assert r.returncode != 0
    assert f"container {app.name}-slow-1 is not running and healthy after 1s" in r.stderr


def test_more_keys_reach_the_daemon(app: Compose) -> None:
    p = app.name
    app.d.ok("volume", "create", f"{p}-outside")
    try:
        (app.dir / "compose.yaml").write_text(
            textwrap.dedent(f"""\
            services:
              svc:
                image: busybox
                pull_policy: missing
                entrypoint: ["sh", "-c"]
                command: ["exec sleep 1000"]
                expose: ["8080", "9000/udp"]
                cap_drop: [CHOWN]
                privileged: false
                read_only: true
                dns: [10.0.0.53]
                logging: {{driver: json-file, options: {{max-size: 1m}}}}
                stdin_open: true
                tty: true
                sysctls: {{net.ipv4.ip_unprivileged_port_start: "1024"}}
                networks: [inner]
                volumes:
                  - {{type: volume, source: data, target: /data, read_only: true,
                     volume: {{nocopy: true}}}}
                  - {{type: volume, source: outside, target: /outside}}
              app:
                image: busybox
                command: ["sleep", "1000"]
                privileged: true
                depends_on: {{svc: {{condition: service_started, restart: true}}}}
                networks: [inner]
              never:
                image: {p}-not-here
                pull_policy: never
                profiles: [never]
            networks:
              inner:
                name: {p}-inner-net
                driver: bridge
                internal: true
                driver_opts: {{com.docker.network.bridge.name: br{p[-6:]}}}
            volumes:
              data:
                name: {p}-data-vol
                driver: local
                labels: {{kind: data}}
              outside:
                external: true
                name: {p}-outside
            """)
        )
        app.ok("up", "-d")
        svc = app.d.inspect(f"{p}-svc-1")
        hc, cfg = svc["HostConfig"], svc["Config"]
        assert cfg["Entrypoint"] == ["sh", "-c"] and cfg["Cmd"] == ["exec sleep 1000"]
        assert set(cfg["ExposedPorts"]) == {"8080/tcp", "9000/udp"}
        assert hc["CapDrop"] == ["CHOWN"] and hc["ReadonlyRootfs"] is True
        assert hc["Dns"] == ["10.0.0.53"] and not hc.get("Privileged")
        assert hc["LogConfig"] == {"Type": "json-file", "Config": {"max-size": "1m"}}
        assert cfg["OpenStdin"] is True and cfg["Tty"] is True
        assert hc["Sysctls"] == {"net.ipv4.ip_unprivileged_port_start": "1024"}
        mounts = {m["Destination"]: m for m in svc["Mounts"]}
        assert mounts["/data"]["Name"] == f"{p}-data-vol" and mounts["/data"]["RW"] is False
        assert mounts["/outside"]["Name"] == f"{p}-outside"
        assert app.d.inspect(f"{p}-app-1")["HostConfig"]["Privileged"] is True
        net = json.loads(app.d.ok("network", "inspect", f"{p}-inner-net"))[0]
        assert net["Driver"] == "bridge" and net["Internal"] is True
        assert net["Options"]["com.docker.network.bridge.name"] == f"br{p[-6:]}"
        vol = json.loads(app.d.ok("volume", "inspect", f"{p}-data-vol"))[0]
        assert vol["Driver"] == "local" and vol["Labels"]["kind"] == "data"
        # restart: true: app is restarted with svc
        started = app.d.inspect(f"{p}-app-1")["State"]["StartedAt"]
        app.ok("restart", "-t", "0", "svc")
        assert app.d.inspect(f"{p}-app-1")["State"]["StartedAt"] != started
        # pull_policy: never and no image: refused, naming it
        r = app.run("--profile", "never", "up", "-d", "never")
        assert r.returncode != 0 and f"no such image: {p}-not-here" in r.stderr
        app.ok("down", "-v", "-t", "0")
        # the external volume is kept; ours are gone
        assert app.d.berth("volume", "inspect", f"{p}-outside").returncode == 0
        assert app.d.berth("volume", "inspect", f"{p}-data-vol").returncode != 0
    finally:
        app.run("down", "-v", "-t", "0")
        app.d.berth("volume", "rm", "-f", f"{p}-outside")
