"""A small Engine API client: one method per route the CLI uses, typed results where the CLI
reads fields (berth.client.types), the JSON as it came where the CLI prints it (inspect,
version, info), and the Response where the body is a stream (logs, events, pull, build,
archives) or the connection is hijacked (attach, exec).

Imports `errors` and `jsonc` only, and of the standard library only `_socket` and `os`:
`http.client` alone costs ~28 ms of start-up here (shared/PEERS.md), and `socket` and `json`
about 6 ms each, for the `enum` and `re` they import. The transport (berth.client.transport)
speaks just enough HTTP/1.1; `ssl` comes only when a TLS endpoint is used.

Every method raises the `errors` type of the daemon's status (NotFound, Conflict, ...), or
ConnectionFailed when the daemon cannot be reached.
"""

from __future__ import annotations

from berth.client.transport import (
    API_VERSION,
    DEFAULT_HOST,
    TLS,
    ConflictingOptions,
    ConnectionFailed,
    InvalidHost,
    Response,
    Transport,
    host_from_env,
    parse_host,
    q,
)
from berth.client.types import (
    AuthResult,
    Change,
    ContainerInspect,
    ContainerSummary,
    Created,
    ExecInspect,
    HistoryItem,
    ImageSummary,
    NetworkSummary,
    Pruned,
    Top,
    VolumeSummary,
    WaitResult,
    image_deletions,
)

TYPE_CHECKING = False  # not typing's: importing typing costs ~3 ms of CLI start-up
if TYPE_CHECKING:
    from typing import Any, BinaryIO

    Query = dict[str, Any] | list[tuple[str, Any]]

_TAR = {"Content-Type": "application/x-tar"}


def _list(v: Any) -> list[Any]:
    return v if isinstance(v, list) else []


class Waiting:
    """A wait registered before the start it waits for (so no exit is missed): `result()`
    once the container has stopped."""

    __slots__ = ("response",)

    def __init__(self, response: Response) -> None:
        self.response = response

    def result(self) -> WaitResult:
        try:
            return WaitResult.from_json(self.response.json())
        finally:
            self.response.close()

    def close(self) -> None:
        self.response.close()


class Client(Transport):
    """The Engine API, route by route. Names are the object's (container, image, network,
    volume) as the user gave them: the daemon resolves names, IDs and ID prefixes."""

    def _done(self, method: str, path: str, query: Query | None = None,
              body: Any = None) -> None:
        """A route whose answer the CLI does not read."""
        self.send(method, path, query=query, body=body).close()

    # --- containers ---------------------------------------------------------------------------
    def containers(self, *, all: bool = False, limit: int = 0, size: bool = False,  # noqa: A002
                   filters: str | None = None) -> list[ContainerSummary]:
        """`GET /containers/json`. `filters` is the JSON of docker's filter map."""
        res = self.get("/containers/json", {"all": all or None, "limit": limit or None,
                                            "size": size or None, "filters": filters})
        return [ContainerSummary.from_json(d) for d in _list(res) if isinstance(d, dict)]

    def inspect_container(self, name: str, *, size: bool = False) -> ContainerInspect:
        """`GET /containers/{name}/json`; `.raw` is the JSON for `inspect` to print."""
        return ContainerInspect.from_json(
            self.get(f"/containers/{q(name)}/json", {"size": size or None}))

    def create_container(self, body: dict[str, Any], name: str = "") -> Created:
        """`POST /containers/create` with docker's create body (Config plus HostConfig)."""
        return Created.from_json(self.post("/containers/create", {"name": name or None}, body))

    def start_container(self, name: str) -> None:
        self._done("POST", f"/containers/{q(name)}/start")

    def stop_container(self, name: str, *, timeout: int | None = None, signal: str = "") -> None:
        self._done("POST", f"/containers/{q(name)}/stop",
                   {"t": timeout, "signal": signal or None})

    def restart_container(self, name: str, *, timeout: int | None = None,
                          signal: str = "") -> None:
        self._done("POST", f"/containers/{q(name)}/restart",
                   {"t": timeout, "signal": signal or None})

    def kill_container(self, name: str, signal: str = "") -> None:
        self._done("POST", f"/containers/{q(name)}/kill", {"signal": signal or None})

    def remove_container(self, name: str, *, force: bool = False, volumes: bool = False,
                         link: bool = False) -> None:
        self._done("DELETE", f"/containers/{q(name)}",
                   {"force": force or None, "v": volumes or None, "link": link or None})

    def wait_container(self, name: str, condition: str = "") -> WaitResult:
        """`POST /containers/{name}/wait`: blocks until the container stops."""
        return WaitResult.from_json(self.post(f"/containers/{q(name)}/wait",
                                              {"condition": condition or None}))

    def begin_wait(self, name: str, condition: str) -> Waiting:
        """The same route, registered now and read later (`run`: before the start)."""
        return Waiting(self.send("POST", f"/containers/{q(name)}/wait",
                                 query={"condition": condition}))

    def rename_container(self, name: str, new_name: str) -> None:
        self._done("POST", f"/containers/{q(name)}/rename", {"name": new_name})

    def pause_container(self, name: str) -> None:
        self._done("POST", f"/containers/{q(name)}/pause")

    def unpause_container(self, name: str) -> None:
        self._done("POST", f"/containers/{q(name)}/unpause")

    def update_container(self, name: str, body: dict[str, Any]) -> None:
        """`POST /containers/{name}/update` with the resources and restart policy to set."""
        self.post(f"/containers/{q(name)}/update", body=body)

    def container_top(self, name: str, ps_args: str = "") -> Top:
        return Top.from_json(self.get(f"/containers/{q(name)}/top",
                                      {"ps_args": ps_args or None}))

    def container_changes(self, name: str) -> list[Change]:
        return [Change.from_json(d) for d in _list(self.get(f"/containers/{q(name)}/changes"))
                if isinstance(d, dict)]

    def container_logs(self, name: str, *, follow: bool = False, timestamps: bool = False,
                       tail: str = "all", since: str | None = None,
                       until: str | None = None) -> Response:
        """`GET /containers/{name}/logs`, stdout and stderr: raw for a TTY, else framed."""
        return self.send("GET", f"/containers/{q(name)}/logs", query={
            "stdout": 1, "stderr": 1, "follow": follow or None,
            "timestamps": timestamps or None, "tail": tail, "since": since, "until": until})

    def container_stats(self, name: str) -> dict[str, Any]:
        """One sample of `GET /containers/{name}/stats` (docker's stats JSON, as it came)."""
        res = self.get(f"/containers/{q(name)}/stats", {"stream": 0})
        return res if isinstance(res, dict) else {}

    def stream_stats(self, name: str) -> Response:
        """`GET /containers/{name}/stats?stream=1`: a JSON sample a line (`iter_json`)."""
        return self.send("GET", f"/containers/{q(name)}/stats", query={"stream": 1})

    def attach_container(self, name: str, *, stdin: bool, detach_keys: str = "") -> Response:
        """`POST /containers/{name}/attach` (stream, stdout, stderr), hijacked."""
        return self.send("POST", f"/containers/{q(name)}/attach",
                         query={"stream": 1, "stdin": 1 if stdin else None, "stdout": 1,
                                "stderr": 1, "detachKeys": detach_keys or None}, upgrade=True)

    def resize_container(self, name: str, height: int, width: int) -> None:
        self._done("POST", f"/containers/{q(name)}/resize", {"h": height, "w": width})

    def export_container(self, name: str) -> Response:
        """`GET /containers/{name}/export`: the filesystem as a tar stream."""
        return self.send("GET", f"/containers/{q(name)}/export")

    def stat_path(self, name: str, path: str) -> Response:
        """`HEAD /containers/{name}/archive`, unchecked: the caller reads its status and
        the X-Docker-Container-Path-Stat header (a HEAD has no body for an error)."""
        r = self.send("HEAD", f"/containers/{q(name)}/archive", query={"path": path},
                      check=False)
        r.close()
        return r

    def get_archive(self, name: str, path: str) -> Response:
        """`GET /containers/{name}/archive`: a tar of `path`, its stat in the header."""
        return self.send("GET", f"/containers/{q(name)}/archive", query={"path": path})

    def put_archive(self, name: str, path: str, data: BinaryIO, *, copy_uid_gid: bool = False,
                    no_overwrite_dir_non_dir: bool = True) -> None:
        """`PUT /containers/{name}/archive`: extract the tar stream `data` at `path`."""
        r = self.send("PUT", f"/containers/{q(name)}/archive", data=data, headers=_TAR,
                      query={"path": path, "noOverwriteDirNonDir": no_overwrite_dir_non_dir,
                             "copyUIDGID": copy_uid_gid})
        r.read()
        r.close()

    def prune_containers(self, filters: str | None = None) -> Pruned:
        return Pruned.from_json(self.post("/containers/prune", {"filters": filters}),
                                "ContainersDeleted")

    def commit(self, container: str, *, repo: str = "", tag: str = "", comment: str = "",
               author: str = "", pause: bool = True, changes: list[str] | None = None) -> str:
        """`POST /commit`: the new image's ID."""
        res = self.post("/commit", [("container", container), ("repo", repo or None),
                                    ("tag", tag or None), ("comment", comment or None),
                                    ("author", author or None), ("pause", pause),
                                    *[("changes", ch) for ch in changes or []]], {})
        return Created.from_json(res).id

    # --- exec ---------------------------------------------------------------------------------
    def create_exec(self, container: str, body: dict[str, Any]) -> str:
        """`POST /containers/{name}/exec` with docker's exec config: the exec's ID."""
        return Created.from_json(self.post(f"/containers/{q(container)}/exec", body=body)).id

    def start_exec(self, exec_id: str, *, tty: bool, detach: bool,
                   console_size: list[int] | None = None) -> Response | None:
        """`POST /exec/{id}/start`: hijacked, or (detach) nothing to read."""
        body = {"Detach": detach, "Tty": tty, "ConsoleSize": console_size}
        if detach:
            self._done("POST", f"/exec/{exec_id}/start", body=body)
            return None
        return self.send("POST", f"/exec/{exec_id}/start", body=body, upgrade=True)

    def inspect_exec(self, exec_id: str) -> ExecInspect:
        return ExecInspect.from_json(self.get(f"/exec/{exec_id}/json"))

    def resize_exec(self, exec_id: str, height: int, width: int) -> None:
        self._done("POST", f"/exec/{exec_id}/resize", {"h": height, "w": width})

    # --- images -------------------------------------------------------------------------------
    def images(self, *, all: bool = False, filters: str | None = None  # noqa: A002
               ) -> list[ImageSummary]:
        res = self.get("/images/json", {"all": all or None, "filters": filters})
        return [ImageSummary.from_json(d) for d in _list(res) if isinstance(d, dict)]

    def inspect_image(self, name: str) -> dict[str, Any]:
        """`GET /images/{name}/json`, the JSON as it came (what `inspect` prints)."""
        res = self.get(f"/images/{q(name)}/json")
        return res if isinstance(res, dict) else {}

    def tag_image(self, name: str, repo: str, tag: str = "") -> None:
        self._done("POST", f"/images/{q(name)}/tag", {"repo": repo, "tag": tag or None})

    def remove_image(self, name: str, *, force: bool = False,
                     no_prune: bool = False) -> list[tuple[str, str]]:
        """`DELETE /images/{name}`: what went, as ("Untagged" | "Deleted", ref) pairs."""
        return image_deletions(self.delete(f"/images/{q(name)}", {
            "force": force or None, "noprune": no_prune or None}))

    def image_history(self, name: str) -> list[HistoryItem]:
        return [HistoryItem.from_json(d) for d in _list(self.get(f"/images/{q(name)}/history"))
                if isinstance(d, dict)]

    def save_images(self, names: list[str]) -> Response:
        """`GET /images/get`: a tar stream of the images."""
        return self.send("GET", "/images/get", query=[("names", n) for n in names])

    def load_images(self, data: BinaryIO, *, quiet: bool = False) -> Response:
        """`POST /images/load`: a JSON message a line (`iter_json`)."""
        return self.send("POST", "/images/load", query={"quiet": quiet or None}, data=data,
                         headers=_TAR)

    def import_image(self, data: BinaryIO, *, repo: str = "", message: str = "",
                     changes: list[str] | None = None) -> Response:
        """`POST /images/create?fromSrc=-`: a JSON message a line."""
        query: list[tuple[str, Any]] = [("fromSrc", "-"), ("repo", repo),
                                        ("message", message or None)]
        query += [("changes", ch) for ch in changes or []]
        return self.send("POST", "/images/create", query=query, data=data, headers=_TAR)

    def pull_image(self, name: str, tag: str = "", *, platform: str = "",
                   auth: dict[str, str] | None = None) -> Response:
        """`POST /images/create?fromImage=`: progress, a JSON message a line."""
        return self.send("POST", "/images/create", headers=auth, query={
            "fromImage": name, "tag": tag or None, "platform": platform or None})

    def push_image(self, name: str, tag: str = "", *,
                   auth: dict[str, str] | None = None) -> Response:
        """`POST /images/{name}/push`: progress, a JSON message a line."""
        return self.send("POST", f"/images/{q(name)}/push", query={"tag": tag or None},
                         headers=auth)

    def search_images(self, term: str, *, limit: int = 0, filters: str | None = None,
                      auth: dict[str, str] | None = None) -> list[dict[str, Any]]:
        """`GET /images/search`: the registry's results as it gave them."""
        r = self.send("GET", "/images/search", headers=auth,
                      query={"term": term, "limit": limit or None, "filters": filters})
        try:
            return [d for d in _list(r.json()) if isinstance(d, dict)]
        finally:
            r.close()

    def prune_images(self, filters: str | None = None) -> Pruned:
        return Pruned.from_json(self.post("/images/prune", {"filters": filters}),
                                "ImagesDeleted")

    def build(self, context: BinaryIO, query: list[tuple[str, Any]],
              headers: dict[str, str]) -> Response:
        """`POST /build` with a tar context: its progress, a JSON message a line."""
        return self.send("POST", "/build", query=query, data=context, headers=headers)

    def prune_build_cache(self) -> Pruned:
        return Pruned.from_json(self.post("/build/prune"), "CachesDeleted")

    # --- networks -----------------------------------------------------------------------------
    def networks(self, filters: str | None = None) -> list[NetworkSummary]:
        res = self.get("/networks", {"filters": filters})
        return [NetworkSummary.from_json(d) for d in _list(res) if isinstance(d, dict)]

    def inspect_network(self, name: str) -> dict[str, Any]:
        res = self.get(f"/networks/{q(name)}")
        return res if isinstance(res, dict) else {}

    def create_network(self, body: dict[str, Any]) -> Created:
        return Created.from_json(self.post("/networks/create", body=body))

    def remove_network(self, name: str) -> None:
        self._done("DELETE", f"/networks/{q(name)}")

    def connect_network(self, name: str, container: str,
                        endpoint: dict[str, Any] | None = None) -> None:
        self._done("POST", f"/networks/{q(name)}/connect",
                   body={"Container": container, "EndpointConfig": endpoint or {}})

    def disconnect_network(self, name: str, container: str, *, force: bool = False) -> None:
        self._done("POST", f"/networks/{q(name)}/disconnect",
                   body={"Container": container, "Force": force})

    def prune_networks(self, filters: str | None = None) -> Pruned:
        return Pruned.from_json(self.post("/networks/prune", {"filters": filters}),
                                "NetworksDeleted")

    # --- volumes ------------------------------------------------------------------------------
    def volumes(self, filters: str | None = None) -> list[VolumeSummary]:
        res = self.get("/volumes", {"filters": filters})
        vols = res.get("Volumes") if isinstance(res, dict) else None
        return [VolumeSummary.from_json(d) for d in _list(vols) if isinstance(d, dict)]

    def inspect_volume(self, name: str) -> dict[str, Any]:
        res = self.get(f"/volumes/{q(name)}")
        return res if isinstance(res, dict) else {}

    def create_volume(self, body: dict[str, Any]) -> str:
        """`POST /volumes/create`: the volume's name (the daemon's, for an anonymous one)."""
        res = self.post("/volumes/create", body=body)
        name = res.get("Name") if isinstance(res, dict) else None
        return name if isinstance(name, str) else ""

    def remove_volume(self, name: str, *, force: bool = False) -> None:
        self._done("DELETE", f"/volumes/{q(name)}", {"force": force or None})

    def prune_volumes(self, filters: str | None = None) -> Pruned:
        return Pruned.from_json(self.post("/volumes/prune", {"filters": filters}),
                                "VolumesDeleted")

    # --- system -------------------------------------------------------------------------------
    def version_info(self) -> dict[str, Any]:
        """`GET /version`, as it came (`version` prints it through a template)."""
        res = self.get("/version")
        return res if isinstance(res, dict) else {}

    def info(self) -> dict[str, Any]:
        """`GET /info`, as it came."""
        res = self.get("/info")
        return res if isinstance(res, dict) else {}

    def disk_usage(self) -> dict[str, Any]:
        """`GET /system/df`, as it came."""
        res = self.get("/system/df")
        return res if isinstance(res, dict) else {}

    def events(self, *, since: str | None = None, until: str | None = None,
               filters: str | None = None) -> Response:
        """`GET /events`: an event a line (`iter_json`) until `until`, or for ever."""
        return self.send("GET", "/events",
                         query={"since": since, "until": until, "filters": filters})

    def auth(self, username: str, password: str, server: str) -> AuthResult:
        """`POST /auth`: checks the credentials against the registry."""
        return AuthResult.from_json(self.post("/auth", None, {
            "username": username, "password": password, "serveraddress": server}))


__all__ = ["API_VERSION", "DEFAULT_HOST", "TLS", "Client", "ConflictingOptions",
           "ConnectionFailed", "InvalidHost", "Response", "Transport", "Waiting",
           "host_from_env", "parse_host", "q"]
