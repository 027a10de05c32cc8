"""A registry's credentials stay with that registry.

Fake registries on loopback (127.0.0.1) send berth's registry client elsewhere: a blob redirected
to "another host" (127.0.0.2), an upload Location there, a token realm there or in plain http.
The other host records every request; none may carry the registry's credentials, and a realm
in plain http is refused unless the registry itself is insecure. A registry that is not insecure
needs a name (every loopback address is insecure by default): `registry.berth.test`, served
with TLS from a CA made here and resolved to 127.0.0.1 by a resolver of the test's own (no DNS).
These drive the registry client itself, as the image service does; they need no root."""

from __future__ import annotations

import asyncio
import base64
import datetime
import hashlib
import socket
import ssl
import threading
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import aiohttp.abc
import pytest

from berth.errors import BerthError, Unauthorized
from berth.registry import AuthConfig, RegistryClient, RegistryOptions

USER, PASSWORD = "alice", "s3cret-of-the-registry"
BASIC = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
CREDS = AuthConfig(username=USER, password=PASSWORD)
BLOB = b"the layer's bytes"
DIGEST = "sha256:" + hashlib.sha256(BLOB).hexdigest()
NAME = "registry.berth.test"
T = TypeVar("T")

Reply = tuple[int, dict[str, str], bytes]


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]


@dataclass
class Server:
    """A threaded HTTP(S) server on a loopback address; `route` answers, `seen` records."""

    host: str
    route: Callable[[str, str, dict[str, str]], Reply]
    tls: ssl.SSLContext | None = None
    seen: list[Seen] = field(default_factory=list)

    def __post_init__(self) -> None:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a: Any) -> None:
                pass

            def _any(self) -> None:
                n = int(self.headers.get("Content-Length") or 0)
                if n:
                    self.rfile.read(n)
                hdrs = {k.lower(): v for k, v in self.headers.items()}
                server.seen.append(Seen(self.command, self.path, hdrs))
                status, out, body = server.route(self.command, self.path, hdrs)
                self.send_response(status)
                for k, v in out.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = _any  # noqa: N815

        self.httpd = ThreadingHTTPServer((self.host, 0), Handler)
        if self.tls is not None:
            self.httpd.socket = self.tls.wrap_socket(self.httpd.socket, server_side=True)
        self.port = int(self.httpd.server_address[1])
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    @property
    def addr(self) -> str:
        return f"{self.host}:{self.port}"

    def authorized(self) -> list[Seen]:
        return [s for s in self.seen if "authorization" in s.headers]

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def servers() -> Iterator[list[Server]]:
    made: list[Server] = []
    try:
        yield made
    finally:
        for s in made:
            s.close()


def serve(
    made: list[Server],
    host: str,
    route: Callable[[str, str, dict[str, str]], Reply],
    tls: ssl.SSLContext | None = None,
) -> Server:
    s = Server(host, route, tls)
    made.append(s)
    return s


def run(coro: Callable[[RegistryClient], Awaitable[T]], client: RegistryClient) -> T:
    async def go() -> T:
        try:
            return await coro(client)
        finally:
            await client.close()

    return asyncio.run(go())


def basic_registry(
    blob: Callable[[str], Reply], upload: Reply | None = None
) -> Callable[[str, str, dict[str, str]], Reply]:
    """A registry with Basic auth for USER; `blob(path)` answers an authorized blob GET."""

    def route(method: str, path: str, h: dict[str, str]) -> Reply:
        if h.get("authorization") != BASIC:
            return 401, {"WWW-Authenticate": 'Basic realm="fake"'}, b""
        if path == "/v2/":
            return 200, {}, b"{}"
        if "/blobs/uploads/" in path and method == "POST" and upload:
            return upload
        if "/blobs/" in path and method == "HEAD":
            return 404, {}, b""
        if "/blobs/" in path:
            return blob(path)
        return 404, {}, b""

    return route


# --- redirects -------------------------------------------------------------------------------
def test_blob_redirect_to_another_host_gets_no_credentials(servers: list[Server]) -> None:
    # the other host serves the blob to anyone; and asks for a token from itself if it can
    # get an Authorization header to the registry's credentials that way
    def other_route(method: str, path: str, h: dict[str, str]) -> Reply:
        if path.startswith("/token"):
            return 200, {"Content-Type": "application/json"}, b'{"token": "stolen"}'
        if path.startswith("/cdn/"):
            return 200, {}, BLOB
        if "authorization" not in h:
            return (
                401,
                {"WWW-Authenticate": f'Bearer realm="http://{other.addr}/token",service="cdn"'},
                b"",
            )
        return 200, {}, BLOB

    other = serve(servers, "127.0.0.2", other_route)

    def blob(path: str) -> Reply:
        where = "cdn" if path.endswith(DIGEST) else "auth"
        return 307, {"Location": f"http://{other.addr}/{where}/{DIGEST}"}, b""

    reg = serve(servers, "127.0.0.1", basic_registry(blob))

    async def pull(c: RegistryClient, digest: str) -> bytes:
        repo = await c.repository(reg.addr, "lib/x", CREDS)
        async with repo.open_blob(digest) as (r, _):
            return await r.read()

    # a plain redirect to a CDN: the blob comes, the credentials stay
    assert run(lambda c: pull(c, DIGEST), RegistryClient()) == BLOB
    assert [s.path for s in reg.authorized()], "the registry itself gets them"
    # the other host challenges: that is no reason to send them anywhere
    other_digest = "sha256:" + "0" * 64
    with pytest.raises(BerthError):
        run(lambda c: pull(c, other_digest), RegistryClient())
    assert other.seen, "the redirects were followed"
    assert other.authorized() == [], "the other host saw the registry's credentials"


def test_upload_location_on_another_host_gets_no_credentials(servers: list[Server]) -> None:
    other = serve(servers, "127.0.0.2", lambda m, p, h: (201, {}, b""))
    reg = serve(
        servers,
        "127.0.0.1",
        basic_registry(
            lambda p: (404, {}, b""),
            upload=(202, {"Location": f"http://{other.addr}/upload/1?state=x"}, b""),
        ),
    )

    async def push(c: RegistryClient) -> str:
        repo = await c.repository(reg.addr, "lib/x", CREDS, push=True)
        return await repo.put_blob(BLOB)

    assert run(push, RegistryClient()) == DIGEST
    assert [s.method for s in other.seen] == ["PUT"]
    assert other.authorized() == [], "the upload's other host saw the registry's credentials"


# --- token realms ----------------------------------------------------------------------------
def bearer_registry(realm: Callable[[], str]) -> Callable[[str, str, dict[str, str]], Reply]:
    def route(method: str, path: str, h: dict[str, str]) -> Reply:
        if h.get("authorization", "").startswith("Bearer "):
            return 200, {}, b"{}"
        return 401, {"WWW-Authenticate": f'Bearer realm="{realm()}",service="fake"'}, b""

    return route


def token_server(made: list[Server]) -> Server:
    return serve(
        made,
        "127.0.0.2",
        lambda m, p, h: (200, {"Content-Type": "application/json"}, b'{"token": "t0k"}'),
    )


def test_plain_http_realm_on_another_host_gets_no_credentials(servers: list[Server]) -> None:
    realm = token_server(servers)
    # 127.0.0.1 is insecure by default: plain http to it is allowed, but not the credentials
    # in plain http to another host
    reg = serve(servers, "127.0.0.1", bearer_registry(lambda: f"http://{realm.addr}/token"))

    async def login(c: RegistryClient, auth: AuthConfig) -> None:
        repo = await c.repository(reg.addr, "lib/x", auth)
        async with repo.request("GET", repo.url("tags/list")) as r:
            assert r.status == 200

    with pytest.raises(Unauthorized, match="plain http on another host"):
        run(lambda c: login(c, CREDS), RegistryClient())
    assert realm.seen == [], "the credentials went to another host in plain http"
    # anonymous, there is nothing to give away
    run(lambda c: login(c, AuthConfig()), RegistryClient())
    assert realm.seen and realm.authorized() == []


class _Names(aiohttp.abc.AbstractResolver):
    """NAME is 127.0.0.1; no other name is looked up at all."""

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[Any]:
        if host != NAME:
            raise OSError(f"{host}: not a name of this test")
        return [
            {
                "hostname": host,
                "host": "127.0.0.1",
                "port": port,
                "family": socket.AF_INET,
                "proto": 0,
                "flags": socket.AI_NUMERICHOST,
            }
        ]

    async def close(self) -> None:
        pass


def _tls(tmp_path: Path) -> tuple[ssl.SSLContext, bytes]:
    """A server context for NAME and the PEM of the CA that signed it."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "berth realm-test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, NAME)]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(NAME)]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    (tmp_path / "server.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "server.key").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(tmp_path / "server.crt", tmp_path / "server.key")
    return ctx, ca.public_bytes(serialization.Encoding.PEM)


@pytest.mark.parametrize("auth", [CREDS, AuthConfig()], ids=["credentials", "anonymous"])
def test_plain_http_realm_of_a_secure_registry_is_refused(
    servers: list[Server], tmp_path: Path, auth: AuthConfig
) -> None:
    realm = token_server(servers)
    ctx, ca_pem = _tls(tmp_path)
    reg = serve(
        servers, "127.0.0.1", bearer_registry(lambda: f"http://{realm.addr}/token"), tls=ctx
    )
    domain = f"{NAME}:{reg.port}"
    certs = tmp_path / "certs.d"
    (certs / domain).mkdir(parents=True)
    (certs / domain / "ca.crt").write_bytes(ca_pem)
    opts = RegistryOptions(certs_dir=str(certs))
    assert opts.is_secure(domain)

    async def pull(c: RegistryClient) -> None:
        c._http = aiohttp.ClientSession(connector=aiohttp.TCPConnector(resolver=_Names()))
        repo = await c.repository(domain, "lib/x", auth)
        async with repo.request("GET", repo.url("manifests/latest")) as r:
            assert r.status == 200

    with pytest.raises(
        Unauthorized, match="token realm in plain http .* refused, only an insecure registry"
    ):
        run(pull, RegistryClient(opts))
    assert reg.seen, "the registry was reached over verified TLS"
    assert realm.seen == [], "a plain-http realm was asked for a token of a secure registry"
    # the same realm over https (as Docker Hub's) is fine: not tested here (no second name)
