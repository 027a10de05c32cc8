"""The hostile-input campaign: one file per class of attack (copy-up, build context and stages,
layers and archives, devices, exec, DNS, resource floods, the data root, registries). Each test
aims at a host path or resource and checks that it is untouched.

The daemons and images are the integration tests' own fixtures."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.conftest import (  # noqa: F401 - fixtures, re-exported for this directory
    BIN,
    Daemon,
    daemon,
    no_traffic_leaves_the_machine,
    private_daemon,
    rootfs_tar,
    running_daemon,
)


@pytest.fixture
def host_dir(tmp_path: Path) -> Iterator[Path]:
    """A directory on the host that hostile images aim at; it must stay as it is."""
    d = tmp_path / "host-target"
    d.mkdir()
    (d / "sentinel").write_text("untouched")
    yield d
    assert sorted(p.name for p in d.iterdir()) == ["sentinel"], list(d.iterdir())
    assert (d / "sentinel").read_text() == "untouched"
    with open("/proc/self/mountinfo") as f:
        assert str(d) not in f.read(), "something was mounted on the host"


@pytest.fixture
def tag(daemon: Daemon) -> Iterator[str]:  # noqa: F811 - the fixture above
    """A tag of the test's own; the image, what the build left and unused volumes are removed
    afterwards."""
    t = f"sec-{secrets.token_hex(4)}"
    try:
        yield t
    finally:
        daemon.berth("rmi", "-f", t)
        daemon.berth("image", "prune", "-f")
        daemon.berth("volume", "prune", "-f")
