"""Devices: a container with CAP_MKNOD (Docker's default) can make a node for any device; the
device cgroup must keep it from opening one it was not given, such as the host's disk.

cgroup v2 has no devices controller: berth attaches a BPF device program built from the spec's
rules, and refuses to start a container when it cannot. This machine is cgroup v1 with a hybrid
unified tree, so these tests mount a cgroup2 tree of their own (the same unified hierarchy) and
run berth's cgroup manager on it, and run berth-runtime in a mount namespace whose
/sys/fs/cgroup is that cgroup2 tree: what berth does on a pure v2 host."""

from __future__ import annotations

import errno
import json
import os
import random
import secrets
import signal
import stat
import subprocess
import sys
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from berth import cgroups, linux
from berth.cgroups import devices
from berth.containers.hostconfig import HostConfig
from berth.containers.settings import ContainerConfig
from berth.containers.spec import DEFAULT_DEVICE_RULES, build_spec
from berth.errors import System
from berth.linux import bpf, seccomp
from berth.runtime import process

pytestmark = pytest.mark.root
RT = str(Path(sys.executable).parent / "berth-runtime")


def _opens(dev: tuple[int, int], where: Path) -> bool:
    node = where / f"probe-{secrets.token_hex(3)}"
    os.mknod(node, stat.S_IFBLK | 0o600, os.makedev(*dev))
    try:
        os.close(os.open(node, os.O_RDONLY))
        return True
    except OSError:
        return False
    finally:
        node.unlink()


@pytest.fixture
def host_disk(tmp_path: Path) -> Iterator[tuple[int, int]]:
    """A block device of the host that root here can open: the one / is on, or, where that
    is refused to everyone (this VM's root disk is), a loop device over a file the test made
    (detached at the end)."""
    dev = os.stat("/").st_dev
    if os.major(dev) and _opens((os.major(dev), os.minor(dev)), tmp_path):
        yield os.major(dev), os.minor(dev)
        return
    img = tmp_path / "disk.img"
    img.write_bytes(b"HOST DISK " * 1000)
    loop = subprocess.run(["losetup", "-f", "--show", str(img)], capture_output=True, text=True)
    if loop.returncode != 0:
        pytest.skip(f"no block device to aim at: losetup: {loop.stderr.strip()}")
    try:
        st = os.stat(loop.stdout.strip())
        yield os.major(st.st_rdev), os.minor(st.st_rdev)
    finally:
        subprocess.run(["losetup", "-d", loop.stdout.strip()], check=False)


def _kill_and_rmdir(top: Path) -> None:
    if not top.exists():
        return
    dirs = sorted((p for p in top.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts))
    for d in [*dirs, top]:
        try:
            for pid in (d / "cgroup.procs").read_text().split():
                os.kill(int(pid), signal.SIGKILL)
        except (OSError, ValueError):
            pass
        for _ in range(100):
            try:
                d.rmdir()
                break
            except FileNotFoundError:
                break
            except OSError:
                time.sleep(0.02)


@pytest.fixture
def v2(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """A cgroup2 tree mounted for the test, and the name of the test's own top cgroup in it
    (removed, with any process left in it, and unmounted at the end)."""
    mnt = tmp_path / "cgroup2"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "cgroup2", "none", str(mnt)], check=True)
    top = f"berth-sec-dev-{os.getpid()}-{secrets.token_hex(3)}"
    try:
        yield mnt, top
    finally:
        _kill_and_rmdir(mnt / top)
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def _docker_resources() -> cgroups.Resources:
    """The resources berth's monitor gives a default `docker run` container's cgroup."""
    spec = build_spec(
        cid="c" * 64,
        config=ContainerConfig(cmd=("sh",)),
        host_config=HostConfig(),
        hostname_path="",
        hosts_path="",
        resolv_path="",
        cgroup_parent="berth",
    )
    return cgroups.Resources.from_spec(process.cgroup_resources(spec["linux"]))


def _probe(nodes: Path, name: str, disk: tuple[int, int], cgroup_dir: str | None) -> dict[str, Any]:
    """In a child (born in `cgroup_dir` through berth's linux.fork_into_cgroup): make a node for
    the host's disk, open it read-only, and open /dev/null. Errno or "ok" for each."""
    r, w = os.pipe()
    pid = linux.fork_into_cgroup(cgroup_dir) if cgroup_dir else os.fork()
    if pid == 0:
        out: dict[str, Any] = {}
        try:
            os.close(r)
            node = str(nodes / name)
            for step, fn in (
                ("mknod", lambda: os.mknod(node, stat.S_IFBLK | 0o600, os.makedev(*disk))),
                ("disk", lambda: os.close(os.open(node, os.O_RDONLY))),
                ("null", lambda: os.close(os.open("/dev/null", os.O_RDWR))),
            ):
                try:
                    fn()
                    out[step] = "ok"
                except OSError as e:
                    out[step] = e.errno
            out["cgroup"] = linux.read_text("/proc/self/cgroup")
            os.write(w, json.dumps(out).encode())
        finally:
            os._exit(0)
    os.close(w)
    try:
        data = b""
        while chunk := os.read(r, 65536):
            data += chunk
    finally:
        os.close(r)
        os.waitpid(pid, 0)
    result: dict[str, Any] = json.loads(data)
    return result


def test_v2_device_program_keeps_the_host_disk_closed(
    v2: tuple[Path, str], tmp_path: Path, host_disk: tuple[int, int]
) -> None:
    mnt, top = v2
    disk = host_disk
    nodes = tmp_path / "nodes"
    nodes.mkdir()
    try:
        # control: without the program, the node opens (the test can see the attack work)
        control = _probe(nodes, "control", disk, None)
        assert (control["mknod"], control["disk"], control["null"]) == ("ok", "ok", "ok")

        mgr = cgroups.V2(f"{top}/c1", root=str(mnt))
        mgr.create(_docker_resources())
        got = _probe(nodes, "disk", disk, mgr.dir)
        assert f"0::/{top}/c1" in got["cgroup"]
        assert got["mknod"] == "ok"  # Docker's rules allow mknod of any node...
        assert got["disk"] == errno.EPERM  # ...but not opening the host's disk
        assert got["null"] == "ok"  # while /dev/null (c 1:3) opens
        # the program is attached to the container's cgroup itself
        fd = os.open(mgr.dir, os.O_RDONLY | os.O_DIRECTORY)
        try:
            assert len(bpf.prog_query(fd, bpf.BPF_CGROUP_DEVICE)) == 1
        finally:
            os.close(fd)

        # created again (a stale cgroup of the same name): still one program, not two
        mgr.create(_docker_resources())
        fd = os.open(mgr.dir, os.O_RDONLY | os.O_DIRECTORY)
        try:
            assert len(bpf.prog_query(fd, bpf.BPF_CGROUP_DEVICE)) == 1
        finally:
            os.close(fd)
        assert _probe(nodes, "disk2", disk, mgr.dir)["disk"] == errno.EPERM
        mgr.remove()
        assert not os.path.exists(mgr.dir)
    finally:
        for n in nodes.iterdir():
            n.unlink()


def test_v2_refuses_when_the_program_cannot_be_loaded(
    v2: tuple[Path, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A program the kernel's verifier refuses (one that exits without a verdict): the cgroup
    is not created with its device rules dropped; the error names the cause."""
    mnt, top = v2
    monkeypatch.setattr(devices, "compile_rules", lambda rules: bytes([0x95]) + bytes(7))
    mgr = cgroups.V2(f"{top}/c2", root=str(mnt))
    with pytest.raises(System, match=r"device rules.*(R0 !read_ok|Permission denied)"):
        mgr.create(_docker_resources())
    fd = os.open(mgr.dir, os.O_RDONLY | os.O_DIRECTORY)
    try:
        assert bpf.prog_query(fd, bpf.BPF_CGROUP_DEVICE) == []
    finally:
        os.close(fd)


def test_kernel_accepts_the_compiled_programs() -> None:
    """The kernel's verifier loads what the compiler emits, for Docker's rules, a privileged
    container's, and random rule sets."""
    sets: list[list[dict[str, Any]]] = [
        [{"allow": False, "access": "rwm"}, *DEFAULT_DEVICE_RULES],
        [{"allow": True, "access": "rwm"}],
        [{"allow": False}],
        [],
    ]
    rnd = random.Random(13)
    for _ in range(40):
        sets.append(
            [
                {
                    "allow": rnd.random() < 0.6,
                    "type": rnd.choice("abcc"),
                    "major": rnd.choice([None, 1, 254]),
                    "minor": rnd.choice([None, 0, 3]),
                    "access": rnd.choice(["r", "w", "m", "rw", "rwm"]),
                }
                for _ in range(rnd.randint(0, 8))
            ]
        )
    for rules in sets:
        fd = bpf.prog_load(bpf.BPF_PROG_TYPE_CGROUP_DEVICE, devices.compile_rules(rules))
        os.close(fd)


# berth-runtime on a pure v2 view of this host: a mount namespace whose /sys/fs/cgroup is a
# cgroup2 mount, which is what cgroups.is_v2() looks at
_V2_VIEW = 'mount --make-rprivate / && mount -t cgroup2 none /sys/fs/cgroup && exec "$0" "$@"'


@pytest.fixture
def bundle(tmp_path: Path, rootfs_tar: Path) -> Iterator[Path]:
    b = tmp_path / "bundle"
    (b / "rootfs").mkdir(parents=True)
    with tarfile.open(rootfs_tar) as tf:
        tf.extractall(b / "rootfs", filter="fully_trusted")
    subprocess.run([RT, "spec", "-b", str(b)], check=True)
    try:
        yield b
    finally:
        disk = b / "rootfs" / "disk"
        if disk.exists() or disk.is_symlink():
            disk.unlink()


def _configure(bundle: Path, top: str, script: str) -> None:
    cfg = json.loads((bundle / "config.json").read_text())
    cfg["process"]["args"] = ["sh", "-c", script]
    cfg["root"]["readonly"] = False
    # berth's v1 set-up of /sys/fs/cgroup would look for the v1 mounts this view hides
    cfg["mounts"] = [m for m in cfg["mounts"] if m["type"] not in ("cgroup", "cgroup2")]
    cfg["linux"]["cgroupsPath"] = f"/{top}/c1"
    cfg["linux"]["resources"] = {
        "devices": [{"allow": False, "access": "rwm"}, *DEFAULT_DEVICE_RULES]
    }
    (bundle / "config.json").write_text(json.dumps(cfg))


def _run_on_v2(bundle: Path, tmp_path: Path, preexec: Any = None) -> tuple[int, str, str]:
    state = tmp_path / "state"
    with open(tmp_path / "rt.out", "w+") as out, open(tmp_path / "rt.err", "w+") as err:
        r = subprocess.run(
            [
                "unshare",
                "-m",
                "sh",
                "-c",
                _V2_VIEW,
                RT,
                "--root",
                str(state),
                "run",
                "-b",
                str(bundle),
                "c1",
            ],
            stdout=out,
            stderr=err,
            timeout=60,
            preexec_fn=preexec,
        )
        out.seek(0)
        err.seek(0)
        return r.returncode, out.read(), err.read()


_SCRIPT = (
    "grep '^0::' /proc/self/cgroup; mknod /disk b {ma} {mi} && echo MKNOD_OK; "
    "if head -c 9 /disk 2>/err; then echo; echo DISK_OPENED; else cat /err; fi; "
    "echo x > /dev/null && echo NULL_OK"
)


def test_berth_runtime_on_v2_keeps_the_host_disk_closed(
    v2: tuple[Path, str], bundle: Path, tmp_path: Path, host_disk: tuple[int, int]
) -> None:
    mnt, top = v2
    ma, mi = host_disk
    _configure(bundle, top, _SCRIPT.format(ma=ma, mi=mi))
    code, out, err = _run_on_v2(bundle, tmp_path)
    assert code == 0, err
    assert f"0::/{top}/c1" in out  # in the v2 cgroup berth-runtime made
    assert "MKNOD_OK" in out
    assert "DISK_OPENED" not in out and "Operation not permitted" in out
    assert "NULL_OK" in out
    assert not (mnt / top / "c1").exists()  # removed with the container


def _deny_bpf() -> None:
    """In the child before exec: bpf(2) fails with EPERM, as in a container or a host that
    forbids it."""
    seccomp.load(
        {
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["bpf"], "action": "SCMP_ACT_ERRNO"}],
        }
    )


@pytest.mark.skipif(not seccomp.available(), reason="needs libseccomp to forbid bpf(2)")
def test_berth_runtime_on_v2_refuses_without_a_device_program(
    v2: tuple[Path, str], bundle: Path, tmp_path: Path, host_disk: tuple[int, int]
) -> None:
    mnt, top = v2
    ma, mi = host_disk
    _configure(bundle, top, "echo CONTAINER_RAN; " + _SCRIPT.format(ma=ma, mi=mi))
    code, out, err = _run_on_v2(bundle, tmp_path, preexec=_deny_bpf)
    assert code != 0
    assert "CONTAINER_RAN" not in out and "DISK_OPENED" not in out
    assert "device rules" in err and "Operation not permitted" in err, err
    assert not (bundle / "rootfs" / "disk").exists()
    assert not (mnt / top / "c1").exists()  # the cgroup it made is gone
