"""The sealed exec trampoline (runtime/sealed.py): a static ELF that runs `argv[0]` with the
rest of its arguments and its environment, and fails with Docker's exit codes."""

from __future__ import annotations

import fcntl
import os
import platform
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from berth.runtime import sealed

pytestmark = pytest.mark.skipif(
    sealed.trampoline_elf() is None, reason=f"no trampoline for {platform.machine()}"
)


def _run(argv: list[str], env: dict[str, str]) -> tuple[int, str]:
    first = sealed.trampoline()
    assert first is not None
    fd = fcntl.fcntl(first, fcntl.F_DUPFD_CLOEXEC, 300)  # a number nothing else holds
    os.close(first)
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.dup2(w, 1)
        os.execve(fd, argv, env)
    os.close(w)
    os.close(fd)
    with os.fdopen(r) as f:
        out = f.read()
    return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]), out


def test_the_file_is_a_small_static_elf() -> None:
    elf = sealed.trampoline_elf("x86_64")
    assert elf is not None and elf[:4] == b"\x7fELF" and len(elf) < 256
    e_type, e_machine = struct.unpack_from("<HH", elf, 16)
    assert (e_type, e_machine) == (2, 62)  # ET_EXEC, x86-64: no interpreter to load
    assert sealed.trampoline_elf("no-such-machine") is None


def test_it_is_sealed() -> None:
    fd = sealed.trampoline()
    assert fd is not None
    try:
        assert fcntl.fcntl(fd, 1034) & 0b1111 == 0b1111  # F_GET_SEALS: seal, shrink, grow, write
        assert fcntl.fcntl(fd, fcntl.F_GETFD) & fcntl.FD_CLOEXEC
        with pytest.raises(OSError):
            os.write(fd, b"x")
    finally:
        os.close(fd)


def test_runs_the_path_with_argv_and_env() -> None:
    code, out = _run(
        ["/bin/sh", "a-name", "-c", 'echo "$0 $X"; ls /proc/self/fd'],
        {"X": "42", "PATH": "/bin:/usr/bin"},
    )
    assert code == 0
    lines = out.split()
    assert lines[:2] == ["a-name", "42"]
    # the trampoline's own descriptor went with its exec
    assert all(int(x) < 300 for x in lines[2:])


def test_exit_codes(tmp_path: Path) -> None:
    assert _run(["/nonexistent", "x"], {})[0] == 127
    plain = tmp_path / "plain"
    plain.write_text("not a program\n")
    assert _run([str(plain), "x"], {})[0] == 126  # EACCES
    assert _run(["/bin/true"], {})[0] == 126  # no argv[0] for the program


def test_a_script_naming_proc_self_exe_finds_only_the_trampoline(tmp_path: Path) -> None:
    """`#!/proc/self/exe` (CVE-2019-5736's way back to the runtime's binary) runs the
    trampoline again, which runs out of arguments: it never reaches the caller's
    interpreter, which would run this file as Python and create the marker."""
    marker = tmp_path / "marker"
    script = tmp_path / "evil"
    script.write_text(f"#!/proc/self/exe\nopen({str(marker)!r}, 'w').write('x')\n")
    script.chmod(0o755)
    code, _ = _run([str(script), "evil", "more", "args"], {})
    assert code == 126
    assert not marker.exists()


@pytest.mark.skipif(
    os.geteuid() != 0
    or not os.path.exists("/proc/sys/vm/memfd_noexec")
    or not shutil.which("unshare"),
    reason="needs root, Linux 6.3's vm.memfd_noexec, and unshare(1)",
)
def test_executable_where_memfds_are_not_by_default() -> None:
    """vm.memfd_noexec = 1 makes memfds non-executable unless asked (MFD_EXEC). Set in a pid
    namespace of its own (the sysctl is per pid namespace), so the host keeps its value."""
    code = (
        "import os, sys\n"
        f"sys.path[:0] = [{str(Path(sealed.__file__).parents[2])!r}]\n"
        "from berth.runtime import sealed\n"
        "fd = sealed.trampoline()\n"
        "pid = os.fork()\n"
        "if pid == 0:\n"
        "    os.execve(fd, ['/bin/sh', 'sh', '-c', 'exit 7'], {})\n"
        "print(os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]))\n"
        "os.close(sealed.sealed_copy('/bin/true'))\n"
    )
    r = subprocess.run(
        [
            "unshare",
            "--pid",
            "--fork",
            "--mount-proc",
            "sh",
            "-c",
            'echo 1 > /proc/sys/vm/memfd_noexec && exec "$0" -c "$1"',
            sys.executable,
            code,
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert r.returncode == 0 and r.stdout.strip() == "7", r.stderr


@pytest.mark.skipif(not shutil.which("qemu-aarch64"), reason="needs qemu-user (qemu-aarch64)")
def test_the_aarch64_code_under_qemu(tmp_path: Path) -> None:
    """The aarch64 trampoline, run by qemu-user on this machine: qemu passes the execve it
    makes to the kernel, which runs this machine's programs natively."""
    elf = sealed.trampoline_elf("aarch64")
    assert elf is not None and struct.unpack_from("<H", elf, 18)[0] == 183  # EM_AARCH64
    exe = tmp_path / "trampoline"
    exe.write_bytes(elf)
    exe.chmod(0o755)

    def run(argv: list[str]) -> subprocess.CompletedProcess[str]:
        # -0: the program's argv[0] (qemu would pass the trampoline's path)
        return subprocess.run(
            ["qemu-aarch64", "-0", argv[0], str(exe), *argv[1:]],
            env={"X": "42"},
            capture_output=True,
            text=True,
            timeout=30,
        )

    r = run(["/bin/sh", "a-name", "-c", 'echo "$0 $X"'])
    assert r.returncode == 0 and r.stdout == "a-name 42\n", r.stderr
    assert run(["/nonexistent", "x"]).returncode == 127
    plain = tmp_path / "plain"
    plain.write_text("not a program\n")
    assert run([str(plain), "x"]).returncode == 126
    assert run(["/bin/true"]).returncode == 126
