"""The service's side of a container's shim (its monitor): the channel while it runs, the
exit it reports or leaves in `exit.json`, and finding it again after a daemon restart.

A part of the container service (see `berth.containers.service`), holding the shared
`ContainerStore`. Speaks only `shim.protocol`.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time

from berth.containers.channel import Channel
from berth.containers.config import ChannelOpener
from berth.containers.store import ContainerStore
from berth.shim import protocol
from berth.shim.protocol import Exit

log = logging.getLogger(__name__)


class Monitors:
    """The channels to the containers' monitors."""

    def __init__(self, store: ContainerStore, open_channel: ChannelOpener) -> None:
        self.store = store
        self.open_channel = open_channel

    async def watch(self, cid: str, ch: Channel) -> Exit:
        """Pass output on until the monitor's exit message (or its death); how it exited."""
        live = self.store.live[cid]

        def answer(msg: protocol.Answer) -> None:
            if live.answer is not None and not live.answer.done():
                live.answer.set_result(msg)

        try:
            record = await ch.until_exit(live.fanout, answer)
        finally:
            ch.close()
            live.channel = None
            live.fanout.end()
        return record or self.exit_file(cid) or monitor_died()

    def exit_file(self, cid: str) -> Exit | None:
        try:
            with open(os.path.join(self.store.run_dir(cid), "state", "exit.json"), "rb") as f:
                return Exit.from_json(f.read())
        except (OSError, ValueError):
            return None

    async def reconnect(
        self, cid: str, monitor: int
    ) -> tuple[Channel | None, protocol.ShimMessage | None]:
        """A channel to a running container's monitor and its first message. A monitor that
        is alive but does not answer yet (a loaded machine, its listener's backlog) gets a few
        more tries before the container counts as exited."""
        live = self.store.live[cid]
        deadline = time.monotonic() + 5
        while True:
            reason = ""
            try:
                ch = await self.open_channel(self.store.monitor_socket(cid), None)
                hello = await asyncio.wait_for(ch.read_control(live.fanout), 5)
                if hello is not None:
                    return ch, hello
                reason = "closed without a word"
            except (OSError, ValueError, TimeoutError) as e:
                reason = str(e) or type(e).__name__
            if (
                self.exit_file(cid) is not None
                or not _alive(monitor)
                or time.monotonic() > deadline
            ):
                log.warning(
                    "monitor of %s not reached at start-up: %s",
                    cid[:12],
                    reason,
                    extra={"container": cid},
                )
                return None, None
            await asyncio.sleep(0.1)


def _alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


MONITOR_DIED = "container monitor died"


def monitor_died() -> Exit:
    return Exit(exit=255, finished_at=time.time_ns(), error=MONITOR_DIED)


__all__ = ["MONITOR_DIED", "Monitors", "monitor_died"]
