"""The pod's holder under its seccomp filter (review row L8): it still says ready, holds, reaps
and stops on SIGTERM (alone and as the PID 1 of a pod's PID namespace), with the filter loaded;
and the filter refuses what a process that ptraces the holder would make it call."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from berth import linux
from berth.cri import pause
from berth.linux import seccomp

pytestmark = pytest.mark.skipif(not seccomp.available(), reason="libseccomp is not installed")


def _in_filtered_child(body: str) -> int:
    """Run `body` (statements; `code` = 0 is success) in a child under the holder's filter."""
    prog = pause.hold_filter()
    pid = os.fork()
    if pid == 0:
        code = 99
        try:
            linux.set_no_new_privs()
            seccomp.load_bpf(prog)
            scope = {"os": os, "signal": signal, "code": 1}
            exec(body, scope)
            code = int(scope["code"])  # type: ignore[call-overload]
        finally:
            os._exit(code)
    return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])


@pytest.mark.parametrize(
    "call",
    [
        "os.open('/', os.O_RDONLY)",  # openat: the host's files, were any in reach
        "os.getcwd()",
        "os.fork()",  # clone
        "os.kill(1, 0)",
        "__import__('socket').socket()",
        "os.execv('/bin/true', ['true'])",
        "os.setuid(0)",
        "os.unshare(os.CLONE_NEWNS) if hasattr(os, 'unshare') else os.chdir('/')",
    ],
)
def test_the_filter_refuses_what_holding_does_not_need(call: str) -> None:
    body = f"try:\n    {call}\nexcept PermissionError:\n    code = 0\n"
    assert _in_filtered_child(body) == 0, call


def test_the_filter_lets_the_holder_wait_reap_write_and_exit() -> None:
    r, w = os.pipe()
    try:
        body = (
            f"os.write({w}, b'x')\n"
            "os.dup2(1, 1)\n"
            "signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGUSR1})\n"
            "got = signal.sigwait({signal.SIGUSR1})\n"
            "try:\n    os.waitpid(-1, os.WNOHANG)\nexcept ChildProcessError:\n    pass\n"
            "code = 0 if got == signal.SIGUSR1 else 1\n"
        )
        # blocked in the child from its start (a signal sent before its sigwait waits for it)
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGUSR1})
        pid = os.fork()
        if pid:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGUSR1})
        else:
            code = 99
            try:
                linux.set_no_new_privs()
                seccomp.load_bpf(pause.hold_filter())
                scope = {"os": os, "signal": signal, "code": 1}
                exec(body, scope)
                code = int(scope["code"])  # type: ignore[call-overload]
            finally:
                os._exit(code)
        assert os.read(r, 1) == b"x"
        os.kill(pid, signal.SIGUSR1)
        assert os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) == 0
    finally:
        os.close(r)
        os.close(w)


def _status(pid: int) -> dict[str, str]:
    with open(f"/proc/{pid}/status") as f:
        return {k: v.strip() for k, _, v in (ln.partition(":") for ln in f)}


def _holder(tmp_path: Path, ask: dict[str, object]) -> tuple[subprocess.Popen[str], str]:
    p = subprocess.Popen(
        pause.argv(str(tmp_path)),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert p.stdin is not None and p.stdout is not None
    p.stdin.write(json.dumps(ask) + "\n")
    p.stdin.flush()
    return p, p.stdout.readline().strip()


def _end(p: subprocess.Popen[str]) -> None:
    if p.poll() is None:
        p.kill()
        p.wait()
    for f in (p.stdin, p.stdout):
        if f is not None:
            f.close()


def _gone(pid: int) -> bool:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            if _status(pid)["State"].startswith(("Z", "X")):
                return True
        except FileNotFoundError:
            return True
        time.sleep(0.02)
    return False


@pytest.mark.skipif(os.geteuid() != 0, reason="the holder's confinement needs root")
@pytest.mark.parametrize("ask", [{}, {"ipc": True, "uts": True, "hostname": "p"}])
def test_the_holder_holds_filtered_and_stops_on_sigterm(
    tmp_path: Path, ask: dict[str, object]
) -> None:
    p, said = _holder(tmp_path, ask)
    try:
        assert said == "ready"
        st = _status(p.pid)
        assert st["Seccomp"] == "2" and st["NoNewPrivs"] == "1", st
        p.send_signal(signal.SIGCHLD)  # a stray SIGCHLD: reaped nothing, still holds
        time.sleep(0.1)
        assert p.poll() is None
        p.terminate()
        assert p.wait(10) == 0  # its interpreter's exit, filtered, is clean
    finally:
        _end(p)


@pytest.mark.skipif(os.geteuid() != 0, reason="the holder's confinement needs root")
def test_the_pid_1_holder_and_its_parent_are_filtered(tmp_path: Path) -> None:
    p, said = _holder(tmp_path, {"pid": True})
    child = 0
    try:
        word, _, pid = said.partition(" ")
        assert word == "ready", said
        child = int(pid)
        for who in (p.pid, child):
            st = _status(who)
            assert st["Seccomp"] == "2" and st["NoNewPrivs"] == "1", (who, st)
        os.kill(child, signal.SIGTERM)  # as the CRI stops a pod
        assert p.wait(10) == 0
        assert _gone(child)
    finally:
        _end(p)
        if child and not _gone(child):
            os.kill(child, signal.SIGKILL)
