"""Restart policies (`--restart no|on-failure[:N]|always|unless-stopped`): whether a container
that exited starts again, Docker's back-off between its starts, and the starts at daemon start.

A part of the container service (see `berth.containers.service`), holding the shared
`ContainerStore`; it starts containers through the service's `start`, given to it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from typing import Protocol

from berth.containers.record import ContainerRecord
from berth.containers.status import ContainerStatus
from berth.containers.store import ContainerStore
from berth.errors import BerthError, NotModified
from berth.images import parse_rfc3339

log = logging.getLogger(__name__)


class _Start(Protocol):
    def __call__(self, ref: str, *, restarting: bool = False) -> Awaitable[None]: ...


class Restarts:
    """The restart policy of each container, applied at its exit and at daemon start."""

    def __init__(self, store: ContainerStore, start: _Start) -> None:
        self.store = store
        self.start = start

    @staticmethod
    def should_restart(rec: ContainerRecord, code: int) -> bool:
        policy = rec.host_config.restart_policy
        name = policy.name or "no"
        if rec.manually_stopped or name == "no":
            return False
        if name == "on-failure":
            limit = policy.maximum_retry_count
            return code != 0 and (limit == 0 or rec.restart_count < limit)
        return name in ("always", "unless-stopped")

    def schedule(self, rec: ContainerRecord) -> None:
        """Docker's back-off: 100 ms, doubling to at most a minute; back to 100 ms after a
        run of 10 s or more. A container in a restart loop costs the daemon a timer."""
        cid = rec.id
        live = self.store.live[cid]
        ran = parse_rfc3339(rec.state.finished_at) - parse_rfc3339(rec.state.started_at)
        live.restart_delay = (
            0.1 if ran >= 10 or not live.restart_delay else min(live.restart_delay * 2, 60.0)
        )
        rec.state.become(ContainerStatus.RESTARTING)

        async def later() -> None:
            await asyncio.sleep(live.restart_delay)
            if live.removed or rec.state.status is not ContainerStatus.RESTARTING:
                return
            rec.restart_count += 1
            try:
                await self.start(cid, restarting=True)
            except NotModified:
                pass  # started by hand in the meantime
            except BerthError as e:
                log.warning("restart of %s failed: %s", cid[:12], e, extra={"container": cid})
                if rec.state.status is ContainerStatus.RESTARTING:
                    rec.state.become(ContainerStatus.EXITED)
                self.store.save(rec)

        live.restart_task = self.store.spawn(later())

    def cancel(self, rec: ContainerRecord) -> None:
        live = self.store.live.get(rec.id)
        if live and live.restart_task is not None:
            live.restart_task.cancel()
            live.restart_task = None
        if rec.state.status is ContainerStatus.RESTARTING:
            rec.state.become(ContainerStatus.EXITED)

    async def start_all(self) -> None:
        """At daemon start: `always` containers start again, and `unless-stopped` ones that
        were not stopped by hand."""
        for rec in list(self.store.records.values()):
            name = rec.host_config.restart_policy.name
            manual = rec.manually_stopped
            if rec.state.status in (
                ContainerStatus.RUNNING,
                ContainerStatus.PAUSED,
                ContainerStatus.RESTARTING,
            ):
                continue
            if name == "always" or (name == "unless-stopped" and not manual):
                try:
                    await self.start(rec.id)
                except BerthError as e:
                    log.warning("start of %s failed: %s", rec.id[:12], e)


__all__ = ["Restarts"]
