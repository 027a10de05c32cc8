"""The seam between the builder and the container service.

Imports `containers` (the data types of the seam only). `berth.containers.buildrunner.BuildRunner`
implements it over the container service; a test may give the builder a fake.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Protocol

from berth.containers.buildrunner import ContainerLayer, StepSpec


class ContainerRunner(Protocol):
    """Runs a RUN step's container and reads a container's read-write layer.

    Lifecycle of a step: `create` → `start` → `output` (followed until the container exits) →
    `wait` (its exit status) → `layer` (what it changed, for the step's layer) → `remove`
    (always allowed, also on a running or failed container). `commit` and `diff` use `layer`
    on any container, and `pause`/`unpause` around reading a running one."""

    async def create(self, spec: StepSpec) -> str: ...
    async def start(self, cid: str) -> None: ...
    def output(self, cid: str) -> AsyncIterator[bytes]: ...
    async def wait(self, cid: str) -> int: ...
    async def remove(self, cid: str) -> None: ...
    async def pause(self, cid: str) -> None: ...
    async def unpause(self, cid: str) -> None: ...
    def layer(self, ref: str) -> ContainerLayer: ...
    def committed(self, ref: str) -> None:
        """A commit of the container `ref` was made: its event."""


__all__ = ["ContainerRunner", "ContainerLayer", "StepSpec"]
