"""The reliability campaigns (issue 17): crashes at any instant, disk full and other faults, a
soak, API fuzzing, several daemons and a changing firewall, concurrency.
Each campaign runs in a short form here (CI); BERTH_CAMPAIGN_LONG=1 (what `bench/campaign.py
--long` sets) runs its full counts.

The daemons and images are the integration tests' own fixtures."""

from __future__ import annotations

import os

from tests.integration.conftest import (  # noqa: F401 - fixtures, re-exported for this directory
    BIN,
    Daemon,
    daemon,
    no_traffic_leaves_the_machine,
    private_daemon,
    rootfs_tar,
    running_daemon,
)


def long_form() -> bool:
    """Whether the campaigns run their full counts (BERTH_CAMPAIGN_LONG=1)."""
    return os.environ.get("BERTH_CAMPAIGN_LONG", "") not in ("", "0")
