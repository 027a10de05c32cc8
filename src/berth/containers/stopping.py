"""Kill, stop and restart of containers, and waiting for their exit: `Stopping`, a part of
`containers.service.ContainerService`, handed the store, the cgroups (`Resources`, to thaw),
the restart policies and the service's `start` (for `restart`).

Imports `containers` modules and `errors`.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal as signal_mod
from collections.abc import Awaitable, Callable

from berth.containers.config import parse_signal
from berth.containers.record import ContainerRecord, WaitResult
from berth.containers.resources import Resources
from berth.containers.restarts import Restarts
from berth.containers.status import ContainerStatus
from berth.containers.store import ContainerStore
from berth.errors import Conflict, InvalidArgument, NotModified


class Stopping:
    """Signals, stop, restart and wait of containers (a part of the container service)."""

    def __init__(
        self,
        store: ContainerStore,
        resources: Resources,
        restarts: Restarts,
        start: Callable[[str], Awaitable[None]],
    ) -> None:
        self.store = store
        self.resources = resources
        self.restarts = restarts
        self._start = start  # the service's, which `restart` ends with

    # --- signals ----------------------------------------------------------------------------
    async def kill(self, ref: str, sig: str | int | None = None) -> None:
        rec = self.store.resolve(ref)
        signo = parse_signal(sig, signal_mod.SIGKILL)
        if not rec.state.status.can_kill():
            raise Conflict(f"Cannot kill container: {ref}: Container {rec.id} is not running")
        if signo in (signal_mod.SIGKILL, signal_mod.SIGTERM):
            rec.manually_stopped = True
        exits = self.store.live[rec.id].exits
        self.signal(rec, signo)
        self.store.event(rec, "kill", signal=str(signo))
        if signo == signal_mod.SIGKILL:
            # as dockerd: the call returns once SIGKILL has taken effect, so an inspect right
            # after shows the container exited (137); a frozen process dies only when thawed
            await self.resources.thaw(rec)
            await self.wait_exit(rec.id, exits, 10)

    @staticmethod
    def signal(rec: ContainerRecord, signo: int) -> None:
        """Send `signo` to the container's process, if it still has one."""
        pid = rec.state.pid
        if pid:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signo)

    async def stop(self, ref: str, timeout: int | None = None, sig: str | None = None) -> None:
        rec = self.store.resolve(ref)
        rec.manually_stopped = True
        status = rec.state.status
        if status is ContainerStatus.RESTARTING:
            self.restarts.cancel(rec)
            self.store.save(rec)
            return
        if not status.can_stop():
            raise NotModified("container already stopped")
        await self._stop(rec, timeout, sig)
        self.store.event(rec, "stop")

    async def _stop(self, rec: ContainerRecord, timeout: int | None, sig: str | None) -> None:
        cid = rec.id
        signo = parse_signal(sig or rec.config.stop_signal)
        if timeout is None:
            timeout = rec.config.stop_timeout
            timeout = 10 if timeout is None else timeout
        exits = self.store.live[cid].exits
        await self.resources.thaw(rec)
        self.signal(rec, signo)
        if timeout < 0:
            await self.wait_exit(cid, exits, None)
            return
        if not await self.wait_exit(cid, exits, timeout):
            self.signal(rec, signal_mod.SIGKILL)
            await self.wait_exit(cid, exits, None)

    async def wait_exit(self, cid: str, exits_before: int, timeout: float | None) -> bool:
        """Whether the container exited (or went) past its `exits_before`th exit in time."""
        live = self.store.live[cid]

        async def exited() -> None:
            async with live.changed:
                await live.changed.wait_for(lambda: live.exits > exits_before or live.removed)

        try:
            await asyncio.wait_for(exited(), timeout)
            return True
        except TimeoutError:
            return False

    async def restart(self, ref: str, timeout: int | None = None, sig: str | None = None) -> None:
        rec = self.store.resolve(ref)
        if rec.state.status.can_stop():
            rec.manually_stopped = True  # no policy restart on the way
            await self._stop(rec, timeout, sig)
        await self._start(rec.id)
        self.store.event(rec, "restart")

    # --- wait -------------------------------------------------------------------------------
    async def wait(self, ref: str, condition: str = "not-running") -> WaitResult:
        rec = self.store.resolve(ref)
        cid = rec.id
        live = self.store.live[cid]
        if condition not in ("not-running", "next-exit", "removed", ""):
            raise InvalidArgument(f"invalid condition: {condition!r}")
        exits = live.exits
        async with live.changed:
            if condition == "removed":
                await live.changed.wait_for(lambda: live.removed)
            elif condition == "next-exit":
                await live.changed.wait_for(lambda: live.exits > exits or live.removed)
            else:
                await live.changed.wait_for(lambda: not rec.state.status.is_running or live.removed)
        return WaitResult(rec.state.exit_code, rec.state.error or "")

    def prepare_wait(self, ref: str) -> str:
        """Resolve now, so a wait request fails fast on an unknown container."""
        return str(self.store.resolve(ref).id)
