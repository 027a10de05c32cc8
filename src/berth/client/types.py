"""Typed results of the Engine API routes whose fields the CLI reads.

Each class is made from the route's JSON by `from_json`, which takes what is there and gives
a missing or mistyped field its zero value (a daemon is not trusted to be well-formed; a
wrong value must not become a TypeError deep in a command). Where the CLI prints the JSON
itself (inspect, version, info) the routes return it as it came, or keep it in `raw`.

Plain classes with __slots__, not dataclasses: `dataclasses` costs ~8 ms of CLI start-up.
Imports nothing of berth's.
"""

from __future__ import annotations

TYPE_CHECKING = False  # not typing's: importing typing costs ~3 ms of CLI start-up
if TYPE_CHECKING:
    from typing import Any


def _str(v: Any) -> str:
    return v if isinstance(v, str) else ""


def _int(v: Any) -> int:
    return v if isinstance(v, int) and not isinstance(v, bool) else 0


def _opt_int(v: Any) -> int | None:
    return v if isinstance(v, int) and not isinstance(v, bool) else None


def _strs(v: Any) -> list[str]:
    return [x for x in v if isinstance(x, str)] if isinstance(v, list) else []


def _labels(v: Any) -> dict[str, str]:
    return {k: x for k, x in v.items() if isinstance(k, str) and isinstance(x, str)} \
        if isinstance(v, dict) else {}


def _dict(v: Any) -> dict[str, Any]:
    return v if isinstance(v, dict) else {}


def _dicts(v: Any) -> list[dict[str, Any]]:
    return [x for x in v if isinstance(x, dict)] if isinstance(v, list) else []


class Record:
    """Equality and repr by slots, for tests and debugging."""

    __slots__: tuple[str, ...] = ()

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and all(
            getattr(self, k) == getattr(other, k) for k in self.__slots__)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(" + ", ".join(
            f"{k}={getattr(self, k)!r}" for k in self.__slots__ if k != "raw") + ")"

    __hash__ = None  # type: ignore[assignment]


class Port(Record):
    """One port of a container summary: `PrivatePort/Type`, published on `IP:PublicPort`."""

    __slots__ = ("ip", "private_port", "public_port", "type")

    def __init__(self, ip: str, private_port: int, public_port: int, type: str) -> None:  # noqa: A002
        self.ip = ip
        self.private_port = private_port
        self.public_port = public_port
        self.type = type

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Port:
        return cls(_str(d.get("IP")), _int(d.get("PrivatePort")), _int(d.get("PublicPort")),
                   _str(d.get("Type")))


class Mount(Record):
    """One mount of a container summary: a named volume (`name`) or a bind (`source`)."""

    __slots__ = ("type", "name", "source", "destination", "driver")

    def __init__(self, type: str, name: str, source: str, destination: str,  # noqa: A002
                 driver: str) -> None:
        self.type = type
        self.name = name
        self.source = source
        self.destination = destination
        self.driver = driver

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Mount:
        return cls(_str(d.get("Type")), _str(d.get("Name")), _str(d.get("Source")),
                   _str(d.get("Destination")), _str(d.get("Driver")))


class ContainerSummary(Record):
    """An item of `GET /containers/json`."""

    __slots__ = ("id", "names", "image", "command", "created", "status", "state", "ports",
                 "mounts", "labels", "networks", "size_rw", "size_root_fs")

    def __init__(self, *, id: str, names: list[str], image: str, command: str,  # noqa: A002
                 created: int, status: str, state: str, ports: list[Port],
                 mounts: list[Mount], labels: dict[str, str], networks: list[str],
                 size_rw: int, size_root_fs: int) -> None:
        self.id = id
        self.names = names
        self.image = image
        self.command = command
        self.created = created
        self.status = status
        self.state = state
        self.ports = ports
        self.mounts = mounts
        self.labels = labels
        self.networks = networks
        self.size_rw = size_rw
        self.size_root_fs = size_root_fs

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> ContainerSummary:
        nets = _dict(d.get("NetworkSettings")).get("Networks")
        return cls(id=_str(d.get("Id")), names=_strs(d.get("Names")),
                   image=_str(d.get("Image")), command=_str(d.get("Command")),
                   created=_int(d.get("Created")), status=_str(d.get("Status")),
                   state=_str(d.get("State")),
                   ports=[Port.from_json(p) for p in _dicts(d.get("Ports"))],
                   mounts=[Mount.from_json(m) for m in _dicts(d.get("Mounts"))],
                   labels=_labels(d.get("Labels")),
                   networks=[k for k in nets if isinstance(k, str)] if isinstance(
                       nets, dict) else [],
                   size_rw=_int(d.get("SizeRw")), size_root_fs=_int(d.get("SizeRootFs")))


class ContainerInspect(Record):
    """`GET /containers/{id}/json`: the fields the CLI acts on, and `raw`, the JSON as the
    daemon sent it (what `inspect` prints)."""

    __slots__ = ("raw", "id", "name", "running", "tty", "open_stdin", "port_bindings")

    def __init__(self, raw: dict[str, Any], *, id: str, name: str, running: bool,  # noqa: A002
                 tty: bool, open_stdin: bool,
                 port_bindings: dict[str, list[tuple[str, str]]]) -> None:
        self.raw = raw
        self.id = id
        self.name = name
        self.running = running
        self.tty = tty
        self.open_stdin = open_stdin
        self.port_bindings = port_bindings   # "80/tcp" -> [(host IP, host port)]

    @classmethod
    def from_json(cls, d: Any) -> ContainerInspect:
        raw: dict[str, Any] = d if isinstance(d, dict) else {}
        state, config = _dict(raw.get("State")), _dict(raw.get("Config"))
        ports = _dict(_dict(raw.get("NetworkSettings")).get("Ports"))
        return cls(raw, id=_str(raw.get("Id")), name=_str(raw.get("Name")),
                   running=state.get("Running") is True, tty=config.get("Tty") is True,
                   open_stdin=config.get("OpenStdin") is True,
                   port_bindings={k: [(_str(b.get("HostIp")), _str(b.get("HostPort")))
                                      for b in _dicts(v)] for k, v in ports.items()
                                  if isinstance(k, str)})


class Created(Record):
    """What a create route answers: the new object's ID and the daemon's warnings."""

    __slots__ = ("id", "warnings")

    def __init__(self, id: str, warnings: list[str]) -> None:  # noqa: A002
        self.id = id
        self.warnings = warnings

    @classmethod
    def from_json(cls, d: Any) -> Created:
        d = d if isinstance(d, dict) else {}
        warnings = d.get("Warnings") or d.get("Warning") or []
        return cls(_str(d.get("Id")), [warnings] if isinstance(warnings, str)
                   else _strs(warnings))


class WaitResult(Record):
    """`POST /containers/{id}/wait`: the exit status, and the daemon's error if waiting
    failed."""

    __slots__ = ("status_code", "error")

    def __init__(self, status_code: int, error: str) -> None:
        self.status_code = status_code
        self.error = error

    @classmethod
    def from_json(cls, d: Any) -> WaitResult:
        d = d if isinstance(d, dict) else {}
        e = d.get("Error")
        return cls(_int(d.get("StatusCode")), _str(e.get("Message")) if isinstance(e, dict)
                   else "")


class ExecInspect(Record):
    """`GET /exec/{id}/json`: whether it runs, and its exit code once it ended."""

    __slots__ = ("id", "running", "exit_code")

    def __init__(self, id: str, running: bool, exit_code: int | None) -> None:  # noqa: A002
        self.id = id
        self.running = running
        self.exit_code = exit_code

    @classmethod
    def from_json(cls, d: Any) -> ExecInspect:
        d = d if isinstance(d, dict) else {}
        return cls(_str(d.get("ID")), d.get("Running") is True, _opt_int(d.get("ExitCode")))


class Top(Record):
    """`GET /containers/{id}/top`: ps's column titles and one row of cells per process."""

    __slots__ = ("titles", "processes")

    def __init__(self, titles: list[str], processes: list[list[str]]) -> None:
        self.titles = titles
        self.processes = processes

    @classmethod
    def from_json(cls, d: Any) -> Top:
        d = d if isinstance(d, dict) else {}
        procs = d.get("Processes")
        return cls(_strs(d.get("Titles")), [_strs(p) for p in procs if isinstance(p, list)]
                   if isinstance(procs, list) else [])


class Change(Record):
    """An item of `GET /containers/{id}/changes`: 0 modified, 1 added, 2 deleted."""

    __slots__ = ("kind", "path")

    def __init__(self, kind: int, path: str) -> None:
        self.kind = kind
        self.path = path

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Change:
        return cls(_int(d.get("Kind")), _str(d.get("Path")))


class Pruned(Record):
    """A prune route's answer: what went, as (what, ID) pairs (images: "Untagged" or
    "Deleted"; everything else "Deleted"), and the bytes it freed."""

    __slots__ = ("deleted", "space_reclaimed")

    def __init__(self, deleted: list[tuple[str, str]], space_reclaimed: int) -> None:
        self.deleted = deleted
        self.space_reclaimed = space_reclaimed

    @classmethod
    def from_json(cls, d: Any, key: str) -> Pruned:
        d = d if isinstance(d, dict) else {}
        items = d.get(key)
        deleted = image_deletions(items) if key == "ImagesDeleted" else [
            ("Deleted", x) for x in _strs(items)]
        return cls(deleted, _int(d.get("SpaceReclaimed")))


def image_deletions(items: Any) -> list[tuple[str, str]]:
    """`DELETE /images/{name}` and the image prune: [{"Untagged": ref} | {"Deleted": id}]."""
    return [(k, v) for item in _dicts(items) for k, v in item.items()
            if isinstance(k, str) and isinstance(v, str)]


class ImageSummary(Record):
    """An item of `GET /images/json`. Counts the daemon did not work out are -1."""

    __slots__ = ("id", "repo_tags", "repo_digests", "created", "size", "shared_size",
                 "virtual_size", "containers", "labels")

    def __init__(self, *, id: str, repo_tags: list[str], repo_digests: list[str],  # noqa: A002
                 created: int, size: int, shared_size: int, virtual_size: int,
                 containers: int, labels: dict[str, str]) -> None:
        self.id = id
        self.repo_tags = repo_tags
        self.repo_digests = repo_digests
        self.created = created
        self.size = size
        self.shared_size = shared_size
        self.virtual_size = virtual_size
        self.containers = containers
        self.labels = labels

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> ImageSummary:
        size = _int(d.get("Size"))
        shared, count = _opt_int(d.get("SharedSize")), _opt_int(d.get("Containers"))
        virtual = _opt_int(d.get("VirtualSize"))
        return cls(id=_str(d.get("Id")), repo_tags=_strs(d.get("RepoTags")),
                   repo_digests=_strs(d.get("RepoDigests")), created=_int(d.get("Created")),
                   size=size, shared_size=-1 if shared is None else shared,
                   virtual_size=size if virtual is None else virtual,
                   containers=-1 if count is None else count, labels=_labels(d.get("Labels")))


class HistoryItem(Record):
    """An item of `GET /images/{name}/history` (`<missing>` for a layer of another image)."""

    __slots__ = ("id", "created", "created_by", "size", "comment")

    def __init__(self, id: str, created: int, created_by: str, size: int,  # noqa: A002
                 comment: str) -> None:
        self.id = id
        self.created = created
        self.created_by = created_by
        self.size = size
        self.comment = comment

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> HistoryItem:
        return cls(_str(d.get("Id")), _int(d.get("Created")), _str(d.get("CreatedBy")),
                   _int(d.get("Size")), _str(d.get("Comment")))


class NetworkSummary(Record):
    """An item of `GET /networks`."""

    __slots__ = ("id", "name", "driver", "scope", "ipv4", "ipv6", "internal", "created",
                 "labels")

    def __init__(self, *, id: str, name: str, driver: str, scope: str, ipv4: bool,  # noqa: A002
                 ipv6: bool, internal: bool, created: str, labels: dict[str, str]) -> None:
        self.id = id
        self.name = name
        self.driver = driver
        self.scope = scope
        self.ipv4 = ipv4
        self.ipv6 = ipv6
        self.internal = internal
        self.created = created
        self.labels = labels

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> NetworkSummary:
        return cls(id=_str(d.get("Id")), name=_str(d.get("Name")),
                   driver=_str(d.get("Driver")), scope=_str(d.get("Scope")),
                   ipv4=d.get("EnableIPv4") is True, ipv6=d.get("EnableIPv6") is True,
                   internal=d.get("Internal") is True, created=_str(d.get("Created")),
                   labels=_labels(d.get("Labels")))


class VolumeSummary(Record):
    """An item of `GET /volumes`; `ref_count` and `size` are -1 where not worked out."""

    __slots__ = ("name", "driver", "scope", "mountpoint", "labels", "ref_count", "size")

    def __init__(self, *, name: str, driver: str, scope: str, mountpoint: str,
                 labels: dict[str, str], ref_count: int, size: int) -> None:
        self.name = name
        self.driver = driver
        self.scope = scope
        self.mountpoint = mountpoint
        self.labels = labels
        self.ref_count = ref_count
        self.size = size

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> VolumeSummary:
        usage = _dict(d.get("UsageData"))
        refs, size = _opt_int(usage.get("RefCount")), _opt_int(usage.get("Size"))
        return cls(name=_str(d.get("Name")), driver=_str(d.get("Driver")),
                   scope=_str(d.get("Scope")) or "local", mountpoint=_str(d.get("Mountpoint")),
                   labels=_labels(d.get("Labels")), ref_count=-1 if refs is None else refs,
                   size=-1 if size is None else size)


class AuthResult(Record):
    """`POST /auth`: the daemon's status line and, from a registry that gives one, a token
    to store instead of the password."""

    __slots__ = ("status", "identity_token")

    def __init__(self, status: str, identity_token: str) -> None:
        self.status = status
        self.identity_token = identity_token

    @classmethod
    def from_json(cls, d: Any) -> AuthResult:
        d = d if isinstance(d, dict) else {}
        return cls(_str(d.get("Status")), _str(d.get("IdentityToken")))


__all__ = ["AuthResult", "Change", "ContainerInspect", "ContainerSummary", "Created",
           "ExecInspect", "HistoryItem", "ImageSummary", "Mount", "NetworkSummary", "Port",
           "Pruned", "Record", "Top", "VolumeSummary", "WaitResult", "image_deletions"]
