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
from berth.containers.record import ContainerRecord
from berth.errors import InvalidArgument, NotFound
from berth.metadata import MetadataStore
from berth.shim import protocol

Emit = Callable[[str, str, str, dict[str, str]], None]


class Live:
    """What the service knows of a container beyond its record: locks, waiters, output."""

    def __init__(self) -> None:
        self.lock = asyncio.Lock()
        self.exits = 0  # how many times it has exited
        self.changed = asyncio.Condition()  # notified on start, exit, removal
        self.removed = False
        self.removing = False  # a removal is under way (others get 409, as from dockerd)
        self.followers = 0  # log streams reading the log file
        self.reader: asyncio.Task[None] | None = None
        self.channel: Channel | None = None  # to the monitor, while it runs
        self.fanout = Fanout()  # output to the attach streams
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
        self.records: dict[str, ContainerRecord] = {}
        self.live: dict[str, Live] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        for stored in meta.containers():
            rec = ContainerRecord.from_stored(stored)
            self.records[rec.id] = rec
            self.live[rec.id] = Live()

    # --- records ----------------------------------------------------------------------------
    def add(self, rec: ContainerRecord) -> None:
        self.records[rec.id] = rec
        self.live[rec.id] = Live()

    def forget(self, cid: str) -> None:
        self.records.pop(cid, None)
        self.live.pop(cid, None)

    def get(self, cid: str) -> ContainerRecord | None:
        return self.records.get(cid)

    def all(self) -> list[ContainerRecord]:
        return list(self.records.values())

    def resolve(self, ref: str) -> ContainerRecord:
        """A container by full ID, name (with or without its `/`) or unique ID prefix."""
        if not ref:
            raise NotFound("No such container: ")
        if ref in self.records:
            return self.records[ref]
        name = "/" + ref.lstrip("/")
        for r in self.records.values():
            if r.name == name:
                return r
        matches = [r for r in self.records.values() if r.id.startswith(ref)]
        if len(matches) == 1:
            return matches[0]
        if len(matches) > 1:
            raise InvalidArgument(f"multiple IDs found with provided prefix: {ref}")
        raise NotFound(f"No such container: {ref}")

    def save(self, rec: ContainerRecord) -> None:
        """Into the metadata store, as the record's own versioned JSON."""
        self.meta.put_container(rec.id, rec.short_name, rec.image, rec.created, rec.to_json())

    def event(self, rec: ContainerRecord, action: str, **extra: str) -> None:
        """A container event with Docker's attributes: its labels, name and image."""
        attrs = {**rec.config.labels, "name": rec.short_name, "image": rec.config.image, **extra}
        self.emit("container", action, rec.id, attrs)

    # --- where its files are ----------------------------------------------------------------
    def dir(self, cid: str) -> str:
        return os.path.join(self.cfg.data_root, "containers", cid)

    def run_dir(self, cid: str) -> str:
        return os.path.join(self.cfg.exec_root, "containers", cid)

    def monitor_socket(self, cid: str) -> str:
        return os.path.join(self.run_dir(cid), "state", "monitor.sock")

    def runtime_of(self, rec: ContainerRecord) -> tuple[str, str]:
        """For the shim: an OCI runtime binary to drive and its root ("" for berth's own)."""
        name = rec.host_config.runtime or "berth"
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
