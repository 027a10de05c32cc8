"""The client's transport: the daemon's address (`-H`, DOCKER_HOST, TLS), just enough HTTP/1.1
over a unix or TCP socket (fixed-length and chunked bodies, streaming, the `Upgrade: tcp`
hijack), and the errors of a connection. The routes are in the modules beside this one.

Of the standard library only `_socket` and `os`: `http.client` alone costs ~28 ms of start-up
here (shared/PEERS.md), and `socket` and `json` about 6 ms each, for the `enum` and `re` they
import. `ssl` (which imports `socket`, `enum` and `re`) comes only when a TLS endpoint is used.
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
        return "unix://" + (addr or DEFAULT_HOST[len("unix://") :])
    if proto != "tcp":
        raise InvalidHost(f"invalid bind address format: {host}")
    hostport, slash, path = addr.partition("/")
    if hostport.startswith("["):
        end = hostport.find("]")
        name, rest = hostport[1:end], hostport[end + 1 :]
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
    hostport = host[len("tcp://") :].split("/", 1)[0]
    name, _, port = hostport.rpartition(":")
    return name.strip("[]"), int(port)


class Response:
    def __init__(self, sock: socket, status: int, headers: dict[str, str], buf: bytes) -> None:
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
                self._buf = self._buf[len(piece) :]
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
                self._buf = self._buf[len(piece) :]
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
                yield buf[0], buf[8 : 8 + size]
                buf = buf[8 + size :]

    def close(self) -> None:
        self.sock.close()


class Transport:
    """Requests to one daemon: `send` returns the Response (a stream, or hijacked), `get`,
    `post` and `delete` its JSON body. A status of 400 or more raises the `errors` type of
    that status (berth.errors.from_status)."""

    def __init__(
        self,
        host: str | None = None,
        version: str = API_VERSION,
        tls: TLS | None = None,
        context: str = "default",
    ) -> None:
        self.host = parse_host(host_from_env(host), tls is not None)
        self.tls = tls
        self.context = context  # the name of the context the host came from
        self.path = ""
        self.tcp: tuple[str, int] | None = None
        if self.host.startswith("unix://"):
            self.path = self.host[len("unix://") :]
            self.tls = None
        else:
            self.tcp = split_tcp(self.host)
        self.version = version
        self._negotiated = False
        self._ssl: Any = None

    def _refused(self) -> ConnectionFailed:
        return ConnectionFailed(
            f"Cannot connect to the berth daemon at {self.host}. Is the berth daemon running?"
        )

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
            raise ConnectionFailed(
                f"error during connect: {self._url()}: {_tls_reason(e)}"
            ) from None
        return conn  # type: ignore[no-any-return]

    def _url(self) -> str:
        return ("https://" if self.tls else "http://") + self.host[len("tcp://") :]

    @staticmethod
    def close_write(s: socket) -> None:
        """Half-close: no more input (the daemon sees EOF). On TLS the TCP connection's
        write side too (client/tls.py), not a TLS close_notify."""
        if hasattr(s, "close_write"):
            s.close_write()
        else:
            s.shutdown(_socket.SHUT_WR)

    def url(
        self,
        path: str,
        query: dict[str, Any] | Iterable[tuple[str, Any]] | None = None,
        versioned: bool = True,
    ) -> str:
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

    def send(
        self,
        method: str,
        path: str,
        *,
        query: Any = None,
        body: Any = None,
        data: bytes | BinaryIO | None = None,
        headers: dict[str, str] | None = None,
        versioned: bool = True,
        upgrade: bool = False,
        check: bool = True,
    ) -> Response:
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
        head = (
            f"{method} {target} HTTP/1.1\r\n"
            + "".join(f"{k}: {v}\r\n" for k, v in hdrs.items())
            + "\r\n"
        )
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
                raise ConnectionFailed(
                    f"error during connect: {method} {self._url()}{target}: EOF"
                ) from None
            if self.tcp is not None:
                # as the docker CLI says it when a TLS daemon answers plain HTTP
                raise ConnectionFailed(
                    f"{e}\n* Are you trying to connect to a TLS-enabled daemon without TLS?"
                ) from None
            raise
        except OSError as e:
            s.close()
            if self.tls is None:
                raise
            # a daemon that refuses our certificate says so after the handshake (TLS 1.3)
            raise ConnectionFailed(
                f"error during connect: {method} {self._url()}{target}: {_tls_reason(e)}"
            ) from None
        except BaseException:
            s.close()
            raise
        if check and resp.status == 400 and self._too_new(resp):
            # an older daemon: negotiate down once, as the docker CLI does
            self.negotiate()
            return self.send(
                method,
                path,
                query=query,
                body=body,
                data=data,
                headers=headers,
                versioned=versioned,
                upgrade=upgrade,
                check=check,
            )
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

    def _done(self, method: str, path: str, query: Query | None = None, body: Any = None) -> None:
        """A route whose answer the CLI does not read."""
        self.send(method, path, query=query, body=body).close()


# the Content-Type of a request whose body is a tar stream
TAR = {"Content-Type": "application/x-tar"}


def _tls_reason(e: BaseException) -> str:
    return str(e) or type(e).__name__


def q(name: str) -> str:
    """Quote a name for a path segment, keeping `/` and `:` (image references)."""
    return quote(name, safe="/:@")
