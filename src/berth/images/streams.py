"""Docker's JSON progress streams: the messages, the progress bar, and running work whose
messages are streamed as they come.

Imports nothing of berth's but `units`.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

Message = dict[str, Any]


def progress_bar(current: int, total: int) -> str:
    """Docker's `[=====>      ]  1.2MB/3.4MB`."""
    from berth.units import human_size

    if total <= 0:
        return f"{human_size(current)}"
    width = 50
    done = min(width, current * width // total)
    bar = "=" * done + (">" if done < width else "") + " " * max(0, width - done - 1)
    return f"[{bar}] {human_size(current):>8}/{human_size(total)}"


async def messages(work: Any, queue: asyncio.Queue[Message | None]) -> AsyncIterator[Message]:
    """The progress messages `work` (a coroutine) puts on `queue`, as they come, then its
    result; if the consumer goes away or `work` fails, `work` is cancelled and waited for."""

    async def run() -> None:
        try:
            await work
        finally:
            queue.put_nowait(None)

    task = asyncio.create_task(run())
    try:
        while (m := await queue.get()) is not None:
            yield m
        await task
    except BaseException:
        task.cancel()
        with contextlib.suppress(BaseException):
            await task
        raise


async def all_or_none(coros: list[Any]) -> None:
    """Run these together; when one fails, cancel the others and wait for them to clean up
    (a download discards what it staged) before the error goes on."""
    tasks = [asyncio.ensure_future(c) for c in coros]
    try:
        await asyncio.gather(*tasks)
    except BaseException:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise


__all__ = ["Message", "all_or_none", "messages", "progress_bar"]
