"""Private engines for the benchmarks: a berthd and, where dockerd is installed, a dockerd, each
with its own data root, socket and cgroup parent, the same busybox image imported into both, and
everything removed at the end. Docker never pulls: the benchmarks use --pull never."""

from __future__ import annotations

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


def remove_cgroups_named(top: str) -> None:
    """The cgroup `top/...` that runtimes made for a bundle, in every hierarchy: a relative
    path sits under this process's own cgroup (memory/process_api/... here), at any depth."""
    for d in [p for p in Path("/sys/fs/cgroup").rglob(top) if p.is_dir()]:
        for sub in sorted(d.rglob("*"), key=lambda p: len(p.parts), reverse=True):
            if sub.is_dir():
                with contextlib.suppress(OSError):
                    sub.rmdir()
        with contextlib.suppress(OSError):
            d.rmdir()


def print_ratios(
    times: dict[tuple[str, str], list[float]], targets: list[tuple[str, float]]
) -> None:
    """One line per figure: berth's median, Docker's where it ran, their ratio, the target."""
    for what, target in targets:
        b = statistics.median(times[("berth", what)])
        line = f"{what}: berth {b:.2f} s"
        if ("docker", what) in times:
            d = statistics.median(times[("docker", what)])
            line += f", docker {d:.2f} s, ratio {b / d:.2f} (target <= {target})"
        print(line)


def wait_for(cmd: list[str], env: dict[str, str], what: str, timeout: float = 30) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if subprocess.run(cmd, env=env, capture_output=True).returncode == 0:
            return
        time.sleep(0.1)
    raise SystemExit(f"{what} did not start")


@contextlib.contextmanager
def berthd(
    base: Path,
    rootfs: Path,
    extra: tuple[str, ...] = (),
    name: str = "bench",
    bip: str = "10.198.0.1/24",
) -> Iterator[dict[str, str]]:
    sock = base / "run" / "berth.sock"
    env = {**os.environ, "BERTH_HOST": f"unix://{sock}"}
    log = open(base / "berthd.log", "wb")  # noqa: SIM115
    p = subprocess.Popen(
        [
            str(BIN / "berthd"),
            "--data-root",
            str(base / "data"),
            "--exec-root",
            str(base / "run"),
            "--cgroup-parent",
            f"berth-{name}",
            "--dns",
            "127.0.0.1",
            "--bridge",
            f"b{name}",
            "--bip",
            bip,
            "--ip-forward",
            "false",
            "--docker-hub",
            "false",
            *extra,
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    env["BENCH_PID"] = str(p.pid)
    env["BENCH_FORKSERVER"] = str(base / "run" / "forkserver.sock")
    try:
        wait_for([str(BIN / "berth"), "version"], env, "berthd")
        subprocess.run(
            [str(BIN / "berth"), "import", str(rootfs), "benchbox"],
            env=env,
            check=True,
            capture_output=True,
        )
        yield env
    finally:
        ids = subprocess.run(
            [str(BIN / "berth"), "ps", "-aq"], env=env, capture_output=True, text=True
        ).stdout.split()
        if ids:
            subprocess.run([str(BIN / "berth"), "rm", "-f", *ids], env=env, capture_output=True)
        p.send_signal(signal.SIGTERM)
        p.wait(15)
        log.close()
        for d in Path("/sys/fs/cgroup").glob(f"*/berth-{name}"):
            with contextlib.suppress(OSError):
                d.rmdir()


@contextlib.contextmanager
def dockerd(base: Path, rootfs: Path, bridge: bool = False) -> Iterator[dict[str, str] | None]:
    docker = shutil.which("docker")
    if docker is None:
        yield None
        return
    if os.environ.get("DOCKER_HOST"):
        env = dict(os.environ)
        if subprocess.run([docker, "version"], env=env, capture_output=True).returncode != 0:
            yield None
            return
        subprocess.run(
            [docker, "import", str(rootfs), "benchbox"], env=env, check=True, capture_output=True
        )
        yield env
        return
    exe = shutil.which("dockerd")
    if exe is None:
        yield None
        return
    sock = base / "docker.sock"
    env = {**os.environ, "DOCKER_HOST": f"unix://{sock}", "DOCKER_CONFIG": str(base / "cfg")}
    log = open(base / "dockerd.log", "wb")  # noqa: SIM115
    p = subprocess.Popen(
        [
            exe,
            "--data-root",
            str(base / "data"),
            "--exec-root",
            str(base / "exec"),
            "-H",
            f"unix://{sock}",
            "--pidfile",
            str(base / "dockerd.pid"),
            *(["--bip", "10.194.0.1/24"] if bridge else ["--bridge=none"]),
            "--iptables=false",
            "--ip-forward=false",
            "--dns",
            "127.0.0.1",
            "--containerd-namespace",
            "berthbench",
            "--cgroup-parent",
            "docker-bench",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    env["BENCH_PID"] = str(p.pid)
    try:
        wait_for([docker, "version"], env, "dockerd", 60)
        subprocess.run(
            [docker, "import", str(rootfs), "benchbox"], env=env, check=True, capture_output=True
        )
        yield env
    finally:
        ids = subprocess.run(
            [docker, "ps", "-aq"], env=env, capture_output=True, text=True
        ).stdout.split()
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
        if bridge:
            subprocess.run(["ip", "link", "del", "docker0"], capture_output=True)
        subprocess.run(["umount", "-R", str(base / "exec")], capture_output=True)
        subprocess.run(["umount", "-R", str(base / "data")], capture_output=True)


@contextlib.contextmanager
def engines(bridge: bool = False) -> Iterator[tuple[dict[str, str], dict[str, str] | None]]:
    """As root: a busybox image from Debian's busybox-static, a private berthd and (where one
    is installed) a private dockerd with it; yields their environments (Docker's or None)."""
    if os.geteuid() != 0:
        raise SystemExit("run as root")
    with tempfile.TemporaryDirectory(prefix="berth-bench-") as tmp:
        base = Path(tmp)
        rootfs = base / "busybox.tar"
        subprocess.run(["sh", str(ROOT / "scripts" / "mkrootfs.sh"), str(rootfs)], check=True)
        (base / "b").mkdir()
        (base / "d").mkdir()
        with berthd(base / "b", rootfs) as benv, dockerd(base / "d", rootfs, bridge=bridge) as denv:
            yield benv, denv


def timed(cmd: list[str], env: dict[str, str]) -> float:
    t = time.perf_counter()
    r = subprocess.run(cmd, env=env, capture_output=True)
    dt = time.perf_counter() - t
    if r.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed: {r.stderr.decode()}")
    return dt


def summary(xs: list[float]) -> str:
    return f"{statistics.median(xs):.3f} s (min {min(xs):.3f}, max {max(xs):.3f})"


def pss_kib(pids: list[int]) -> int:
    """Proportional set size of these processes, from smaps_rollup."""
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/smaps_rollup") as f:
                for line in f:
                    if line.startswith("Pss:"):
                        total += int(line.split()[1])
        except OSError:
            pass
    return total


def pids_matching(*needles: str) -> list[int]:
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/cmdline", "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if any(n in cmd for n in needles):
            out.append(int(d))
    return out
