"""A pod sandbox's holder: berth's own pause process.

Started ahead of need (a spare: the interpreter's start-up is off a pod's start), it waits for one
line on stdin naming what its pod wants, a JSON object (`net`, `ipc`, `uts`, `pid`: booleans;
`hostname`; `sysctls`: name to value); then it leaves the host's network, IPC and UTS namespaces
for new ones (each only where asked: a hostNetwork pod keeps the host's network), names the new
UTS namespace, brings its loopback up, sets the pod's sysctls (in its new namespaces: the caller
allows only namespaced ones), says `ready` on stdout and sleeps until SIGTERM or SIGINT. With
`pid`, a child of it in a new PID namespace is that namespace's PID 1 and the holder: it says
`ready CHILD_PID`. A spare whose stdin closes with no
line (its daemon went away) exits. The pod's containers join its namespaces through
/proc/PID/ns/*. It imports `berth.linux` alone (and its seccomp), and runs as
`python -I -S` (see `argv`).

Before it says `ready` it gives up all it does not need to wait (`_confine`): its root and
working directory become an empty read-only tmpfs in a mount namespace of its own, and it
drops every capability, sets no_new_privs and is no longer dumpable. With
shareProcessNamespace the holder is the pod's PID 1: a container that may ptrace
(CAP_SYS_PTRACE) passes /proc/1's checks, and /proc/1/root was the host's `/`. Last, before it
says `ready`, it loads a seccomp filter (`hold_filter`, by berth.linux.seccomp) that allows only
HOLD_SYSCALLS, what waiting for signals, reaping and exiting take: a process that ptraces it
can make it call nothing else (any other call fails with EPERM).
"""

from __future__ import annotations

import json
import os
import signal
import sys

from berth import linux
from berth.errors import System
from berth.linux import seccomp

TYPE_CHECKING = False  # not typing's: the holder's start-up
if TYPE_CHECKING:
    from typing import NoReturn

# all the holder calls once it holds (its interpreter's exit and allocator included): signals
# waited for (and a handler's return, a call restarted after a stop), children reaped, a stray
# write to /dev/null, stdin and stdout made /dev/null, memory, a lock, the exit
HOLD_SYSCALLS = (
    "rt_sigtimedwait",
    "rt_sigprocmask",
    "rt_sigaction",
    "rt_sigreturn",
    "restart_syscall",
    "wait4",
    "waitid",
    "write",
    "close",
    "dup2",
    "dup3",
    "brk",
    "mmap",
    "munmap",
    "mremap",
    "madvise",
    "futex",
    "exit",
    "exit_group",
)


def argv(root: str) -> list[str]:
    """The command line of a holder for the CRI that keeps `root` (by which a test finds its
    own holders): an isolated interpreter with no site (a third less start-up) that finds
    berth where this process found it."""
    where = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    code = (
        f"import sys; sys.path.insert(0, {where!r}); "
        "from berth.cri.pause import main; sys.exit(main(sys.argv[1:]))"
    )
    return [sys.executable, "-I", "-S", "-c", code, f"--root={root}"]


def main(args: list[str]) -> int:
    for s in (signal.SIGTERM, signal.SIGINT, signal.SIGCHLD):
        signal.pthread_sigmask(signal.SIG_BLOCK, {s})
    line = sys.stdin.readline(1 << 16)
    if not line.strip():
        return 0  # no pod came: the daemon closed our stdin
    ask = json.loads(line)
    net, ipc, uts = bool(ask.get("net")), bool(ask.get("ipc")), bool(ask.get("uts"))
    hostname = str(ask.get("hostname") or "")
    sysctls = dict(ask.get("sysctls") or {})
    flags = (
        (linux.CLONE_NEWNET if net else 0)
        | (linux.CLONE_NEWIPC if ipc else 0)
        | (linux.CLONE_NEWUTS if uts else 0)
    )
    try:
        if flags:
            linux.unshare(flags)
        if uts and hostname:
            linux.sethostname(hostname)
        if net:
            linux.set_link_up("lo")
        for key, value in sysctls.items():
            with open("/proc/sys/" + key.replace(".", "/"), "w") as f:
                f.write(str(value))
    except (OSError, ValueError) as e:
        print(f"error: {e}", flush=True)
        return 1
    os.chdir("/")
    # as kubelets' pause: the last process the OOM killer picks (a machine may refuse it)
    try:
        with open("/proc/self/oom_score_adj", "w") as f:
            f.write("-998")
    except OSError:
        pass
    devnull = os.open(os.devnull, os.O_RDWR)  # for `_quiet`, once there is no /dev
    try:
        prog = hold_filter()  # built now, loaded last
        if ask.get("pid"):
            # the pod's own PID namespace (shareProcessNamespace): a child is its PID 1 and
            # holds it; this process stays as the child's parent, as the daemon's child
            linux.unshare(linux.CLONE_NEWPID)
        _confine(_root_dir(args))
        if not ask.get("pid"):
            seccomp.load_bpf(prog)
    except (OSError, System) as e:
        print(f"error: {e}", flush=True)
        return 1
    if not ask.get("pid"):
        print("ready", flush=True)
        _quiet(devnull)
        return _hold()
    child = -1
    try:
        child, why = _fork_locked(prog, devnull)
        if not why:
            seccomp.load_bpf(prog)
    except (OSError, System) as e:
        why = str(e)
    if why:
        print(f"error: {why}", flush=True)
        if child > 0:
            os.kill(child, signal.SIGKILL)
            os.waitpid(child, 0)
        return 1
    print(f"ready {child}", flush=True)
    _quiet(devnull)
    while True:
        try:
            _, status = os.waitpid(child, 0)
        except ChildProcessError:
            return 0
        if os.WIFEXITED(status) or os.WIFSIGNALED(status):
            return 0


def hold_filter() -> bytes:
    """The holder's seccomp filter, as the kernel runs it: HOLD_SYSCALLS of this architecture
    allowed, any other call fails with EPERM (a call of another architecture kills it)."""
    return seccomp.compile_bpf(
        {
            "defaultAction": "SCMP_ACT_ERRNO",
            "syscalls": [{"names": list(HOLD_SYSCALLS), "action": "SCMP_ACT_ALLOW"}],
        }
    )


def _fork_locked(prog: bytes, devnull: int) -> tuple[int, str]:
    """Fork the holder of the new PID namespace (its PID 1), which loads the filter and holds;
    (its PID, "") once it has, (its PID or -1, why) where it could not."""
    r, w = os.pipe()
    try:
        child = os.fork()
    except OSError as e:
        os.close(r)
        os.close(w)
        return -1, str(e)
    if child == 0:
        _locked_child(prog, devnull, r, w)
    os.close(w)
    with os.fdopen(r, "rb") as f:
        why = f.read(4096).decode("utf-8", "replace")
    return child, why


def _locked_child(prog: bytes, devnull: int, r: int, w: int) -> NoReturn:
    code = 1
    try:
        os.close(r)
        _quiet(devnull)
        try:
            seccomp.load_bpf(prog)
        except System as e:
            os.write(w, str(e).encode()[:4096])
        else:
            os.close(w)  # says it holds: its parent reads the end of the pipe
            code = _hold()
    finally:
        os._exit(code)


def _root_dir(args: list[str]) -> str:
    """The directory the empty tmpfs is mounted on (in the holder's own mount namespace, so
    the host never sees it): the CRI's root (`--root=`), which exists."""
    for a in args:
        if a.startswith("--root="):
            return a[len("--root=") :]
    return "/tmp"


def _confine(mountpoint: str) -> None:
    """Keep nothing a process that reaches this one could use: no capability (the bounding
    set too), no_new_privs, not dumpable (/proc/PID/root, environ, mem and ptrace then need
    CAP_SYS_PTRACE), and as root and working directory an empty read-only tmpfs, the only
    mount of a mount namespace of its own (so neither `/proc/PID/root/..` nor
    `/proc/PID/cwd/..` climbs to the host's tree)."""
    linux.drop_bounding_caps(set())  # reads /proc: before the pivot
    linux.unshare(linux.CLONE_NEWNS)
    linux.mount(None, "/", None, linux.MS_REC | linux.MS_PRIVATE, None)
    linux.mount(
        "pause",
        mountpoint,
        "tmpfs",
        linux.MS_RDONLY | linux.MS_NOSUID | linux.MS_NODEV | linux.MS_NOEXEC,
        "size=4k,nr_inodes=1,mode=0555",
    )
    os.chdir(mountpoint)
    linux.pivot_root(".", ".")  # the old root is stacked under the new one: unmount it
    linux.umount(".", linux.MNT_DETACH)
    os.chdir("/")
    linux.set_caps(set(), set(), set())
    linux.set_no_new_privs()
    linux.set_dumpable(False)


def _quiet(devnull: int) -> None:
    """Nothing more to read or say: stdin and stdout become /dev/null (a stray write)."""
    for fd in (0, 1):
        os.dup2(devnull, fd)


def _hold() -> int:
    """Sleep until SIGTERM or SIGINT, reaping what is reparented to this process (all of a
    shared PID namespace's orphans, where it is that namespace's PID 1)."""
    while True:
        got = signal.sigwait({signal.SIGTERM, signal.SIGINT, signal.SIGCHLD})
        if got != signal.SIGCHLD:
            return 0
        try:
            while os.waitpid(-1, os.WNOHANG)[0] > 0:
                pass
        except ChildProcessError:
            pass


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
