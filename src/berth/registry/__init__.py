"""The distribution client: endpoints, TLS, auth, manifests and blobs of one repository.

Imports `errors`, `oci`, `reference`. The image service drives it (pull, push, login); this
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
import contextlib
import ipaddress
import json
import logging
import os
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode, urljoin, urlsplit

import aiohttp

from berth import oci
from berth.errors import (
    BerthError,
    Forbidden,
    InvalidArgument,
    NotFound,
    System,
    Unauthorized,
    Unavailable,
)
from berth.registry.auth import AuthConfig, Challenge, TokenCache, basic_header, parse_challenges

log = logging.getLogger(__name__)

DOCKER_HUB_HOST = "registry-1.docker.io"
DOCKER_HUB_AUTH_KEY = "https://index.docker.io/v1/"
# Every answer a registry sends is read whole into memory except blobs (streamed to disk and
# digest-checked): each kind has a bound, and a registry that sends more is an error.
MANIFEST_LIMIT = 4 << 20     # manifests and indexes (containerd's limit too)
CONFIG_LIMIT = 8 << 20       # image configs (long histories, many env/labels)
LIST_LIMIT = 8 << 20         # tag lists, catalogs, referrers
SMALL_LIMIT = 1 << 20        # pings, tokens, error bodies, upload answers
MANIFEST_ACCEPT = ", ".join([oci.MEDIA_OCI_INDEX, oci.MEDIA_DOCKER_LIST, oci.MEDIA_OCI_MANIFEST,
                             oci.MEDIA_DOCKER_MANIFEST])
REDIRECTS = frozenset({301, 302, 303, 307, 308})
MAX_REDIRECTS = 10


def origin(url: str) -> tuple[str, str, int]:
    """(scheme, host, port) of a URL, the default port filled in: credentials go only to the
    origin they belong to."""
    u = urlsplit(url)
    scheme = u.scheme.lower()
    try:
        port = u.port
    except ValueError:
        port = None
    return scheme, (u.hostname or "").lower(), port or {"https": 443, "http": 80}.get(scheme, 0)


@dataclass(slots=True)
class RegistryOptions:
    mirrors: list[str] = field(default_factory=list)      # for docker.io: http(s)://host[:port]
    insecure: list[str] = field(default_factory=list)     # host[:port] or CIDR
    certs_dir: str = "/etc/docker/certs.d"
    docker_hub: bool = True     # False: docker.io names go to the mirrors only, never the Hub

    def insecure_cidrs(self) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
        nets: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = [
            ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128")]
        for e in self.insecure:
            if "/" in e:
                with contextlib.suppress(ValueError):
                    nets.append(ipaddress.ip_network(e, strict=False))
        return nets

    def is_secure(self, host: str) -> bool:
        """`host` is host[:port]. Names are matched as written; only address literals and
        `localhost` are checked against the CIDRs (berth does not resolve other names here)."""
        if host in self.insecure:
            return False
        name = _strip_port(host)
        if name in self.insecure:
            return False
        if name == "localhost":
            name = "127.0.0.1"
        try:
            ip = ipaddress.ip_address(name.strip("[]"))
        except ValueError:
            return True
        return not any(ip in n for n in self.insecure_cidrs())


def _strip_port(host: str) -> str:
    if host.startswith("["):
        return host[1:host.index("]")]
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def registry_host(domain: str) -> str:
    return DOCKER_HUB_HOST if domain == "docker.io" else domain


def auth_key(domain: str) -> str:
    """The key of a registry's entry in ~/.docker/config.json and in X-Registry-Auth."""
    return DOCKER_HUB_AUTH_KEY if domain == "docker.io" else domain


def normalize_server(server: str) -> str:
    """`https://host:5000/v2/` and `host:5000` name the same registry, as in `docker login`."""
    s = server.strip()
    if s in ("", "docker.io", "index.docker.io", "registry-1.docker.io", DOCKER_HUB_AUTH_KEY,
             "https://index.docker.io/v1", "https://registry-1.docker.io"):
        return "docker.io"
    if "://" in s:
        s = urlsplit(s).netloc
    return s.rstrip("/").split("/", 1)[0]


@dataclass(frozen=True, slots=True)
class Endpoint:
    base: str                       # https://host:port
    verify: bool
    mirror: bool = False

    @property
    def host(self) -> str:
        return urlsplit(self.base).netloc


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
                headers={"User-Agent": "berth/0.1 (docker-compatible)"}, trust_env=False,
                auto_decompress=False)
        return self._http

    async def close(self) -> None:
        if self._http is not None:
            await self._http.close()

    def ssl_for(self, ep: Endpoint) -> ssl.SSLContext | bool:
        if not ep.base.startswith("https://"):
            return False
        d = os.path.join(self.options.certs_dir, ep.host)
        try:
            stamp = os.stat(d).st_mtime_ns   # certificates added later are picked up
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
        return self.ssl_for(Endpoint(f"{u.scheme.lower()}://{hostport}",
                                     self.options.is_secure(hostport)))

    async def send(self, method: str, url: str, *, headers: dict[str, str] | None = None,
                   data: Any = None, authorization: str | None = None, owner: str = ""
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
            r = await http.request(method, url, headers=hdrs, data=data,
                                   ssl=self.ssl_for_url(url), allow_redirects=False)
            loc = r.headers.get("Location", "")
            if not (r.status in REDIRECTS and loc and (
                    method in ("GET", "HEAD") or (r.status in (307, 308)
                                                  and isinstance(data, bytes | None)))):
                return r
            r.release()
            nxt = urljoin(url, loc)
            if urlsplit(nxt).scheme.lower() not in ("http", "https"):
                raise Unavailable(f'{method.capitalize()} "{url}": redirected to a URL that is '
                                  "not http(s)")
            url = nxt
        raise Unavailable(f'{method.capitalize()} "{url}": stopped after {MAX_REDIRECTS} '
                          "redirects")

    async def search(self, domain: str, term: str, limit: int,
                     auth: AuthConfig | None = None) -> list[dict[str, Any]]:
        """The registry's v1 search (`/v1/search?q=TERM&n=LIMIT`), as dockerd asks it: Docker
        Hub's index for names without a registry host. Results are checked for shape."""
        if domain == "docker.io" and not self.options.docker_hub:
            raise Unavailable("searching Docker Hub is turned off in this daemon "
                              "(--docker-hub=false): name a registry in the term "
                              "(REGISTRY/TERM)")
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
                errors.append(f"{url}: {_describe(e)}")
                continue
            if r.status != 200:
                raise _status_error(r.status, body, f"search on {host}")
            try:
                results = json.loads(body).get("results") or []
                return [{"name": str(x["name"]), "description": str(x.get("description") or ""),
                         "star_count": int(x.get("star_count") or 0),
                         "is_official": bool(x.get("is_official")),
                         "is_automated": bool(x.get("is_automated"))}
                        for x in results[:limit]]
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
                raise Unavailable(f"{'pushing to' if push else 'pulling from'} Docker Hub is "
                                  "turned off in this daemon (--docker-hub=false)"
                                  + ("" if push else " and no registry mirror is set"))
            return out
        if self.options.is_secure(host):
            out.append(Endpoint("https://" + host, True))
        else:
            out += [Endpoint("https://" + host, False), Endpoint("http://" + host, False)]
        return out

    async def repository(self, domain: str, path: str, auth: AuthConfig, *,
                         push: bool = False, mount_from: list[str] | None = None) -> Repository:
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

    async def candidates(self, domain: str, path: str, auth: AuthConfig) -> AsyncIterator[Repository]:
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
            i += 2 if (not ep.verify and ep.base.startswith("https://") and not ep.mirror
                       and i + 1 < len(eps) and eps[i + 1].base.startswith("http://")) else 1
        if not reached:
            raise Unavailable("; ".join(errors))

    async def login(self, auth: AuthConfig) -> str:
        """Check credentials against a registry as `docker login` does: /v2/ with them."""
        domain = normalize_server(auth.serveraddress or "docker.io")
        repo = await self.repository(domain, "", auth)
        await repo.check_login()
        return domain


class Repository:
    """One repository on one endpoint, with the credentials for it."""

    def __init__(self, client: RegistryClient, ep: Endpoint, domain: str, path: str,
                 auth: AuthConfig, *, push: bool = False, mount_from: list[str] | None = None
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
                    self.challenge = next((c for c in ch if c.scheme == "bearer"),
                                          ch[0] if ch else None)
                elif r.status >= 500 or (r.status >= 300 and r.status not in (404,)):
                    raise Unavailable(f'Get "{url}": unexpected status {r.status}')
        except aiohttp.ClientConnectorCertificateError as e:
            raise Unavailable(f'Get "{url}": tls: failed to verify certificate: '
                              f"{e.certificate_error}") from None
        except (aiohttp.ClientError, TimeoutError, OSError) as e:
            raise Unavailable(f'Get "{url}": {_describe(e)}') from None

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
                form = {"grant_type": "refresh_token", "refresh_token": self.auth.identitytoken,
                        "service": service, "client_id": "berth", "scope": " ".join(scopes)}
                req = self.client.send("POST", realm, data=form)
            else:
                q: list[tuple[str, str]] = [("service", service)] if service else []
                q += [("scope", s) for s in scopes]
                if not scopes:
                    q += [("account", self.auth.username)] if self.auth.username else []
                    q += [("client_id", "berth"), ("offline_token", "true")]
                # the credentials go to the realm's own origin only, not where it redirects
                req = self.client.send(
                    "GET", realm + ("&" if "?" in realm else "?") + urlencode(q), owner=realm,
                    authorization=basic_header(self.auth) if self.auth.username else None)
            async with await req as r:
                body = await read_limited(r, SMALL_LIMIT, "token server's answer")
                if r.status in (401, 403):
                    raise Unauthorized(f'Get "{self.ep.base}/v2/": unauthorized: '
                                       f"{_error_text(body) or 'incorrect username or password'}")
                if r.status != 200:
                    raise Unauthorized(f"token server {realm} answered {r.status}: "
                                       f"{_error_text(body)}")
        except (aiohttp.ClientError, TimeoutError, OSError) as e:
            raise Unavailable(f"token server {realm}: {_describe(e)}") from None
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
            raise Unauthorized(f"registry {self.ep.host} names a token realm in plain http "
                               f"({realm}): refused, only an insecure registry "
                               "(--insecure-registry) may use one")
        own = (urlsplit(self.ep.base).hostname or "").lower()
        if (self.auth.username or self.auth.identitytoken) and \
                (urlsplit(realm).hostname or "").lower() != own:
            raise Unauthorized(f"registry {self.ep.host} names a token realm in plain http on "
                               f"another host ({realm}): refused to send the credentials "
                               "for it there unencrypted")

    async def check_login(self) -> None:
        if self.challenge is None:
            return
        if self.auth.anonymous:
            raise Unauthorized(f'Get "{self.ep.base}/v2/": unauthorized: authentication required')
        await self._authorization()
        async with await self.client.send("GET", self.ep.base + "/v2/", owner=self.ep.base,
                                          authorization=self._authz) as r:
            body = await read_limited(r, SMALL_LIMIT, "answer")
            if r.status != 200:
                text = _error_text(body) or "unauthorized: incorrect username or password"
                if not text.startswith("unauthorized"):
                    text = "unauthorized: " + text
                raise Unauthorized(f'Get "{self.ep.base}/v2/": {text}')

    @contextlib.asynccontextmanager
    async def request(self, method: str, url: str, *, headers: dict[str, str] | None = None,
                      data: Any = None, retry_auth: bool = True
                      ) -> AsyncIterator[aiohttp.ClientResponse]:
        for attempt in (0, 1):
            authz = await self._authorization(refresh=attempt == 1)
            try:
                # the registry's credentials go to the registry's origin only: not to a host
                # that a redirect (a blob on a CDN) or an upload Location names
                r = await self.client.send(method, url, headers=headers, data=data,
                                           authorization=authz, owner=self.ep.base)
            except (aiohttp.ClientError, TimeoutError, OSError) as e:
                raise Unavailable(f'{method.capitalize()} "{url}": {_describe(e)}') from None
            try:
                # a challenge from another host (where a redirect led) changes nothing
                if (r.status == 401 and attempt == 0 and retry_auth and self._own(str(r.url))
                        and not isinstance(data, (AsyncIterator, aiohttp.StreamReader))):
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
        async with self.request("GET", self.url(f"manifests/{ref}"),
                                headers={"Accept": MANIFEST_ACCEPT}) as r:
            if r.status != 200:
                body = await read_limited(r, SMALL_LIMIT, "error body")
                raise _status_error(r.status, body, f"manifest for {self.name}:{ref}"
                                    if not ref.startswith("sha256:") else
                                    f"manifest for {self.name}@{ref}")
            raw = await read_limited(r, MANIFEST_LIMIT, "manifest")
            ctype = r.headers.get("Content-Type", "").split(";")[0].strip()
            header_digest = r.headers.get("Docker-Content-Digest", "")
        digest = oci.sha256_digest(raw)
        if ref.startswith("sha256:") and ref != digest:
            raise InvalidArgument(f"manifest verification failed for digest {ref}: the registry "
                                  f"sent content with digest {digest}")
        if header_digest and header_digest.startswith("sha256:") and header_digest != digest:
            raise InvalidArgument(f"manifest digest mismatch: the registry says {header_digest}, "
                                  f"the content is {digest}")
        try:
            doc = json.loads(raw)
        except ValueError:
            raise InvalidArgument(f"malformed manifest for {self.name}:{ref}") from None
        media = doc.get("mediaType") or ctype
        return media, raw, digest

    async def put_manifest(self, ref: str, media_type: str, raw: bytes) -> str:
        async with self.request("PUT", self.url(f"manifests/{ref}"),
                                headers={"Content-Type": media_type}, data=raw) as r:
            body = await read_limited(r, SMALL_LIMIT, "answer to the manifest upload")
            if r.status not in (200, 201, 202):
                raise _status_error(r.status, body, f"manifest {self.name}:{ref}")
            return r.headers.get("Docker-Content-Digest") or oci.sha256_digest(raw)

    # --- blobs --------------------------------------------------------------------------------
    async def blob_exists(self, digest: str) -> bool:
        async with self.request("HEAD", self.url(f"blobs/{digest}")) as r:
            if r.status == 200:
                return True
            if r.status == 404:
                return False
            raise _status_error(r.status, b"", f"blob {digest} in {self.name}")

    @contextlib.asynccontextmanager
    async def open_blob(self, digest: str, offset: int = 0
                        ) -> AsyncIterator[tuple[aiohttp.ClientResponse, int]]:
        """The response and the offset it starts at (0 if the registry ignored the Range)."""
        headers = {"Range": f"bytes={offset}-"} if offset else {}
        async with self.request("GET", self.url(f"blobs/{digest}"), headers=headers) as r:
            if r.status not in (200, 206):
                body = await read_limited(r, SMALL_LIMIT, "error body")
                raise _status_error(r.status, body, f"blob {digest} of {self.name}")
            yield r, (offset if r.status == 206 else 0)

    async def start_upload(self, mount: str = "", mount_from: str = "") -> tuple[bool, str]:
        """(mounted, upload location). A registry that cannot mount opens an upload."""
        q = f"?{urlencode({'mount': mount, 'from': mount_from})}" if mount else ""
        async with self.request("POST", self.url("blobs/uploads/") + q,
                                headers={"Content-Length": "0"}) as r:
            body = await read_limited(r, SMALL_LIMIT, "answer to the upload request")
            if r.status == 201 and mount:
                return True, ""
            if r.status != 202:
                raise _status_error(r.status, body, f"upload to {self.name}")
            loc = r.headers.get("Location", "")
        if not loc:
            raise System(f"registry {self.ep.host} gave no upload location")
        return False, urljoin(self.ep.base + "/", loc)

    async def upload(self, location: str, body: AsyncIterator[bytes], digest_of: Any) -> str:
        """PATCH the stream (chunked), then PUT with the digest that `digest_of()` returns once
        the stream is done; returns the registry's digest."""
        async with self.request("PATCH", location, data=body,
                                headers={"Content-Type": "application/octet-stream"}) as r:
            rbody = await read_limited(r, SMALL_LIMIT, "answer to the blob upload")
            if r.status != 202:
                raise _status_error(r.status, rbody, f"upload to {self.name}")
            location = urljoin(location, r.headers.get("Location", location))
        digest = digest_of()
        sep = "&" if "?" in location else "?"
        async with self.request("PUT", location + sep + urlencode({"digest": digest}),
                                headers={"Content-Length": "0"}) as r:
            rbody = await read_limited(r, SMALL_LIMIT, "answer to the blob upload")
            if r.status not in (201, 204):
                raise _status_error(r.status, rbody, f"upload to {self.name}")
        return str(digest)

    async def put_blob(self, data: bytes) -> str:
        digest = oci.sha256_digest(data)
        if await self.blob_exists(digest):
            return digest
        _, loc = await self.start_upload()
        sep = "&" if "?" in loc else "?"
        async with self.request("PUT", loc + sep + urlencode({"digest": digest}), data=data,
                                headers={"Content-Type": "application/octet-stream"}) as r:
            body = await read_limited(r, SMALL_LIMIT, "answer to the blob upload")
            if r.status not in (201, 204):
                raise _status_error(r.status, body, f"upload to {self.name}")
        return digest


async def read_limited(r: aiohttp.ClientResponse, limit: int, what: str) -> bytes:
    """The whole body of a response that is not a blob, at most `limit` bytes: a registry that
    sends more (or says it will) is refused before the excess is read. Every non-streamed
    answer of a registry goes through here."""
    url = r.url.with_query(None)
    too_large = InvalidArgument(f"registry response too large: the {what} from {url} is over "
                                f"{limit} bytes")
    if r.content_length is not None and r.content_length > limit:
        raise too_large
    buf = bytearray()
    async for chunk in r.content.iter_chunked(1 << 16):
        buf += chunk
        if len(buf) > limit:
            raise too_large
    return bytes(buf)


def _error_text(body: bytes) -> str:
    try:
        doc = json.loads(body)
        errs = doc.get("errors") or []
        if errs:
            return "; ".join(f"{e.get('code', '').lower().replace('_', ' ')}: {e.get('message', '')}"
                             if e.get("code") else str(e.get("message", "")) for e in errs)
        return str(doc.get("details") or doc.get("message") or "")
    except (ValueError, AttributeError):
        return body.decode(errors="replace").strip()[:200]


def _status_error(status: int, body: bytes, what: str) -> BerthError:
    text = _error_text(body)
    if status == 401:
        text = text if text.startswith("unauthorized") else \
            f"unauthorized: {text or 'authentication required'}"
        return Unauthorized(f"{what}: {text}")
    if status == 403:
        text = text if text.startswith("denied") else \
            f"denied: {text or 'requested access to the resource is denied'}"
        return Forbidden(f"{what}: {text}")
    if status == 404:
        return NotFound(f"{what} not found: {text or 'not found'}")
    return System(f"{what}: registry answered {status}: {text}")


def _describe(e: BaseException) -> str:
    if isinstance(e, TimeoutError | asyncio.TimeoutError):
        return "timed out"
    if isinstance(e, aiohttp.ClientConnectorError):
        return f"dial tcp {e.host}:{e.port}: {e.os_error.strerror or e.os_error}"
    return str(e) or type(e).__name__


__all__ = ["AuthConfig", "RegistryClient", "read_limited", "MANIFEST_LIMIT", "CONFIG_LIMIT",
           "LIST_LIMIT", "SMALL_LIMIT", "RegistryOptions", "Repository", "Endpoint",
           "origin", "auth_key", "normalize_server", "registry_host", "DOCKER_HUB_AUTH_KEY"]
