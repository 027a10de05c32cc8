"""What the container service's parts do, as the API and the daemon reach it: inspect, ps,
logs, attach, connect, pause, update, top, stats... each handed to the part that does it.
`PartsFacade` is mixed into `containers.service.ContainerService`, which holds the parts.

Imports `containers` modules only.
"""

from __future__ import annotations

import builtins
from collections.abc import AsyncIterator
from typing import BinaryIO

from berth.containers.channel import Attachment
from berth.containers.hostconfig import ResourcesUpdate
from berth.containers.networking import Networking
from berth.containers.output import Output
from berth.containers.record import NetworkRequest
from berth.containers.resources import ProcessTable, Resources, StatsSample
from berth.containers.restarts import Restarts
from berth.containers.views import ContainerView, Views


class PartsFacade:
    """The parts' calls, as the container service's (mixed into it)."""

    # the parts a ContainerService holds (see its __init__)
    views: Views
    net: Networking
    output: Output
    resources: Resources
    restarts: Restarts

    def inspect(self, ref: str, size: bool = False) -> ContainerView:
        return self.views.inspect(ref, size)

    def list(self, *, all_: bool = False, limit: int = -1, size: bool = False,
             filters: dict[str, builtins.list[str]] | None = None
             ) -> builtins.list[ContainerView]:
        return self.views.list(all_=all_, limit=limit, size=size, filters=filters)

    def counts(self) -> dict[str, int]:
        return self.views.counts()

    def network_users(self, net: str) -> builtins.list[str]:
        return self.net.network_users(net)

    async def connect(self, net: str, ref: str, ec: NetworkRequest) -> None:
        await self.net.connect(net, ref, ec)

    async def disconnect(self, net: str, ref: str, *, force: bool = False) -> None:
        await self.net.disconnect(net, ref, force=force)

    def logs(self, ref: str, *, follow: bool = False, stdout: bool = True,
             stderr: bool = True, since: float = 0, until: float = 0, tail: str = "all",
             timestamps: bool = False) -> AsyncIterator[tuple[int, bytes]]:
        return self.output.logs(ref, follow=follow, stdout=stdout, stderr=stderr, since=since,
                                until=until, tail=tail, timestamps=timestamps)

    def attach(self, ref: str, *, stdout: bool = True, stderr: bool = True,
               logs: bool = False) -> Attachment:
        return self.output.attach(ref, stdout=stdout, stderr=stderr, logs=logs)

    def resize(self, ref: str, h: int, w: int) -> None:
        self.output.resize(ref, h, w)

    def export(self, ref: str, out: BinaryIO) -> None:
        self.output.export(ref, out)

    async def pause(self, ref: str) -> None:
        await self.resources.pause(ref)

    async def unpause(self, ref: str) -> None:
        await self.resources.unpause(ref)

    async def update(self, ref: str, changes: ResourcesUpdate) -> builtins.list[str]:
        return await self.resources.update(ref, changes)

    def top(self, ref: str, ps_args: str = "-ef") -> ProcessTable:
        return self.resources.top(ref, ps_args)

    def stats(self, ref: str) -> StatsSample:
        return self.resources.stats(ref)

    async def start_restartable(self) -> None:
        await self.restarts.start_all()
