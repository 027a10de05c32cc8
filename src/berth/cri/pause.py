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
/proc/PID/ns/*. It imports `berth.linux` alone, and runs as `python -I -S` (see `argv`).
"""

from __future__ import annotations

import json
import os
import signal
import sys

from berth import linux


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
    if not ask.get("pid"):
        print("ready", flush=True)
        _quiet()
        return _hold()
    # the pod's own PID namespace (shareProcessNamespace): a child is its PID 1 and holds it;
    # this process stays as the child's parent, as the daemon's child
    try:
        linux.unshare(linux.CLONE_NEWPID)
        child = os.fork()
    except OSError as e:
        print(f"error: {e}", flush=True)
        return 1
    if child == 0:
        _quiet()
        return _hold()
    print(f"ready {child}", flush=True)
    _quiet()
    while True:
        try:
            _, status = os.waitpid(child, 0)
        except ChildProcessError:
            return 0
        if os.WIFEXITED(status) or os.WIFSIGNALED(status):
            return 0


def _quiet() -> None:
    """Nothing more to read or say: stdin and stdout become /dev/null (a stray write)."""
    for fd in (0, 1):
        os.close(fd)
        os.open(os.devnull, os.O_RDWR)


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
