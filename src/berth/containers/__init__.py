"""The container service (`berth.containers.service`) and its configuration.

Imports `images`, `storage`, `metadata`, `cgroups`, `networks`, `volumes`, `errors`, and of the
shim only `shim.protocol`: the runtime is reached only as processes (see `service`).
"""

from __future__ import annotations

from berth.containers.config import Config, parse_signal
from berth.containers.service import ContainerService

__all__ = ["Config", "ContainerService", "parse_signal"]
