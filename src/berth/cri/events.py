"""GetContainerEvents' source: the CRI containers' events from the daemon's event bus (create,
start, die, destroy), and the pod sandboxes' own, which the pod handlers report here. Each
subscriber gets its own queue; one that falls behind loses events rather than growing the
daemon, as with the bus itself."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

from berth.cri import containers as cc
from berth.events import EventBus

# ContainerEventType
CREATED, STARTED, STOPPED, DELETED = 0, 1, 2, 3
_ACTIONS = {"create": CREATED, "start": STARTED, "die": STOPPED, "destroy": DELETED}
QUEUE = 1024


@dataclass(frozen=True, slots=True)
class CriEvent:
    id: str  # a container's or a pod sandbox's
    sandbox_id: str
    kind: int  # ContainerEventType
    at_ns: int


class CriEvents:
    def __init__(self, bus: EventBus | None) -> None:
        self.bus = bus
        self.subscribers: set[asyncio.Queue[CriEvent]] = set()

    def sandbox(self, sid: str, kind: int) -> None:
        """A pod sandbox's event (its id is its own and its sandbox's)."""
        self._publish(CriEvent(sid, sid, kind, time.time_ns()))

    def _publish(self, ev: CriEvent) -> None:
        for q in self.subscribers:
            with contextlib.suppress(asyncio.QueueFull):
                q.put_nowait(ev)

    @staticmethod
    async def _forward(bq: asyncio.Queue[dict[str, object]], q: asyncio.Queue[CriEvent]) -> None:
        """The bus's events for one subscriber, as CRI events."""
        while True:
            ev = await bq.get()
            attrs = ev.get("Actor", {})
            if ev.get("Type") != "container" or not isinstance(attrs, dict):
                continue
            kind = _ACTIONS.get(str(ev.get("Action")))
            labels = attrs.get("Attributes") or {}
            sid = labels.get(cc.L_SANDBOX, "") if isinstance(labels, dict) else ""
            if kind is not None and sid:
                with contextlib.suppress(asyncio.QueueFull):
                    q.put_nowait(
                        CriEvent(
                            str(attrs.get("ID")),
                            str(sid),
                            kind,
                            int(str(ev.get("timeNano") or time.time_ns())),
                        )
                    )

    async def stream(self) -> AsyncIterator[CriEvent]:
        q: asyncio.Queue[CriEvent] = asyncio.Queue(maxsize=QUEUE)
        self.subscribers.add(q)
        bq = self.bus.subscribe() if self.bus is not None else None
        fwd = (
            asyncio.get_running_loop().create_task(self._forward(bq, q)) if bq is not None else None
        )
        try:
            while True:
                yield await q.get()
        finally:
            self.subscribers.discard(q)
            if fwd is not None and bq is not None and self.bus is not None:
                fwd.cancel()
                self.bus.unsubscribe(bq)


__all__ = ["CREATED", "DELETED", "STARTED", "STOPPED", "CriEvent", "CriEvents"]
