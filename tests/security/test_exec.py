"""exec: what a container's own processes can reach of an exec'd process, and what an exec
may gain.

- An exec'd process must be born into the container's pid namespace only once it is in the
  container's mount namespace (its root the container's), user and capabilities set: a
  process of the container with CAP_SYS_PTRACE that watches for new pids and reads
  /proc/PID/root/... must never reach the host's /.
- `--security-opt no-new-privileges` (bare, `:true`, `=true`) holds for execs as for the
  init: NoNewPrivs 1, a setuid-root binary run by another user stays unprivileged, and a
  root exec keeps the init's capabilities."""

from __future__ import annotations

import contextlib
import os
import platform
import secrets
import shutil
import struct
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.security.conftest import Daemon

pytestmark = pytest.mark.root

# PID 1 of the container: for every pid of its namespace, is the host's marker reachable
# through /proc/PID/root, and is that root's listing the container's own? All builtins (no
# fork per check), so that it races the execs as tightly as a shell can.
_WATCHER = r"""
: > /seen
echo ready > /ready
own=" $(cd / && echo *) "
while :; do
  for d in /proc/[0-9]*; do
    if [ -e "$d/root$MARKER" ]; then
      read -r line < "$d/root$MARKER"
      echo "MARKER $d $line" >> /seen
    fi
    for f in "$d"/root/*; do
      [ -e "$f" ] || continue
      case "$own" in
        *" ${f##*/} "*) ;;
        *) echo "ROOT $d ${f##*/}" >> /seen ;;
      esac
    done
  done
done
"""


@pytest.fixture
def host_marker() -> Iterator[tuple[str, str]]:
    """A file only the host has: (its path, its content)."""
    d = tempfile.mkdtemp(prefix="berth-sec-", dir="/tmp")
    token = secrets.token_hex(16)
    try:
        path = os.path.join(d, "marker")
        with open(path, "w") as f:
            f.write(token + "\n")
        yield path, token
    finally:
        shutil.rmtree(d, ignore_errors=True)


def _kill_tree(p: subprocess.Popen[bytes]) -> None:
    """nsenter and the child it forked into the pid namespace."""
    with contextlib.suppress(OSError):
        for child in Path(f"/proc/{p.pid}/task/{p.pid}/children").read_text().split():
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(child), 9)
    p.kill()
    p.wait()


def _seen(daemon: Daemon, cid: str) -> str:
    return daemon.ok("exec", cid, "cat", "/seen")


def _wait_for(cond: Callable[[], bool], what: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def test_a_new_exec_never_shows_the_host_root_to_a_ptracer(
    daemon: Daemon, host_marker: tuple[str, str]
) -> None:
    marker, token = host_marker
    cid = daemon.ok(
        "run",
        "-d",
        "--cap-add",
        "SYS_PTRACE",
        "-e",
        f"MARKER={marker}",
        "busybox",
        "sh",
        "-c",
        _WATCHER,
    ).strip()
    nsenter = None
    try:
        _wait_for(
            lambda: daemon.berth("exec", cid, "test", "-e", "/ready").returncode == 0, "the watcher"
        )
        # the watcher works: a process of the container's pid namespace still in the host's
        # mount namespace (what an exec was, for a while) is seen at once
        init = daemon.inspect(cid)["State"]["Pid"]
        if shutil.which("nsenter"):
            nsenter = subprocess.Popen(["nsenter", "-t", str(init), "-p", "--", "sleep", "30"])
            _wait_for(lambda: token in _seen(daemon, cid), "the watcher to see the control")
            _kill_tree(nsenter)
            nsenter = None
            time.sleep(0.5)
            daemon.ok("exec", cid, "sh", "-c", ": > /seen")

        # many execs, several at a time, in the ways a user starts them
        variants = [
            ["true"],
            ["-u", "1000", "true"],
            ["-w", "/tmp", "true"],
            ["-t", "true"],
            ["--privileged", "true"],
        ]

        def one(i: int) -> int:
            return daemon.berth(
                "exec", *variants[i % len(variants)][:-1], cid, variants[i % len(variants)][-1]
            ).returncode

        with ThreadPoolExecutor(4) as pool:
            codes = list(pool.map(one, range(150)))
        assert codes == [0] * len(codes)
        seen = _seen(daemon, cid)
        assert token not in seen, f"the container read the host's {marker}:\n{seen}"
        assert seen == "", f"the container saw the host's / through /proc/PID/root:\n{seen}"
    finally:
        if nsenter is not None:
            _kill_tree(nsenter)
        daemon.berth("rm", "-f", cid)


def _euid_elf() -> bytes:
    """A static x86-64 program whose exit code is its effective uid (mod 256): 0 if a
    setuid-root bit took effect."""
    code = bytes(
        [
            0xB8,
            107,
            0,
            0,
            0,
            0x0F,
            0x05,  # mov eax, SYS_geteuid; syscall
            0x89,
            0xC7,  # mov edi, eax
            0xB8,
            60,
            0,
            0,
            0,
            0x0F,
            0x05,
        ]
    )  # mov eax, SYS_exit; syscall
    base, size = 0x400000, 64 + 56 + len(code)
    ehdr = struct.pack(
        "<16sHHIQQQIHHHHHH",
        b"\x7fELF\x02\x01\x01" + bytes(9),
        2,
        0x3E,
        1,
        base + 120,
        64,
        0,
        0,
        64,
        56,
        1,
        0,
        0,
        0,
    )
    phdr = struct.pack("<IIQQQQQQ", 1, 5, 0, base, base, size, size, 0x1000)
    return ehdr + phdr + code


def _status(daemon: Daemon, cid: str, *args: str, pid: str = "self") -> dict[str, str]:
    out = daemon.ok("exec", *args, cid, "cat", f"/proc/{pid}/status")
    return dict(line.split(":\t", 1) for line in out.splitlines() if ":\t" in line)


@contextlib.contextmanager
def _container(daemon: Daemon, *opts: str) -> Iterator[str]:
    cid = daemon.ok("run", "-d", *opts, "busybox", "sleep", "600").strip()
    try:
        yield cid
    finally:
        daemon.berth("rm", "-f", cid)


def _install_setuid_probe(daemon: Daemon, cid: str) -> None:
    r = daemon.berth(
        "exec", "-i", cid, "sh", "-c", "cat > /euid && chmod 4755 /euid", input=_euid_elf()
    )
    assert r.returncode == 0, r.stderr


@pytest.mark.parametrize(
    "spelling", ["no-new-privileges", "no-new-privileges:true", "no-new-privileges=true"]
)
def test_no_new_privileges_holds_for_execs(daemon: Daemon, spelling: str) -> None:
    with _container(daemon, "--security-opt", spelling) as cid:
        init = _status(daemon, cid, pid="1")
        assert init["NoNewPrivs"].strip() == "1"
        root = _status(daemon, cid)
        assert root["NoNewPrivs"].strip() == "1"
        # the bare form once left a root exec with no capability at all
        assert root["CapEff"] == init["CapEff"]
        assert root["CapBnd"] == init["CapBnd"]
        assert int(root["CapEff"], 16) != 0
        assert _status(daemon, cid, "-u", "1000")["NoNewPrivs"].strip() == "1"
        if platform.machine() == "x86_64":
            _install_setuid_probe(daemon, cid)
            r = daemon.berth("exec", "-u", "1000", cid, "/euid")
            assert r.returncode == 1000 % 256, f"a setuid-root binary gave euid 0 ({r})"


@pytest.mark.parametrize("spelling", ["no-new-privileges:false", "no-new-privileges=false"])
def test_no_new_privileges_false_is_off(daemon: Daemon, spelling: str) -> None:
    with _container(daemon, "--security-opt", spelling) as cid:
        assert _status(daemon, cid, pid="1")["NoNewPrivs"].strip() == "0"
        assert _status(daemon, cid)["NoNewPrivs"].strip() == "0"
        if platform.machine() == "x86_64":
            # the probe works: without no_new_privs the setuid bit takes effect
            _install_setuid_probe(daemon, cid)
            assert daemon.berth("exec", "-u", "1000", cid, "/euid").returncode == 0


def test_a_bad_no_new_privileges_value_fails_the_create(daemon: Daemon) -> None:
    r = daemon.berth("create", "--security-opt", "no-new-privileges:maybe", "busybox", "true")
    assert r.returncode != 0
    assert 'invalid --security-opt 2: "no-new-privileges:maybe"' in r.stderr


def test_setuid_probe_is_a_valid_program(tmp_path: Path) -> None:
    if platform.machine() != "x86_64":
        pytest.skip("the probe is x86-64 code")
    p = tmp_path / "euid"
    p.write_bytes(_euid_elf())
    p.chmod(0o755)
    assert subprocess.run([str(p)]).returncode == os.geteuid() % 256


def test_an_exec_joins_the_cgroup_namespace(daemon: Daemon) -> None:
    """In a container with a cgroup namespace of its own, an exec sees its cgroups from the
    container's root, not the host's paths."""
    with _container(daemon, "--cgroupns", "private") as cid:
        mine = daemon.ok("exec", cid, "readlink", "/proc/self/ns/cgroup").strip()
        assert mine == daemon.ok("exec", cid, "readlink", "/proc/1/ns/cgroup").strip()
        host = os.readlink("/proc/self/ns/cgroup")
        assert mine != host
        lines = daemon.ok("exec", cid, "cat", "/proc/self/cgroup").splitlines()
        assert lines and all(line.endswith(":/") for line in lines), lines
