#!/usr/bin/env python3
"""Time `run --rm --network none IMAGE true` for berth and Docker, alternating, and print the
medians and the ratio (berth / Docker). A benchmark, not a test: run it by hand as root.

    .venv/bin/python bench/run_latency.py [-n 30]

It starts a private berthd (its own data root, socket and cgroup parent) and, where `dockerd`
is installed and no DOCKER_HOST is given, a private dockerd with no bridge, no iptables
changes and a loopback DNS; both get the same busybox image (from Debian's busybox-static)
and everything is removed at the end. Docker never pulls: `--pull never`.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def wait_for(cmd: list[str], env: dict[str, str], what: str, timeout: float = 30) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if subprocess.run(cmd, env=env, capture_output=True).returncode == 0:
            return
        time.sleep(0.1)
    raise SystemExit(f"{what} did not start")


@contextlib.contextmanager
def berthd(base: Path, rootfs: Path) -> Iterator[dict[str, str]]:
    sock = base / "run" / "berth.sock"
    env = {**os.environ, "BERTH_HOST": f"unix://{sock}"}
    log = open(base / "berthd.log", "wb")  # noqa: SIM115
    p = subprocess.Popen([str(BIN / "berthd"), "--data-root", str(base / "data"), "--exec-root",
                          str(base / "run"), "--cgroup-parent", "berth-bench", "--dns",
                          "127.0.0.1"], stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_for([str(BIN / "berth"), "version"], env, "berthd")
        subprocess.run([str(BIN / "berth"), "import", str(rootfs), "benchbox"], env=env,
                       check=True, capture_output=True)
        yield env
    finally:
        ids = subprocess.run([str(BIN / "berth"), "ps", "-aq"], env=env, capture_output=True,
                             text=True).stdout.split()
        if ids:
            subprocess.run([str(BIN / "berth"), "rm", "-f", *ids], env=env, capture_output=True)
        p.send_signal(signal.SIGTERM)
        p.wait(15)
        log.close()
        for d in Path("/sys/fs/cgroup").glob("*/berth-bench"):
            with contextlib.suppress(OSError):
                d.rmdir()


@contextlib.contextmanager
def dockerd(base: Path, rootfs: Path) -> Iterator[dict[str, str] | None]:
    docker = shutil.which("docker")
    if docker is None:
        yield None
        return
    if os.environ.get("DOCKER_HOST"):
        env = dict(os.environ)
        if subprocess.run([docker, "version"], env=env, capture_output=True).returncode != 0:
            yield None
            return
        subprocess.run([docker, "import", str(rootfs), "benchbox"], env=env, check=True,
                       capture_output=True)
        yield env
        return
    exe = shutil.which("dockerd")
    if exe is None:
        yield None
        return
    sock = base / "docker.sock"
    env = {**os.environ, "DOCKER_HOST": f"unix://{sock}", "DOCKER_CONFIG": str(base / "cfg")}
    log = open(base / "dockerd.log", "wb")  # noqa: SIM115
    p = subprocess.Popen([exe, "--data-root", str(base / "data"), "--exec-root",
                          str(base / "exec"), "-H", f"unix://{sock}", "--pidfile",
                          str(base / "dockerd.pid"), "--bridge=none", "--iptables=false",
                          "--ip-forward=false", "--dns", "127.0.0.1", "--containerd-namespace",
                          "berthbench", "--cgroup-parent", "docker-bench"],
                         stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_for([docker, "version"], env, "dockerd", 60)
        subprocess.run([docker, "import", str(rootfs), "benchbox"], env=env, check=True,
                       capture_output=True)
        yield env
    finally:
        ids = subprocess.run([docker, "ps", "-aq"], env=env, capture_output=True,
                             text=True).stdout.split()
        if ids:
            subprocess.run([docker, "rm", "-f", *ids], env=env, capture_output=True)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(p.pid, signal.SIGTERM)
        try:
            p.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()
        log.close()
        for d in Path("/sys/fs/cgroup").glob("*/docker-bench"):
            with contextlib.suppress(OSError):
                d.rmdir()
        subprocess.run(["umount", "-R", str(base / "exec")], capture_output=True)
        subprocess.run(["umount", "-R", str(base / "data")], capture_output=True)


def timed(cmd: list[str], env: dict[str, str]) -> float:
    t = time.perf_counter()
    r = subprocess.run(cmd, env=env, capture_output=True)
    dt = time.perf_counter() - t
    if r.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed: {r.stderr.decode()}")
    return dt


def summary(xs: list[float]) -> str:
    return f"{statistics.median(xs):.3f} s (min {min(xs):.3f}, max {max(xs):.3f})"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", type=int, default=30, help="runs per engine")
    args = ap.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("run as root")
    with tempfile.TemporaryDirectory(prefix="berth-bench-") as tmp:
        base = Path(tmp)
        rootfs = base / "busybox.tar"
        subprocess.run(["sh", str(ROOT / "scripts" / "mkrootfs.sh"), str(rootfs)], check=True)
        (base / "b").mkdir()
        (base / "d").mkdir()
        with berthd(base / "b", rootfs) as benv, dockerd(base / "d", rootfs) as denv:
            berth_cmd = [str(BIN / "berth"), "run", "--rm", "--network", "none", "benchbox",
                         "true"]
            docker = shutil.which("docker") or "docker"
            docker_cmd = [docker, "run", "--rm", "--network", "none", "--pull", "never",
                          "benchbox", "true"]
            # the docker CLI against berthd: the same client, the other engine
            dcli_berth_env = {**benv, "DOCKER_HOST": benv["BERTH_HOST"],
                              "DOCKER_CONFIG": str(base / "cfg")}
            for _ in range(3):  # warm-up
                timed(berth_cmd, benv)
                if denv:
                    timed(docker_cmd, denv)
            b: list[float] = []
            d: list[float] = []
            db: list[float] = []
            for _ in range(args.n):
                b.append(timed(berth_cmd, benv))
                if denv:
                    d.append(timed(docker_cmd, denv))
                if shutil.which("docker"):
                    db.append(timed(docker_cmd, dcli_berth_env))
            print(f"run --rm --network none IMAGE true, {args.n} runs each, alternating")
            print(f"  berth  (berth CLI -> berthd):   {summary(b)}")
            if db:
                print(f"  berth  (docker CLI -> berthd):  {summary(db)}")
            if d:
                print(f"  docker (docker CLI -> dockerd): {summary(d)}")
                print(f"  ratio berth/docker (medians):   "
                      f"{statistics.median(b) / statistics.median(d):.2f}")
            else:
                print("  docker: no Docker daemon here (install docker.io, or set DOCKER_HOST)")


if __name__ == "__main__":
    main()
