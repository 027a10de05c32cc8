"""A private berthd per test session (own data root, exec root, socket, cgroup parent), with a
busybox image made from Debian's busybox-static; everything it made is removed at the end,
also when a test fails."""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

from berth import cgroups

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
pytestmark = pytest.mark.root


@pytest.fixture(scope="session")
def rootfs_tar(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("rootfs") / "busybox.tar"
    subprocess.run(["sh", str(ROOT / "scripts" / "mkrootfs.sh"), str(out)], check=True)
    return out


# the n-th daemon of a session: 10.(200 + n % 50).(this session's base + n // 50).0/24, so a
# session of any length never hands out one subnet twice, and two sessions at once (their
# pids differ) seldom meet
_daemons = itertools.count()


def _next_bip() -> str:
    n = next(_daemons)
    return f"10.{200 + n % 50}.{(os.getpid() % 200 + n // 50) % 256}.1/24"


class Daemon:
    def __init__(self, base: Path) -> None:
        tag = secrets.token_hex(3)
        # a bridge and subnet of its own: daemons in one session never share them
        self.bridge = f"bt{tag}"
        self.bip = _next_bip()
        self.base = base
        self.data_root = base / "data"
        self.exec_root = base / "run"
        self.sock = self.exec_root / "berth.sock"
        self.host = f"unix://{self.sock}"
        self.cgroup_parent = f"berth-test-{tag}"
        self.log = base / "berthd.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.env = {**os.environ, "BERTH_HOST": self.host, "DOCKER_HOST": self.host}

    def start(self, *extra: str, dns: str = "127.0.0.1") -> None:
        """Start berthd with this daemon's own paths, bridge and subnet, plus `extra` flags."""
        self.exec_root.mkdir(parents=True, exist_ok=True)
        cfg = self.base / "daemon.json"
        if not cfg.exists():
            cfg.write_text("{}")
        logf = open(self.log, "ab")  # noqa: SIM115 - owned by the process
        self.proc = subprocess.Popen(
            [
                str(BIN / "berthd"),
                "-H",
                self.host,
                "--data-root",
                str(self.data_root),
                "--exec-root",
                str(self.exec_root),
                "--cgroup-parent",
                self.cgroup_parent,
                "--bridge",
                self.bridge,
                "--bip",
                self.bip,
                "--dns",
                dns,
                "--log-level",
                "debug",
                # nothing a test does may reach Docker Hub: docker.io names fail fast
                "--docker-hub",
                "false",
                "--config-file",
                str(self.base / "daemon.json"),
                # BERTH_TEST_RUNTIME=runc runs the containers' tests with runc (scripts/test.sh):
                # a real runc is berthd's only where configured ("runc" names its own otherwise)
                "--default-runtime",
                os.environ.get("BERTH_TEST_RUNTIME", "berth"),
                *(
                    ["--add-runtime", "runc=runc"]
                    if os.environ.get("BERTH_TEST_RUNTIME") == "runc"
                    else []
                ),
                *extra,
            ],
            stdout=logf,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        logf.close()
        deadline = time.time() + 20
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("berthd exited:\n" + self.log.read_text())
            if self.berth("version").returncode == 0:
                return
            time.sleep(0.05)
        raise RuntimeError("berthd did not answer:\n" + self.log.read_text())

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                # a daemon that does not stop on SIGTERM is a bug (it once waited for every
                # running container to exit): fail, after cleaning up
                raise AssertionError(f"berthd did not stop within 10 s of signal {sig}") from None
        if sig == signal.SIGKILL:
            # the fork server dies with its parent (PDEATHSIG): give it a moment
            time.sleep(0.2)

    def berth(
        self,
        *args: str,
        input: bytes | None = None,  # noqa: A002
        timeout: float = 60,
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(BIN / "berth"), *args],
            env=self.env,
            capture_output=True,
            text=input is None,
            input=input,
            timeout=timeout,
        )

    def ok(self, *args: str) -> str:
        r = self.berth(*args)
        assert r.returncode == 0, f"berth {' '.join(args)} failed ({r.returncode}): {r.stderr}"
        return r.stdout

    def inspect(self, name: str) -> dict:  # type: ignore[type-arg]
        return json.loads(self.ok("inspect", name))[0]

    def cgroup_dirs(self) -> list[Path]:
        """This daemon's parent cgroup, where it exists: in every v1 hierarchy (and a hybrid
        layout's unified one), or the one directory of cgroup v2, as berth's cgroups find it."""
        return [Path(d) for d in cgroups.dirs(self.cgroup_parent) if os.path.isdir(d)]

    def _shims(self) -> list[int]:
        """This daemon's shim processes (fork servers, shim hosts, monitors: all run as
        `berth.shim.forkserver EXEC_ROOT/forkserver.sock`)."""
        mark = f"{self.exec_root}/forkserver.sock".encode()
        pids = []
        for name in os.listdir("/proc"):
            if name.isdigit():
                with contextlib.suppress(OSError):
                    with open(f"/proc/{name}/cmdline", "rb") as f:
                        if mark in f.read().split(b"\0"):
                            pids.append(int(name))
        return pids

    def _end_shims(self) -> None:
        """With the daemon stopped and its containers gone, its shim hosts end on their own
        (tests/integration/test_shim_host.py checks it); one that does not (a host that lost
        track of a start, say) is killed here, so no test leaves one running."""
        deadline = time.monotonic() + 10
        while (left := self._shims()) and time.monotonic() < deadline:
            time.sleep(0.1)
        for pid in left:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        if left:
            warnings.warn(
                f"berthd's shim processes {left} outlived it and its containers: killed",
                stacklevel=1,
            )

    def cleanup(self) -> None:
        try:
            if self.proc and self.proc.poll() is None:
                ids = self.berth("ps", "-aq").stdout.split()
                if ids:
                    self.berth("rm", "-f", *ids)
        except subprocess.TimeoutExpired:
            pass  # a daemon that hangs is stopped all the same, below
        try:
            self.stop()  # raises if berthd would not stop: after the sweep below
        finally:
            # containers outlive the daemon (live restore): kill whatever is left in our cgroups
            for d in self.cgroup_dirs():
                for procs in d.rglob("cgroup.procs"):
                    for pid in procs.read_text().split():
                        with contextlib.suppress(ProcessLookupError):
                            os.kill(int(pid), signal.SIGKILL)
            time.sleep(0.1)
            for d in self.cgroup_dirs():
                remove_cgroup_tree(d)
            self._end_shims()
            # a daemon that could not tear its network down (killed) leaves it: remove it here
            subprocess.run(["ip", "link", "del", self.bridge], capture_output=True)
            chain = f"BERTH-{self.bridge[:12]}"
            for binary, parent, rule in (
                ("iptables", "PREROUTING", []),
                ("ip6tables", "PREROUTING", []),
                ("iptables", "OUTPUT", ["!", "-d", "127.0.0.0/8"]),
                ("ip6tables", "OUTPUT", ["!", "-d", "::1/128"]),
            ):
                with contextlib.suppress(FileNotFoundError):
                    subprocess.run(
                        [
                            binary,
                            "-w",
                            "-t",
                            "nat",
                            "-D",
                            parent,
                            "-m",
                            "addrtype",
                            "--dst-type",
                            "LOCAL",
                            *rule,
                            "-j",
                            f"{chain}-DNAT",
                        ],
                        capture_output=True,
                    )
            # ip6tables holds the same chains once an IPv6 network was made (DNAT once a port
            # was published over IPv6)
            for binary in ("iptables", "ip6tables"):
                for table, chains in (
                    ("filter", ("FWD", "ISO1", "ISO2")),
                    ("nat", ("POST", "DNAT")),
                ):
                    parent = "FORWARD" if table == "filter" else "POSTROUTING"
                    with contextlib.suppress(FileNotFoundError):
                        subprocess.run(
                            [binary, "-w", "-t", table, "-D", parent, "-j", f"{chain}-{chains[0]}"],
                            capture_output=True,
                        )
                        for c in chains:
                            subprocess.run(
                                [binary, "-w", "-t", table, "-F", f"{chain}-{c}"],
                                capture_output=True,
                            )
                            subprocess.run(
                                [binary, "-w", "-t", table, "-X", f"{chain}-{c}"],
                                capture_output=True,
                            )
            shutil.rmtree(self.base, ignore_errors=True)


@contextlib.contextmanager
def console_socket(path: str) -> Iterator[list[bytes]]:
    """A --console-socket at `path`: receives one pty master (as runc sends it) and reads it
    until the container's end is gone. The list it yields holds what was read, once the
    `with` block has ended (the reader is joined there)."""
    import socket
    import threading

    got: list[bytes] = []
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(path)
    srv.listen(1)

    def receive() -> None:
        conn, _ = srv.accept()
        _, fds, _, _ = socket.recv_fds(conn, 1024, 1)
        conn.close()
        data = b""
        while True:
            try:
                chunk = os.read(fds[0], 4096)
            except OSError:  # EIO: the last holder of the pty's other end is gone
                break
            if not chunk:
                break
            data += chunk
        os.close(fds[0])
        got.append(data)

    t = threading.Thread(target=receive, daemon=True)
    t.start()
    try:
        yield got
        t.join(10)
    finally:
        srv.close()


def remove_cgroups_named(top: str) -> None:
    """A runtime test's cgroup `top/...`, in every hierarchy: it sits under this process's own
    cgroup wherever that is (relative paths), so look everywhere. What still runs in it is
    killed first, so a failed test leaves nothing."""
    for d in _cgroups_named(top):
        for sub, _, _ in os.walk(d):
            with contextlib.suppress(OSError):
                for pid in Path(sub, "cgroup.procs").read_text().split():
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(int(pid), signal.SIGKILL)
    time.sleep(0.05)
    for d in _cgroups_named(top):
        remove_cgroup_tree(d)


def _cgroups_named(top: str) -> list[Path]:
    """Every cgroup directory called `top`. With os.walk, which passes over a directory that
    another test removes meanwhile (Path.rglob raised then)."""
    found = []
    for root, dirs, _ in os.walk("/sys/fs/cgroup"):
        if top in dirs:
            found.append(Path(root, top))
            dirs.remove(top)
    return found


def remove_cgroup_tree(d: Path) -> None:
    """rmdir a cgroup and every cgroup below it, deepest first (what is busy stays)."""
    subs = [Path(root) for root, _, _ in os.walk(d)]
    for sub in sorted(subs, key=lambda p: len(p.parts), reverse=True):
        with contextlib.suppress(OSError):
            sub.rmdir()
    with contextlib.suppress(OSError):
        d.rmdir()


def _uplinks(family: str = "-4") -> list[str]:
    out = subprocess.run(
        ["ip", family, "-o", "route", "show", "default"], capture_output=True, text=True
    ).stdout
    return sorted(
        {w[w.index("dev") + 1] for w in (line.split() for line in out.splitlines()) if "dev" in w}
    )


@pytest.fixture(scope="session", autouse=True)
def no_traffic_leaves_the_machine() -> Iterator[None]:
    """While containers run in tests, nothing is forwarded out of the machine's uplinks (a rule
    in mangle FORWARD, which comes before any filter rule a daemon adds; for IPv6 too, which a
    daemon forwards once it has an IPv6 network); the host's forwarding settings are put back
    at the end."""
    if os.geteuid() != 0 or not shutil.which("iptables"):
        yield
        return
    settings = [
        Path("/proc/sys/net/ipv4/ip_forward"),
        Path("/proc/sys/net/ipv6/conf/all/forwarding"),
        Path("/proc/sys/net/ipv6/conf/default/forwarding"),
    ]
    before = {p: p.read_text() for p in settings if p.exists()}
    rules = [
        (binary, ["FORWARD", "-o", dev, "-m", "comment", "--comment", "berth-tests", "-j", "DROP"])
        for binary, family in (("iptables", "-4"), ("ip6tables", "-6"))
        if shutil.which(binary)
        for dev in _uplinks(family)
    ]
    for binary, r in rules:
        subprocess.run([binary, "-w", "-t", "mangle", "-I", *r], check=True)
    try:
        yield
    finally:
        for binary, r in rules:
            subprocess.run([binary, "-w", "-t", "mangle", "-D", *r], capture_output=True)
        for p, value in before.items():
            p.write_text(value)


@contextlib.contextmanager
def running_daemon(base: Path, rootfs: Path, *extra: str) -> Iterator[Daemon]:
    if os.geteuid() != 0:
        pytest.skip("needs root (namespaces, mounts, cgroups)")
    d = Daemon(base)
    try:
        d.start(*extra)
        d.ok("import", str(rootfs), "busybox")
        yield d
    finally:
        d.cleanup()


@pytest.fixture(scope="session")
def daemon(tmp_path_factory: pytest.TempPathFactory, rootfs_tar: Path) -> Iterator[Daemon]:
    with running_daemon(tmp_path_factory.mktemp("berthd"), rootfs_tar) as d:
        yield d


@pytest.fixture
def private_daemon(tmp_path: Path, rootfs_tar: Path) -> Iterator[Daemon]:
    """A daemon of the test's own, for tests that kill or restart it."""
    with running_daemon(tmp_path / "berthd", rootfs_tar) as d:
        yield d
