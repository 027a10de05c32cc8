"""Restart policies (`--restart no|on-failure[:N]|always|unless-stopped`): whether a container
that exited starts again, Docker's back-off between its starts, and the starts at daemon start.

A part of the container service (see `berth.containers.service`), holding the shared
`ContainerStore`; it starts containers through the service's `start`, given to it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from typing import Any, Protocol

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
    def should_restart(doc: dict[str, Any], code: int) -> bool:
        policy = doc["HostConfig"].get("RestartPolicy") or {}
        name = policy.get("Name") or "no"
        if doc["_berth"].get("manually_stopped") or name == "no":
            return False
        if name == "on-failure":
            limit = int(policy.get("MaximumRetryCount") or 0)
            return code != 0 and (limit == 0 or doc["RestartCount"] < limit)
        return name in ("always", "unless-stopped")

    def schedule(self, doc: dict[str, Any]) -> None:
        """Docker's back-off: 100 ms, doubling to at most a minute; back to 100 ms after a
        run of 10 s or more. A container in a restart loop costs the daemon a timer."""
        cid = doc["Id"]
        live = self.store.live[cid]
        ran = parse_rfc3339(doc["State"]["FinishedAt"]) - parse_rfc3339(doc["State"]["StartedAt"])
        live.restart_delay = 0.1 if ran >= 10 or not live.restart_delay else min(
            live.restart_delay * 2, 60.0)
        self.store.set_status(doc, ContainerStatus.RESTARTING)

        async def later() -> None:
            await asyncio.sleep(live.restart_delay)
            if live.removed or self.store.status(doc) is not ContainerStatus.RESTARTING:
                return
            doc["RestartCount"] += 1
            try:
                await self.start(cid, restarting=True)
            except NotModified:
                pass  # started by hand in the meantime
            except BerthError as e:
                log.warning("restart of %s failed: %s", cid[:12], e, extra={"container": cid})
                if self.store.status(doc) is ContainerStatus.RESTARTING:
                    self.store.set_status(doc, ContainerStatus.EXITED)
                self.store.save(doc)
        live.restart_task = self.store.spawn(later())

    def cancel(self, doc: dict[str, Any]) -> None:
        live = self.store.live.get(doc["Id"])
        if live and live.restart_task is not None:
            live.restart_task.cancel()
            live.restart_task = None
        if self.store.status(doc) is ContainerStatus.RESTARTING:
            self.store.set_status(doc, ContainerStatus.EXITED)

    async def start_all(self) -> None:
        """At daemon start: `always` containers start again, and `unless-stopped` ones that
        were not stopped by hand."""
        for doc in list(self.store.docs.values()):
            name = (doc["HostConfig"].get("RestartPolicy") or {}).get("Name")
            manual = doc["_berth"].get("manually_stopped")
            if self.store.status(doc) in (ContainerStatus.RUNNING, ContainerStatus.PAUSED,
                                          ContainerStatus.RESTARTING):
                continue
            if name == "always" or (name == "unless-stopped" and not manual):
                try:
                    await self.start(doc["Id"])
                except BerthError as e:
                    log.warning("start of %s failed: %s", doc["Id"][:12], e)


__all__ = ["Restarts"]
