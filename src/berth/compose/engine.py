"""The compose orchestrator's one door to a daemon: a thin adapter over `berth.client`'s public
calls (`get`, `post`, `delete`, `send`), so that the typed client being written can replace it
here alone. Docker's JSON stays in this module: what leaves it is typed.

Imports `client`, `errors`, `jsonc`.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from berth import jsonc as json
from berth.client import Client, q
from berth.errors import Conflict, NotFound

TYPE_CHECKING = False  # not typing's: importing typing costs ~5 ms of every compose command
if TYPE_CHECKING:
    from typing import Any


@dataclass(frozen=True, slots=True, kw_only=True)
class PublishedPort:
    private: int
    public: int
    ip: str
    protocol: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ContainerSummary:
    id: str
    name: str
    image: str
    command: str
    created: int
    state: str  # created, running, paused, restarting, exited, dead
    status: str  # "Up 3 seconds", "Exited (0) 2 seconds ago"
    labels: dict[str, str] = field(default_factory=dict)
    ports: tuple[PublishedPort, ...] = ()

    def label(self, key: str) -> str:
        return self.labels.get(key, "")


@dataclass(frozen=True, slots=True, kw_only=True)
class ContainerState:
    id: str
    name: str
    status: str
    running: bool
    exit_code: int
    health: str  # "" when there is no health check
    image_id: str
    tty: bool
    anonymous_volumes: dict[str, str] = field(default_factory=dict)  # target -> volume name


@dataclass(frozen=True, slots=True, kw_only=True)
class NetworkInfo:
    id: str
    name: str
    labels: dict[str, str]


@dataclass(frozen=True, slots=True, kw_only=True)
class VolumeInfo:
    name: str
    labels: dict[str, str]


@dataclass(frozen=True, slots=True, kw_only=True)
class ImageInfo:
    id: str
    tags: tuple[str, ...]
    size: int
    created: str


def _filters(labels: list[str], **more: list[str]) -> str:
    f: dict[str, list[str]] = {"label": labels}
    f.update({k: v for k, v in more.items() if v})
    return json.dumps(f)


class Engine:
    """The Engine API calls compose makes."""

    def __init__(self, client: Client) -> None:
        self.client = client

    # --- containers ---
    def containers(
        self,
        labels: list[str],
        all: bool = True,  # noqa: A002 - the API's word
    ) -> list[ContainerSummary]:
        docs = self.client.get("/containers/json", {"all": all, "filters": _filters(labels)}) or []
        out = []
        for d in docs:
            names = d.get("Names") or [""]
            out.append(
                ContainerSummary(
                    id=d["Id"],
                    name=names[0].lstrip("/"),
                    image=d.get("Image", ""),
                    command=d.get("Command", ""),
                    created=int(d.get("Created") or 0),
                    state=d.get("State", ""),
                    status=d.get("Status", ""),
                    labels=dict(d.get("Labels") or {}),
                    ports=tuple(
                        PublishedPort(
                            private=int(p.get("PrivatePort") or 0),
                            public=int(p.get("PublicPort") or 0),
                            ip=p.get("IP", ""),
                            protocol=p.get("Type", "tcp"),
                        )
                        for p in d.get("Ports") or []
                    ),
                )
            )
        return out

    def inspect(self, ref: str) -> ContainerState:
        d = self.client.get(f"/containers/{q(ref)}/json")
        st = d.get("State") or {}
        anon = {
            m["Destination"]: m["Name"]
            for m in d.get("Mounts") or []
            if m.get("Type") == "volume" and m.get("Name") and len(m["Name"]) == 64
        }
        return ContainerState(
            id=d["Id"],
            name=d.get("Name", "").lstrip("/"),
            status=st.get("Status", ""),
            running=bool(st.get("Running")),
            exit_code=int(st.get("ExitCode") or 0),
            health=((st.get("Health") or {}).get("Status") or ""),
            image_id=d.get("Image", ""),
            tty=bool((d.get("Config") or {}).get("Tty")),
            anonymous_volumes=anon,
        )

    def create(self, name: str, body: dict[str, Any]) -> str:
        r = self.client.post("/containers/create", {"name": name}, body)
        return str(r["Id"])

    def start(self, ref: str) -> None:
        self.client.send("POST", f"/containers/{q(ref)}/start").close()

    # --- berthd's record of the services, for its dashboard (berth.containers.templates) ---
    def put_template(self, project: str, service: str, body: dict[str, Any]) -> None:
        """How the service's container number 1 was made, left with berthd; a daemon that
        has no such route (dockerd) is left alone."""
        try:
            self.client.send(
                "PUT", f"/berth/compose/{q(project)}/services/{q(service)}", body=body
            ).close()
        except NotFound:
            pass

    def remove_templates(self, project: str) -> None:
        try:
            self.client.send("DELETE", f"/berth/compose/{q(project)}").close()
        except NotFound:
            pass

    def stop(self, ref: str, timeout: int | None = None) -> None:
        self.client.send("POST", f"/containers/{q(ref)}/stop", query={"t": timeout}).close()

    def restart(self, ref: str, timeout: int | None = None) -> None:
        self.client.send("POST", f"/containers/{q(ref)}/restart", query={"t": timeout}).close()

    def kill(self, ref: str, signal: str = "") -> None:
        self.client.send(
            "POST", f"/containers/{q(ref)}/kill", query={"signal": signal or None}
        ).close()

    def pause(self, ref: str) -> None:
        self.client.send("POST", f"/containers/{q(ref)}/pause").close()

    def unpause(self, ref: str) -> None:
        self.client.send("POST", f"/containers/{q(ref)}/unpause").close()

    def remove(self, ref: str, force: bool = False, volumes: bool = False) -> None:
        try:
            self.client.send(
                "DELETE", f"/containers/{q(ref)}", query={"force": force, "v": volumes}
            ).close()
        except Conflict as e:
            if "already in progress" not in str(e):
                raise
            # another removal (an AutoRemove, say) is under way: done once it is gone
            import time

            for _ in range(100):
                try:
                    self.client.get(f"/containers/{q(ref)}/json")
                except NotFound:
                    return
                time.sleep(0.1)
            raise

    def rename(self, ref: str, name: str) -> None:
        self.client.send("POST", f"/containers/{q(ref)}/rename", query={"name": name}).close()

    def wait(self, ref: str) -> int:
        r = self.client.post(f"/containers/{q(ref)}/wait")
        return int((r or {}).get("StatusCode") or 0)

    def top(self, ref: str) -> tuple[list[str], list[list[str]]]:
        r = self.client.get(f"/containers/{q(ref)}/top")
        return list(r.get("Titles") or []), [list(p) for p in r.get("Processes") or []]

    def logs(
        self,
        ref: str,
        *,
        follow: bool,
        tail: str,
        timestamps: bool,
        tty: bool,
        since: str = "",
        until: str = "",
    ) -> Iterator[tuple[int, bytes]]:
        """The container's log as (stream, bytes) pieces: 1 stdout, 2 stderr."""
        r = self.client.send(
            "GET",
            f"/containers/{q(ref)}/logs",
            query={
                "stdout": True,
                "stderr": True,
                "follow": follow,
                "tail": tail or "all",
                "timestamps": timestamps,
                "since": since or None,
                "until": until or None,
            },
        )
        try:
            if tty:
                for piece in r.iter_raw():
                    yield 1, piece
            else:
                yield from r.iter_frames()
        finally:
            r.close()

    def exec_detached(self, ref: str, cmd: list[str]) -> None:
        """Runs `cmd` in the container without waiting for it (watch's deletions, sync+exec)."""
        r = self.client.post(
            f"/containers/{q(ref)}/exec",
            body={"Cmd": cmd, "AttachStdout": False, "AttachStderr": False},
        )
        self.client.send(
            "POST", f"/exec/{q(str(r['Id']))}/start", body={"Detach": True, "Tty": False}
        ).close()

    def exec_run(
        self,
        ref: str,
        cmd: list[str],
        *,
        user: str = "",
        privileged: bool = False,
        workdir: str = "",
        env: list[str] | None = None,
    ) -> tuple[int, bytes]:
        """Runs `cmd` in the container to its end: (exit code, its output)."""
        body: dict[str, Any] = {
            "Cmd": cmd,
            "AttachStdout": True,
            "AttachStderr": True,
            "Privileged": privileged,
        }
        if user:
            body["User"] = user
        if workdir:
            body["WorkingDir"] = workdir
        if env:
            body["Env"] = env
        eid = str(self.client.post(f"/containers/{q(ref)}/exec", body=body)["Id"])
        r = self.client.send(
            "POST", f"/exec/{q(eid)}/start", body={"Detach": False, "Tty": False}, upgrade=True
        )
        try:
            output = b"".join(data for _, data in r.iter_frames())
        finally:
            r.close()
        for _ in range(100):
            info = self.client.get(f"/exec/{q(eid)}/json")
            if not info.get("Running"):
                return int(info.get("ExitCode") or 0), output
            import time

            time.sleep(0.05)
        return -1, output

    def connect(self, network: str, container: str, aliases: list[str], ipv4: str = "") -> None:
        ec: dict[str, Any] = {"Aliases": aliases}
        if ipv4:
            ec["IPAMConfig"] = {"IPv4Address": ipv4}
        self.client.post(
            f"/networks/{q(network)}/connect", body={"Container": container, "EndpointConfig": ec}
        )

    # --- networks ---
    def network(self, name: str) -> NetworkInfo | None:
        try:
            d = self.client.get(f"/networks/{q(name)}")
        except NotFound:
            return None
        return NetworkInfo(id=d["Id"], name=d["Name"], labels=dict(d.get("Labels") or {}))

    def networks(self, labels: list[str]) -> list[NetworkInfo]:
        docs = self.client.get("/networks", {"filters": _filters(labels)}) or []
        return [
            NetworkInfo(id=d["Id"], name=d["Name"], labels=dict(d.get("Labels") or {}))
            for d in docs
        ]

    def create_network(self, body: dict[str, Any]) -> None:
        self.client.post("/networks/create", body=body)

    def remove_network(self, name: str) -> None:
        self.client.send("DELETE", f"/networks/{q(name)}").close()

    # --- volumes ---
    def volume(self, name: str) -> VolumeInfo | None:
        try:
            d = self.client.get(f"/volumes/{q(name)}")
        except NotFound:
            return None
        return VolumeInfo(name=d["Name"], labels=dict(d.get("Labels") or {}))

    def volumes(self, labels: list[str]) -> list[VolumeInfo]:
        docs = (self.client.get("/volumes", {"filters": _filters(labels)}) or {}).get(
            "Volumes"
        ) or []
        return [VolumeInfo(name=d["Name"], labels=dict(d.get("Labels") or {})) for d in docs]

    def create_volume(self, body: dict[str, Any]) -> None:
        self.client.post("/volumes/create", body=body)

    def remove_volume(self, name: str) -> None:
        self.client.send("DELETE", f"/volumes/{q(name)}").close()

    # --- images ---
    def image(self, ref: str) -> ImageInfo | None:
        try:
            d = self.client.get(f"/images/{q(ref)}/json")
        except NotFound:
            return None
        return ImageInfo(
            id=d["Id"],
            tags=tuple(d.get("RepoTags") or ()),
            size=int(d.get("Size") or 0),
            created=str(d.get("Created") or ""),
        )

    def pull(self, ref: str) -> Iterator[dict[str, Any]]:
        name, _, tag = ref.rpartition(":") if ":" in ref.rsplit("/", 1)[-1] else (ref, "", "")
        r = self.client.send(
            "POST", "/images/create", query={"fromImage": name or ref, "tag": tag or "latest"}
        )
        try:
            yield from r.iter_json()
        finally:
            r.close()

    def push(self, ref: str) -> Iterator[dict[str, Any]]:
        name, _, tag = ref.rpartition(":") if ":" in ref.rsplit("/", 1)[-1] else (ref, "", "")
        r = self.client.send(
            "POST",
            f"/images/{q(name or ref)}/push",
            query={"tag": tag or None},
            headers={"X-Registry-Auth": "e30="},
        )
        try:
            yield from r.iter_json()
        finally:
            r.close()

    def tag(self, ref: str, repo: str, tag: str) -> None:
        self.client.send("POST", f"/images/{q(ref)}/tag", query={"repo": repo, "tag": tag}).close()

    def remove_image(self, ref: str) -> None:
        self.client.send("DELETE", f"/images/{q(ref)}").close()

    def build(
        self, context_tar: bytes, query: dict[str, Any], headers: dict[str, str] | None = None
    ) -> Iterator[dict[str, Any]]:
        r = self.client.send(
            "POST",
            "/build",
            query=query,
            data=context_tar,
            headers={"Content-Type": "application/x-tar", **(headers or {})},
        )
        try:
            yield from r.iter_json()
        finally:
            r.close()

    def put_archive(self, ref: str, path: str, tar: bytes) -> None:
        self.client.send(
            "PUT",
            f"/containers/{q(ref)}/archive",
            query={"path": path},
            data=tar,
            headers={"Content-Type": "application/x-tar"},
        ).close()

    def events(self, labels: list[str]) -> Iterator[dict[str, Any]]:
        r = self.client.send("GET", "/events", query={"filters": _filters(labels)})
        try:
            yield from r.iter_json()
        finally:
            r.close()

    def version(self) -> dict[str, Any]:
        return dict(self.client.get("/version") or {})
