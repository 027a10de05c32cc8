"""The event bus: what happened to containers and images, in Docker's `/events` shape.

Imports nothing of berth's. The services publish; the API streams to subscribers. The last
events are kept in memory for `--since` (Docker keeps its last 256 too).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from typing import Any

Event = dict[str, Any]
SUBSCRIBER_BUFFER = 1024  # events a subscriber may be behind


class EventBus:
    def __init__(self, keep: int = 1024) -> None:
        self.recent: deque[Event] = deque(maxlen=keep)
        self.subscribers: set[asyncio.Queue[Event]] = set()

    def publish(self, typ: str, action: str, actor: str, attrs: dict[str, str]) -> None:
        now = time.time_ns()
        ev: Event = {
            "Type": typ,
            "Action": action,
            "Actor": {"ID": actor, "Attributes": dict(attrs)},
            "scope": "local",
            "time": now // 1_000_000_000,
            "timeNano": now,
        }
        if typ == "container":  # the legacy fields the old clients read
            ev.update({"status": action, "id": actor, "from": attrs.get("image", "")})
        self.recent.append(ev)
        for q in self.subscribers:
            # a subscriber that does not read loses events rather than growing the daemon,
            # as with Docker's event publisher (1024 a subscriber)
            with contextlib.suppress(asyncio.QueueFull):
                q.put_nowait(ev)

    def subscribe(self) -> asyncio.Queue[Event]:
        q: asyncio.Queue[Event] = asyncio.Queue(maxsize=SUBSCRIBER_BUFFER)
        self.subscribers.add(q)
        return q

    def unsubscribe(self, q: asyncio.Queue[Event]) -> None:
        self.subscribers.discard(q)


# the filters that name an object: an event passes when its actor's ID or name starts with
# one of the values (Docker's fuzzy match; for any type of event, as Docker's)
_BY_NAME = ("volume", "network", "daemon", "plugin", "node", "service", "secret", "config")


def matches(ev: Event, filters: dict[str, list[str]]) -> bool:
    """Docker's event filters: type, event/action, container, image, label, volume, network,
    … (OR within a key, AND across keys)."""
    actor = ev["Actor"]
    attrs = actor["Attributes"]
    for key, values in filters.items():
        if not values:
            continue
        if key == "type":
            ok = ev["Type"] in values
        elif key == "scope":
            ok = ev.get("scope", "local") in values
        elif key in ("event", "action"):
            ok = any(ev["Action"] == v or ev["Action"].split(":")[0] == v for v in values)
        elif key == "container":
            ok = ev["Type"] == "container" and any(
                actor["ID"].startswith(v) or attrs.get("name") == v for v in values
            )
        elif key == "image":
            ok = any(
                attrs.get("image") == v or actor["ID"] == v or attrs.get("name") == v
                for v in values
            )
        elif key == "label":
            ok = any(
                attrs.get(v.partition("=")[0]) == v.partition("=")[2] if "=" in v else v in attrs
                for v in values
            )
        elif key in _BY_NAME:
            ok = any(
                actor["ID"].startswith(v) or attrs.get("name", "").startswith(v) for v in values
            )
        else:
            ok = True
        if not ok:
            return False
    return True


__all__ = ["EventBus", "Event", "matches"]
