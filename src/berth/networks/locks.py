"""Claims on host-wide network names: one berthd per bridge, one per chain prefix.

Two daemons that share a bridge (the default `berth0` with two data roots, say) also share its
iptables chains; the one that exits first tears both down under the other. A daemon therefore
holds a claim on every bridge it manages, and on its chain prefix, for as long as it uses them,
and a second daemon is refused at start (or at `network create`) with an error naming them.

A claim is an abstract unix socket (`\\0berth/bridge/NAME`), bound and kept open:
- its scope is the network namespace, the same as the bridges' and the rules' own;
- the kernel releases it when its holder dies, however it dies (kill -9 included), so a
  restarted daemon never finds a stale claim, and nothing is left on disk to clean up.
Its socket is close-on-exec, so the fork server and the monitors never inherit it.

Imports `errors`.
"""

from __future__ import annotations

import socket
import threading

from berth.errors import Conflict


def _address(kind: str, name: str) -> bytes:
    return b"\0berth/" + kind.encode() + b"/" + name.encode()


class Claims:
    """The claims this daemon holds, by (kind, name)."""

    def __init__(self) -> None:
        self._held: dict[tuple[str, str], socket.socket] = {}
        self._lock = threading.Lock()

    def claim(self, kind: str, name: str, what: str = "") -> None:
        """Hold `kind`/`name` (a no-op if already held here); Conflict if another process
        holds it. `what` says in the error what the name is for."""
        with self._lock:
            if (kind, name) in self._held:
                return
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                s.bind(_address(kind, name))
            except OSError:
                s.close()
                raise Conflict(
                    f"{what or kind} {name} is in use by another berthd (a daemon with another "
                    "data root or socket): give this one its own with --bridge and --bip"
                ) from None
            self._held[(kind, name)] = s

    def holds(self, kind: str, name: str) -> bool:
        with self._lock:
            return (kind, name) in self._held

    def release(self, kind: str, name: str) -> None:
        with self._lock:
            s = self._held.pop((kind, name), None)
        if s is not None:
            s.close()

    def release_all(self) -> None:
        with self._lock:
            held, self._held = list(self._held.values()), {}
        for s in held:
            s.close()


__all__ = ["Claims"]
