"""`docker run`/`create` flags berth used to refuse or drop, driven through the real docker CLI
and checked inside the container, in its cgroup files and in inspect (issue 15)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from .conftest import Daemon
from .test_docker_cli import docker, ok

pytestmark = [pytest.mark.root, pytest.mark.docker_cli]

V1 = not os.path.exists("/sys/fs/cgroup/cgroup.controllers")


def _run(d: Daemon, *args: str) -> str:
    return ok(d, "run", "--rm", "--pull", "never", *args)


def _inspect(d: Daemon, name: str) -> dict:  # type: ignore[type-arg]
    return json.loads(ok(d, "inspect", name))[0]  # type: ignore[no-any-return]


def _cgroup(d: Daemon, controller: str, cid: str, name: str) -> str:
    return (Path("/sys/fs/cgroup") / controller / d.cgroup_parent / cid / name).read_text()


def test_pid_modes(daemon: Daemon) -> None:
    host = os.readlink("/proc/self/ns/pid")
    assert _run(daemon, "--pid", "host", "busybox", "readlink", "/proc/self/ns/pid").strip() == host
    own = _run(daemon, "busybox", "readlink", "/proc/self/ns/pid").strip()
    assert own != host
    ok(daemon, "run", "-d", "--name", "pid-donor", "busybox", "sleep", "60")
    try:
        donor_pid = _inspect(daemon, "pid-donor")["State"]["Pid"]
        donor_ns = os.readlink(f"/proc/{donor_pid}/ns/pid")
        out = _run(
            daemon,
            "--pid",
            "container:pid-donor",
            "busybox",
            "sh",
            "-c",
            "readlink /proc/self/ns/pid; ps -o comm",
        )
        assert out.splitlines()[0] == donor_ns
        assert "sleep" in out  # the donor's processes are visible
        ok(daemon, "create", "--name", "pid-stopped", "busybox", "true")
        r = docker(daemon, "run", "--rm", "--pid", "container:pid-stopped", "busybox", "true")
        assert r.returncode == 125 and "container pid-stopped is not running" in r.stderr
        r = docker(daemon, "run", "--rm", "--pid", "container:pid-nobody", "busybox", "true")
        assert r.returncode == 125 and "No such container: pid-nobody" in r.stderr
    finally:
        docker(daemon, "rm", "-f", "pid-donor", "pid-stopped")
    r = docker(daemon, "run", "--rm", "--pid", "bogus", "busybox", "true")
    assert r.returncode != 0 and "invalid PID mode" in r.stderr


def test_ipc_modes(daemon: Daemon) -> None:
    host = os.readlink("/proc/self/ns/ipc")
    assert _run(daemon, "--ipc", "host", "busybox", "readlink", "/proc/self/ns/ipc").strip() == host
    assert _run(daemon, "busybox", "readlink", "/proc/self/ns/ipc").strip() != host
    ok(daemon, "create", "--name", "ipc-default", "busybox", "true")
    assert _inspect(daemon, "ipc-default")["HostConfig"]["IpcMode"] == "private"
    # none: an IPC namespace of its own and no /dev/shm
    assert (
        _run(
            daemon,
            "--ipc",
            "none",
            "busybox",
            "sh",
            "-c",
            "grep -c ' /dev/shm ' /proc/mounts || true",
        ).strip()
        == "0"
    )
    ok(daemon, "run", "-d", "--name", "ipc-private", "busybox", "sleep", "60")
    ok(
        daemon,
        "run",
        "-d",
        "--name",
        "ipc-share",
        "--ipc",
        "shareable",
        "busybox",
        "sh",
        "-c",
        "echo shared > /dev/shm/f; sleep 60",
    )
    try:
        r = docker(daemon, "run", "--rm", "--ipc", "container:ipc-private", "busybox", "true")
        assert (
            r.returncode == 125
            and (
                "container ipc-private: non-shareable IPC (hint: use "
                "IpcMode:shareable for the donor container)"
            )
            in r.stderr
        )
        donor_pid = _inspect(daemon, "ipc-share")["State"]["Pid"]
        out = _run(
            daemon,
            "--ipc",
            "container:ipc-share",
            "busybox",
            "sh",
            "-c",
            "readlink /proc/self/ns/ipc; sleep 0.5; cat /dev/shm/f",
        )
        assert out.split() == [os.readlink(f"/proc/{donor_pid}/ns/ipc"), "shared"]
        ok(daemon, "stop", "-t", "0", "ipc-share")
        r = docker(daemon, "run", "--rm", "--ipc", "container:ipc-share", "busybox", "true")
        assert r.returncode == 125 and "container ipc-share is not running" in r.stderr
    finally:
        docker(daemon, "rm", "-f", "ipc-private", "ipc-share", "ipc-default")
    r = docker(daemon, "run", "--rm", "--ipc", "bogus", "busybox", "true")
    assert r.returncode != 0 and "invalid IPC mode" in r.stderr


def test_uts_host(daemon: Daemon) -> None:
    assert _run(daemon, "--uts", "host", "busybox", "hostname").strip() == os.uname().nodename
    r = docker(daemon, "run", "--rm", "--uts", "host", "-h", "x", "busybox", "true")
    assert r.returncode == 125 and "conflicting options: hostname and the UTS mode" in r.stderr


def test_domainname(daemon: Daemon) -> None:
    if os.environ.get("BERTH_TEST_RUNTIME") == "runc":
        pytest.skip("runc before 1.2 does not set the spec's domainname")
    out = _run(
        daemon,
        "--hostname",
        "web",
        "--domainname",
        "example.test",
        "busybox",
        "sh",
        "-c",
        "hostname; cat /proc/sys/kernel/domainname",
    )
    assert out.split() == ["web", "example.test"]


def test_oom_score_adj(daemon: Daemon) -> None:
    assert (
        _run(daemon, "--oom-score-adj", "500", "busybox", "cat", "/proc/self/oom_score_adj").strip()
        == "500"
    )
    # lowering it needs CAP_SYS_RESOURCE, which a sandboxed host may lack: then the start
    # fails (as runc's), never runs with the value dropped
    can_lower = (
        int(
            next(
                line
                for line in Path("/proc/self/status").read_text().splitlines()
                if line.startswith("CapEff:")
            ).split()[1],
            16,
        )
        >> 24
        & 1
    )
    r = docker(
        daemon,
        "run",
        "--rm",
        "--oom-score-adj",
        "-200",
        "busybox",
        "cat",
        "/proc/self/oom_score_adj",
    )
    if can_lower:
        assert r.stdout.strip() == "-200", r.stderr
    else:
        assert r.returncode != 0
        if os.environ.get("BERTH_TEST_RUNTIME") != "runc":  # runc's words say less
            assert "oom_score_adj" in r.stderr
    cid = ok(daemon, "run", "-d", "--oom-score-adj", "400", "busybox", "sleep", "60").strip()
    try:  # an exec gets the container's, as with dockerd
        assert ok(daemon, "exec", cid, "cat", "/proc/self/oom_score_adj").strip() == "400"
    finally:
        docker(daemon, "rm", "-f", cid)
    r = docker(daemon, "run", "--rm", "--oom-score-adj", "1001", "busybox", "true")
    assert r.returncode == 125 and "range for oom score adj is [-1000, 1000]" in r.stderr


@pytest.mark.skipif(not V1, reason="the cgroup files checked are cgroup v1's")
def test_memory_knobs_v1(daemon: Daemon) -> None:
    cid = ok(
        daemon,
        "run",
        "-d",
        "-m",
        "64m",
        "--memory-reservation",
        "32m",
        "--memory-swappiness",
        "10",
        "--oom-kill-disable",
        "busybox",
        "sleep",
        "60",
    ).strip()
    try:
        assert _cgroup(daemon, "memory", cid, "memory.soft_limit_in_bytes").strip() == str(32 << 20)
        assert _cgroup(daemon, "memory", cid, "memory.swappiness").strip() == "10"
        assert "oom_kill_disable 1" in _cgroup(daemon, "memory", cid, "memory.oom_control")
        hc = _inspect(daemon, cid)["HostConfig"]
        assert (hc["MemoryReservation"], hc["MemorySwappiness"], hc["OomKillDisable"]) == (
            32 << 20,
            10,
            True,
        )
    finally:
        docker(daemon, "rm", "-f", cid)
    r = docker(daemon, "create", "--oom-kill-disable", "busybox", "true")
    assert (
        r.returncode == 0
        and "OOM killer is disabled for the container, but no memory limit is set" in r.stderr
    )
    docker(daemon, "rm", r.stdout.strip())
    r = docker(daemon, "run", "--rm", "--memory-swappiness", "101", "busybox", "true")
    assert r.returncode != 0 and "memory swappiness range is 0-100" in r.stderr.lower()
    r = docker(daemon, "run", "--rm", "-m", "16m", "--memory-reservation", "32m", "busybox", "true")
    assert (
        r.returncode == 125
        and "Minimum memory limit can not be less than memory reservation limit" in r.stderr
    )


def _block_device() -> str:
    for line in Path("/proc/partitions").read_text().splitlines()[2:]:
        name = line.split()[-1]
        if Path(f"/dev/{name}").exists() and not name.startswith(("loop", "zram", "ram")):
            return f"/dev/{name}"
    pytest.skip("no block device on this host")


@pytest.mark.skipif(not V1, reason="the cgroup files checked are cgroup v1's")
def test_blkio_v1(daemon: Daemon) -> None:
    dev = _block_device()
    st = os.stat(dev)
    majmin = f"{os.major(st.st_rdev)}:{os.minor(st.st_rdev)}"
    cid = ok(
        daemon,
        "run",
        "-d",
        "--device-read-bps",
        f"{dev}:1mb",
        "--device-write-bps",
        f"{dev}:2mb",
        "--device-read-iops",
        f"{dev}:100",
        "--device-write-iops",
        f"{dev}:200",
        "busybox",
        "sleep",
        "60",
    ).strip()
    try:
        for f, v in (
            ("read_bps_device", 1 << 20),
            ("write_bps_device", 2 << 20),
            ("read_iops_device", 100),
            ("write_iops_device", 200),
        ):
            assert _cgroup(daemon, "blkio", cid, "blkio.throttle." + f).strip() == f"{majmin} {v}"
        hc = _inspect(daemon, cid)["HostConfig"]
        assert hc["BlkioDeviceReadBps"] == [{"Path": dev, "Rate": 1 << 20}]
    finally:
        docker(daemon, "rm", "-f", cid)
    r = docker(daemon, "run", "--rm", "--blkio-weight", "5", "busybox", "true")
    assert r.returncode == 125 and "Range of blkio weight is from 10 to 1000" in r.stderr
    r = docker(daemon, "run", "-d", "--blkio-weight", "300", "busybox", "sleep", "60")
    blk = Path("/sys/fs/cgroup/blkio") / daemon.cgroup_parent
    try:
        if r.returncode == 0:
            cid = r.stdout.strip()
            names = ("blkio.weight", "blkio.bfq.weight")
            f = next(blk / cid / n for n in names if (blk / cid / n).exists())
            assert f.read_text().split()[-1] == "300"
        else:  # a kernel with neither file: an error, not a weight dropped
            assert "does not support Block I/O weight" in r.stderr
    finally:
        docker(daemon, "rm", "-f", r.stdout.strip() or "none")


def test_device_cgroup_rules(daemon: Daemon) -> None:
    # /dev/fuse (c 10:229) is none of the default devices: the rule lets the container open
    # one it makes with mknod
    if not os.path.exists("/dev/fuse"):
        pytest.skip("no /dev/fuse on this host")
    r = docker(
        daemon,
        "run",
        "--rm",
        "--device-cgroup-rule",
        "c 10:229 rmw",
        "busybox",
        "sh",
        "-c",
        "mknod /tmp/k c 10 229 && head -c0 /tmp/k && echo ok",
    )
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr
    r = docker(
        daemon,
        "run",
        "--rm",
        "busybox",
        "sh",
        "-c",
        "mknod /tmp/k c 10 229 && head -c0 /tmp/k && echo ok",
    )
    assert "ok" not in r.stdout and "Operation not permitted" in r.stderr
    if V1:
        cid = ok(
            daemon, "run", "-d", "--device-cgroup-rule", "c 42:* rm", "busybox", "sleep", "60"
        ).strip()
        try:
            assert "c 42:* rm" in _cgroup(daemon, "devices", cid, "devices.list")
        finally:
            docker(daemon, "rm", "-f", cid)
    r = docker(daemon, "run", "--rm", "--device-cgroup-rule", "x 1:3 r", "busybox", "true")
    assert r.returncode != 0 and "invalid device cgroup format 'x 1:3 r'" in r.stderr


def test_label_file_and_annotations(daemon: Daemon, tmp_path: Path) -> None:
    lf = tmp_path / "labels"
    lf.write_text("# a comment\n\nteam=infra\ntier=web\n")
    cid = ok(
        daemon,
        "create",
        "--label-file",
        str(lf),
        "--label",
        "tier=db",
        "--annotation",
        "org.example/key=v1",
        "busybox",
        "true",
    ).strip()
    try:
        doc = _inspect(daemon, cid)
        assert {k: doc["Config"]["Labels"][k] for k in ("team", "tier")} == {
            "team": "infra",
            "tier": "db",
        }
        assert doc["HostConfig"]["Annotations"] == {"org.example/key": "v1"}
        ok(daemon, "start", cid)
        bundle = daemon.exec_root / "containers" / cid / "bundle" / "config.json"
        if bundle.exists():
            assert json.loads(bundle.read_text())["annotations"]["org.example/key"] == "v1"
    finally:
        docker(daemon, "rm", "-f", cid)


def test_storage_opt_and_gpus_refused(daemon: Daemon) -> None:
    r = docker(daemon, "run", "--rm", "--storage-opt", "size=10G", "busybox", "true")
    assert (
        r.returncode == 125
        and ("--storage-opt is supported only for overlay over xfs with 'pquota' mount option")
        in r.stderr
    )
    r = docker(daemon, "run", "--rm", "--gpus", "all", "busybox", "true")
    assert (
        r.returncode == 125
        and 'could not select device driver "" with capabilities: [[gpu]]' in r.stderr
    )


def test_health_start_interval(daemon: Daemon) -> None:
    # a long interval, a short start interval: the first probe comes at the start interval
    cid = ok(
        daemon,
        "run",
        "-d",
        "--health-cmd",
        "true",
        "--health-interval",
        "60s",
        "--health-start-period",
        "30s",
        "--health-start-interval",
        "200ms",
        "busybox",
        "sleep",
        "60",
    ).strip()
    try:
        import time

        deadline = time.time() + 10
        status = ""
        while time.time() < deadline:
            status = _inspect(daemon, cid)["State"]["Health"]["Status"]
            if status == "healthy":
                break
            time.sleep(0.1)
        assert status == "healthy"
        assert _inspect(daemon, cid)["Config"]["Healthcheck"]["StartInterval"] == 200_000_000
    finally:
        docker(daemon, "rm", "-f", cid)


def _post(d: Daemon, path: str, body: dict) -> tuple[int, dict]:  # type: ignore[type-arg]
    import http.client
    import socket

    class Conn(http.client.HTTPConnection):
        def connect(self) -> None:
            self.sock = socket.socket(socket.AF_UNIX)
            self.sock.connect(str(d.sock))

    c = Conn("localhost")
    c.request("POST", path, json.dumps(body), {"Content-Type": "application/json"})
    r = c.getresponse()
    return r.status, json.loads(r.read() or b"{}")


def test_unsupported_fields_refused_by_name(daemon: Daemon) -> None:
    for hc, word in (
        ({"CpuRealtimeRuntime": 1000}, "HostConfig.CpuRealtimeRuntime"),
        ({"VolumeDriver": "nfs"}, "HostConfig.VolumeDriver"),
        ({"Isolation": "hyperv"}, "HostConfig.Isolation"),
        ({"KernelMemoryTCP": 1 << 20}, "HostConfig.KernelMemoryTCP"),
    ):
        status, res = _post(
            daemon,
            "/v1.50/containers/create",
            {"Image": "busybox", "Cmd": ["true"], "HostConfig": hc},
        )
        assert status == 400 and word in res["message"], res
    status, res = _post(
        daemon,
        "/v1.50/containers/create",
        {"Image": "busybox", "Cmd": ["true"], "NetworkDisabled": True},
    )
    assert status == 400 and "Config.NetworkDisabled" in res["message"]
    # the defaults docker clients send are no request for anything
    status, res = _post(
        daemon,
        "/v1.50/containers/create",
        {
            "Image": "busybox",
            "Cmd": ["true"],
            "NetworkDisabled": False,
            "HostConfig": {
                "CpuCount": 0,
                "Isolation": "",
                "VolumeDriver": "",
                "Cgroup": "",
                "MemorySwappiness": -1,
            },
        },
    )
    assert status == 201, res
    docker(daemon, "rm", res["Id"])


@pytest.fixture(scope="module")
def cdi_daemon(tmp_path_factory: pytest.TempPathFactory, rootfs_tar: Path):  # type: ignore[no-untyped-def]
    from .conftest import running_daemon

    if not os.path.exists("/dev/fuse"):
        pytest.skip("no /dev/fuse on this host to stand for a CDI device")
    base = tmp_path_factory.mktemp("cdi")
    specs = base / "cdi"
    specs.mkdir()
    (base / "lib.txt").write_text("vendor library\n")
    (specs / "example.json").write_text(
        json.dumps(
            {
                "cdiVersion": "0.6.0",
                "kind": "example.com/dev",
                "containerEdits": {"env": ["EXAMPLE_COMMON=1"]},
                "devices": [
                    {
                        "name": "fuse",
                        "containerEdits": {
                            "env": ["EXAMPLE_DEV=fuse"],
                            "deviceNodes": [{"path": "/dev/fuse"}],
                            "mounts": [
                                {
                                    "hostPath": str(base / "lib.txt"),
                                    "containerPath": "/opt/lib.txt",
                                    "options": ["ro", "rbind"],
                                }
                            ],
                        },
                    },
                    {
                        "name": "hooked",
                        "containerEdits": {
                            "hooks": [{"hookName": "createContainer", "path": "/bin/true"}]
                        },
                    },
                ],
            }
        )
    )
    (specs / "gpu.json").write_text(
        json.dumps(
            {
                "cdiVersion": "0.6.0",
                "kind": "nvidia.com/gpu",
                "devices": [
                    {
                        "name": "0",
                        "containerEdits": {
                            "env": ["FAKE_GPU=0"],
                            "deviceNodes": [{"path": "/dev/fakegpu0", "hostPath": "/dev/fuse"}],
                        },
                    }
                ],
            }
        )
    )
    with running_daemon(base / "berthd", rootfs_tar, "--cdi-spec-dir", str(specs)) as d:
        yield d


def test_cdi_devices(cdi_daemon: Daemon) -> None:
    out = _run(
        cdi_daemon,
        "--device",
        "example.com/dev=fuse",
        "busybox",
        "sh",
        "-c",
        "echo $EXAMPLE_DEV $EXAMPLE_COMMON; cat /opt/lib.txt; head -c0 /dev/fuse && echo opened",
    )
    assert out.split("\n")[:3] == ["fuse 1", "vendor library", "opened"]
    r = docker(cdi_daemon, "run", "--rm", "--device", "example.com/dev=nope", "busybox", "true")
    assert (
        r.returncode == 125
        and ("CDI device injection failed: unresolvable CDI devices example.com/dev=nope")
        in r.stderr
    )
    r = docker(cdi_daemon, "run", "--rm", "--device", "example.com/dev=hooked", "busybox", "true")
    assert r.returncode == 125 and "OCI hooks, which berth does not run" in r.stderr
    # --gpus takes the nvidia.com/gpu CDI devices where the host has them (dockerd 28)
    out = _run(
        cdi_daemon,
        "--gpus",
        "all",
        "busybox",
        "sh",
        "-c",
        "echo $FAKE_GPU; head -c0 /dev/fakegpu0 && echo opened",
    )
    assert out.split() == ["0", "opened"]
