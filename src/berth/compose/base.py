"""What the orchestrator's parts share: its error, the options of `up`, the progress callback
and a container's number.

Imports `compose.labels`, `compose.engine`, `errors`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from berth.compose import labels as L
from berth.compose.engine import ContainerSummary
from berth.errors import BerthError

# (kind, name, state): ("Container", "proj-web-1", "Started")
Progress = Callable[[str, str, str], None]
# (context directory, Dockerfile, inline Dockerfile or "") -> (the context as a tar, the
# Dockerfile's name in it)
ContextTar = Callable[[str, str, str], tuple[bytes, str]]


class ComposeError(BerthError):
    """A failure of a compose operation that names the service or container at fault."""

    status = 500


def number(c: ContainerSummary) -> int:
    """The container's number within its service (0 when its label says none)."""
    try:
        return int(c.label(L.NUMBER))
    except ValueError:
        return 0


@dataclass(slots=True, kw_only=True)
class UpOptions:
    services: list[str] = field(default_factory=list)
    force_recreate: bool = False
    no_recreate: bool = False
    no_deps: bool = False
    no_start: bool = False
    remove_orphans: bool = False
    build: bool = False
    no_build: bool = False
    pull: str = ""  # "", always, missing, never
    scale: dict[str, int] = field(default_factory=dict)
    wait: bool = False
    wait_timeout: float = 0.0
    timeout: int | None = None
