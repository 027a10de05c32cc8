"""Sysctls: `--sysctl` (HostConfig.Sysctls, a spec's linux.sysctl) may set only what the kernel
keeps per namespace, in a namespace the container has of its own (Docker's and runc's
allow-list); anything else would change the host. Each test reads the host's value before and
after."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.conftest import Daemon

pytestmark = pytest.mark.root
RT = str(Path(sys.executable).parent / "berth-runtime")


def _host(name: str) -> str:
    return Path("/proc/sys", *name.split(".")).read_text()


@contextlib.contextmanager
def _host_unchanged(*names: str) -> Iterator[None]:
    """The host's values of `names` are the same afterwards; put back if they are not (the
    code before the fix could write some of them), and the test fails."""
    before = {n: _host(n) for n in names}
    try:
        yield
    finally:
        changed = {n: _host(n) for n in names if _host(n) != before[n]}
        for n in changed:
            with contextlib.suppress(OSError):
                Path("/proc/sys", *n.split(".")).write_text(before[n])
        assert not changed, f"the host's sysctls changed: {changed} (were {before})"


def _create(daemon: Daemon, sysctls: dict[str, str], **hc: object) -> tuple[int, str]:
    from berth.client import Client

    body = {"Image": "busybox", "Cmd": ["true"], "HostConfig": {"Sysctls": sysctls, **hc}}
    r = Client(daemon.host).send("POST", "/containers/create", body=body, check=False)
    raw = r.read()
    r.close()
    if r.status < 300:
        cid = json.loads(raw)["Id"]
        # before the fix: created; make it run, to show what it would have done
        daemon.berth("start", cid)
        daemon.berth("rm", "-f", cid)
    try:
        return r.status, str(json.loads(raw).get("message", raw.decode()))
    except ValueError:
        return r.status, raw.decode()


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("kernel.core_pattern", "|/bin/false berth-test"),
        ("kernel.randomize_va_space", "0"),
        ("kernel.printk_ratelimit_burst", "11"),
    ],
)
def test_global_sysctls_are_refused(daemon: Daemon, name: str, value: str) -> None:
    with _host_unchanged(name):
        status, body = _create(daemon, {name: value})
        assert status == 400, body
        assert f'sysctl "{name}" is not in a separate kernel namespace' in body
        r = daemon.berth("run", "--rm", "--sysctl", f"{name}={value}", "busybox", "true")
        assert r.returncode == 125 and "is not allowed" in r.stderr, r.stderr


@pytest.mark.parametrize(
    "name",
    [
        "net/../kernel/core_pattern",
        "net.ipv4.ip_forward/../../kernel/core_pattern",
        "net.ipv4..ip_forward",
        "net.ipv4.conf.all/../../../kernel.core_pattern",
        "fs.mqueue.",
        "net.",
    ],
)
def test_names_that_would_leave_their_place_are_refused(daemon: Daemon, name: str) -> None:
    with _host_unchanged("kernel.core_pattern", "net.ipv4.ip_forward"):
        status, body = _create(daemon, {name: "|/bin/false berth-test"})
        assert status == 400 and "invalid sysctl name" in body, body


def test_net_sysctls_are_refused_with_the_hosts_network(daemon: Daemon) -> None:
    with _host_unchanged("net.ipv4.ip_forward", "net.ipv4.ip_unprivileged_port_start"):
        status, body = _create(daemon, {"net.ipv4.ip_forward": "0"}, NetworkMode="host")
        assert status == 400 and "not allowed in host network namespace" in body, body
        r = daemon.berth(
            "run",
            "--rm",
            "--network",
            "host",
            "--sysctl",
            "net.ipv4.ip_unprivileged_port_start=80",
            "busybox",
            "true",
        )
        assert r.returncode == 125, r.stderr
        assert (
            'sysctl "net.ipv4.ip_unprivileged_port_start" not allowed in host network '
            "namespace" in r.stderr
        )


def test_net_sysctls_are_refused_joining_a_host_network_container(daemon: Daemon) -> None:
    daemon.ok(
        "run", "-d", "--name", "sysctl-hostnet", "--network", "host", "busybox", "sleep", "60"
    )
    try:
        with _host_unchanged("net.ipv4.ip_unprivileged_port_start"):
            status, body = _create(
                daemon,
                {"net.ipv4.ip_unprivileged_port_start": "80"},
                NetworkMode="container:sysctl-hostnet",
            )
            assert status == 400 and "not allowed in host network namespace" in body, body
    finally:
        daemon.berth("rm", "-f", "sysctl-hostnet")


def test_cli_sysctl_without_a_value_is_an_error(daemon: Daemon) -> None:
    r = daemon.berth("run", "--rm", "--sysctl", "net.ipv4.ip_forward", "busybox", "true")
    assert r.returncode == 125
    assert 'invalid argument "net.ipv4.ip_forward" for "--sysctl" flag' in r.stderr


def test_namespaced_sysctls_work_inside_only(daemon: Daemon) -> None:
    port = "80" if _host("net.ipv4.ip_unprivileged_port_start").strip() != "80" else "81"
    shm = "123456789"
    with _host_unchanged(
        "net.ipv4.ip_unprivileged_port_start", "kernel.shmmax", "fs.mqueue.msg_max"
    ):
        out = daemon.ok(
            "run",
            "--rm",
            "--sysctl",
            f"net.ipv4.ip_unprivileged_port_start={port}",
            "--sysctl",
            f"kernel.shmmax={shm}",
            "--sysctl",
            "fs.mqueue.msg_max=42",
            "busybox",
            "sh",
            "-c",
            "cat /proc/sys/net/ipv4/ip_unprivileged_port_start /proc/sys/kernel/shmmax "
            "/proc/sys/fs/mqueue/msg_max; echo 1 > /proc/sys/kernel/shmmax || echo ro",
        )
        assert out.split() == [port, shm, "42", "ro"], out  # /proc/sys read-only after


def test_net_sysctls_reach_the_containers_interfaces(daemon: Daemon) -> None:
    """Written once the container's interfaces are there (after the network set-up)."""
    out = daemon.ok(
        "run",
        "--rm",
        "--sysctl",
        "net.ipv4.conf.eth0.accept_local=1",
        "busybox",
        "cat",
        "/proc/sys/net/ipv4/conf/eth0/accept_local",
    )
    assert out.strip() == "1"


# --- berth-runtime reads specs from users directly: it checks them too, as runc does ------


@pytest.fixture
def bundle(tmp_path: Path, rootfs_tar: Path) -> Path:
    if os.geteuid() != 0:
        pytest.skip("needs root")
    b = tmp_path / "bundle"
    (b / "rootfs").mkdir(parents=True)
    with tarfile.open(rootfs_tar) as tf:
        tf.extractall(b / "rootfs", filter="fully_trusted")
    subprocess.run([RT, "spec", "-b", str(b)], check=True)
    return b


def _run(
    bundle: Path, sysctls: dict[str, str], args: list[str], hostnet: bool = False
) -> subprocess.CompletedProcess[str]:
    cfg = json.loads((bundle / "config.json").read_text())
    cfg["process"]["args"] = args
    cfg["root"]["readonly"] = False
    lx = cfg["linux"]
    lx["sysctl"] = sysctls
    # the worst case: nothing made /proc/sys read-only
    lx["readonlyPaths"] = [p for p in lx.get("readonlyPaths", []) if p != "/proc/sys"]
    if hostnet:
        lx["namespaces"] = [ns for ns in lx["namespaces"] if ns["type"] != "network"]
    (bundle / "config.json").write_text(json.dumps(cfg))
    return subprocess.run(
        [
            RT,
            "--root",
            str(bundle.parent / "state"),
            "run",
            "-b",
            str(bundle),
            f"sysctl-{os.getpid()}",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )


def test_runtime_refuses_a_global_sysctl(bundle: Path) -> None:
    with _host_unchanged("kernel.printk_ratelimit_burst"):
        r = _run(bundle, {"kernel.printk_ratelimit_burst": "11"}, ["true"])
        assert r.returncode != 0
        assert (
            'sysctl "kernel.printk_ratelimit_burst" is not in a separate kernel namespace'
            in r.stderr
        ), r.stderr


def test_runtime_refuses_a_name_with_a_way_out(bundle: Path) -> None:
    with _host_unchanged("kernel.printk_ratelimit_burst"):
        r = _run(
            bundle, {"net.ipv4.ip_forward/../../kernel/printk_ratelimit_burst": "11"}, ["true"]
        )
        assert r.returncode != 0 and "invalid sysctl name" in r.stderr, r.stderr


def test_runtime_refuses_net_sysctls_in_the_hosts_network(bundle: Path) -> None:
    with _host_unchanged("net.ipv4.ip_unprivileged_port_start"):
        r = _run(bundle, {"net.ipv4.ip_unprivileged_port_start": "80"}, ["true"], hostnet=True)
        assert r.returncode != 0 and "not allowed in host network namespace" in r.stderr, r.stderr


def test_runtime_sets_namespaced_sysctls(bundle: Path) -> None:
    with _host_unchanged("net.ipv4.ip_unprivileged_port_start", "kernel.shmmax"):
        r = _run(
            bundle,
            {"net.ipv4.ip_unprivileged_port_start": "80", "kernel.shmmax": "123456789"},
            ["cat", "/proc/sys/net/ipv4/ip_unprivileged_port_start", "/proc/sys/kernel/shmmax"],
        )
        assert r.returncode == 0 and r.stdout.split() == ["80", "123456789"], r.stderr
