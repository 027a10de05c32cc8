"""Registries for the tests, all on this machine: the real CNCF registry (Debian's
docker-registry) in plain HTTP, TLS, token-auth and htpasswd set-ups; a token server issuing JWTs;
and a fake registry that misbehaves on request (wrong digests, dropped connections, odd media
types). Every server listens on a loopback or test-bridge address and is stopped by its owner."""

from __future__ import annotations

import base64
import contextlib
import datetime
import gzip
import hashlib
import io
import ipaddress
import json
import secrets
import shutil
import socket
import subprocess
import tarfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def wait_port(host: str, port: int, timeout: float = 15) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        with contextlib.suppress(OSError), socket.create_connection((host, port), 0.5):
            return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {host}:{port}")


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


# --- certificates and tokens ----------------------------------------------------------------
@dataclass
class CA:
    cert_pem: bytes
    key: Any
    cert: Any

    @classmethod
    def make(cls, name: str = "berth test CA") -> CA:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import rsa
        from cryptography.x509.oid import NameOID

        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        now = datetime.datetime.now(datetime.timezone.utc)
        cert = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=2))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(True, False, False, False, False, True, True, False, False),
                critical=True,
            )
            .sign(key, hashes.SHA256())
        )
        return cls(cert.public_bytes(serialization.Encoding.PEM), key, cert)

    def issue(self, ip: str) -> tuple[bytes, bytes]:
        """A server certificate for an IP address: (cert PEM, key PEM)."""
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import rsa
        from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        now = datetime.datetime.now(datetime.timezone.utc)
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, ip)]))
            .issuer_name(self.cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=2))
            .add_extension(
                x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(ip))]),
                critical=False,
            )
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .sign(self.key, hashes.SHA256())
        )
        return (
            cert.public_bytes(serialization.Encoding.PEM),
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.TraditionalOpenSSL,
                serialization.NoEncryption(),
            ),
        )


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class TokenServer:
    """A token service as Docker Hub's auth: Basic credentials in, an RS256 JWT out (with the
    signing certificate in x5c, which the registry checks against its rootcertbundle)."""

    def __init__(
        self,
        users: dict[str, str],
        *,
        service: str = "berth-test-registry",
        issuer: str = "berth-test-issuer",
    ) -> None:
        self.users = users
        self.service = service
        self.issuer = issuer
        self.signer = CA.make("berth token signer")
        self.requests: list[dict[str, Any]] = []
        self.port = free_port()
        self._srv: ThreadingHTTPServer | None = None

    @property
    def realm(self) -> str:
        return f"http://127.0.0.1:{self.port}/token"

    def jwt(self, sub: str, access: list[dict[str, Any]]) -> str:
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import padding

        der = self.signer.cert.public_bytes(serialization.Encoding.DER)
        header = {"typ": "JWT", "alg": "RS256", "x5c": [base64.b64encode(der).decode()]}
        now = int(time.time())
        claims = {
            "iss": self.issuer,
            "sub": sub,
            "aud": self.service,
            "exp": now + 300,
            "nbf": now - 10,
            "iat": now,
            "jti": secrets.token_hex(8),
            "access": access,
        }
        signing = f"{_b64url(json.dumps(header).encode())}.{_b64url(json.dumps(claims).encode())}"
        sig = self.signer.key.sign(signing.encode(), padding.PKCS1v15(), hashes.SHA256())
        return f"{signing}.{_b64url(sig)}"

    def start(self) -> None:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a: Any) -> None:
                pass

            def do_GET(self) -> None:  # noqa: N802
                q = parse_qs(urlsplit(self.path).query)
                user = ""
                authz = self.headers.get("Authorization", "")
                if authz.startswith("Basic "):
                    u, _, p = base64.b64decode(authz[6:]).decode().partition(":")
                    if server.users.get(u) != p:
                        self._reply(401, {"details": "incorrect username or password"})
                        return
                    user = u
                server.requests.append({"user": user, "scope": q.get("scope", [])})
                access = []
                if user:
                    for sc in q.get("scope", []):
                        typ, name, actions = (
                            sc.split(":", 2) if sc.count(":") >= 2 else ("", "", "")
                        )
                        if typ == "repository":
                            access.append(
                                {"type": typ, "name": name, "actions": actions.split(",")}
                            )
                token = server.jwt(user, access)
                self._reply(200, {"token": token, "access_token": token, "expires_in": 300})

            def _reply(self, status: int, doc: dict[str, Any]) -> None:
                body = json.dumps(doc).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self._srv = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self._srv.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self._srv:
            self._srv.shutdown()
            self._srv.server_close()


# --- the real registry ------------------------------------------------------------------------
class Registry:
    """Debian's docker-registry (the CNCF distribution registry) with a config of our making."""

    def __init__(
        self,
        base: Path,
        *,
        host: str = "127.0.0.1",
        tls: CA | None = None,
        token: TokenServer | None = None,
        htpasswd: dict[str, str] | None = None,
    ) -> None:
        if not shutil.which("docker-registry"):
            pytest.skip("needs Debian's docker-registry package (scripts/test.sh installs it)")
        self.base = base
        self.base.mkdir(parents=True, exist_ok=True)
        self.host = host
        self.port = free_port(host)
        self.log = base / "registry.log"
        cfg: dict[str, Any] = {
            "version": 0.1,
            "log": {"level": "info", "accesslog": {"disabled": True}},
            "storage": {
                "filesystem": {"rootdirectory": str(base / "data")},
                "delete": {"enabled": True},
            },
            "http": {"addr": f"{host}:{self.port}", "secret": secrets.token_hex(8)},
        }
        if tls:
            cert, key = tls.issue(host)
            (base / "server.crt").write_bytes(cert)
            (base / "server.key").write_bytes(key)
            cfg["http"]["tls"] = {
                "certificate": str(base / "server.crt"),
                "key": str(base / "server.key"),
            }
        if token:
            (base / "token-signer.pem").write_bytes(token.signer.cert_pem)
            cfg["auth"] = {
                "token": {
                    "realm": token.realm,
                    "service": token.service,
                    "issuer": token.issuer,
                    "rootcertbundle": str(base / "token-signer.pem"),
                }
            }
        if htpasswd:
            import bcrypt

            (base / "htpasswd").write_text(
                "".join(
                    f"{u}:{bcrypt.hashpw(p.encode(), bcrypt.gensalt(5)).decode()}\n"
                    for u, p in htpasswd.items()
                )
            )
            cfg["auth"] = {"htpasswd": {"realm": "berth-test", "path": str(base / "htpasswd")}}
        (base / "config.yml").write_text(json.dumps(cfg))  # JSON is YAML
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def addr(self) -> str:
        return f"{self.host}:{self.port}"

    def start(self) -> Registry:
        with open(self.log, "ab") as logf:
            self.proc = subprocess.Popen(
                ["docker-registry", "serve", str(self.base / "config.yml")],
                stdout=logf,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        try:
            wait_port(self.host, self.port)
        except RuntimeError:
            self.stop()
            raise RuntimeError("registry did not start:\n" + self.log.read_text()) from None
        return self

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@contextlib.contextmanager
def running(reg: Registry) -> Iterator[Registry]:
    reg.start()
    try:
        yield reg
    finally:
        reg.stop()


# --- images made by hand, and a registry that lies ---------------------------------------------
def layer_tar(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for name, data in files.items():
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            ti.mode = 0o644
            tf.addfile(ti, io.BytesIO(data))
    return buf.getvalue()


LAYER_TYPES = {
    "gzip": "application/vnd.oci.image.layer.v1.tar+gzip",
    "zstd": "application/vnd.oci.image.layer.v1.tar+zstd",
    "none": "application/vnd.oci.image.layer.v1.tar",
}


@dataclass
class HandImage:
    manifest: bytes
    config: bytes
    blobs: dict[str, bytes]
    layer_digests: list[str]
    media_type: str = "application/vnd.oci.image.manifest.v1+json"

    @property
    def digest(self) -> str:
        return sha(self.manifest)

    @property
    def image_id(self) -> str:
        return sha(self.config)


def hand_image(
    layers: list[tuple[dict[str, bytes], str]],
    *,
    arch: str = "amd64",
    cmd: list[str] | None = None,
    base_config: dict[str, Any] | None = None,
    base_tars: list[bytes] = (),
) -> HandImage:  # type: ignore[assignment]
    """An OCI image: `base_tars` (uncompressed layers, sent gzipped) below `layers`, each a
    {path: content} compressed as named ("gzip", "zstd", "none")."""
    blobs: dict[str, bytes] = {}
    diff_ids, descs = [], []
    todo = [(t, "gzip") for t in base_tars] + [(layer_tar(f), c) for f, c in layers]
    for tar, comp in todo:
        if comp == "gzip":
            blob = gzip.compress(tar, mtime=0)
        elif comp == "zstd":
            import zstandard

            blob = zstandard.ZstdCompressor().compress(tar)
        else:
            blob = tar
        blobs[sha(blob)] = blob
        diff_ids.append(sha(tar))
        descs.append({"mediaType": LAYER_TYPES[comp], "digest": sha(blob), "size": len(blob)})
    config = dict(base_config or {})
    config.update(
        {"architecture": arch, "os": "linux", "rootfs": {"type": "layers", "diff_ids": diff_ids}}
    )
    config.setdefault("config", {})
    if cmd:
        config["config"]["Cmd"] = cmd
    craw = json.dumps(config).encode()
    blobs[sha(craw)] = craw
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": sha(craw),
                "size": len(craw),
            },
            "layers": descs,
        }
    ).encode()
    return HandImage(manifest, craw, blobs, [d["digest"] for d in descs])


@dataclass
class FakeRegistry:
    """Serves manifests and blobs from memory, over plain HTTP on loopback, and misbehaves on
    request: `lie` serves other bytes for a digest, `drop_once` cuts a blob off halfway once,
    `drop_always` every time; `slow` paces blobs so that pulls overlap."""

    manifests: dict[tuple[str, str], tuple[str, bytes]] = field(default_factory=dict)
    blobs: dict[str, bytes] = field(default_factory=dict)
    lie: dict[str, bytes] = field(default_factory=dict)
    drop_once: set[str] = field(default_factory=set)
    drop_always: set[str] = field(default_factory=set)
    slow: float = 0.0
    gets: dict[str, int] = field(default_factory=dict)
    ranges: list[str] = field(default_factory=list)
    search: list[dict[str, Any]] = field(default_factory=list)  # what /v1/search answers
    port: int = field(default_factory=free_port)
    _srv: ThreadingHTTPServer | None = None

    @property
    def addr(self) -> str:
        return f"127.0.0.1:{self.port}"

    def add(self, name: str, ref: str, img: HandImage) -> None:
        self.blobs.update(img.blobs)
        self.manifests[(name, ref)] = (img.media_type, img.manifest)
        self.manifests[(name, img.digest)] = (img.media_type, img.manifest)

    def add_index(
        self, name: str, ref: str, entries: list[tuple[HandImage, dict[str, str]]]
    ) -> str:
        for img, _ in entries:
            self.blobs.update(img.blobs)
            self.manifests[(name, img.digest)] = (img.media_type, img.manifest)
        raw = json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": "application/vnd.oci.image.index.v1+json",
                "manifests": [
                    {
                        "mediaType": img.media_type,
                        "digest": img.digest,
                        "size": len(img.manifest),
                        "platform": plat,
                    }
                    for img, plat in entries
                ],
            }
        ).encode()
        self.manifests[(name, ref)] = ("application/vnd.oci.image.index.v1+json", raw)
        self.manifests[(name, sha(raw))] = ("application/vnd.oci.image.index.v1+json", raw)
        return sha(raw)

    def start(self) -> FakeRegistry:
        reg = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a: Any) -> None:
                pass

            def do_HEAD(self) -> None:  # noqa: N802
                self.do_GET(head=True)

            def do_GET(self, head: bool = False) -> None:  # noqa: N802
                path = urlsplit(self.path).path
                if path == "/v1/search":
                    from urllib.parse import parse_qs

                    q = parse_qs(urlsplit(self.path).query)
                    term = q.get("q", [""])[0]
                    n = int(q.get("n", ["25"])[0])
                    found = [r for r in reg.search if term in r["name"]][:n]
                    return self._send(
                        200,
                        json.dumps(
                            {"query": term, "num_results": len(found), "results": found}
                        ).encode(),
                        "application/json",
                        head,
                    )
                if path == "/v2/":
                    return self._send(200, b"{}", "application/json", head)
                rest = path[len("/v2/") :]
                if "/manifests/" in rest:
                    name, ref = rest.rsplit("/manifests/", 1)
                    m = reg.manifests.get((name, ref))
                    if m is None:
                        return self._send(
                            404,
                            json.dumps(
                                {
                                    "errors": [
                                        {"code": "MANIFEST_UNKNOWN", "message": "manifest unknown"}
                                    ]
                                }
                            ).encode(),
                            "application/json",
                            head,
                        )
                    return self._send(200, m[1], m[0], head, {"Docker-Content-Digest": sha(m[1])})
                if "/blobs/" in rest:
                    digest = rest.rsplit("/blobs/", 1)[1]
                    data = reg.lie.get(digest, reg.blobs.get(digest))
                    if data is None:
                        return self._send(
                            404, b'{"errors":[{"code":"BLOB_UNKNOWN"}]}', "application/json", head
                        )
                    if head:
                        return self._send(200, data, "application/octet-stream", True)
                    reg.gets[digest] = reg.gets.get(digest, 0) + 1
                    start = 0
                    rng = self.headers.get("Range", "")
                    if rng.startswith("bytes="):
                        reg.ranges.append(rng)
                        start = int(rng[6:].split("-")[0])
                    drop = digest in reg.drop_always or (
                        digest in reg.drop_once and reg.gets[digest] == 1
                    )
                    self.send_response(206 if start else 200)
                    self.send_header("Content-Type", "application/octet-stream")
                    self.send_header("Content-Length", str(len(data) - start))
                    if start:
                        self.send_header(
                            "Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}"
                        )
                    self.end_headers()
                    body = data[start:]
                    if drop:
                        self.wfile.write(body[: max(1, len(body) // 2)])
                        self.wfile.flush()
                        self.close_connection = True
                        with contextlib.suppress(OSError):
                            self.connection.shutdown(socket.SHUT_RDWR)
                        return None
                    step = 1 << 16
                    for i in range(0, len(body), step):
                        self.wfile.write(body[i : i + step])
                        if reg.slow:
                            time.sleep(reg.slow)
                    return None
                return self._send(404, b"{}", "application/json", head)

            def _send(
                self,
                status: int,
                body: bytes,
                ctype: str,
                head: bool,
                headers: dict[str, str] | None = None,
            ) -> None:
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                if not head:
                    self.wfile.write(body)

        self._srv = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._srv.daemon_threads = True
        threading.Thread(target=self._srv.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._srv:
            self._srv.shutdown()
            self._srv.server_close()
