"""What every part of the container service shares: the records (kept in the metadata store and
cached here), each container's live state (locks, waiters, its channel to the monitor), name
and ID resolution, events, the service's background tasks and where a container's files go.

The parts (networking, mounts, output, resources, restarts, views) each receive this store
through their constructor instead of reaching into the service (issue 14: collaborators, not
mixins). Imports `metadata`, `shim.protocol`, `errors`.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Callable, Coroutine
from typing import Any

from berth.containers.channel import Channel, Fanout
from berth.containers.config import Config
from berth.containers.status import ContainerStatus
from berth.errors import InvalidArgument, NotFound
from berth.metadata import MetadataStore
from berth.shim import protocol

Emit = Callable[[str, str, str, dict[str, str]], None]


class Live:
    """What the service knows of a container beyond its record: locks, waiters, output."""

    def __init__(self) -> None:
        self.lock = asyncio.Lock()
        self.exits = 0                         # how many times it has exited
        self.changed = asyncio.Condition()     # notified on start, exit, removal
        self.removed = False
        self.followers = 0                     # log streams reading the log file
        self.reader: asyncio.Task[None] | None = None
        self.channel: Channel | None = None    # to the monitor, while it runs
        self.fanout = Fanout()                 # output to the attach streams
        self.restart_delay = 0.0
        self.answer: asyncio.Future[protocol.Answer] | None = None  # to a monitor command
        self.restart_task: asyncio.Task[None] | None = None

    async def notify(self) -> None:
        async with self.changed:
            self.changed.notify_all()


class ContainerStore:
    """The records by ID, with their live state; saved through the metadata store."""

    def __init__(self, cfg: Config, meta: MetadataStore, emit: Emit | None = None) -> None:
        self.cfg = cfg
        self.meta = meta
        self.emit: Emit = emit or (lambda typ, action, actor, attrs: None)
        self.docs: dict[str, dict[str, Any]] = {}
        self.live: dict[str, Live] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        for doc in meta.containers():
            self.docs[doc["Id"]] = doc
            self.live[doc["Id"]] = Live()

    # --- records ----------------------------------------------------------------------------
    def add(self, doc: dict[str, Any]) -> None:
        self.docs[doc["Id"]] = doc
        self.live[doc["Id"]] = Live()

    def forget(self, cid: str) -> None:
        self.docs.pop(cid, None)
        self.live.pop(cid, None)

    def get(self, cid: str) -> dict[str, Any] | None:
        return self.docs.get(cid)

    def all(self) -> list[dict[str, Any]]:
        return list(self.docs.values())

    def resolve(self, ref: str) -> dict[str, Any]:
        """A container by full ID, name (with or without its `/`) or unique ID prefix."""
        if not ref:
            raise NotFound("No such container: ")
        if ref in self.docs:
            return self.docs[ref]
        name = "/" + ref.lstrip("/")
        for d in self.docs.values():
            if d["Name"] == name:
                return d
        matches = [d for d in self.docs.values() if d["Id"].startswith(ref)]
        if len(matches) == 1:
            return matches[0]
        if len(matches) > 1:
            raise InvalidArgument(f"multiple IDs found with provided prefix: {ref}")
        raise NotFound(f"No such container: {ref}")

    def by_name(self, name: str) -> dict[str, Any] | None:
        """The container named `name` (without its `/`), if any."""
        return next((d for d in self.docs.values() if d["Name"] == "/" + name), None)

    @staticmethod
    def status(doc: dict[str, Any]) -> ContainerStatus:
        return ContainerStatus(doc["State"]["Status"])

    @staticmethod
    def set_status(doc: dict[str, Any], status: ContainerStatus, **fields: Any) -> None:
        """Move the container to `status` (a Conflict where that transition is not allowed),
        with Docker's booleans kept in step and the other State `fields` given."""
        ContainerStatus(doc["State"]["Status"]).check(status)
        doc["State"].update({"Status": status.value, "Running": status.is_running,
                             "Paused": status is ContainerStatus.PAUSED,
                             "Restarting": status is ContainerStatus.RESTARTING,
                             "Dead": status is ContainerStatus.DEAD, **fields})

    def save(self, doc: dict[str, Any]) -> None:
        self.meta.put_container(doc["Id"], doc["Name"].lstrip("/"), doc["Image"],
                                doc["_berth"]["created"], doc)

    def event(self, doc: dict[str, Any], action: str, **extra: str) -> None:
        """A container event with Docker's attributes: its labels, name and image."""
        attrs = {**(doc["Config"].get("Labels") or {}), "name": doc["Name"][1:],
                 "image": doc["Config"]["Image"], **extra}
        self.emit("container", action, doc["Id"], attrs)

    # --- where its files are ----------------------------------------------------------------
    def dir(self, cid: str) -> str:
        return os.path.join(self.cfg.data_root, "containers", cid)

    def run_dir(self, cid: str) -> str:
        return os.path.join(self.cfg.exec_root, "containers", cid)

    def monitor_socket(self, cid: str) -> str:
        return os.path.join(self.run_dir(cid), "state", "monitor.sock")

    def runtime_of(self, doc: dict[str, Any]) -> tuple[str, str]:
        """For the shim: an OCI runtime binary to drive and its root ("" for berth's own)."""
        name = doc["HostConfig"].get("Runtime") or "berth"
        path = self.cfg.runtimes.get(name, "")
        if not path:
            return "", ""
        return path, os.path.join(self.cfg.exec_root, "runtimes", name)

    # --- background work --------------------------------------------------------------------
    def spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        """A task the service owns: cancelled and awaited by `close`."""
        t: asyncio.Task[Any] = asyncio.ensure_future(coro)
        self._tasks.add(t)
        t.add_done_callback(self._tasks.discard)
        return t

    async def close(self) -> None:
        for t in list(self._tasks):
            t.cancel()
        for t in list(self._tasks):
            with contextlib.suppress(BaseException):
                await t


__all__ = ["ContainerStore", "Emit", "Live"]
