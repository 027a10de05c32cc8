"""A small Engine API client over a unix socket or TCP (with TLS), lean enough for the CLI's
fast path: `Client` has one method per route the CLI uses, each returning the decoded JSON
typed for mypy (berth.client.types: TypedDicts only the type checker reads, no cost at run
time), or the Response where the body is a stream (logs, events, pull, build, archives) or
the connection is hijacked (attach, exec). Every method raises the `errors` type of the
daemon's status (NotFound, Conflict, ...), or ConnectionFailed.

Two modules: the transport (berth.client.transport: the daemon's address, HTTP, the errors of a
connection) and, here, the routes. The routes stay in one module rather than one per resource:
every command pays for each module the CLI imports (~0.1 ms each), and a `ps` needs
the transport and the container routes, which is already all of it.

Imports `errors` and `jsonc` only, and of the standard library only `_socket` and `os`
(berth.client.transport says why).
"""

from __future__ import annotations

from berth.client.transport import (
    API_VERSION,
    DEFAULT_HOST,
    DEFAULT_TCP_PORT,
    DEFAULT_TLS_HOST,
    TAR,
    ConflictingOptions,
    ConnectionFailed,
    InvalidHost,
    Response,
    Transport,
    host_from_env,
    parse_host,
    q,
    quote,
    split_tcp,
    urlencode,
)

TYPE_CHECKING = False  # not typing's: importing typing costs ~3 ms of CLI start-up
if TYPE_CHECKING:
    from typing import Any, BinaryIO

    from berth.client import types as t


class Waiting:
    """A wait registered before the start it waits for (so no exit is missed): `result()`
    once the container has stopped."""

    __slots__ = ("response",)

    def __init__(self, response: Response) -> None:
        self.response = response

    def result(self) -> t.WaitResponse:
        try:
            res: t.WaitResponse | None = self.response.json()
            return res or {}
        finally:
            self.response.close()

    def close(self) -> None:
        self.response.close()


class Client(Transport):
    """The Engine API, one method per route. Objects are named as the user gave them (the
    daemon resolves names, IDs and ID prefixes); `filters` is the JSON of docker's filter map.
    """

    # --- containers -------------------------------------------------------------------------
    def containers(
        self,
        *,
        all: bool = False,
        limit: int = 0,
        size: bool = False,  # noqa: A002
        filters: str | None = None,
    ) -> list[t.ContainerSummary]:
        res: list[t.ContainerSummary] = self.get(
            "/containers/json",
            {"all": all or None, "limit": limit or None, "size": size or None, "filters": filters},
        )
        return res

    def inspect_container(self, name: str, *, size: bool = False) -> t.ContainerInspect:
        res: t.ContainerInspect = self.get(f"/containers/{q(name)}/json", {"size": size or None})
        return res

    def create_container(self, body: dict[str, Any], name: str = "") -> t.Created:
        """`POST /containers/create` with docker's create body (Config plus HostConfig)."""
        res: t.Created = self.post("/containers/create", {"name": name or None}, body)
        return res

    def start_container(self, name: str) -> None:
        self._done("POST", f"/containers/{q(name)}/start")

    def stop_container(self, name: str, *, timeout: int | None = None, signal: str = "") -> None:
        self._done("POST", f"/containers/{q(name)}/stop", {"t": timeout, "signal": signal or None})

    def restart_container(self, name: str, *, timeout: int | None = None, signal: str = "") -> None:
        self._done(
            "POST", f"/containers/{q(name)}/restart", {"t": timeout, "signal": signal or None}
        )

    def kill_container(self, name: str, signal: str = "") -> None:
        self._done("POST", f"/containers/{q(name)}/kill", {"signal": signal or None})

    def remove_container(
        self, name: str, *, force: bool = False, volumes: bool = False, link: bool = False
    ) -> None:
        self._done(
            "DELETE",
            f"/containers/{q(name)}",
            {"force": force or None, "v": volumes or None, "link": link or None},
        )

    def wait_container(self, name: str, condition: str = "") -> t.WaitResponse:
        """Blocks until the container stops."""
        res: t.WaitResponse | None = self.post(
            f"/containers/{q(name)}/wait", {"condition": condition or None}
        )
        return res or {}

    def begin_wait(self, name: str, condition: str) -> Waiting:
        """The wait route, registered now and read later (`run`: before the start)."""
        return Waiting(
            self.send("POST", f"/containers/{q(name)}/wait", query={"condition": condition})
        )

    def rename_container(self, name: str, new_name: str) -> None:
        self._done("POST", f"/containers/{q(name)}/rename", {"name": new_name})

    def pause_container(self, name: str) -> None:
        self._done("POST", f"/containers/{q(name)}/pause")

    def unpause_container(self, name: str) -> None:
        self._done("POST", f"/containers/{q(name)}/unpause")

    def update_container(self, name: str, body: dict[str, Any]) -> None:
        self.post(f"/containers/{q(name)}/update", body=body)

    def container_top(self, name: str, ps_args: str = "") -> t.Top:
        res: t.Top = self.get(f"/containers/{q(name)}/top", {"ps_args": ps_args or None})
        return res

    def container_changes(self, name: str) -> list[t.Change]:
        res: list[t.Change] = self.get(f"/containers/{q(name)}/changes") or []
        return res

    def container_logs(
        self,
        name: str,
        *,
        follow: bool = False,
        timestamps: bool = False,
        tail: str = "all",
        since: str | None = None,
        until: str | None = None,
    ) -> Response:
        """stdout and stderr: raw for a TTY, else multiplexed frames."""
        return self.send(
            "GET",
            f"/containers/{q(name)}/logs",
            query={
                "stdout": 1,
                "stderr": 1,
                "follow": follow or None,
                "timestamps": timestamps or None,
                "tail": tail,
                "since": since,
                "until": until,
            },
        )

    def container_stats(self, name: str) -> dict[str, Any]:
        """One sample, docker's stats JSON."""
        res: dict[str, Any] = self.get(f"/containers/{q(name)}/stats", {"stream": 0})
        return res

    def stream_stats(self, name: str) -> Response:
        """A sample a line (`iter_json`)."""
        return self.send("GET", f"/containers/{q(name)}/stats", query={"stream": 1})

    def attach_container(self, name: str, *, stdin: bool, detach_keys: str = "") -> Response:
        """stdout and stderr (and stdin), hijacked."""
        return self.send(
            "POST",
            f"/containers/{q(name)}/attach",
            query={
                "stream": 1,
                "stdin": 1 if stdin else None,
                "stdout": 1,
                "stderr": 1,
                "detachKeys": detach_keys or None,
            },
            upgrade=True,
        )

    def resize_container(self, name: str, height: int, width: int) -> None:
        self._done("POST", f"/containers/{q(name)}/resize", {"h": height, "w": width})

    def export_container(self, name: str) -> Response:
        """The filesystem as a tar stream."""
        return self.send("GET", f"/containers/{q(name)}/export")

    def stat_path(self, name: str, path: str) -> Response:
        """`HEAD .../archive`, unchecked: its status, and the path's stat in the
        X-Docker-Container-Path-Stat header (a HEAD has no body to carry an error)."""
        r = self.send("HEAD", f"/containers/{q(name)}/archive", query={"path": path}, check=False)
        r.close()
        return r

    def get_archive(self, name: str, path: str) -> Response:
        """A tar of `path`; its stat in the header."""
        return self.send("GET", f"/containers/{q(name)}/archive", query={"path": path})

    def put_archive(
        self, name: str, path: str, data: BinaryIO, *, copy_uid_gid: bool = False
    ) -> None:
        """Extract the tar stream `data` at `path`."""
        r = self.send(
            "PUT",
            f"/containers/{q(name)}/archive",
            data=data,
            headers=TAR,
            query={"path": path, "noOverwriteDirNonDir": True, "copyUIDGID": copy_uid_gid},
        )
        r.read()
        r.close()

    def prune_containers(self, filters: str | None = None) -> t.Pruned:
        res: t.Pruned = self.post("/containers/prune", {"filters": filters})
        return res

    def commit(
        self,
        container: str,
        *,
        repo: str = "",
        tag: str = "",
        comment: str = "",
        author: str = "",
        pause: bool = True,
        changes: list[str] | None = None,
    ) -> t.Created:
        res: t.Created = self.post(
            "/commit",
            [
                ("container", container),
                ("repo", repo or None),
                ("tag", tag or None),
                ("comment", comment or None),
                ("author", author or None),
                ("pause", pause),
                *[("changes", ch) for ch in changes or []],
            ],
            {},
        )
        return res

    # --- exec -------------------------------------------------------------------------------
    def create_exec(self, container: str, body: dict[str, Any]) -> t.Created:
        res: t.Created = self.post(f"/containers/{q(container)}/exec", body=body)
        return res

    def start_exec(
        self, exec_id: str, *, tty: bool, detach: bool, console_size: list[int] | None = None
    ) -> Response | None:
        """Hijacked; or, detached, nothing to read."""
        body = {"Detach": detach, "Tty": tty, "ConsoleSize": console_size}
        if detach:
            self._done("POST", f"/exec/{exec_id}/start", body=body)
            return None
        return self.send("POST", f"/exec/{exec_id}/start", body=body, upgrade=True)

    def inspect_exec(self, exec_id: str) -> t.ExecInspect:
        res: t.ExecInspect = self.get(f"/exec/{exec_id}/json")
        return res

    def resize_exec(self, exec_id: str, height: int, width: int) -> None:
        self._done("POST", f"/exec/{exec_id}/resize", {"h": height, "w": width})

    # --- images -----------------------------------------------------------------------------
    def images(
        self,
        *,
        all: bool = False,
        filters: str | None = None,  # noqa: A002
    ) -> list[t.ImageSummary]:
        res: list[t.ImageSummary] = self.get(
            "/images/json", {"all": all or None, "filters": filters}
        )
        return res

    def inspect_image(self, name: str) -> dict[str, Any]:
        res: dict[str, Any] = self.get(f"/images/{q(name)}/json")
        return res

    def tag_image(self, name: str, repo: str, tag: str = "") -> None:
        self._done("POST", f"/images/{q(name)}/tag", {"repo": repo, "tag": tag or None})

    def remove_image(
        self, name: str, *, force: bool = False, no_prune: bool = False
    ) -> list[t.ImageDeleted]:
        res: list[t.ImageDeleted] = self.delete(
            f"/images/{q(name)}", {"force": force or None, "noprune": no_prune or None}
        )
        return res

    def image_history(self, name: str) -> list[t.HistoryItem]:
        res: list[t.HistoryItem] = self.get(f"/images/{q(name)}/history")
        return res

    def save_images(self, names: list[str]) -> Response:
        """A tar stream of the images."""
        return self.send("GET", "/images/get", query=[("names", n) for n in names])

    def load_images(self, data: BinaryIO, *, quiet: bool = False) -> Response:
        """A JSON message a line."""
        return self.send(
            "POST", "/images/load", query={"quiet": quiet or None}, data=data, headers=TAR
        )

    def import_image(
        self, data: BinaryIO, *, repo: str = "", message: str = "", changes: list[str] | None = None
    ) -> Response:
        """`POST /images/create?fromSrc=-`: a JSON message a line."""
        return self.send(
            "POST",
            "/images/create",
            data=data,
            headers=TAR,
            query=[
                ("fromSrc", "-"),
                ("repo", repo),
                ("message", message or None),
                *[("changes", ch) for ch in changes or []],
            ],
        )

    def pull_image(
        self, name: str, tag: str = "", *, platform: str = "", auth: dict[str, str] | None = None
    ) -> Response:
        """`POST /images/create?fromImage=`: progress, a JSON message a line."""
        return self.send(
            "POST",
            "/images/create",
            headers=auth,
            query={"fromImage": name, "tag": tag or None, "platform": platform or None},
        )

    def push_image(
        self, name: str, tag: str = "", *, auth: dict[str, str] | None = None
    ) -> Response:
        """Progress, a JSON message a line."""
        return self.send(
            "POST", f"/images/{q(name)}/push", query={"tag": tag or None}, headers=auth
        )

    def search_images(
        self,
        term: str,
        *,
        limit: int = 0,
        filters: str | None = None,
        auth: dict[str, str] | None = None,
    ) -> list[dict[str, Any]]:
        r = self.send(
            "GET",
            "/images/search",
            headers=auth,
            query={"term": term, "limit": limit or None, "filters": filters},
        )
        try:
            res: list[dict[str, Any]] = r.json() or []
            return res
        finally:
            r.close()

    def prune_images(self, filters: str | None = None) -> t.Pruned:
        res: t.Pruned = self.post("/images/prune", {"filters": filters})
        return res

    def build(
        self, context: BinaryIO, query: list[tuple[str, Any]], headers: dict[str, str]
    ) -> Response:
        """`POST /build` with a tar context: progress, a JSON message a line."""
        return self.send("POST", "/build", query=query, data=context, headers=headers)

    def prune_build_cache(self) -> t.Pruned:
        res: t.Pruned = self.post("/build/prune")
        return res

    # --- networks ---------------------------------------------------------------------------
    def networks(self, filters: str | None = None) -> list[t.NetworkSummary]:
        res: list[t.NetworkSummary] = self.get("/networks", {"filters": filters})
        return res

    def inspect_network(self, name: str) -> dict[str, Any]:
        res: dict[str, Any] = self.get(f"/networks/{q(name)}")
        return res

    def create_network(self, body: dict[str, Any]) -> t.Created:
        res: t.Created = self.post("/networks/create", body=body)
        return res

    def remove_network(self, name: str) -> None:
        self._done("DELETE", f"/networks/{q(name)}")

    def connect_network(self, name: str, container: str, endpoint: dict[str, Any]) -> None:
        self._done(
            "POST",
            f"/networks/{q(name)}/connect",
            body={"Container": container, "EndpointConfig": endpoint},
        )

    def disconnect_network(self, name: str, container: str, *, force: bool = False) -> None:
        self._done(
            "POST", f"/networks/{q(name)}/disconnect", body={"Container": container, "Force": force}
        )

    def prune_networks(self, filters: str | None = None) -> t.Pruned:
        res: t.Pruned = self.post("/networks/prune", {"filters": filters})
        return res

    # --- volumes ----------------------------------------------------------------------------
    def volumes(self, filters: str | None = None) -> list[t.Volume]:
        res: t.VolumeList = self.get("/volumes", {"filters": filters})
        return res.get("Volumes") or []

    def inspect_volume(self, name: str) -> dict[str, Any]:
        res: dict[str, Any] = self.get(f"/volumes/{q(name)}")
        return res

    def create_volume(self, body: dict[str, Any]) -> t.Volume:
        res: t.Volume = self.post("/volumes/create", body=body)
        return res

    def remove_volume(self, name: str, *, force: bool = False) -> None:
        self._done("DELETE", f"/volumes/{q(name)}", {"force": force or None})

    def prune_volumes(self, filters: str | None = None) -> t.Pruned:
        res: t.Pruned = self.post("/volumes/prune", {"filters": filters})
        return res

    # --- system -----------------------------------------------------------------------------
    def version_info(self) -> dict[str, Any]:
        res: dict[str, Any] = self.get("/version")
        return res

    def info(self) -> dict[str, Any]:
        res: dict[str, Any] = self.get("/info")
        return res

    def disk_usage(self) -> dict[str, Any]:
        res: dict[str, Any] = self.get("/system/df")
        return res

    def events(
        self, *, since: str | None = None, until: str | None = None, filters: str | None = None
    ) -> Response:
        """An event a line (`iter_json`) until `until`, or for ever."""
        return self.send(
            "GET", "/events", query={"since": since, "until": until, "filters": filters}
        )

    def auth(self, username: str, password: str, server: str) -> t.AuthResponse:
        """Checks the credentials against the registry."""
        res: t.AuthResponse = self.post(
            "/auth", None, {"username": username, "password": password, "serveraddress": server}
        )
        return res


__all__ = [
    "API_VERSION",
    "DEFAULT_HOST",
    "DEFAULT_TCP_PORT",
    "DEFAULT_TLS_HOST",
    "Client",
    "ConflictingOptions",
    "ConnectionFailed",
    "InvalidHost",
    "Response",
    "Transport",
    "Waiting",
    "host_from_env",
    "parse_host",
    "q",
    "quote",
    "split_tcp",
    "urlencode",
]
