"""The seam between the builder and the container service: BuildRunner turns a step's spec
into the container the classic builder makes, and the builder uses a ContainerRunner only."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from berth.api.containers_wire import config_to_docker
from berth.builder import ContainerRunner
from berth.builder.commit import changes, commit
from berth.containers.buildrunner import (
    RUNTIME_STUBS,
    BuildRunner,
    ContainerLayer,
    StepMount,
    StepSpec,
)
from berth.containers.create import CreateRequest
from berth.containers.hostconfig import HostConfig
from berth.containers.record import WaitResult
from berth.containers.settings import ContainerConfig
from berth.errors import InvalidArgument


class _Service:
    """What BuildRunner calls on the container service, recorded."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []

    async def create(self, req: CreateRequest, name: str = "") -> tuple[str, list[str]]:
        # as the API would show it: Docker's JSON of the typed request
        self.calls.append(
            ("create", {**config_to_docker(req.config), "HostConfig": req.host_config.to_json()})
        )
        return "c" * 64, []

    async def wait(self, ref: str) -> WaitResult:
        return WaitResult(3)

    async def remove(self, ref: str, *, force: bool = False, volumes: bool = False) -> None:
        self.calls.append(("remove", (ref, force, volumes)))

    async def logs(self, ref: str, *, follow: bool = False) -> AsyncIterator[tuple[int, bytes]]:
        yield 1, b"out"
        yield 2, b"err"


def test_step_container_is_the_classic_builders() -> None:
    svc = _Service()
    runner = BuildRunner(svc)  # type: ignore[arg-type]
    spec = StepSpec(
        image="sha256:" + "a" * 64,
        argv=["/bin/sh", "-c", "true"],
        env=["A=1"],
        network="",
        mounts=[
            StepMount(type="tmpfs", target="/t"),
            StepMount(type="bind", source="/s", target="/b", read_only=True),
        ],
    )

    async def go() -> tuple[str, int, list[bytes]]:
        cid = await runner.create(spec)
        out = [d async for d in runner.output(cid)]
        code = await runner.wait(cid)
        await runner.remove(cid)
        return cid, code, out

    cid, code, out = asyncio.run(go())
    assert (code, out) == (3, [b"out", b"err"])
    assert svc.calls == [
        (
            "create",
            {
                **config_to_docker(ContainerConfig()),
                "Image": spec.image,
                "Cmd": spec.argv,
                "Entrypoint": [""],
                "Env": ["A=1"],
                "AttachStdout": True,
                "AttachStderr": True,
                "Tty": False,
                "Labels": {"berth.build": "1"},
                "HostConfig": {
                    **HostConfig().to_json(),
                    "NetworkMode": "default",
                    "Mounts": [
                        {"Type": "tmpfs", "Target": "/t"},
                        {"Type": "bind", "Source": "/s", "Target": "/b", "ReadOnly": True},
                    ],
                },
            },
        ),
        ("remove", (cid, True, True)),
    ]
    # --add-host of the build: the step's /etc/hosts
    svc.calls.clear()
    asyncio.run(
        runner.create(
            StepSpec(
                image=spec.image,
                argv=spec.argv,
                env=[],
                network="none",
                extra_hosts=["db:10.0.0.9", "gw:host-gateway"],
            )
        )
    )
    assert svc.calls[0][1]["HostConfig"]["ExtraHosts"] == ["db:10.0.0.9", "gw:host-gateway"]
    assert svc.calls[0][1]["HostConfig"]["NetworkMode"] == "none"


class _FakeRunner:
    """A container the storage driver cannot diff (a copying driver)."""

    def __init__(self) -> None:
        self.paused: list[str] = []

    async def create(self, spec: StepSpec) -> str:
        raise AssertionError("not used")

    async def start(self, cid: str) -> None: ...

    async def output(self, cid: str) -> AsyncIterator[bytes]:
        yield b""

    async def wait(self, cid: str) -> int:
        return 0

    async def remove(self, cid: str) -> None: ...

    async def pause(self, cid: str) -> None:
        self.paused.append(cid)

    async def unpause(self, cid: str) -> None: ...

    def layer(self, ref: str) -> ContainerLayer:
        return ContainerLayer(
            id=ref,
            image="sha256:x",
            config=ContainerConfig(),
            running=True,
            paused=False,
            layers=[],
            upper="/nonexistent",
            lowers=[],
            mount_points=RUNTIME_STUBS,
            diffable=False,
        )


def test_commit_and_diff_need_an_upper_directory() -> None:
    runner: ContainerRunner = _FakeRunner()
    with pytest.raises(InvalidArgument, match="diff needs the overlay2"):
        changes(None, runner, "c1")  # type: ignore[arg-type]
    with pytest.raises(InvalidArgument, match="commit needs the overlay2"):
        asyncio.run(commit(None, runner, "c1"))  # type: ignore[arg-type]
    assert runner.paused == []  # type: ignore[attr-defined]
