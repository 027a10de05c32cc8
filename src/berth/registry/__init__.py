"""The distribution client: endpoints, TLS, auth, manifests and blobs of one repository.

Imports `errors`, `oci`, `reference`. Split by job: `endpoints` (which hosts a name goes to),
`answers` (bounded reads, registry errors), `auth` (credentials, challenges, tokens),
`repository` (one repository's manifests and blobs); the client here holds the HTTP session. The image service drives it (pull, push, login); this
package knows the protocol (OCI distribution spec, Docker's registry v2), not images.

Which endpoint a name goes to follows Docker: `docker.io` is registry-1.docker.io (after the
configured mirrors, for pulls); any other domain is itself. A registry is *secure* (HTTPS with
verified certificates: the system CAs plus `CERTS_DIR/HOST/*.crt`, and a client certificate
`client.cert`/`client.key` if present there) unless it is named in the insecure list, or its
address is in an insecure CIDR (127.0.0.0/8 and ::1 by default). An insecure registry is tried
with HTTPS without verification first, then with plain HTTP.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import ssl
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlencode, urljoin, urlsplit

import aiohttp

from berth.errors import InvalidArgument, Unavailable
from berth.registry.answers import (
    CONFIG_LIMIT,
    LIST_LIMIT,
    MANIFEST_LIMIT,
    MAX_REDIRECTS,
    REDIRECTS,
    SMALL_LIMIT,
    SearchResult,
    describe,
    read_limited,
    status_error,
)
from berth.registry.auth import AuthConfig, TokenCache, basic_header
from berth.registry.endpoints import (
    DOCKER_HUB_AUTH_KEY,
    Endpoint,
    RegistryOptions,
    auth_key,
    normalize_server,
    origin,
    registry_host,
)
from berth.registry.repository import Repository

log = logging.getLogger(__name__)


class RegistryClient:
    """Shared by every pull and push of a daemon: one HTTP session, one token cache."""

    def __init__(self, options: RegistryOptions | None = None) -> None:
        self.options = options or RegistryOptions()
        self.tokens = TokenCache()
        self._http: aiohttp.ClientSession | None = None
        self._ssl: dict[tuple[str, bool, int], ssl.SSLContext | bool] = {}

    async def http(self) -> aiohttp.ClientSession:
        if self._http is None or self._http.closed:
            self._http = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=None, connect=15, sock_read=60),
                connector=aiohttp.TCPConnector(limit=32, use_dns_cache=True),
                headers={"User-Agent": "berth/0.1 (docker-compatible)"},
                trust_env=False,
                auto_decompress=False,
            )
        return self._http

    async def close(self) -> None:
        if self._http is not None:
            await self._http.close()

    def ssl_for(self, ep: Endpoint) -> ssl.SSLContext | bool:
        if not ep.base.startswith("https://"):
            return False
        d = os.path.join(self.options.certs_dir, ep.host)
        try:
            stamp = os.stat(d).st_mtime_ns  # certificates added later are picked up
        except OSError:
            stamp = 0
        key = (ep.host, ep.verify, stamp)
        if key not in self._ssl:
            ctx = ssl.create_default_context()
            if not ep.verify:
                ctx.check_hostname = False
                ctx.verify_mode = ssl.CERT_NONE
            if os.path.isdir(d):
                for f in sorted(os.listdir(d)):
                    p = os.path.join(d, f)
                    if f.endswith(".crt"):
                        ctx.load_verify_locations(cafile=p)
                    elif f.endswith(".cert"):
                        keyf = p[:-5] + ".key"
                        if not os.path.exists(keyf):
                            raise InvalidArgument(f"missing key {keyf} for client certificate {p}")
                        ctx.load_cert_chain(p, keyf)
            self._ssl[key] = ctx
        return self._ssl[key]

    def ssl_for_url(self, url: str) -> ssl.SSLContext | bool:
        """TLS for any URL a registry sends us to, as for a registry of that address."""
        u = urlsplit(url)
        hostport = u.netloc.rpartition("@")[2]
        return self.ssl_for(
            Endpoint(f"{u.scheme.lower()}://{hostport}", self.options.is_secure(hostport))
        )

    async def send(
        self,
        method: str,
        url: str,
        *,
        headers: dict[str, str] | None = None,
        data: Any = None,
        authorization: str | None = None,
        owner: str = "",
    ) -> aiohttp.ClientResponse:
        """One request, following redirects here rather than in aiohttp so that the rule is
        ours: `authorization` goes only to URLs of the origin (scheme, host, port) of `owner`
        (the registry, or the token realm), never to a host a redirect or a Location names.
        GET and HEAD follow any redirect; other methods only a 307/308 with a body that can be
        sent again. The caller releases the response."""
        http = await self.http()
        own = origin(owner or url)
        for _ in range(MAX_REDIRECTS + 1):
            hdrs = dict(headers or {})
            if authorization and origin(url) == own:
                hdrs["Authorization"] = authorization
            # a TLS context is made once per host (the system's CAs: ~20 ms), off the loop
            ctx = (
                await asyncio.to_thread(self.ssl_for_url, url)
                if url[:6].lower() == "https:"
                else False
            )
            r = await http.request(
                method, url, headers=hdrs, data=data, ssl=ctx, allow_redirects=False
            )
            loc = r.headers.get("Location", "")
            if not (
                r.status in REDIRECTS
                and loc
                and (
                    method in ("GET", "HEAD")
                    or (r.status in (307, 308) and isinstance(data, bytes | None))
                )
            ):
                return r
            r.release()
            nxt = urljoin(url, loc)
            if urlsplit(nxt).scheme.lower() not in ("http", "https"):
                raise Unavailable(
                    f'{method.capitalize()} "{url}": redirected to a URL that is not http(s)'
                )
            url = nxt
        raise Unavailable(f'{method.capitalize()} "{url}": stopped after {MAX_REDIRECTS} redirects')

    async def search(
        self, domain: str, term: str, limit: int, auth: AuthConfig | None = None
    ) -> list[SearchResult]:
        """The registry's v1 search (`/v1/search?q=TERM&n=LIMIT`), as dockerd asks it: Docker
        Hub's index for names without a registry host. Results are checked for shape."""
        if domain == "docker.io" and not self.options.docker_hub:
            raise Unavailable(
                "searching Docker Hub is turned off in this daemon "
                "(--docker-hub=false): name a registry in the term "
                "(REGISTRY/TERM)"
            )
        host = "index.docker.io" if domain == "docker.io" else registry_host(domain)
        bases = ["https://" + host] + ([] if self.options.is_secure(host) else ["http://" + host])
        authorization = basic_header(auth) if auth is not None and auth.username else None
        errors: list[str] = []
        for base in bases:
            url = f"{base}/v1/search?{urlencode({'q': term, 'n': str(limit)})}"
            try:
                r = await self.send("GET", url, authorization=authorization, owner=base)
                try:
                    body = await read_limited(r, LIST_LIMIT, "search answer")
                finally:
                    r.release()
            except (aiohttp.ClientError, OSError, asyncio.TimeoutError) as e:
                errors.append(f"{url}: {describe(e)}")
                continue
            if r.status != 200:
                raise status_error(r.status, body, f"search on {host}")
            try:
                results = json.loads(body).get("results") or []
                return [
                    SearchResult(
                        name=str(x["name"]),
                        description=str(x.get("description") or ""),
                        star_count=int(x.get("star_count") or 0),
                        is_official=bool(x.get("is_official")),
                        is_automated=bool(x.get("is_automated")),
                    )
                    for x in results[:limit]
                ]
            except (ValueError, KeyError, TypeError, AttributeError):
                raise Unavailable(f"search on {host}: malformed answer") from None
        raise Unavailable(f"search on {host}: " + "; ".join(errors))

    def endpoints(self, domain: str, *, push: bool = False) -> list[Endpoint]:
        out: list[Endpoint] = []
        if domain == "docker.io" and not push:
            for m in self.options.mirrors:
                m = m.rstrip("/")
                if "://" not in m:
                    m = "https://" + m
                out.append(Endpoint(m, self.options.is_secure(urlsplit(m).netloc), mirror=True))
        host = registry_host(domain)
        if domain == "docker.io" and not self.options.docker_hub:
            if not out:
                raise Unavailable(
                    f"{'pushing to' if push else 'pulling from'} Docker Hub is "
                    "turned off in this daemon (--docker-hub=false)"
                    + ("" if push else " and no registry mirror is set")
                )
            return out
        if self.options.is_secure(host):
            out.append(Endpoint("https://" + host, True))
        else:
            out += [Endpoint("https://" + host, False), Endpoint("http://" + host, False)]
        return out

    async def repository(
        self,
        domain: str,
        path: str,
        auth: AuthConfig,
        *,
        push: bool = False,
        mount_from: list[str] | None = None,
    ) -> Repository:
        """The first endpoint that answers /v2/ (Docker's ping). Mirrors are left to the
        caller (`candidates`), which may go on to the next one when an image is missing."""
        errors: list[str] = []
        for ep in self.endpoints(domain, push=push):
            repo = Repository(self, ep, domain, path, auth, push=push, mount_from=mount_from)
            try:
                await repo.ping()
                return repo
            except Unavailable as e:
                errors.append(str(e))
        raise Unavailable("; ".join(errors))

    async def candidates(
        self, domain: str, path: str, auth: AuthConfig
    ) -> AsyncIterator[Repository]:
        """For pulls: each reachable endpoint in turn (mirrors first)."""
        errors: list[str] = []
        eps = self.endpoints(domain)
        reached = False
        i = 0
        while i < len(eps):
            ep = eps[i]
            repo = Repository(self, ep, domain, path, auth)
            try:
                await repo.ping()
            except Unavailable as e:
                errors.append(str(e))
                i += 1
                continue
            reached = True
            yield repo
            # an insecure registry's http endpoint is only a fallback for its https one
            i += (
                2
                if (
                    not ep.verify
                    and ep.base.startswith("https://")
                    and not ep.mirror
                    and i + 1 < len(eps)
                    and eps[i + 1].base.startswith("http://")
                )
                else 1
            )
        if not reached:
            raise Unavailable("; ".join(errors))

    async def login(self, auth: AuthConfig) -> str:
        """Check credentials against a registry as `docker login` does: /v2/ with them."""
        domain = normalize_server(auth.serveraddress or "docker.io")
        repo = await self.repository(domain, "", auth)
        await repo.check_login()
        return domain


__all__ = [
    "AuthConfig",
    "RegistryClient",
    "read_limited",
    "MANIFEST_LIMIT",
    "CONFIG_LIMIT",
    "LIST_LIMIT",
    "SMALL_LIMIT",
    "RegistryOptions",
    "Repository",
    "Endpoint",
    "origin",
    "auth_key",
    "normalize_server",
    "registry_host",
    "DOCKER_HUB_AUTH_KEY",
    "SearchResult",
    "status_error",
]
