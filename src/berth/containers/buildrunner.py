"""The builder's way into the container service: one step's container, and what it changed.

Imports `containers`, `images`. The builder (berth.builder) runs a RUN step through its
`ContainerRunner` protocol and reads a container's read-write layer for `commit` and `diff`;
`BuildRunner` implements that protocol over `ContainerService`, so that what the builder needs
of the storage driver (a container's upper directory, which driver it is) is reached here and
Docker's container JSON stays inside this package.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from berth.containers import ContainerService
from berth.containers.channel import Attachment
from berth.containers.create import CreateRequest
from berth.containers.hostconfig import HostConfig
from berth.containers.settings import ContainerConfig

# what the runtime makes in a container's upper directory as mount points: not the
# container's own changes
RUNTIME_STUBS = frozenset(
    {"etc/hosts", "etc/hostname", "etc/resolv.conf", "dev", "proc", "sys", ".dockerenv"}
)
# a step's container carries this label (`berth ps -a --filter label=berth.build`)
STEP_LABEL = "berth.build"


@dataclass(frozen=True, slots=True, kw_only=True)
class StepMount:
    """A mount of a RUN step: `bind` (source a host path of the builder's own) or `tmpfs`."""

    type: str
    target: str
    source: str = ""
    read_only: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class StepSpec:
    """The container of one RUN step: `argv` run as it is (no entrypoint), output not on a
    TTY, in `network` (a network mode: "default", "none", "host", ...)."""

    image: str
    argv: list[str]
    env: list[str]
    network: str
    mounts: list[StepMount] = field(default_factory=list)
    extra_hosts: list[str] = field(default_factory=list)  # "name:ip", as --add-host


@dataclass(frozen=True, slots=True, kw_only=True)
class ContainerLayer:
    """A container's read-write layer and what it sits on: `upper` over `lowers` (its image's
    layer directories, top first; `layers` their chain IDs, bottom first). `mount_points` are
    paths (relative to the root) that mounts cover and that are not the container's changes.
    `diffable` is false where the storage driver keeps no upper directory (vfs-like copies)."""

    id: str
    image: str
    config: ContainerConfig
    running: bool
    paused: bool
    layers: list[str]
    upper: str
    lowers: list[str]
    mount_points: frozenset[str]
    diffable: bool


class BuildRunner:
    """`berth.builder.ContainerRunner` over the container service."""

    def __init__(self, containers: ContainerService) -> None:
        self.containers = containers
        # a step's output stream, subscribed to before its start (nothing is missed)
        self._streams: dict[str, Attachment] = {}

    async def create(self, spec: StepSpec) -> str:
        mounts: list[dict[str, Any]] = []  # Docker's mount objects, as `--mount` gives them
        for m in spec.mounts:
            if m.type == "tmpfs":
                mounts.append({"Type": "tmpfs", "Target": m.target})
            else:
                mounts.append(
                    {
                        "Type": m.type,
                        "Source": m.source,
                        "Target": m.target,
                        "ReadOnly": m.read_only,
                    }
                )
        hc = HostConfig(
            network_mode={"": "default", "default": "default"}.get(spec.network, spec.network),
            mounts=tuple(mounts),
            extra_hosts=tuple(spec.extra_hosts) if spec.extra_hosts else None,
        )
        config = ContainerConfig(
            image=spec.image,
            cmd=tuple(spec.argv),
            entrypoint=("",),
            env=tuple(spec.env),
            attach_stdout=True,
            attach_stderr=True,
            labels={STEP_LABEL: "1"},
        )
        cid, _ = await self.containers.create(CreateRequest(config=config, host_config=hc), "")
        return cid

    async def start(self, cid: str) -> None:
        att = self.containers.attach(cid, stdout=True, stderr=True)
        try:
            await self.containers.start(cid)
        except BaseException:
            att.close()
            raise
        self._streams[cid] = att

    async def output(self, cid: str) -> AsyncIterator[bytes]:
        """The step's output as its process writes it: from its stream, not its log (which
        a full disk cuts short: a step failing for want of space lost the words that say so,
        found by the faults campaign of issue 17)."""
        att = self._streams.pop(cid, None)
        if att is None:  # not started here: what its log holds
            async for _, data in self.containers.logs(cid, follow=True):
                yield data
            return
        try:
            async for _, data in att.output():
                yield data
        finally:
            att.close()

    async def wait(self, cid: str) -> int:
        return (await self.containers.wait(cid)).code

    async def remove(self, cid: str) -> None:
        if (att := self._streams.pop(cid, None)) is not None:
            att.close()
        await self.containers.remove(cid, force=True, volumes=True)

    async def pause(self, cid: str) -> None:
        await self.containers.pause(cid)

    async def unpause(self, cid: str) -> None:
        await self.containers.unpause(cid)

    def committed(self, ref: str) -> None:
        # the actor as the client named the container, as dockerd's event
        self.containers.emit("container", "commit", ref, {})

    def layer(self, ref: str) -> ContainerLayer:
        rec = self.containers.resolve(ref)
        driver = self.containers.driver
        layers = list(rec.layers)
        mount_points = set(RUNTIME_STUBS)
        for m in rec.mounts:
            dest = m.destination.strip("/")
            if dest:
                mount_points.add(dest)
        return ContainerLayer(
            id=rec.id,
            image=rec.image,
            config=rec.config,
            running=bool(rec.state.running),
            paused=bool(rec.state.paused),
            layers=layers,
            upper=driver.upper(rec.id),
            lowers=self.containers.images.layer_dirs(layers),
            mount_points=frozenset(mount_points),
            diffable=driver.name == "overlay2",
        )


__all__ = ["BuildRunner", "ContainerLayer", "StepSpec", "StepMount", "RUNTIME_STUBS", "STEP_LABEL"]
