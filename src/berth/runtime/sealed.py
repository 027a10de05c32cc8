"""Running from a sealed copy of the interpreter (CVE-2019-5736, the way runc answers it).

Imports `memfd` (the sealed copy itself, shared with berthd). A process that enters a
container runs from a read-only, sealed in-memory copy of the executable: a container that
reaches its /proc/PID/exe cannot write through it to the host's interpreter. Or, where nothing of the container can reach the process
before it execs (`berth-runtime run`, see cli._fast_run), its program is exec'd through a
sealed trampoline instead.
"""

from __future__ import annotations

import fcntl
import os
import struct
import sys

# the sealed copy itself is a leaf's, which berthd imports to start the fork server from one
from berth.memfd import F_ADD_SEALS, F_GET_SEALS, SEALS, memfd_exec, sealed_copy

# set by the second interpreter's own code (reexec_sealed): it never re-executes again, even
# where /proc/self/exe cannot be checked; nothing outside the process can set it
REEXECUTED = False


# The trampoline: a static ELF of a few instructions, `execve(argv[0], argv + 1, envp)`, then,
# if that failed, exit 127 for ENOENT and 126 otherwise (Docker's codes); with fewer than two
# arguments, exit 126. A container's init that
# runs the host's interpreter (not sealed: `berth-runtime run`, see cli.py) execs its program
# through it, so that when the kernel resolves the program's interpreter, `#!/proc/self/exe`
# included, /proc/self/exe is this sealed in-memory file and not the host's interpreter. runc
# 1.2 shipped the same idea as runc-dmz. Machine code per architecture (x86-64, and aarch64,
# assembled with GNU as and tried under qemu-aarch64); None elsewhere.
_TRAMPOLINE_CODE = {
    "x86_64": (
        62,
        bytes.fromhex(
            "48833c2402"  # cmp qword [rsp], 2      argc: a path and a program's argv[0]
            "7c24"  # jl fail                 (what `#!/proc/self/exe` ends in)
            "488b7c2408"  # mov rdi, [rsp+8]        path: argv[0]
            "488d742410"  # lea rsi, [rsp+16]       argv + 1
            "488b0424"  # mov rax, [rsp]          argc
            "488d54c410"  # lea rdx, [rsp+rax*8+16] envp
            "b83b000000"  # mov eax, 59             execve
            "0f05"  # syscall
            "bf7f000000"  # mov edi, 127
            "83f8fe"  # cmp eax, -ENOENT
            "7405"  # je exit
            "bf7e000000"  # fail: mov edi, 126
            "b8e7000000"  # exit: mov eax, 231      exit_group
            "0f05"
        ),
    ),  # syscall
    "aarch64": (
        183,
        bytes.fromhex(
            "e30340f9"  # ldr x3, [sp]            argc
            "7f0800f1"  # cmp x3, #2
            "4b010054"  # b.lt fail
            "e00740f9"  # ldr x0, [sp, #8]        path: argv[0]
            "e1430091"  # add x1, sp, #16         argv + 1
            "e26f238b"  # add x2, sp, x3, lsl #3
            "42400091"  # add x2, x2, #16         envp
            "a81b80d2"  # mov x8, #221            execve
            "010000d4"  # svc #0
            "e90f80d2"  # mov x9, #127
            "1f0800b1"  # cmn x0, #2              -ENOENT?
            "40000054"  # b.eq out
            "c90f80d2"  # fail: mov x9, #126
            "e00309aa"  # out: mov x0, x9
            "c80b80d2"  # mov x8, #94             exit_group
            "010000d4"
        ),
    ),  # svc #0
}
_LOAD_ADDR = 0x400000


def trampoline_elf(machine: str | None = None) -> bytes | None:
    """The trampoline as an ELF file for `machine` (default: this one), or None."""
    entry = _TRAMPOLINE_CODE.get(machine or os.uname().machine)
    if entry is None:
        return None
    e_machine, code = entry
    size = 64 + 56 + len(code)
    header = struct.pack(
        "<4sBBBB8sHHIQQQIHHHHHH",
        b"\x7fELF",
        2,
        1,
        1,
        0,
        b"",
        2,
        e_machine,
        1,
        _LOAD_ADDR + 120,
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
    phdr = struct.pack("<IIQQQQQQ", 1, 5, 0, _LOAD_ADDR, _LOAD_ADDR, size, size, 0x1000)
    return header + phdr + code


def trampoline() -> int | None:
    """The trampoline in a sealed memfd (close-on-exec: exec it with os.execve(fd, ...)), or
    None on an architecture it has no code for."""
    elf = trampoline_elf()
    if elf is None:
        return None
    fd = memfd_exec("berth-exec", os.MFD_CLOEXEC)
    try:
        os.write(fd, elf)
        os.fchmod(fd, 0o555)
        fcntl.fcntl(fd, F_ADD_SEALS, SEALS)
    except BaseException:
        os.close(fd)
        raise
    return fd


def exe_is_sealed() -> bool:
    try:
        fd = os.open("/proc/self/exe", os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        return fcntl.fcntl(fd, F_GET_SEALS) & SEALS == SEALS
    except OSError:
        return False
    finally:
        os.close(fd)


def reexec_sealed(module: str, argv: list[str]) -> None:
    """Run `module.main()` with `argv` again from a sealed copy, unless this process already
    does; returns only in the sealed process.

    The second interpreter starts isolated and without `site` (-I -S), with only berth's own
    directory on its path: about 3 ms less than a full start, and no runpy (`-m`)."""
    if REEXECUTED or exe_is_sealed():
        return
    fd = sealed_copy(os.path.realpath(sys.executable))
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    code = (
        f"import sys; sys.path[:0] = [{root!r}]; import {__name__} as s; "
        f"s.REEXECUTED = True; from {module} import main; main()"
    )
    os.execve(
        f"/proc/self/fd/{fd}", [sys.executable, "-I", "-S", "-c", code, *argv], dict(os.environ)
    )


__all__ = ["sealed_copy", "trampoline", "trampoline_elf", "exe_is_sealed", "reexec_sealed"]
