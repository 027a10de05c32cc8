"""A small Engine API client over a unix socket or TCP (with TLS), lean enough for the CLI's
fast path: `Client` has one method per route the CLI uses, each returning the decoded JSON
typed for mypy (berth.client.types: TypedDicts only the type checker reads, no cost at run
time), or the Response where the body is a stream (logs, events, pull, build, archives) or
the connection is hijacked (attach, exec). Every method raises the `errors` type of the
daemon's status (NotFound, Conflict, ...), or ConnectionFailed.

Imports `errors` and `jsonc` only, and of the standard library only `_socket` and `os`:
`http.client` alone costs ~28 ms of start-up here (shared/PEERS.md), and `socket`
and `json` about 6 ms each, for the `enum` and `re` they import. `ssl` (which imports
`socket`, `enum` and `re`) comes only when a TLS endpoint is used. It speaks just enough
HTTP/1.1: fixed-length and chunked bodies, streaming, and the `Upgrade: tcp` hijack.
"""

from __future__ import annotations

import _socket
import os

from berth import jsonc as json
from berth.errors import BerthError, from_status

TYPE_CHECKING = False  # not typing's: importing typing costs ~3 ms of CLI start-up
if TYPE_CHECKING:
    from _socket import socket
    from collections.abc import Iterable, Iterator
    from typing import Any, BinaryIO

    from berth.client import types as t
    from berth.client.contexts import TLS

    Query = dict[str, Any] | list[tuple[str, Any]]

API_VERSION = "1.50"
DEFAULT_HOST = "unix:///run/berth/berth.sock"
# as the docker CLI: a TLS client with no host goes to this one; a tcp:// host without a port
# gets 2375 whatever the TLS settings (dopts.ParseHost)
DEFAULT_TLS_HOST = "tcp://localhost:2376"
DEFAULT_TCP_PORT = 2375


_SAFE = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-~")


def quote(s: str, safe: str = "") -> str:
    """Percent-encoding as urllib.parse.quote (which costs ~2 ms of start-up to import)."""
    ok = _SAFE | frozenset(safe.encode())
    return "".join(chr(b) if b in ok else f"%{b:02X}" for b in s.encode())


def urlencode(pairs: list[tuple[str, str]]) -> str:
    return "&".join(f"{quote(k)}={quote(v)}" for k, v in pairs)


def host_from_env(flag: str | None = None) -> str:
    """`-H`, then BERTH_HOST, then DOCKER_HOST, then the default socket."""
    return flag or os.environ.get("BERTH_HOST") or os.environ.get("DOCKER_HOST") or DEFAULT_HOST


class ConnectionFailed(BerthError):
    status = 0


class InvalidHost(BerthError):
    status = 0


class ConflictingOptions(InvalidHost):
    """Global flags that contradict each other (`-H` with `--context`): the docker CLI prints
    the message alone, not as an endpoint it failed to resolve."""


def parse_host(host: str, default_tls: bool = False) -> str:
    """A host as the docker CLI reads `-H`/DOCKER_HOST: `unix:///path` (`unix://` is the
    default socket), `tcp://[host][:port][/path]` (localhost, 2375), a bare `host[:port]` is
    tcp; nothing at all is the default socket, or `tcp://localhost:2376` for a TLS client."""
    h = host.strip()
    if not h:
        return DEFAULT_TLS_HOST if default_tls else DEFAULT_HOST
    proto, sep, addr = h.partition("://")
    if not sep:
        proto, addr = "tcp", h
    if proto == "unix":
        return "unix://" + (addr or DEFAULT_HOST[len("unix://"):])
    if proto != "tcp":
        raise InvalidHost(f"invalid bind address format: {host}")
    hostport, slash, path = addr.partition("/")
    if hostport.startswith("["):
        end = hostport.find("]")
        name, rest = hostport[1:end], hostport[end + 1:]
        if end < 0 or rest[:1] != ":":
            raise InvalidHost(f"invalid bind address format: {addr}")
        port = rest[1:]
    else:
        name, _, port = hostport.rpartition(":") if ":" in hostport else (hostport, "", "")
        if ":" in name:
            raise InvalidHost(f"invalid bind address format: {addr}")
    if port and not port.isdigit():
        raise InvalidHost(f"invalid bind address format: {addr}")
    name = name or "localhost"
    shown = f"[{name}]" if ":" in name else name
    return f"tcp://{shown}:{port or DEFAULT_TCP_PORT}" + (slash + path if path else "")


def split_tcp(host: str) -> tuple[str, int]:
    """(hostname, port) of a normalised `tcp://` host."""
    hostport = host[len("tcp://"):].split("/", 1)[0]
    name, _, port = hostport.rpartition(":")
    return name.strip("[]"), int(port)


class Response:
    def __init__(self, sock: socket, status: int, headers: dict[str, str],
                 buf: bytes) -> None:
        self.sock = sock
        self.status = status
        self.headers = headers
        self._buf = buf
        self._chunked = "chunked" in headers.get("transfer-encoding", "").lower()
        cl = headers.get("content-length")
        self._remaining = int(cl) if cl is not None else None
        self._chunk_left = 0
        self._done = status in (204, 304) or (self._remaining == 0)

    def _fill(self) -> bool:
        data = self.sock.recv(65536)
        if not data:
            return False
        self._buf += data
        return True

    def _readline(self) -> bytes:
        while b"\r\n" not in self._buf:
            if not self._fill():
                raise ConnectionFailed("connection closed by the daemon")
        line, _, self._buf = self._buf.partition(b"\r\n")
        return line

    def iter_raw(self) -> Iterator[bytes]:
        """The body, as it arrives."""
        while not self._done:
            if self._chunked:
                if self._chunk_left == 0:
                    size = int(self._readline().split(b";")[0], 16)
                    if size == 0:
                        self._readline()
                        self._done = True
                        return
                    self._chunk_left = size
                if not self._buf and not self._fill():
                    raise ConnectionFailed("connection closed mid-response")
                piece = self._buf[: self._chunk_left]
                self._buf = self._buf[len(piece):]
                self._chunk_left -= len(piece)
                if self._chunk_left == 0:
                    while len(self._buf) < 2:
                        if not self._fill():
                            break
                    self._buf = self._buf[2:]
                if piece:
                    yield piece
            elif self._remaining is not None:
                if not self._buf and not self._fill():
                    raise ConnectionFailed("connection closed mid-response")
                piece = self._buf[: self._remaining]
                self._buf = self._buf[len(piece):]
                self._remaining -= len(piece)
                if self._remaining == 0:
                    self._done = True
                if piece:
                    yield piece
            else:  # until the connection closes (hijacked or HTTP/1.0 style)
                if self._buf:
                    piece, self._buf = self._buf, b""
                    yield piece
                if not self._fill():
                    self._done = True

    def read(self) -> bytes:
        return b"".join(self.iter_raw())

    def json(self) -> Any:
        data = self.read()
        return json.loads(data) if data else None

    def iter_lines(self) -> Iterator[bytes]:
        buf = b""
        for piece in self.iter_raw():
            buf += piece
            while b"\n" in buf:
                line, _, buf = buf.partition(b"\n")
                if line.strip():
                    yield line
        if buf.strip():
            yield buf

    def iter_json(self) -> Iterator[dict[str, Any]]:
        for line in self.iter_lines():
            yield json.loads(line)

    def iter_frames(self) -> Iterator[tuple[int, bytes]]:
        """Docker's multiplexed frames: (stream, payload)."""
        buf = b""
        for piece in self.iter_raw():
            buf += piece
            while len(buf) >= 8:
                size = int.from_bytes(buf[4:8], "big")
                if len(buf) < 8 + size:
                    break
                yield buf[0], buf[8:8 + size]
                buf = buf[8 + size:]

    def close(self) -> None:
        self.sock.close()


class Transport:
    """Requests to one daemon: `send` returns the Response (a stream, or hijacked), `get`,
    `post` and `delete` its JSON body. A status of 400 or more raises the `errors` type of
    that status (berth.errors.from_status)."""

    def __init__(self, host: str | None = None, version: str = API_VERSION,
                 tls: TLS | None = None, context: str = "default") -> None:
        self.host = parse_host(host_from_env(host), tls is not None)
        self.tls = tls
        self.context = context   # the name of the context the host came from
        self.path = ""
        self.tcp: tuple[str, int] | None = None
        if self.host.startswith("unix://"):
            self.path = self.host[len("unix://"):]
            self.tls = None
        else:
            self.tcp = split_tcp(self.host)
        self.version = version
        self._negotiated = False
        self._ssl: Any = None

    def _refused(self) -> ConnectionFailed:
        return ConnectionFailed(f"Cannot connect to the berth daemon at {self.host}. "
                                "Is the berth daemon running?")

    def _connect(self) -> socket:
        if self.tcp is None:
            s = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
            try:
                s.connect(self.path)
            except OSError:
                s.close()
                raise self._refused() from None
            return s
        name, port = self.tcp
        try:
            addrs = _socket.getaddrinfo(name, port, 0, _socket.SOCK_STREAM)
        except OSError as e:
            raise ConnectionFailed(f"error during connect: {self.host}: {e}") from None
        for family, kind, proto, _, addr in addrs:
            s = _socket.socket(family, kind, proto)
            try:
                s.connect(addr)
            except OSError:
                s.close()
                continue
            s.setsockopt(_socket.IPPROTO_TCP, _socket.TCP_NODELAY, 1)
            if self.tls is None:
                return s
            return self._wrap(s, name)
        raise self._refused()

    def _wrap(self, s: socket, name: str) -> socket:
        import ssl
        assert self.tls is not None
        if self._ssl is None:
            self._ssl = self.tls.context()
        from berth.client.tls import TLSConn
        try:
            conn: Any = TLSConn(self._ssl.wrap_socket(s, server_hostname=name))
        except (ssl.SSLError, ssl.CertificateError, OSError) as e:
            s.close()
            raise ConnectionFailed(f"error during connect: {self._url()}: {_tls_reason(e)}") \
                from None
        return conn  # type: ignore[no-any-return]

    def _url(self) -> str:
        return ("https://" if self.tls else "http://") + self.host[len("tcp://"):]

    @staticmethod
    def close_write(s: socket) -> None:
        """Half-close: no more input (the daemon sees EOF). On TLS the TCP connection's
        write side too (client/tls.py), not a TLS close_notify."""
        if hasattr(s, "close_write"):
            s.close_write()
        else:
            s.shutdown(_socket.SHUT_WR)

    def url(self, path: str, query: dict[str, Any] | Iterable[tuple[str, Any]] | None = None,
            versioned: bool = True) -> str:
        u = (f"/v{self.version}" if versioned else "") + path
        if query:
            items = query.items() if isinstance(query, dict) else query
            pairs = []
            for k, v in items:
                if v is None:
                    continue
                if isinstance(v, bool):
                    v = "1" if v else "0"
                pairs.append((k, str(v)))
            if pairs:
                u += "?" + urlencode(pairs)
        return u

    def send(self, method: str, path: str, *, query: Any = None, body: Any = None,
             data: bytes | BinaryIO | None = None, headers: dict[str, str] | None = None,
             versioned: bool = True, upgrade: bool = False, check: bool = True) -> Response:
        hdrs = {"Host": "berth", "User-Agent": "berth-cli"}
        payload: bytes | None = None
        stream: BinaryIO | None = None
        if body is not None:
            payload = json.dumps(body).encode()
            hdrs["Content-Type"] = "application/json"
        elif isinstance(data, (bytes, bytearray)):
            payload = bytes(data)
        elif data is not None:
            stream = data
            hdrs["Transfer-Encoding"] = "chunked"
        if payload is not None:
            hdrs["Content-Length"] = str(len(payload))
        elif stream is None and method in ("POST", "PUT"):
            hdrs["Content-Length"] = "0"
        if upgrade:
            hdrs["Connection"] = "Upgrade"
            hdrs["Upgrade"] = "tcp"
        hdrs.update(headers or {})
        target = self.url(path, query, versioned)
        head = f"{method} {target} HTTP/1.1\r\n" + "".join(
            f"{k}: {v}\r\n" for k, v in hdrs.items()) + "\r\n"
        s = self._connect()
        try:
            s.sendall(head.encode() + (payload or b""))
            if stream is not None:
                while chunk := stream.read(1 << 20):
                    s.sendall(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
                s.sendall(b"0\r\n\r\n")
            resp = self._read_head(s)
        except ConnectionFailed as e:
            s.close()
            if self.tls is not None:
                raise ConnectionFailed(f"error during connect: {method} {self._url()}{target}: "
                                       "EOF") from None
            if self.tcp is not None:
                # as the docker CLI says it when a TLS daemon answers plain HTTP
                raise ConnectionFailed(f"{e}\n* Are you trying to connect to a TLS-enabled "
                                       "daemon without TLS?") from None
            raise
        except OSError as e:
            s.close()
            if self.tls is None:
                raise
            # a daemon that refuses our certificate says so after the handshake (TLS 1.3)
            raise ConnectionFailed(f"error during connect: {method} {self._url()}{target}: "
                                   f"{_tls_reason(e)}") from None
        except BaseException:
            s.close()
            raise
        if (check and resp.status == 400 and self._too_new(resp)):
            # an older daemon: negotiate down once, as the docker CLI does
            self.negotiate()
            return self.send(method, path, query=query, body=body, data=data, headers=headers,
                             versioned=versioned, upgrade=upgrade, check=check)
        if check and resp.status >= 400:
            self.raise_for(resp)
        return resp

    def _too_new(self, resp: Response) -> bool:
        if self._negotiated:
            return False
        body = resp.read()
        resp._buf, resp._done = body, False  # keep it readable for the error path
        resp._remaining = len(body)
        resp._chunked = False
        return b"is too new" in body

    @staticmethod
    def raise_for(resp: Response) -> None:
        raw = resp.read()
        try:
            msg = json.loads(raw).get("message", "")
        except (ValueError, AttributeError):
            msg = raw.decode(errors="replace").strip()
        resp.close()
        raise from_status(resp.status, msg or f"status {resp.status}")

    @staticmethod
    def _read_head(s: socket) -> Response:
        buf = b""
        while b"\r\n\r\n" not in buf:
            data = s.recv(65536)
            if not data:
                raise ConnectionFailed("the daemon closed the connection")
            buf += data
        head, _, rest = buf.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        headers = {}
        for line in lines[1:]:
            k, _, v = line.partition(":")
            headers[k.strip().lower()] = v.strip()
        return Response(s, status, headers, rest)

    def negotiate(self) -> None:
        resp = self.send("GET", "/_ping", versioned=False, check=False)
        resp.read()
        resp.close()
        server = resp.headers.get("api-version")
        if server:
            def t(v: str) -> tuple[int, ...]:
                return tuple(int(x) for x in v.split("."))
            if t(server) < t(self.version):
                self.version = server
        self._negotiated = True

    # --- conveniences -----------------------------------------------------------------------
    def get(self, path: str, query: Any = None) -> Any:
        r = self.send("GET", path, query=query)
        try:
            return r.json()
        finally:
            r.close()

    def post(self, path: str, query: Any = None, body: Any = None) -> Any:
        r = self.send("POST", path, query=query, body=body)
        try:
            return r.json()
        finally:
            r.close()

    def delete(self, path: str, query: Any = None) -> Any:
        r = self.send("DELETE", path, query=query)
        try:
            return r.json()
        finally:
            r.close()


_TAR = {"Content-Type": "application/x-tar"}


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

    def _done(self, method: str, path: str, query: Query | None = None,
              body: Any = None) -> None:
        """A route whose answer the CLI does not read."""
        self.send(method, path, query=query, body=body).close()

    # --- containers -------------------------------------------------------------------------
    def containers(self, *, all: bool = False, limit: int = 0, size: bool = False,  # noqa: A002
                   filters: str | None = None) -> list[t.ContainerSummary]:
        res: list[t.ContainerSummary] = self.get("/containers/json", {
            "all": all or None, "limit": limit or None, "size": size or None,
            "filters": filters})
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

    def wait_container(self, name: str, condition: str = "") -> t.WaitResponse:
        """Blocks until the container stops."""
        res: t.WaitResponse | None = self.post(f"/containers/{q(name)}/wait",
                                               {"condition": condition or None})
        return res or {}

    def begin_wait(self, name: str, condition: str) -> Waiting:
        """The wait route, registered now and read later (`run`: before the start)."""
        return Waiting(self.send("POST", f"/containers/{q(name)}/wait",
                                 query={"condition": condition}))

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

    def container_logs(self, name: str, *, follow: bool = False, timestamps: bool = False,
                       tail: str = "all", since: str | None = None,
                       until: str | None = None) -> Response:
        """stdout and stderr: raw for a TTY, else multiplexed frames."""
        return self.send("GET", f"/containers/{q(name)}/logs", query={
            "stdout": 1, "stderr": 1, "follow": follow or None,
            "timestamps": timestamps or None, "tail": tail, "since": since, "until": until})

    def container_stats(self, name: str) -> dict[str, Any]:
        """One sample, docker's stats JSON."""
        res: dict[str, Any] = self.get(f"/containers/{q(name)}/stats", {"stream": 0})
        return res

    def stream_stats(self, name: str) -> Response:
        """A sample a line (`iter_json`)."""
        return self.send("GET", f"/containers/{q(name)}/stats", query={"stream": 1})

    def attach_container(self, name: str, *, stdin: bool, detach_keys: str = "") -> Response:
        """stdout and stderr (and stdin), hijacked."""
        return self.send("POST", f"/containers/{q(name)}/attach",
                         query={"stream": 1, "stdin": 1 if stdin else None, "stdout": 1,
                                "stderr": 1, "detachKeys": detach_keys or None}, upgrade=True)

    def resize_container(self, name: str, height: int, width: int) -> None:
        self._done("POST", f"/containers/{q(name)}/resize", {"h": height, "w": width})

    def export_container(self, name: str) -> Response:
        """The filesystem as a tar stream."""
        return self.send("GET", f"/containers/{q(name)}/export")

    def stat_path(self, name: str, path: str) -> Response:
        """`HEAD .../archive`, unchecked: its status, and the path's stat in the
        X-Docker-Container-Path-Stat header (a HEAD has no body to carry an error)."""
        r = self.send("HEAD", f"/containers/{q(name)}/archive", query={"path": path},
                      check=False)
        r.close()
        return r

    def get_archive(self, name: str, path: str) -> Response:
        """A tar of `path`; its stat in the header."""
        return self.send("GET", f"/containers/{q(name)}/archive", query={"path": path})

    def put_archive(self, name: str, path: str, data: BinaryIO, *,
                    copy_uid_gid: bool = False) -> None:
        """Extract the tar stream `data` at `path`."""
        r = self.send("PUT", f"/containers/{q(name)}/archive", data=data, headers=_TAR,
                      query={"path": path, "noOverwriteDirNonDir": True,
                             "copyUIDGID": copy_uid_gid})
        r.read()
        r.close()

    def prune_containers(self, filters: str | None = None) -> t.Pruned:
        res: t.Pruned = self.post("/containers/prune", {"filters": filters})
        return res

    def commit(self, container: str, *, repo: str = "", tag: str = "", comment: str = "",
               author: str = "", pause: bool = True, changes: list[str] | None = None
               ) -> t.Created:
        res: t.Created = self.post("/commit", [
            ("container", container), ("repo", repo or None), ("tag", tag or None),
            ("comment", comment or None), ("author", author or None), ("pause", pause),
            *[("changes", ch) for ch in changes or []]], {})
        return res

    # --- exec -------------------------------------------------------------------------------
    def create_exec(self, container: str, body: dict[str, Any]) -> t.Created:
        res: t.Created = self.post(f"/containers/{q(container)}/exec", body=body)
        return res

    def start_exec(self, exec_id: str, *, tty: bool, detach: bool,
                   console_size: list[int] | None = None) -> Response | None:
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
    def images(self, *, all: bool = False, filters: str | None = None  # noqa: A002
               ) -> list[t.ImageSummary]:
        res: list[t.ImageSummary] = self.get("/images/json",
                                             {"all": all or None, "filters": filters})
        return res

    def inspect_image(self, name: str) -> dict[str, Any]:
        res: dict[str, Any] = self.get(f"/images/{q(name)}/json")
        return res

    def tag_image(self, name: str, repo: str, tag: str = "") -> None:
        self._done("POST", f"/images/{q(name)}/tag", {"repo": repo, "tag": tag or None})

    def remove_image(self, name: str, *, force: bool = False,
                     no_prune: bool = False) -> list[t.ImageDeleted]:
        res: list[t.ImageDeleted] = self.delete(f"/images/{q(name)}", {
            "force": force or None, "noprune": no_prune or None})
        return res

    def image_history(self, name: str) -> list[t.HistoryItem]:
        res: list[t.HistoryItem] = self.get(f"/images/{q(name)}/history")
        return res

    def save_images(self, names: list[str]) -> Response:
        """A tar stream of the images."""
        return self.send("GET", "/images/get", query=[("names", n) for n in names])

    def load_images(self, data: BinaryIO, *, quiet: bool = False) -> Response:
        """A JSON message a line."""
        return self.send("POST", "/images/load", query={"quiet": quiet or None}, data=data,
                         headers=_TAR)

    def import_image(self, data: BinaryIO, *, repo: str = "", message: str = "",
                     changes: list[str] | None = None) -> Response:
        """`POST /images/create?fromSrc=-`: a JSON message a line."""
        return self.send("POST", "/images/create", data=data, headers=_TAR, query=[
            ("fromSrc", "-"), ("repo", repo), ("message", message or None),
            *[("changes", ch) for ch in changes or []]])

    def pull_image(self, name: str, tag: str = "", *, platform: str = "",
                   auth: dict[str, str] | None = None) -> Response:
        """`POST /images/create?fromImage=`: progress, a JSON message a line."""
        return self.send("POST", "/images/create", headers=auth, query={
            "fromImage": name, "tag": tag or None, "platform": platform or None})

    def push_image(self, name: str, tag: str = "", *,
                   auth: dict[str, str] | None = None) -> Response:
        """Progress, a JSON message a line."""
        return self.send("POST", f"/images/{q(name)}/push", query={"tag": tag or None},
                         headers=auth)

    def search_images(self, term: str, *, limit: int = 0, filters: str | None = None,
                      auth: dict[str, str] | None = None) -> list[dict[str, Any]]:
        r = self.send("GET", "/images/search", headers=auth,
                      query={"term": term, "limit": limit or None, "filters": filters})
        try:
            res: list[dict[str, Any]] = r.json() or []
            return res
        finally:
            r.close()

    def prune_images(self, filters: str | None = None) -> t.Pruned:
        res: t.Pruned = self.post("/images/prune", {"filters": filters})
        return res

    def build(self, context: BinaryIO, query: list[tuple[str, Any]],
              headers: dict[str, str]) -> Response:
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
        self._done("POST", f"/networks/{q(name)}/connect",
                   body={"Container": container, "EndpointConfig": endpoint})

    def disconnect_network(self, name: str, container: str, *, force: bool = False) -> None:
        self._done("POST", f"/networks/{q(name)}/disconnect",
                   body={"Container": container, "Force": force})

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

    def events(self, *, since: str | None = None, until: str | None = None,
               filters: str | None = None) -> Response:
        """An event a line (`iter_json`) until `until`, or for ever."""
        return self.send("GET", "/events",
                         query={"since": since, "until": until, "filters": filters})

    def auth(self, username: str, password: str, server: str) -> t.AuthResponse:
        """Checks the credentials against the registry."""
        res: t.AuthResponse = self.post("/auth", None, {
            "username": username, "password": password, "serveraddress": server})
        return res


def _tls_reason(e: BaseException) -> str:
    return str(e) or type(e).__name__


def q(name: str) -> str:
    """Quote a name for a path segment, keeping `/` and `:` (image references)."""
    return quote(name, safe="/:@")


__all__ = ["API_VERSION", "DEFAULT_HOST", "Client", "ConflictingOptions",
           "ConnectionFailed", "InvalidHost", "Response", "Transport", "Waiting",
           "host_from_env", "parse_host", "q"]
