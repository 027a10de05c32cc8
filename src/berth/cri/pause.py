"""A pod sandbox's holder: berth's own pause process.

Started ahead of need (a spare: the interpreter's start-up is off a pod's start), it waits for one
line on stdin naming what its pod wants, a JSON object (`net`, `ipc`, `uts`: booleans;
`hostname`; `sysctls`: name to value); then it leaves the host's network, IPC and UTS namespaces
for new ones (each only where asked: a hostNetwork pod keeps the host's network), names the new
UTS namespace, brings its loopback up, sets the pod's sysctls (in its new namespaces: the caller
allows only namespaced ones), says `ready` on stdout and sleeps until SIGTERM or SIGINT. A spare whose stdin closes with no
line (its daemon went away) exits. The pod's containers join its namespaces through
/proc/PID/ns/*. It imports `berth.linux` alone, and runs as `python -I -S` (see `argv`).
"""

from __future__ import annotations

import os
import signal
import sys

from berth import linux


def argv(root: str) -> list[str]:
    """The command line of a holder for the CRI that keeps `root` (by which a test finds its
    own holders): an isolated interpreter with no site (a third less start-up) that finds
    berth where this process found it."""
    where = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    code = (f"import sys; sys.path.insert(0, {where!r}); "
            "from berth.cri.pause import main; sys.exit(main(sys.argv[1:]))")
    return [sys.executable, "-I", "-S", "-c", code, f"--root={root}"]


def main(args: list[str]) -> int:
    for s in (signal.SIGTERM, signal.SIGINT, signal.SIGCHLD):
        signal.pthread_sigmask(signal.SIG_BLOCK, {s})
    line = sys.stdin.readline(1 << 16)
    if not line.strip():
        return 0   # no pod came: the daemon closed our stdin
    import json
    ask = json.loads(line)
    net, ipc, uts = bool(ask.get("net")), bool(ask.get("ipc")), bool(ask.get("uts"))
    hostname = str(ask.get("hostname") or "")
    sysctls = dict(ask.get("sysctls") or {})
    flags = (linux.CLONE_NEWNET if net else 0) | (linux.CLONE_NEWIPC if ipc else 0) | \
        (linux.CLONE_NEWUTS if uts else 0)
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
    print("ready", flush=True)
    for fd in (0, 1):   # nothing more to read or say: /dev/null, for a stray write
        os.close(fd)
        os.open(os.devnull, os.O_RDWR)
    while True:
        got = signal.sigwait({signal.SIGTERM, signal.SIGINT, signal.SIGCHLD})
        if got != signal.SIGCHLD:
            return 0
        try:   # nothing is its child, but a joined process may be reparented to it
            while os.waitpid(-1, os.WNOHANG)[0] > 0:
                pass
        except ChildProcessError:
            pass


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
