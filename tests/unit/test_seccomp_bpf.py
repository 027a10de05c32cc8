"""Seccomp profiles compiled once to BPF, cached by digest, and loaded without libseccomp."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from berth import linux
from berth.linux import seccomp

pytestmark = pytest.mark.skipif(not seccomp.available(), reason="libseccomp is not installed")

PROFILE = {
    "defaultAction": "SCMP_ACT_ALLOW",
    "architectures": ["SCMP_ARCH_X86_64"],
    "syscalls": [{"names": ["getcwd"], "action": "SCMP_ACT_ERRNO"}],
}


def test_cached_by_digest(tmp_path: Path) -> None:
    prog = seccomp.cached_bpf(PROFILE, str(tmp_path))
    assert prog and len(prog) % 8 == 0  # struct sock_filter: 8 bytes each
    assert [p.suffix for p in tmp_path.iterdir()] == [".bpf"]
    assert seccomp.cached_bpf(PROFILE, str(tmp_path)) == prog
    other = {**PROFILE, "syscalls": [{"names": ["getpid"], "action": "SCMP_ACT_ERRNO"}]}
    assert seccomp.cached_bpf(other, str(tmp_path)) != prog
    assert len(list(tmp_path.iterdir())) == 2


def test_loaded_program_filters() -> None:
    prog = seccomp.compile_bpf(PROFILE)
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            linux.set_no_new_privs()  # a filter needs it (or CAP_SYS_ADMIN)
            seccomp.load_bpf(prog)
            try:
                os.getcwd()
            except PermissionError:
                code = 0  # the filter's EPERM
        finally:
            os._exit(code)
    assert os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) == 0
