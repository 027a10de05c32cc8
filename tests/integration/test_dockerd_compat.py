"""Side by side with a real dockerd (Debian's docker.io), where one is installed: archives
from `docker save` load into berth, berth's `save` loads into Docker, and a container sees the
same things under both engines.

The private dockerd has its own data root, socket, containerd namespace and cgroup parent, no
bridge and no iptables changes; nothing is pulled (`--pull never`, images are imported)."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from .conftest import Daemon

pytestmark = pytest.mark.root


class Dockerd:
    def __init__(self, base: Path) -> None:
        self.base = base
        self.sock = base / "docker.sock"
        self.env = {**os.environ, "DOCKER_HOST": f"unix://{self.sock}",
                    "DOCKER_CONFIG": str(base / "cfg")}
        self.cgroup_parent = f"docker-compat-{os.getpid()}"
        self.proc: subprocess.Popen[bytes] | None = None

    def docker(self, *args: str) -> str:
        r = subprocess.run(["docker", *args], env=self.env, capture_output=True, text=True,
                           timeout=120)
        assert r.returncode == 0, f"docker {' '.join(args)}: {r.stderr}"
        return r.stdout

    def start(self) -> None:
        log = open(self.base / "dockerd.log", "wb")  # noqa: SIM115
        self.proc = subprocess.Popen(
            ["dockerd", "--data-root", str(self.base / "data"), "--exec-root",
             str(self.base / "exec"), "-H", f"unix://{self.sock}", "--pidfile",
             str(self.base / "dockerd.pid"), "--bridge=none", "--iptables=false",
             "--ip-forward=false", "--ip-masq=false", "--dns", "127.0.0.1",
             "--containerd-namespace", f"berthcompat{os.getpid()}",
             "--cgroup-parent", self.cgroup_parent],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        deadline = time.time() + 60
        while subprocess.run(["docker", "version"], env=self.env,
                             capture_output=True).returncode != 0:
            if time.time() > deadline or self.proc.poll() is not None:
                raise RuntimeError((self.base / "dockerd.log").read_text()[-3000:])
            time.sleep(0.2)

    def stop(self) -> None:
        with contextlib.suppress(Exception):
            ids = self.docker("ps", "-aq").split()
            if ids:
                self.docker("rm", "-f", *ids)
        if self.proc is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        for p in (self.base / "exec", self.base / "data"):
            subprocess.run(["umount", "-R", "-l", str(p)], capture_output=True)
        for d in Path("/sys/fs/cgroup").glob(f"*/{self.cgroup_parent}"):
            for sub in sorted(d.rglob("*"), key=lambda x: len(x.parts), reverse=True):
                if sub.is_dir():
                    with contextlib.suppress(OSError):
                        sub.rmdir()
            with contextlib.suppress(OSError):
                d.rmdir()
        shutil.rmtree(self.base, ignore_errors=True)


@pytest.fixture(scope="module")
def dockerd(tmp_path_factory: pytest.TempPathFactory, rootfs_tar: Path) -> Iterator[Dockerd]:
    if not shutil.which("dockerd") or not shutil.which("docker"):
        pytest.skip("no dockerd here to compare with (apt-get install docker.io)")
    d = Dockerd(tmp_path_factory.mktemp("dockerd"))
    try:
        d.start()
        d.docker("import", str(rootfs_tar), "busybox")
        yield d
    finally:
        d.stop()


def test_docker_save_loads_into_berth(dockerd: Dockerd, daemon: Daemon, tmp_path: Path,
                                      rootfs_tar: Path) -> None:
    dockerd.docker("import", "--change", 'CMD ["echo", "made-by-docker"]', str(rootfs_tar),
                   "fromdocker:1")
    out = tmp_path / "docker-saved.tar"
    dockerd.docker("save", "-o", str(out), "fromdocker:1")
    assert daemon.ok("load", "-i", str(out)).strip() == "Loaded image: fromdocker:1"
    assert daemon.ok("run", "--rm", "fromdocker:1").strip() == "made-by-docker"
    daemon.ok("rmi", "fromdocker:1")


def test_berth_save_loads_into_docker(dockerd: Dockerd, daemon: Daemon, tmp_path: Path,
                                      rootfs_tar: Path) -> None:
    daemon.ok("import", "-c", 'CMD ["echo", "made-by-berth"]', str(rootfs_tar), "fromberth:1")
    out = tmp_path / "berth-saved.tar"
    daemon.ok("save", "-o", str(out), "fromberth:1")
    assert "Loaded image: fromberth:1" in dockerd.docker("load", "-i", str(out))
    assert dockerd.docker("run", "--rm", "--network", "none", "--pull", "never",
                          "fromberth:1").strip() == "made-by-berth"
    daemon.ok("rmi", "fromberth:1")


@pytest.mark.parametrize("script", [
    "id", "id -u app; id app",
    "grep -E '^(CapInh|CapPrm|CapEff|CapBnd|CapAmb|NoNewPrivs)' /proc/self/status",
    "ls /dev | sort", "hostname | wc -c", "cat /proc/self/cgroup | wc -l",
    "ls /sys/class/net", "echo $PATH; echo $HOME",
    # the mount table, less what names paths on the host (the rootfs and /etc files), and
    # /proc/interrupts, which Docker masks since 25 (Debian's docker.io is older)
    "mount | grep -v -e ' on / ' -e ' on /etc/' -e /proc/interrupts | sed 's/,size=[0-9]*k//'",
    "ls -l /sys/fs/cgroup | cut -c1-10,43- | sort", "ulimit -a", "umask",
])
def test_a_container_sees_the_same(dockerd: Dockerd, daemon: Daemon, script: str) -> None:
    args = ["run", "--rm", "--network", "none", "busybox", "sh", "-c", script]
    theirs = dockerd.docker(args[0], "--pull", "never", *args[1:])
    assert daemon.ok(*args) == theirs
