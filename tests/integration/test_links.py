"""Legacy links and name resolution of containers connected to user networks later, as dockerd:
`--link NAME:ALIAS` on the default bridge (environment, /etc/hosts, HostConfig.Links, `rm
--link`) and on user networks (an alias of the embedded DNS for the linking container only);
a container started on the default bridge and connected to a user network later resolves the
names on it. All traffic stays on bridges this test's daemon made."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from .conftest import Daemon

pytestmark = pytest.mark.root


def test_a_container_connected_later_resolves_the_names_on_the_network(daemon: Daemon) -> None:
    daemon.ok("network", "create", "lk-late")
    try:
        daemon.ok(
            "run", "-d", "--name", "lk-peer", "--network", "lk-late", "busybox", "sleep", "60"
        )
        daemon.ok("run", "-d", "--name", "lk-late1", "busybox", "sleep", "60")
        assert "127.0.0.11" not in daemon.ok("exec", "lk-late1", "cat", "/etc/resolv.conf")
        daemon.ok("network", "connect", "lk-late", "lk-late1")
        assert "nameserver 127.0.0.11" in daemon.ok("exec", "lk-late1", "cat", "/etc/resolv.conf")
        ip = daemon.inspect("lk-peer")["NetworkSettings"]["Networks"]["lk-late"]["IPAddress"]
        out = daemon.ok("exec", "lk-late1", "nslookup", "lk-peer", "127.0.0.11")
        assert ip in out
        assert daemon.berth("exec", "lk-late1", "ping", "-c1", "-W2", "lk-peer").returncode == 0
        # as dockerd: the embedded DNS stays after a disconnect (it forwards other names)
        daemon.ok("network", "disconnect", "lk-late", "lk-late1")
        assert "nameserver 127.0.0.11" in daemon.ok("exec", "lk-late1", "cat", "/etc/resolv.conf")
        assert (
            ip not in daemon.berth("exec", "lk-late1", "nslookup", "lk-peer", "127.0.0.11").stdout
        )
    finally:
        daemon.berth("rm", "-f", "lk-peer", "lk-late1")
        daemon.berth("network", "rm", "lk-late")


def _docker(d: Daemon, *args: str) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("docker")
    if exe is None:
        pytest.skip("the docker CLI is not installed")
    env = {**d.env, "DOCKER_CONFIG": str(d.base / "docker-config")}
    return subprocess.run([exe, *args], env=env, capture_output=True, timeout=60, text=True)


@pytest.mark.parametrize("cli", ["docker", "berth"])
def test_legacy_links_on_the_default_bridge(daemon: Daemon, cli: str) -> None:
    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return _docker(daemon, *args) if cli == "docker" else daemon.berth(*args)

    def ok(*args: str) -> str:
        r = run(*args)
        assert r.returncode == 0, f"{cli} {' '.join(args)}: {r.stderr}"
        return r.stdout

    db, me = f"lk-db-{cli}", f"lk-me-{cli}"
    try:
        ok(
            "run",
            "-d",
            "--name",
            db,
            "--expose",
            "5432",
            "--expose",
            "53/udp",
            "-e",
            "SECRET=s3",
            "busybox",
            "sleep",
            "60",
        )
        dbid = daemon.inspect(db)["Id"]
        ip = daemon.inspect(db)["NetworkSettings"]["Networks"]["bridge"]["IPAddress"]
        ok("run", "-d", "--name", me, "--link", f"{db}:my-db", "busybox", "sleep", "60")
        assert daemon.inspect(me)["HostConfig"]["Links"] == [f"/{db}:/{me}/my-db"]
        env = ok("exec", me, "env").splitlines()
        for want in (
            f"MY_DB_PORT=udp://{ip}:53",
            f"MY_DB_PORT_5432_TCP=tcp://{ip}:5432",
            f"MY_DB_PORT_5432_TCP_ADDR={ip}",
            "MY_DB_PORT_5432_TCP_PORT=5432",
            "MY_DB_PORT_5432_TCP_PROTO=tcp",
            f"MY_DB_PORT_53_UDP=udp://{ip}:53",
            f"MY_DB_NAME=/{me}/my-db",
            "MY_DB_ENV_SECRET=s3",
        ):
            assert want in env, (want, env)
        assert not any(e.startswith("MY_DB_ENV_PATH=") for e in env)
        hosts = ok("exec", me, "cat", "/etc/hosts")
        assert f"{ip}\tmy-db {dbid[:12]} {db}\n" in hosts
        assert ok("exec", me, "ping", "-c1", "-W2", "my-db")
        # the target restarted at another address: the linking container's hosts follow
        ok("stop", "-t", "0", db)
        ok("run", "-d", "--name", f"{db}-2", "busybox", "sleep", "60")  # takes its address
        ok("start", db)
        ip2 = daemon.inspect(db)["NetworkSettings"]["Networks"]["bridge"]["IPAddress"]
        assert ip2 != ip
        assert f"{ip2}\tmy-db {dbid[:12]} {db}\n" in ok("exec", me, "cat", "/etc/hosts")
        # a removed target's link goes with it
        ok("rm", "-f", db)
        assert not daemon.inspect(me)["HostConfig"]["Links"]
        ok("restart", me)
        ok("run", "-d", "--name", db, "busybox", "sleep", "60")
        ok("rm", "-f", me)
        ok("run", "-d", "--name", me, "--link", f"{db}:my-db", "busybox", "sleep", "60")
        # the link goes: HostConfig.Links no longer shows it, a second removal fails
        ok("rm", "--link", f"/{me}/my-db")
        assert not daemon.inspect(me)["HostConfig"]["Links"]
        r = run("rm", "--link", f"/{me}/my-db")
        assert r.returncode != 0 and f"No such container: {me}/my-db" in r.stderr
        r = run("rm", "--link", db)
        assert r.returncode != 0 and "cannot remove the default link name" in r.stderr
    finally:
        daemon.berth("rm", "-f", me, db, f"{db}-2")


def test_link_errors(daemon: Daemon) -> None:
    r = daemon.berth("create", "--link", "lk-nothere:x", "busybox", "true")
    assert r.returncode != 0
    assert "could not get container for lk-nothere: No such container: lk-nothere" in r.stderr
    r = _docker(daemon, "create", "--link", "lk-nothere:x", "busybox", "true")
    assert r.returncode != 0 and "could not get container for lk-nothere" in r.stderr
    assert "Unable to find image" not in r.stderr
    r = daemon.berth("create", "--network", "host", "--link", "x:y", "busybox", "true")
    assert r.returncode != 0 and "host type networking can't be used with links" in r.stderr
    r = daemon.berth("create", "--network", "container:x", "--link", "x:y", "busybox", "true")
    assert r.returncode != 0
    assert "container type network can't be used with links" in r.stderr
    try:
        daemon.ok("create", "--name", "lk-stopped", "busybox", "sleep", "60")
        daemon.ok(
            "create", "--name", "lk-parent", "--link", "lk-stopped:s", "busybox", "sleep", "60"
        )
        r = daemon.berth("start", "lk-parent")
        assert r.returncode != 0
        assert "Cannot link to a non running container: /lk-stopped AS /lk-parent/s" in r.stderr
    finally:
        daemon.berth("rm", "-f", "lk-parent", "lk-stopped")


@pytest.mark.parametrize("cli", ["docker", "berth"])
def test_links_on_a_user_network_are_dns_aliases(daemon: Daemon, cli: str) -> None:
    def ok(*args: str) -> str:
        r = _docker(daemon, *args) if cli == "docker" else daemon.berth(*args)
        assert r.returncode == 0, f"{cli} {' '.join(args)}: {r.stderr}"
        return r.stdout

    net, db = f"lk-net-{cli}", f"lk-udb-{cli}"
    try:
        ok("network", "create", net)
        ok("run", "-d", "--name", db, "--network", net, "busybox", "sleep", "60")
        ip = daemon.inspect(db)["NetworkSettings"]["Networks"][net]["IPAddress"]
        ok(
            "run",
            "-d",
            "--name",
            f"{db}-a",
            "--network",
            net,
            "--link",
            f"{db}:mydb",
            "busybox",
            "sleep",
            "60",
        )
        info = daemon.inspect(f"{db}-a")
        assert info["NetworkSettings"]["Networks"][net]["Links"] == [f"{db}:mydb"]
        assert info["HostConfig"]["Links"] is None  # as dockerd
        # the target may come later: no check at create
        ok(
            "create",
            "--name",
            f"{db}-x",
            "--network",
            net,
            "--link",
            "lk-nothere:x",
            "busybox",
            "true",
        )
        assert ip in ok("exec", f"{db}-a", "nslookup", "mydb", "127.0.0.11")
        # for that container only
        ok("run", "-d", "--name", f"{db}-b", "--network", net, "busybox", "sleep", "60")
        r = daemon.berth("exec", f"{db}-b", "nslookup", "mydb", "127.0.0.11")
        assert ip not in r.stdout
        # a link given at network connect
        ok("run", "-d", "--name", f"{db}-c", "busybox", "sleep", "60")
        ok("network", "connect", "--link", f"{db}:other", net, f"{db}-c")
        assert ip in ok("exec", f"{db}-c", "nslookup", "other", "127.0.0.11")
    finally:
        daemon.berth("rm", "-f", f"{db}-a", f"{db}-b", f"{db}-c", f"{db}-x", db)
        daemon.berth("network", "rm", net)
