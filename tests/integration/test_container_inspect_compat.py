"""A container's inspect JSON, made by the API from berth's typed record, beside dockerd's for the
same `docker create` (Debian's docker.io, where installed; a private dockerd as in
test_dockerd_compat.py): the same keys at every level, and the same values where they do not
differ by nature (IDs, times, host paths, the storage driver)."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .conftest import Daemon
from .test_dockerd_compat import Dockerd

pytestmark = pytest.mark.root

# values that differ by nature between two engines: IDs, times, host paths, the storage driver,
# the image's ID (each engine imported the same tar itself) and what derives from them
BY_NATURE = {
    "Id",
    "Created",
    "Image",
    "ResolvConfPath",
    "HostnamePath",
    "HostsPath",
    "LogPath",
    "Driver",
    "GraphDriver",
    "State.StartedAt",
    "State.FinishedAt",
    "State.Pid",
    "Config.Hostname",
    "NetworkSettings.SandboxID",
    "NetworkSettings.SandboxKey",
    "NetworkSettings.Networks.none.NetworkID",
    "NetworkSettings.Networks.none.EndpointID",
    "Mounts.Source",
    "Mounts.Name",
}

# where the two knowingly differ, because Debian's docker.io (20.10) is older than the API berth
# speaks (1.50, docker 28): it still has the kernel memory limits (gone in API 1.42) and not
# the endpoints' DNSNames (API 1.44), and it masks no /proc/interrupts (docker 25 does)
KNOWN = {
    "HostConfig.KernelMemory",
    "HostConfig.KernelMemoryTCP",
    "HostConfig.MaskedPaths",
    "NetworkSettings.Networks.none.DNSNames",
}


def _flatten(v: Any, path: str = "") -> dict[str, Any]:
    """Every leaf by its dotted path; a list of objects is walked item by item (as one path,
    so that Mounts compare by their fields)."""
    out: dict[str, Any] = {}
    if isinstance(v, dict) and v:
        for k, x in v.items():
            out.update(_flatten(x, f"{path}.{k}" if path else k))
    elif isinstance(v, list) and v and all(isinstance(x, dict) for x in v):
        for x in v:
            out.update(_flatten(x, path))
    else:
        out[path] = v
    return out


@pytest.fixture(scope="module")
def engines(
    tmp_path_factory: pytest.TempPathFactory, rootfs_tar: Path, daemon: Daemon
) -> Iterator[tuple[Dockerd, Dockerd]]:
    if not shutil.which("dockerd") or not shutil.which("docker"):
        pytest.skip("no dockerd here to compare with (apt-get install docker.io)")
    theirs = Dockerd(tmp_path_factory.mktemp("dockerd"))
    ours = Dockerd(daemon.base)  # the same docker CLI, at berthd's socket
    ours.env = {**daemon.env, "DOCKER_CONFIG": str(daemon.base / "cfg")}
    try:
        theirs.start()
        theirs.docker("import", str(rootfs_tar), "busybox")
        yield theirs, ours
    finally:
        theirs.stop()


@pytest.mark.parametrize(
    "args",
    [
        ["--network", "none", "busybox", "true"],
        [
            "--network",
            "none",
            "-e",
            "A=1",
            "-l",
            "k=v",
            "-w",
            "/tmp",
            "-u",
            "1:2",
            "--restart",
            "on-failure:2",
            "--stop-signal",
            "SIGINT",
            "--stop-timeout",
            "3",
            "-v",
            "/data",
            "--tmpfs",
            "/run:size=1m",
            "--memory",
            "64m",
            "--cpu-shares",
            "512",
            "--entrypoint",
            "sh",
            "busybox",
            "-c",
            "exit 3",
        ],
        [
            "--network",
            "none",
            "-t",
            "-i",
            "--read-only",
            "--cap-add",
            "NET_ADMIN",
            "--cap-drop",
            "MKNOD",
            "--init",
            "--add-host",
            "h:10.1.2.3",
            "busybox",
            "sh",
        ],
    ],
)
def test_inspect_of_a_created_container_is_dockerd_s(
    engines: tuple[Dockerd, Dockerd], args: list[str]
) -> None:
    theirs, ours = engines
    got = []
    for engine in engines:
        cid = engine.docker("create", "--pull", "never", "--name", "cmp", *args).strip()
        try:
            got.append(json.loads(engine.docker("inspect", cid))[0])
        finally:
            engine.docker("rm", "-v", "cmp")
    docker, berth = (_flatten(g) for g in got)
    # the default runtime is "runc" on both: berth's own goes by that name unless a real runc
    # is configured (and then that one is the default of BERTH_TEST_RUNTIME=runc's daemons)
    assert berth.pop("HostConfig.Runtime") == docker.pop("HostConfig.Runtime") == "runc"
    diffs = _differences(berth, docker)
    assert not diffs, "(key, berth's, dockerd's):\n" + "\n".join(map(repr, diffs))


def _skipped(key: str) -> bool:
    return any(key == k or key.startswith(k + ".") for k in BY_NATURE | KNOWN)


def _differences(berth: dict[str, Any], docker: dict[str, Any]) -> list[tuple[str, Any, Any]]:
    """(key, berth's value, dockerd's value) wherever they differ, a missing key as `...`."""
    keys = sorted(k for k in set(berth) | set(docker) if not _skipped(k))
    return [
        (k, berth.get(k, ...), docker.get(k, ...))
        for k in keys
        if berth.get(k, ...) != docker.get(k, ...)
    ]
