"""Shared test helpers: what a test needs, said as a skip with the reason."""

from __future__ import annotations

import os
import shutil

import pytest


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    skip_root = pytest.mark.skip(reason="needs root (namespaces, mounts, cgroups)")
    skip_docker = pytest.mark.skip(reason="the docker CLI is not installed")
    for item in items:
        if "root" in item.keywords and os.geteuid() != 0:
            item.add_marker(skip_root)
        if "docker_cli" in item.keywords and not shutil.which("docker"):
            item.add_marker(skip_docker)
