"""What the mixins of ContainerService (_networking, _output, _resources, _mounts) use of it:
declarations for the type checker only, so nothing here exists at run time."""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from berth import storage
    from berth.containers import Config, _Live
    from berth.images import ImageService
    from berth.networks import NetworkService
    from berth.volumes import VolumeService


class ServiceState:
    if TYPE_CHECKING:
        cfg: Config
        networks: NetworkService | None
        volumes: VolumeService
        images: ImageService
        driver: storage.Driver
        ncpu: int
        _docs: dict[str, dict[str, Any]]
        _live: dict[str, _Live]

        def resolve(self, ref: str) -> dict[str, Any]: ...
        def _save(self, doc: dict[str, Any]) -> None: ...
        def _event(self, doc: dict[str, Any], action: str, **extra: str) -> None: ...
