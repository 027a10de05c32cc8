"""A container's status (Docker's State.Status) with its allowed transitions and the predicates
the service checks before it acts, after youki's `ContainerStatus` (`can_start`, `can_kill`,
`can_delete`): a verb asks its status, never the record's booleans.

Imports `errors` only.
"""

from __future__ import annotations

import enum

from berth.errors import Conflict


class ContainerStatus(enum.StrEnum):
    """Docker's seven statuses, as `docker ps --filter status=` names them.

    ```
    created ──► running ◄──► paused
       │         │  ▲  ╲        │
       │         ▼  │   ╲       ▼
       │      exited ◄──► restarting
       ▼         │            │
    removing ◄───┴────────────┘
       │
       ▼
     dead  (a removal that failed half-way; removable again)
    ```
    `running` and `paused` are the statuses with a live process (State.Running is true for
    both, as in Docker); an exit, from either, leads to `exited`."""

    CREATED = "created"
    RUNNING = "running"
    PAUSED = "paused"
    RESTARTING = "restarting"
    REMOVING = "removing"
    EXITED = "exited"
    DEAD = "dead"

    # --- predicates -------------------------------------------------------------------------
    @property
    def is_running(self) -> bool:
        """A process runs (paused or not): Docker's State.Running."""
        return self in (ContainerStatus.RUNNING, ContainerStatus.PAUSED)

    def can_start(self) -> bool:
        """`start`: not while a process runs, nor while it is being removed. A restarting one
        may be started by hand (its pending restart is cancelled)."""
        return self in (ContainerStatus.CREATED, ContainerStatus.EXITED, ContainerStatus.RESTARTING)

    def can_kill(self) -> bool:
        """`kill` (a signal to its process): only while a process runs."""
        return self.is_running

    def can_stop(self) -> bool:
        return self.is_running

    def can_pause(self) -> bool:
        return self is ContainerStatus.RUNNING

    def can_unpause(self) -> bool:
        return self is ContainerStatus.PAUSED

    def can_exec(self) -> bool:
        """`exec`: into a running process that is not frozen."""
        return self is ContainerStatus.RUNNING

    def can_attach(self) -> bool:
        """`attach`: to anything but a container between two runs of its restart policy."""
        return self is not ContainerStatus.RESTARTING

    def can_remove(self, *, force: bool = False) -> bool:
        """`rm`: a stopped one; a running or restarting one only with force (which stops it
        first); never one already being removed."""
        if self is ContainerStatus.REMOVING:
            return False
        if self.is_running or self is ContainerStatus.RESTARTING:
            return force
        return True

    # --- transitions ------------------------------------------------------------------------
    def can_become(self, other: ContainerStatus) -> bool:
        return other in _NEXT[self]

    def check(self, other: ContainerStatus) -> ContainerStatus:
        """`other`, if this status may change into it; else a Conflict naming both."""
        if not self.can_become(other):
            raise Conflict(f"container cannot go from {self.value} to {other.value}")
        return other


S = ContainerStatus
_NEXT: dict[ContainerStatus, frozenset[ContainerStatus]] = {
    S.CREATED: frozenset({S.RUNNING, S.REMOVING, S.EXITED, S.DEAD}),
    S.RUNNING: frozenset({S.PAUSED, S.EXITED, S.DEAD}),
    S.PAUSED: frozenset({S.RUNNING, S.EXITED, S.DEAD}),
    # a restart policy's timer starts it again, a stop or a failed start leaves it exited
    S.RESTARTING: frozenset({S.RUNNING, S.EXITED, S.REMOVING, S.DEAD}),
    S.EXITED: frozenset({S.RUNNING, S.RESTARTING, S.REMOVING, S.DEAD}),
    # a removal that fails half-way leaves the container dead (as dockerd), never back alive
    S.REMOVING: frozenset({S.DEAD}),
    S.DEAD: frozenset({S.REMOVING}),
}
del S


__all__ = ["ContainerStatus"]
