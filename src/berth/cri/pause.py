"""A pod sandbox's holder: berth's own pause process.

Started ahead of need (a spare: the interpreter's start-up is off a pod's start), it waits for one
line on stdin naming what its pod wants, `net ipc uts HOSTNAME` (each word present or `-`);
then it leaves the host's network, IPC and UTS namespaces for new ones (each only where asked: a
hostNetwork pod keeps the host's network), names the new UTS namespace, brings its loopback up,
says `ready` on stdout and sleeps until SIGTERM or SIGINT. A spare whose stdin closes with no
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
    line = sys.stdin.readline()
    words = line.split(maxsplit=3)
    if len(words) != 4:
        return 0   # no pod came: the daemon closed our stdin
    net, ipc, uts = words[0] == "net", words[1] == "ipc", words[2] == "uts"
    hostname = words[3].strip()
    flags = (linux.CLONE_NEWNET if net else 0) | (linux.CLONE_NEWIPC if ipc else 0) | \
        (linux.CLONE_NEWUTS if uts else 0)
    try:
        if flags:
            linux.unshare(flags)
        if uts and hostname != "-":
            linux.sethostname(hostname)
        if net:
            linux.set_link_up("lo")
    except OSError as e:
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
