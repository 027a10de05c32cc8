"""The Engine API's JSON as the client returns it, typed for mypy: one TypedDict per answer
whose fields the CLI reads, with Docker's field names (shared/specs/engine-api).

Imported only under `TYPE_CHECKING` (this module imports `typing`, ~3 ms of start-up): at run
time the client returns the decoded JSON itself, so a typed result costs the CLI nothing,
and a misspelt field is a mypy error all the same. Where the CLI prints the JSON (inspect,
version, info) the whole document is passed through.
"""

from __future__ import annotations

from typing import Any, TypedDict


class Port(TypedDict, total=False):
    IP: str
    PrivatePort: int
    PublicPort: int
    Type: str


class MountPoint(TypedDict, total=False):
    Type: str
    Name: str
    Source: str
    Destination: str
    Driver: str


class SummaryNetworkSettings(TypedDict, total=False):
    Networks: dict[str, Any]


class ContainerSummary(TypedDict, total=False):
    """An item of `GET /containers/json`."""

    Id: str
    Names: list[str]
    Image: str
    Command: str
    Created: int
    Status: str
    State: str
    Ports: list[Port]
    Mounts: list[MountPoint]
    Labels: dict[str, str]
    NetworkSettings: SummaryNetworkSettings
    SizeRw: int
    SizeRootFs: int


class PortBinding(TypedDict, total=False):
    HostIp: str
    HostPort: str


class ContainerState(TypedDict, total=False):
    Status: str
    Running: bool


class ContainerConfig(TypedDict, total=False):
    Tty: bool
    OpenStdin: bool


class InspectNetworkSettings(TypedDict, total=False):
    Ports: dict[str, list[PortBinding] | None]


class ContainerInspect(TypedDict, total=False):
    """`GET /containers/{id}/json`: the fields the CLI acts on (the rest is printed)."""

    Id: str
    Name: str
    State: ContainerState
    Config: ContainerConfig
    NetworkSettings: InspectNetworkSettings


class Created(TypedDict, total=False):
    """The answer of a create route (container, exec, network, commit)."""

    Id: str
    Warnings: list[str] | None


class WaitError(TypedDict, total=False):
    Message: str


class WaitResponse(TypedDict, total=False):
    StatusCode: int
    Error: WaitError | None


class ExecInspect(TypedDict, total=False):
    ID: str
    Running: bool
    ExitCode: int | None


class Top(TypedDict, total=False):
    Titles: list[str]
    Processes: list[list[str]]


class Change(TypedDict):
    """An item of `GET /containers/{id}/changes`: Kind 0 modified, 1 added, 2 deleted."""

    Kind: int
    Path: str


class ImageDeleted(TypedDict, total=False):
    """An item of `DELETE /images/{name}` and of the image prune: one of the two."""

    Untagged: str
    Deleted: str


class Pruned(TypedDict, total=False):
    """A prune route's answer: the list under the key of its kind, and the bytes freed."""

    ContainersDeleted: list[str] | None
    ImagesDeleted: list[ImageDeleted] | None
    NetworksDeleted: list[str] | None
    VolumesDeleted: list[str] | None
    CachesDeleted: list[str] | None
    SpaceReclaimed: int


class ImageSummary(TypedDict, total=False):
    """An item of `GET /images/json`; counts the daemon did not work out are -1."""

    Id: str
    RepoTags: list[str] | None
    RepoDigests: list[str] | None
    Created: int
    Size: int
    SharedSize: int
    VirtualSize: int
    Containers: int
    Labels: dict[str, str] | None


class HistoryItem(TypedDict, total=False):
    Id: str
    Created: int
    CreatedBy: str
    Size: int
    Comment: str


class NetworkSummary(TypedDict, total=False):
    """An item of `GET /networks`."""

    Id: str
    Name: str
    Driver: str
    Scope: str
    EnableIPv4: bool
    EnableIPv6: bool
    Internal: bool
    Created: str
    Labels: dict[str, str] | None


class VolumeUsage(TypedDict, total=False):
    RefCount: int
    Size: int


class Volume(TypedDict, total=False):
    """An item of `GET /volumes`, and `POST /volumes/create`'s answer."""

    Name: str
    Driver: str
    Scope: str
    Mountpoint: str
    Labels: dict[str, str] | None
    UsageData: VolumeUsage | None


class VolumeList(TypedDict, total=False):
    Volumes: list[Volume] | None
    Warnings: list[str] | None


class AuthResponse(TypedDict, total=False):
    Status: str
    IdentityToken: str


__all__ = [
    "AuthResponse",
    "Change",
    "ContainerInspect",
    "ContainerSummary",
    "Created",
    "ExecInspect",
    "HistoryItem",
    "ImageDeleted",
    "ImageSummary",
    "MountPoint",
    "NetworkSummary",
    "Port",
    "PortBinding",
    "Pruned",
    "Top",
    "Volume",
    "VolumeList",
    "WaitResponse",
]
