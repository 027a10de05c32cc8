"""One layer's download: streamed from the registry into the layer store's unpacking thread as
it arrives, checked against its digest, resumed with a Range request after a dropped connection.

Imports `registry`, `storage`, `errors` and the modules beside it.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import io
import logging
from typing import Any

import aiohttp

from berth.errors import InvalidArgument, System, Unavailable
from berth.images.manifests import Descriptor
from berth.images.streams import Message, progress_bar
from berth.registry import Repository
from berth.storage import LayerStore, StagedLayer

log = logging.getLogger(__name__)

CHUNK = 1 << 18
RETRIES = 5


class _Feed(io.RawIOBase):
    """A file for the unpacking thread, fed chunk by chunk from the event loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.q: asyncio.Queue[bytes | BaseException | None] = asyncio.Queue(maxsize=32)
        self._buf = memoryview(b"")
        self._eof = False

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        if self._eof:
            return 0
        if not self._buf:
            item = asyncio.run_coroutine_threadsafe(self.q.get(), self.loop).result()
            if item is None:
                self._eof = True
                return 0
            if isinstance(item, BaseException):
                self._eof = True
                raise item
            self._buf = memoryview(item)
        n = min(len(b), len(self._buf))
        b[:n] = self._buf[:n]
        self._buf = self._buf[n:]
        return n

    def fail(self, exc: BaseException) -> None:
        while not self.q.empty():
            self.q.get_nowait()
        self.q.put_nowait(exc)


async def download(
    store: LayerStore,
    repo: Repository,
    desc: Descriptor,
    diff_id: str,
    short: str,
    queue: asyncio.Queue[Message | None],
) -> StagedLayer:
    """The layer `desc` of `repo`, staged in `store` (not committed: the pull commits its
    layers in order when all are here); discarded on any failure."""
    digest, size = desc.digest, desc.size
    loop = asyncio.get_running_loop()
    feed = _Feed(loop)
    stage = asyncio.ensure_future(
        asyncio.to_thread(store.stage, io.BufferedReader(feed, 1 << 20), expected_diff_id=diff_id)
    )
    h = hashlib.sha256()
    got = 0
    last_report = 0.0
    try:
        for attempt in range(RETRIES + 1):
            try:
                async with repo.open_blob(digest, got) as (r, start):
                    skip = got - start
                    async for chunk in r.content.iter_chunked(CHUNK):
                        if skip:
                            cut = min(skip, len(chunk))
                            chunk, skip = chunk[cut:], skip - cut
                            if not chunk:
                                continue
                        got += len(chunk)
                        if size and got > size:
                            raise InvalidArgument(
                                f"blob {digest}: the registry sent more than "
                                f"the {size} bytes the manifest names"
                            )
                        h.update(chunk)
                        await _feed(feed, chunk, stage)
                        now = loop.time()
                        if now - last_report > 0.1:
                            last_report = now
                            queue.put_nowait(
                                {
                                    "status": "Downloading",
                                    "id": short,
                                    "progressDetail": {"current": got, "total": size},
                                    "progress": progress_bar(got, size),
                                }
                            )
                if size and got < size:
                    raise aiohttp.ClientPayloadError(f"short read: {got} of {size} bytes")
                break
            except (
                aiohttp.ClientPayloadError,
                aiohttp.ServerDisconnectedError,
                aiohttp.ClientOSError,
                ConnectionResetError,
                TimeoutError,
            ) as e:
                if attempt == RETRIES:
                    raise Unavailable(
                        f"downloading {digest}: {e} (after {RETRIES} retries)"
                    ) from None
                log.info("layer %s: %s; resuming at byte %d", short, e, got)
                await asyncio.sleep(min(2**attempt * 0.2, 3))
            except Unavailable:
                if attempt == RETRIES:
                    raise
                await asyncio.sleep(min(2**attempt * 0.2, 3))
        queue.put_nowait({"status": "Verifying Checksum", "progressDetail": {}, "id": short})
        actual = "sha256:" + h.hexdigest()
        if actual != digest:
            raise InvalidArgument(
                f"filesystem layer verification failed for digest {digest}: "
                f"the registry sent content with digest {actual}"
            )
        queue.put_nowait({"status": "Download complete", "progressDetail": {}, "id": short})
        await _feed(feed, None, stage)
        queue.put_nowait(
            {
                "status": "Extracting",
                "id": short,
                "progressDetail": {"current": size, "total": size},
                "progress": progress_bar(size, size),
            }
        )
        return await stage
    except BaseException as e:
        if not stage.done():
            feed.fail(e if isinstance(e, Exception) else System("pull cancelled"))
        with contextlib.suppress(BaseException):
            s = await stage
            store.discard(s)
        raise


async def _feed(feed: _Feed, chunk: bytes | None, stage: asyncio.Future[Any]) -> None:
    try:
        feed.q.put_nowait(chunk)
        return
    except asyncio.QueueFull:
        pass
    put = asyncio.ensure_future(feed.q.put(chunk))
    done, _ = await asyncio.wait({put, stage}, return_when=asyncio.FIRST_COMPLETED)
    if put not in done:
        put.cancel()
        exc = stage.exception()
        raise exc if exc else System("the layer ended before its download")


__all__ = ["CHUNK", "RETRIES", "download"]
