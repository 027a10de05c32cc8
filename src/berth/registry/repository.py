"""One repository on one endpoint: its token dance, manifests and blobs.

Imports `errors`, `oci` and the modules beside it; the client (`RegistryClient`) hands it its HTTP
session and token cache.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode, urljoin, urlsplit

import aiohttp

from berth import oci
from berth.errors import InvalidArgument, System, Unauthorized, Unavailable
from berth.registry.answers import (
    MANIFEST_ACCEPT,
    MANIFEST_LIMIT,
    SMALL_LIMIT,
    describe,
    error_text,
    read_limited,
    status_error,
)
from berth.registry.auth import AuthConfig, Challenge, basic_header, parse_challenges
from berth.registry.endpoints import Endpoint, origin

if TYPE_CHECKING:
    from berth.registry import RegistryClient

log = logging.getLogger(__name__)


class Repository:
    """One repository on one endpoint, with the credentials for it."""

    def __init__(
        self,
        client: RegistryClient,
        ep: Endpoint,
        domain: str,
        path: str,
        auth: AuthConfig,
        *,
        push: bool = False,
        mount_from: list[str] | None = None,
    ) -> None:
        self.client = client
        self.ep = ep
        self.domain = domain
        self.path = path
        self.auth = auth
        self.actions = "pull,push" if push else "pull"
        self.mount_from = mount_from or []
        self.challenge: Challenge | None = None
        self._authz: str | None = None

    @property
    def name(self) -> str:
        return f"{self.ep.host}/{self.path}"

    def url(self, rest: str) -> str:
        return f"{self.ep.base}/v2/{self.path}/{rest}"

    # --- connection and auth ------------------------------------------------------------------
    async def ping(self) -> None:
        url = self.ep.base + "/v2/"
        try:
            async with await self.client.send("GET", url) as r:
                await read_limited(r, SMALL_LIMIT, "answer")
                # a challenge counts only from the registry itself, not from where it redirects
                if r.status == 401 and self._own(str(r.url)):
                    ch = parse_challenges(r.headers.get("WWW-Authenticate", ""))
                    self.challenge = next(
                        (c for c in ch if c.scheme == "bearer"), ch[0] if ch else None
                    )
                elif r.status >= 500 or (r.status >= 300 and r.status not in (404,)):
                    raise Unavailable(f'Get "{url}": unexpected status {r.status}')
        except aiohttp.ClientConnectorCertificateError as e:
            raise Unavailable(
                f'Get "{url}": tls: failed to verify certificate: {e.certificate_error}'
            ) from None
        except (aiohttp.ClientError, TimeoutError, OSError) as e:
            raise Unavailable(f'Get "{url}": {describe(e)}') from None

    def _own(self, url: str) -> bool:
        return origin(url) == origin(self.ep.base)

    def _scopes(self) -> list[str]:
        scopes = []
        if self.path:
            scopes.append(f"repository:{self.path}:{self.actions}")
        scopes += [f"repository:{p}:pull" for p in self.mount_from if p != self.path]
        return scopes

    async def _authorization(self, *, refresh: bool = False) -> str | None:
        if self._authz is not None and not refresh:
            return self._authz
        ch = self.challenge
        if ch is None:
            return None
        if ch.scheme == "basic":
            if self.auth.anonymous or not self.auth.username:
                return None
            self._authz = basic_header(self.auth)
        elif ch.scheme == "bearer":
            if self.auth.registrytoken:
                self._authz = "Bearer " + self.auth.registrytoken
            else:
                self._authz = "Bearer " + await self._token(ch, refresh=refresh)
        return self._authz

    async def _token(self, ch: Challenge, *, refresh: bool) -> str:
        realm = ch.params.get("realm", "")
        if not realm.startswith(("http://", "https://")) or not urlsplit(realm).hostname:
            raise Unauthorized(f"registry {self.ep.host} gave no usable token realm")
        self._check_realm(realm)
        service = ch.params.get("service", "")
        scopes = self._scopes()
        key = (realm, service, " ".join(scopes), self.auth.username or self.auth.identitytoken)
        cached = None if refresh else self.client.tokens.get(key)
        if cached:
            return cached
        try:
            if self.auth.identitytoken:
                form = {
                    "grant_type": "refresh_token",
                    "refresh_token": self.auth.identitytoken,
                    "service": service,
                    "client_id": "berth",
                    "scope": " ".join(scopes),
                }
                req = self.client.send("POST", realm, data=form)
            else:
                q: list[tuple[str, str]] = [("service", service)] if service else []
                q += [("scope", s) for s in scopes]
                if not scopes:
                    q += [("account", self.auth.username)] if self.auth.username else []
                    q += [("client_id", "berth"), ("offline_token", "true")]
                # the credentials go to the realm's own origin only, not where it redirects
                req = self.client.send(
                    "GET",
                    realm + ("&" if "?" in realm else "?") + urlencode(q),
                    owner=realm,
                    authorization=basic_header(self.auth) if self.auth.username else None,
                )
            async with await req as r:
                body = await read_limited(r, SMALL_LIMIT, "token server's answer")
                if r.status in (401, 403):
                    raise Unauthorized(
                        f'Get "{self.ep.base}/v2/": unauthorized: '
                        f"{error_text(body) or 'incorrect username or password'}"
                    )
                if r.status != 200:
                    raise Unauthorized(
                        f"token server {realm} answered {r.status}: {error_text(body)}"
                    )
        except (aiohttp.ClientError, TimeoutError, OSError) as e:
            raise Unavailable(f"token server {realm}: {describe(e)}") from None
        try:
            doc = json.loads(body)
            token = doc.get("token") or doc.get("access_token")
            assert isinstance(token, str) and token
        except (ValueError, AssertionError, AttributeError):
            raise Unauthorized(f"token server {realm} sent no token") from None
        self.client.tokens.put(key, token, float(doc.get("expires_in") or 60))
        return token

    def _check_realm(self, realm: str) -> None:
        """A token realm in plain HTTP only for an insecure registry, and even then no
        credentials in plain HTTP to a host other than the registry's."""
        if urlsplit(realm).scheme.lower() != "http":
            return
        if self.client.options.is_secure(self.ep.host):
            raise Unauthorized(
                f"registry {self.ep.host} names a token realm in plain http "
                f"({realm}): refused, only an insecure registry "
                "(--insecure-registry) may use one"
            )
        own = (urlsplit(self.ep.base).hostname or "").lower()
        if (self.auth.username or self.auth.identitytoken) and (
            urlsplit(realm).hostname or ""
        ).lower() != own:
            raise Unauthorized(
                f"registry {self.ep.host} names a token realm in plain http on "
                f"another host ({realm}): refused to send the credentials "
                "for it there unencrypted"
            )

    async def check_login(self) -> None:
        if self.challenge is None:
            return
        if self.auth.anonymous:
            raise Unauthorized(f'Get "{self.ep.base}/v2/": unauthorized: authentication required')
        await self._authorization()
        async with await self.client.send(
            "GET", self.ep.base + "/v2/", owner=self.ep.base, authorization=self._authz
        ) as r:
            body = await read_limited(r, SMALL_LIMIT, "answer")
            if r.status != 200:
                text = error_text(body) or "unauthorized: incorrect username or password"
                if not text.startswith("unauthorized"):
                    text = "unauthorized: " + text
                raise Unauthorized(f'Get "{self.ep.base}/v2/": {text}')

    @contextlib.asynccontextmanager
    async def request(
        self,
        method: str,
        url: str,
        *,
        headers: dict[str, str] | None = None,
        data: Any = None,
        retry_auth: bool = True,
    ) -> AsyncIterator[aiohttp.ClientResponse]:
        for attempt in (0, 1):
            authz = await self._authorization(refresh=attempt == 1)
            try:
                # the registry's credentials go to the registry's origin only: not to a host
                # that a redirect (a blob on a CDN) or an upload Location names
                r = await self.client.send(
                    method, url, headers=headers, data=data, authorization=authz, owner=self.ep.base
                )
            except (aiohttp.ClientError, TimeoutError, OSError) as e:
                raise Unavailable(f'{method.capitalize()} "{url}": {describe(e)}') from None
            try:
                # a challenge from another host (where a redirect led) changes nothing
                if (
                    r.status == 401
                    and attempt == 0
                    and retry_auth
                    and self._own(str(r.url))
                    and not isinstance(data, (AsyncIterator, aiohttp.StreamReader))
                ):
                    ch = parse_challenges(r.headers.get("WWW-Authenticate", ""))
                    if ch:
                        self.challenge = next((c for c in ch if c.scheme == "bearer"), ch[0])
                    continue
                yield r
                return
            finally:
                r.release()

    # --- manifests ----------------------------------------------------------------------------
    async def get_manifest(self, ref: str) -> tuple[str, bytes, str]:
        """(media type, raw bytes, digest) of a manifest by tag or digest, verified."""
        async with self.request(
            "GET", self.url(f"manifests/{ref}"), headers={"Accept": MANIFEST_ACCEPT}
        ) as r:
            if r.status != 200:
                body = await read_limited(r, SMALL_LIMIT, "error body")
                raise status_error(
                    r.status,
                    body,
                    f"manifest for {self.name}:{ref}"
                    if not ref.startswith("sha256:")
                    else f"manifest for {self.name}@{ref}",
                )
            raw = await read_limited(r, MANIFEST_LIMIT, "manifest")
            ctype = r.headers.get("Content-Type", "").split(";")[0].strip()
            header_digest = r.headers.get("Docker-Content-Digest", "")
        digest = oci.sha256_digest(raw)
        if ref.startswith("sha256:") and ref != digest:
            raise InvalidArgument(
                f"manifest verification failed for digest {ref}: the registry "
                f"sent content with digest {digest}"
            )
        if header_digest and header_digest.startswith("sha256:") and header_digest != digest:
            raise InvalidArgument(
                f"manifest digest mismatch: the registry says {header_digest}, "
                f"the content is {digest}"
            )
        try:
            doc = json.loads(raw)
        except ValueError:
            raise InvalidArgument(f"malformed manifest for {self.name}:{ref}") from None
        media = doc.get("mediaType") or ctype
        return media, raw, digest

    async def put_manifest(self, ref: str, media_type: str, raw: bytes) -> str:
        async with self.request(
            "PUT", self.url(f"manifests/{ref}"), headers={"Content-Type": media_type}, data=raw
        ) as r:
            body = await read_limited(r, SMALL_LIMIT, "answer to the manifest upload")
            if r.status not in (200, 201, 202):
                raise status_error(r.status, body, f"manifest {self.name}:{ref}")
            return r.headers.get("Docker-Content-Digest") or oci.sha256_digest(raw)

    # --- blobs --------------------------------------------------------------------------------
    async def blob_exists(self, digest: str) -> bool:
        async with self.request("HEAD", self.url(f"blobs/{digest}")) as r:
            if r.status == 200:
                return True
            if r.status == 404:
                return False
            raise status_error(r.status, b"", f"blob {digest} in {self.name}")

    @contextlib.asynccontextmanager
    async def open_blob(
        self, digest: str, offset: int = 0
    ) -> AsyncIterator[tuple[aiohttp.ClientResponse, int]]:
        """The response and the offset it starts at (0 if the registry ignored the Range)."""
        headers = {"Range": f"bytes={offset}-"} if offset else {}
        async with self.request("GET", self.url(f"blobs/{digest}"), headers=headers) as r:
            if r.status not in (200, 206):
                body = await read_limited(r, SMALL_LIMIT, "error body")
                raise status_error(r.status, body, f"blob {digest} of {self.name}")
            yield r, (offset if r.status == 206 else 0)

    async def start_upload(self, mount: str = "", mount_from: str = "") -> tuple[bool, str]:
        """(mounted, upload location). A registry that cannot mount opens an upload."""
        q = f"?{urlencode({'mount': mount, 'from': mount_from})}" if mount else ""
        async with self.request(
            "POST", self.url("blobs/uploads/") + q, headers={"Content-Length": "0"}
        ) as r:
            body = await read_limited(r, SMALL_LIMIT, "answer to the upload request")
            if r.status == 201 and mount:
                return True, ""
            if r.status != 202:
                raise status_error(r.status, body, f"upload to {self.name}")
            loc = r.headers.get("Location", "")
        if not loc:
            raise System(f"registry {self.ep.host} gave no upload location")
        return False, urljoin(self.ep.base + "/", loc)

    async def upload(self, location: str, body: AsyncIterator[bytes], digest_of: Any) -> str:
        """PATCH the stream (chunked), then PUT with the digest that `digest_of()` returns once
        the stream is done; returns the registry's digest."""
        async with self.request(
            "PATCH", location, data=body, headers={"Content-Type": "application/octet-stream"}
        ) as r:
            rbody = await read_limited(r, SMALL_LIMIT, "answer to the blob upload")
            if r.status != 202:
                raise status_error(r.status, rbody, f"upload to {self.name}")
            location = urljoin(location, r.headers.get("Location", location))
        digest = digest_of()
        sep = "&" if "?" in location else "?"
        async with self.request(
            "PUT", location + sep + urlencode({"digest": digest}), headers={"Content-Length": "0"}
        ) as r:
            rbody = await read_limited(r, SMALL_LIMIT, "answer to the blob upload")
            if r.status not in (201, 204):
                raise status_error(r.status, rbody, f"upload to {self.name}")
        return str(digest)

    async def put_blob(self, data: bytes) -> str:
        digest = oci.sha256_digest(data)
        if await self.blob_exists(digest):
            return digest
        _, loc = await self.start_upload()
        sep = "&" if "?" in loc else "?"
        async with self.request(
            "PUT",
            loc + sep + urlencode({"digest": digest}),
            data=data,
            headers={"Content-Type": "application/octet-stream"},
        ) as r:
            body = await read_limited(r, SMALL_LIMIT, "answer to the blob upload")
            if r.status not in (201, 204):
                raise status_error(r.status, body, f"upload to {self.name}")
        return digest


__all__ = ["Repository"]
