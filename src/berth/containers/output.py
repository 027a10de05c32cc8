"""A container's output: logs (json-file, rotated), attach, resize, export.

A part of the container service (see `berth.containers.service`), holding the shared
`ContainerStore`.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import logging
import os
import time
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from typing import Any, BinaryIO

from berth import storage
from berth.containers.channel import Attachment, Channel
from berth.containers.record import ContainerRecord
from berth.containers.status import ContainerStatus
from berth.containers.store import ContainerStore, Live
from berth.errors import Conflict, NotImplemented_
from berth.images import ImageService, parse_rfc3339

log = logging.getLogger(__name__)


class Output:
    """A container's output: its log (read, followed), attach streams, resize, export."""

    def __init__(self, store: ContainerStore, driver: storage.Driver, images: ImageService) -> None:
        self.store = store
        self.cfg = store.cfg
        self.driver = driver
        self.images = images

    def log_rotation(self, rec: ContainerRecord) -> dict[str, int]:
        opts = rec.host_config.log_config.config or {}
        size = self.cfg.log_max_size
        if opts.get("max-size"):
            from berth.units import parse_size

            size = -1 if opts["max-size"] == "-1" else parse_size(opts["max-size"])
        files = int(opts.get("max-file") or self.cfg.log_max_file)
        return {"log_max_size": max(size, 0), "log_max_file": max(files, 1)}

    def _log_files(self, path: str) -> list[str]:
        """The log and its rotated files, oldest first."""
        old = []
        i = 1
        while os.path.exists(f"{path}.{i}"):
            old.append(f"{path}.{i}")
            i += 1
        return [*reversed(old), path]

    def logs(
        self,
        ref: str,
        *,
        follow: bool = False,
        stdout: bool = True,
        stderr: bool = True,
        since: float = 0,
        until: float = 0,
        tail: str = "all",
        timestamps: bool = False,
    ) -> AsyncIterator[tuple[int, bytes]]:
        """The container's log entries; refused at once (before any of the stream is sent)
        where its log driver keeps nothing to read."""
        rec = self.store.resolve(ref)
        if not rec.log_path:  # the `none` log driver
            raise NotImplemented_("configured logging driver does not support reading")
        return self._log_stream(
            rec,
            follow=follow,
            stdout=stdout,
            stderr=stderr,
            since=since,
            until=until,
            tail=tail,
            timestamps=timestamps,
        )

    async def _log_stream(
        self,
        rec: ContainerRecord,
        *,
        follow: bool,
        stdout: bool,
        stderr: bool,
        since: float,
        until: float,
        tail: str,
        timestamps: bool,
    ) -> AsyncIterator[tuple[int, bytes]]:
        cid = rec.id
        path = rec.log_path
        streams = {"stdout": 1 if stdout else 0, "stderr": 2 if stderr else 0}
        try:
            n_tail = int(tail)
        except (TypeError, ValueError):
            n_tail = -1  # "all", or what is no number: everything, as dockerd reads it
        if n_tail < -1:
            n_tail = -1

        def fmt(entry: dict[str, Any]) -> tuple[int, bytes] | None:
            stream = streams.get(entry.get("stream", "stdout"), 0)
            if not stream:
                return None
            t = entry.get("time", "")
            if since or until:
                ts = parse_rfc3339(t)
                if since and ts < since:
                    return None
                if until and ts > until:
                    return None
            data = entry.get("log", "").encode()
            if timestamps:
                data = t.encode() + b" " + data
            return stream, data

        # opened first, all of them: a rotation while we read renames files, not what we hold
        files: list[tuple[str, BinaryIO]] = []
        for p in self._log_files(path):
            with contextlib.suppress(FileNotFoundError):
                files.append((p, open(p, "rb")))  # noqa: SIM115 - closed in the finally
        try:
            ino = None  # the inode of PATH as we read it: following goes on from it
            pos = 0  # where its complete lines end
            for p, f in files:
                if p == path:
                    ino = os.fstat(f.fileno()).st_ino

            def raw_lines() -> Iterator[bytes]:
                """Every complete line of the log, oldest first, read as it goes: a log is
                as large as a container made it, berthd holds a line (or `tail` lines)."""
                nonlocal pos
                for p, f in files:
                    for line in f:
                        if p == path:
                            if not line.endswith(b"\n"):
                                break  # being written: following reads it whole
                            pos += len(line)
                        yield line

            lines: Iterable[bytes] = raw_lines()
            if n_tail >= 0:
                lines = collections.deque(lines, maxlen=n_tail)
            n = 0
            for raw in lines:
                for item in _entries([raw], fmt):
                    yield item
                n += 1
                if n % 256 == 0:
                    await asyncio.sleep(0)  # a long log does not hold the event loop
        finally:
            for _, f in files:
                f.close()
        if not follow:
            return
        if until and until < time.time():
            return
        live = self.store.live.get(cid)
        async for item in self._follow(cid, path, pos, live, fmt, ino):
            yield item

    async def _follow(
        self,
        cid: str,
        path: str,
        pos: int,
        live: Live | None,
        fmt: Callable[[dict[str, Any]], tuple[int, bytes] | None],
        ino: int | None = None,
    ) -> AsyncIterator[tuple[int, bytes]]:
        """Tail the json log from `pos`; stop once the container is no longer running, after a
        last read."""
        if live is not None:
            live.followers += 1
        try:
            async for item in self._follow_file(cid, path, pos, live, fmt, ino):
                yield item
        finally:
            if live is not None:
                live.followers -= 1
                async with live.changed:
                    live.changed.notify_all()

    async def _follow_file(
        self,
        cid: str,
        path: str,
        pos: int,
        live: Live | None,
        fmt: Callable[[dict[str, Any]], tuple[int, bytes] | None],
        ino: int | None = None,
    ) -> AsyncIterator[tuple[int, bytes]]:
        buf = b""
        delay = 0.005
        # `ino`: the file `pos` counts in (a rotation gives PATH a new inode)
        if ino is None:
            with contextlib.suppress(FileNotFoundError):
                ino = os.stat(path).st_ino
        while True:
            if live is None or live.removed:
                done = True
            else:
                rec = self.store.records.get(cid)
                done = rec is None or not rec.state.status.is_running
            try:
                with open(path, "rb") as f:
                    st = os.fstat(f.fileno())
                    if ino is None:
                        ino = st.st_ino
                    elif st.st_ino != ino:
                        # rotated, perhaps more than once since we looked: the rest of the
                        # file we were reading is PATH.K (found by inode), then come PATH.K-1
                        # ... PATH.1 whole, then PATH from its start
                        buf += _rotated_rest(path, ino, pos)
                        pos, ino = 0, st.st_ino
                    f.seek(pos)
                    chunk = f.read()
            except FileNotFoundError:
                chunk = b""
            if chunk:
                pos += len(chunk)
                buf += chunk
                *complete, buf = buf.split(b"\n")
                for item in _entries(complete, fmt):
                    yield item
                delay = 0.005
                continue
            if done:
                return
            # wake on a state change at once, else poll the file with a growing delay
            assert live is not None
            async with live.changed:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(live.changed.wait(), delay)
            delay = min(delay * 2, 0.1)

    def attach(
        self, ref: str, *, stdout: bool = True, stderr: bool = True, logs: bool = False
    ) -> Attachment:
        """An attach stream: the container's output from now (after its log, with `logs`)
        until its next exit, and its stdin. Made before the caller answers the client, who
        starts the container as soon as it has the answer."""
        rec = self.store.resolve(ref)
        if not rec.state.status.can_attach():
            raise Conflict("You cannot attach to a restarting container, wait until it is running")
        # a stopped container may be attached to, as with dockerd (`start -a` attaches, then
        # starts): the stream carries its next run
        cid = rec.id
        live = self.store.live[cid]
        q = live.fanout.subscribe(f"container {cid[:12]}")
        exits = live.exits
        was_created = rec.state.status is ContainerStatus.CREATED

        async def channel() -> Channel | None:
            # input typed before the start waits for the monitor; a start that fails ends it
            async with live.changed:
                await live.changed.wait_for(
                    lambda: (
                        live.channel is not None
                        or live.removed
                        or live.exits > exits
                        or (
                            was_created
                            and rec.state.status
                            not in (
                                ContainerStatus.CREATED,
                                ContainerStatus.RUNNING,
                                ContainerStatus.PAUSED,
                            )
                        )
                    )
                )
            return live.channel

        att = Attachment(
            q,
            stdout=stdout,
            stderr=stderr,
            channel=channel,
            stdin_once=rec.config.stdin_once,
            on_close=lambda: live.fanout.unsubscribe(q),
        )
        if logs:
            att.prelude = self._log_entries(rec, stdout, stderr)
        return att

    @staticmethod
    def _log_entries(
        rec: ContainerRecord, stdout: bool, stderr: bool
    ) -> Iterator[tuple[int, bytes]]:
        """The log as it is now (what comes later reaches the stream live), read as the
        client takes it: a log is as large as the container made it."""
        want = {"stdout": 1 if stdout else 0, "stderr": 2 if stderr else 0}
        try:
            f = open(rec.log_path, "rb")  # noqa: SIM115 - closed by the generator
        except FileNotFoundError:
            return iter(())
        size = os.fstat(f.fileno()).st_size

        def entries() -> Iterator[tuple[int, bytes]]:
            with f:
                left = size
                while left > 0:
                    raw = f.readline(left)
                    if not raw:
                        return
                    left -= len(raw)
                    with contextlib.suppress(ValueError):
                        e = json.loads(raw)
                        if want.get(e.get("stream"), 0):
                            yield want[e["stream"]], e.get("log", "").encode()

        return entries()

    def resize(self, ref: str, h: int, w: int) -> None:
        rec = self.store.resolve(ref)
        ch = self.store.live[rec.id].channel
        if not rec.state.status.is_running or ch is None:
            raise Conflict(f"Container {rec.id} is not running")
        ch.resize(h, w)

    def export(self, ref: str, out: BinaryIO) -> None:
        rec = self.store.resolve(ref)
        dirs = [self.driver.upper(rec.id)]
        if self.driver.name == "overlay2":
            dirs += [self.images.layer_store.get(c).path for c in reversed(rec.layers)]
        storage.write_merged_tar(dirs, out, self.images.layer_store.shift)


def _rotated_rest(path: str, ino: int, pos: int) -> bytes:
    rotated = []
    for k in range(1, 100):
        try:
            rotated.append(os.stat(f"{path}.{k}").st_ino)
        except FileNotFoundError:
            break
    if ino not in rotated:
        return b""  # rotated away before we could read it: those lines are gone
    k = rotated.index(ino) + 1
    out = b""
    for j in range(k, 0, -1):
        with contextlib.suppress(FileNotFoundError), open(f"{path}.{j}", "rb") as f:
            if j == k:
                f.seek(pos)
            out += f.read()
    return out


def _entries(
    lines: list[bytes], fmt: Callable[[dict[str, Any]], tuple[int, bytes] | None]
) -> list[tuple[int, bytes]]:
    """json-file lines through `fmt`; a line that is not JSON (cut by a crash) is skipped."""
    out = []
    for raw in lines:
        try:
            item = fmt(json.loads(raw))
        except ValueError:
            continue
        if item:
            out.append(item)
    return out
