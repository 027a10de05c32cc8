"""The hostile-input campaign: one file per class of attack (copy-up, build context and stages,
layers and archives, devices, exec, DNS, resource floods, the data root, registries). Each test
aims at a host path or resource and checks that it is untouched.

The daemons and images are the integration tests' own fixtures."""

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

pytestmark = pytest.mark.root
