"""A pod sandbox's holder: berth's own pause process (`python -m berth.cri.pause`).

It leaves the host's network, IPC and UTS namespaces for new ones (each only where asked: a
hostNetwork pod keeps the host's network), names the new UTS namespace, brings its loopback up,
says `ready` on stdout and then sleeps until SIGTERM or SIGINT. The pod's containers join its
namespaces through /proc/PID/ns/*. It imports `berth.linux` alone: it starts once per pod.
"""

from __future__ import annotations

import os
import signal
import sys

from berth import linux


def main(argv: list[str]) -> int:
    net, ipc, uts = "--net" in argv, "--ipc" in argv, "--uts" in argv
    hostname = next((a.split("=", 1)[1] for a in argv if a.startswith("--hostname=")), "")
    flags = (linux.CLONE_NEWNET if net else 0) | (linux.CLONE_NEWIPC if ipc else 0) | \
        (linux.CLONE_NEWUTS if uts else 0)
    for s in (signal.SIGTERM, signal.SIGINT, signal.SIGCHLD):
        signal.pthread_sigmask(signal.SIG_BLOCK, {s})
    try:
        if flags:
            linux.unshare(flags)
        if uts and hostname:
            linux.sethostname(hostname)
        if net:
            linux.set_link_up("lo")
    except OSError as e:
        print(f"error: {e}", flush=True)
        return 1
    os.chdir("/")
    print("ready", flush=True)
    os.close(1)
    os.open(os.devnull, os.O_WRONLY)   # fd 1 again, for a stray write
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
