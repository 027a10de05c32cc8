"""Pull and push: images between the local stores and a registry, with Docker's progress stream.

Imports `registry`, `storage`, `oci`, `reference`, and the image service beside it. Pulls download
up to three layers at once and unpack each while it arrives (a layer's files do not depend on its
parent); every blob is checked against its digest before anything is committed, and the layers
are committed in order only when all of them are complete, so a failed pull keeps nothing. A
dropped connection is resumed with a Range request. Two pulls that need the same layer share one
download. Pushes send only the blobs the registry lacks (HEAD first, then a cross-repository
mount where berth has seen the blob on that registry) and put the manifest last.

Split by job: one layer's download is `download`, push is `push`, the progress stream `streams`.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

from berth import oci, reference
from berth.errors import BerthError, InvalidArgument, NotFound, Unavailable
from berth.images import ImageService, host_arch, manifests
from berth.images import push as pushing
from berth.images.download import download
from berth.images.manifests import Descriptor, Platform
from berth.images.records import ImageConfig
from berth.images.streams import Message, all_or_none, messages, progress_bar
from berth.registry import (
    CONFIG_LIMIT,
    LIST_LIMIT,
    SMALL_LIMIT,
    AuthConfig,
    RegistryClient,
    Repository,
    SearchResult,
    read_limited,
)
from berth.storage import Layer, StagedLayer

log = logging.getLogger(__name__)

MAX_DOWNLOADS = 3  # Docker's max-concurrent-downloads
_LAYER_TYPES = {
    oci.MEDIA_DOCKER_LAYER,
    oci.MEDIA_OCI_LAYER,
    oci.MEDIA_OCI_LAYER_GZIP,
    oci.MEDIA_OCI_LAYER_ZSTD,
    "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
}


def auth_for(auths: dict[str, Any], domain: str) -> AuthConfig:
    """The credentials for `domain` among X-Registry-Config's (keyed by server, in any of the
    spellings `docker login` writes); anonymous where none is given. The last match wins."""
    from berth.registry import normalize_server

    auth = AuthConfig()
    for key, value in auths.items():
        if normalize_server(key) == domain and isinstance(value, dict):
            auth = AuthConfig.from_dict(value)
    return auth


def parse_platform(s: str) -> tuple[str, str, str]:
    """`linux/arm64/v8` → (os, architecture, variant); the host's by default."""
    if not s:
        return "linux", host_arch(), ""
    parts = s.lower().split("/")
    if len(parts) > 3 or not all(parts):
        raise InvalidArgument(f'"{s}": unknown operating system or architecture: invalid argument')
    os_, arch = (parts + [""])[:2]
    if not arch:
        arch = host_arch()
    variant = parts[2] if len(parts) == 3 else ""
    arch = {"x86_64": "amd64", "x86-64": "amd64", "aarch64": "arm64", "armhf": "arm"}.get(
        arch, arch
    )
    if arch == "arm64" and variant == "v8":
        variant = ""
    return os_, arch, variant


@dataclass(frozen=True, slots=True, kw_only=True)
class RegistryImage:
    """What a name resolves to on its registry (`GET /distribution/{name}/json`): its
    manifest's descriptor and the platforms it offers."""

    media_type: str
    digest: str
    size: int
    platforms: list[Platform]


@dataclass(slots=True)
class _Pulled:
    ref: reference.Reference
    manifest_digest: str
    config_raw: bytes
    diff_ids: list[str]
    layers: tuple[Descriptor, ...]


class Distribution:
    def __init__(
        self,
        images: ImageService,
        registry: RegistryClient,
        *,
        emit: Callable[[str, str, str, dict[str, str]], None] | None = None,
    ) -> None:
        self.images = images
        self.registry = registry
        self.emit = emit or (lambda *a: None)
        # chain ID → the layer another pull is committing right now
        self._inflight: dict[str, asyncio.Future[Layer]] = {}

    # --- credentials --------------------------------------------------------------------------
    @staticmethod
    def credentials(header: str | None) -> AuthConfig:
        """The credentials a client sent in X-Registry-Auth (base64url JSON), for the calls
        below; anonymous without the header."""
        return AuthConfig.from_header(header)

    async def login(self, body: dict[str, Any]) -> None:
        """`POST /auth`: check the credentials in `body` (Docker's AuthConfig) against their
        registry."""
        await self.registry.login(AuthConfig.from_dict(body))

    # --- pull ---------------------------------------------------------------------------------
    async def pull(
        self, name: str, tag: str = "", *, platform: str = "", auth: AuthConfig | None = None
    ) -> AsyncIterator[Message]:
        """`POST /images/create?fromImage=NAME&tag=TAG`. An empty tag pulls every tag (`-a`).
        Errors before the first message are plain errors (an HTTP status); later ones end the
        stream, as in Docker."""
        auth = auth or AuthConfig()
        base = reference.parse(name, default_tag=False)
        if tag.startswith("sha256:"):
            refs = [reference.Reference(domain=base.domain, path=base.path, digest=tag)]
        elif tag:
            refs = [
                reference.Reference(
                    domain=base.domain, path=base.path, tag=reference.validate_tag(tag)
                )
            ]
        elif base.tag or base.digest:
            refs = [base]
        else:
            refs = [
                reference.Reference(domain=base.domain, path=base.path, tag=t)
                for t in await self._tags(base, auth)
            ]
        for ref in refs:
            async for m in self._pull_one(ref, platform, auth):
                yield m

    async def inspect(self, name: str, *, auth: AuthConfig | None = None) -> RegistryImage:
        """`GET /distribution/{name}/json`: the descriptor of the manifest a name resolves to
        on its registry, and the platforms it offers, without pulling anything."""
        auth = auth or AuthConfig()
        ref = reference.parse(name)
        last: BerthError | None = None
        async for repo in self.registry.candidates(ref.domain, ref.path, auth):
            try:
                media, raw, digest = await repo.get_manifest(ref.digest or ref.tag or "latest")
                return RegistryImage(
                    media_type=media,
                    digest=digest,
                    size=len(raw),
                    platforms=await self._platforms(repo, ref, media, raw),
                )
            except (NotFound, Unavailable) as e:
                if not repo.ep.mirror:
                    raise self._pull_error(ref, e) from None
                last = e
        raise self._pull_error(ref, last or NotFound("manifest unknown"))

    async def _platforms(
        self, repo: Repository, ref: reference.Reference, media: str, raw: bytes
    ) -> list[Platform]:
        """An index's platforms; a single manifest's, from its image config."""
        what = f"{ref.familiar}: manifest ({media})"
        doc = manifests.document(raw, what)
        if manifests.is_index(media, doc):
            return [
                e.platform
                for e in manifests.parse_index(doc, what).manifests
                if e.platform is not None
            ]
        config = manifests.parse_manifest(doc, what).config
        cfg = manifests.document(
            await self._small_blob(repo, config.digest, config.size),
            f"{ref.familiar}: image config",
        )
        return [Platform.from_doc(cfg)]

    async def search(
        self,
        term: str,
        *,
        limit: int = 25,
        filters: dict[str, list[str]] | None = None,
        auth: AuthConfig | None = None,
    ) -> list[SearchResult]:
        """`GET /images/search`: a registry host named first in the term is searched (as
        dockerd splits `localhost:5000/name`), else Docker Hub's index; `filters` as dockerd's:
        is-official, is-automated, stars."""
        if not 1 <= limit <= 100:
            raise InvalidArgument(f"limit {limit} is outside the range of [1, 100]")
        want: dict[str, bool | int] = {}
        for key, values in (filters or {}).items():
            if key not in ("is-official", "is-automated", "stars"):
                raise InvalidArgument(f"invalid filter '{key}'")
            for v in values:
                if key == "stars":
                    if not v.isdigit():
                        raise InvalidArgument(f"invalid filter 'stars={v}'")
                    want[key] = max(int(v), int(want.get(key, 0)))
                elif v.lower() in ("true", "1", "false", "0"):
                    want[key] = v.lower() in ("true", "1")
                else:
                    raise InvalidArgument(f"invalid filter '{key}={v}'")
        first, slash, rest = term.partition("/")
        if slash and ("." in first or ":" in first or first == "localhost"):
            domain, query = first, rest
        else:
            domain, query = "docker.io", term
        results = await self.registry.search(domain, query, limit, auth)
        return [
            r
            for r in results
            if r.star_count >= int(want.get("stars", 0))
            and want.get("is-official", r.is_official) == r.is_official
            and want.get("is-automated", r.is_automated) == r.is_automated
        ]

    async def _tags(self, ref: reference.Reference, auth: AuthConfig) -> list[str]:
        async for repo in self.registry.candidates(ref.domain, ref.path, auth):
            async with repo.request("GET", repo.url("tags/list")) as r:
                if r.status == 404 and repo.ep.mirror:
                    continue
                body = await read_limited(
                    r,
                    LIST_LIMIT if r.status == 200 else SMALL_LIMIT,
                    "tag list" if r.status == 200 else "error body",
                )
                if r.status != 200:
                    from berth.registry import status_error

                    raise status_error(r.status, body, f"tags of {ref.familiar_repository}")
            tags = json.loads(body).get("tags") or []
            if not tags:
                raise NotFound(f"no tags found for {ref.familiar_repository}")
            return sorted(tags)
        raise NotFound(f"repository {ref.familiar_repository} not found")

    async def _resolve(
        self, ref: reference.Reference, platform: str, auth: AuthConfig
    ) -> tuple[Repository, _Pulled]:
        want = parse_platform(platform)
        last: BerthError | None = None
        async for repo in self.registry.candidates(ref.domain, ref.path, auth):
            try:
                return repo, await self._manifest(repo, ref, want)
            except (NotFound, Unavailable) as e:
                if not repo.ep.mirror:
                    raise self._pull_error(ref, e) from None
                last = e
        raise self._pull_error(ref, last or NotFound("manifest unknown"))

    @staticmethod
    def _pull_error(ref: reference.Reference, e: BerthError) -> BerthError:
        if isinstance(e, NotFound) and "manifest" in e.message:
            what = ref.familiar
            msg = e.message.split(" not found: ", 1)[-1]
            return NotFound(f"manifest for {what} not found: {msg}")
        return e

    async def _manifest(
        self, repo: Repository, ref: reference.Reference, want: tuple[str, str, str]
    ) -> _Pulled:
        media, raw, digest = await repo.get_manifest(ref.digest or ref.tag or "latest")
        what = f"{ref.familiar}: manifest {digest}"
        doc = manifests.document(raw, what)
        top_digest = digest
        if manifests.is_index(media, doc):
            child = manifests.parse_index(doc, what).select(*want)
            if child is None:
                os_, arch, variant = want
                raise NotFound(
                    f"no matching manifest for {os_}/{arch}"
                    f"{'/' + variant if variant else ''} in the manifest list entries"
                )
            media, raw, digest = await repo.get_manifest(child.digest)
            what = f"{ref.familiar}: manifest {digest}"
            doc = manifests.document(raw, what)
        if media not in manifests.MANIFEST_TYPES:
            if doc.get("schemaVersion") == 1:
                raise InvalidArgument(
                    f"{ref.familiar}: Docker Image manifest schema 1 is not "
                    "supported: the image must be pushed again with a newer "
                    "client"
                )
            raise InvalidArgument(f"{ref.familiar}: unsupported manifest media type {media!r}")
        m = manifests.parse_manifest(doc, what)
        for la in m.layers:
            if la.media_type not in _LAYER_TYPES:
                raise InvalidArgument(
                    f"{ref.familiar}: unsupported layer media type {la.media_type!r}"
                )
        content = self.images.content
        if await asyncio.to_thread(content.exists, m.config.digest):
            config_raw = await asyncio.to_thread(content.read, m.config.digest)
        else:
            config_raw = await self._small_blob(repo, m.config.digest, m.config.size)
        diff_ids = ImageConfig.from_doc(
            manifests.document(config_raw, f"{ref.familiar}: image config")
        ).diff_ids
        for d in diff_ids:
            oci.validate_digest(d)
        if len(diff_ids) != len(m.layers):
            raise InvalidArgument(
                f"{ref.familiar}: the manifest has {len(m.layers)} layers, the "
                f"config {len(diff_ids)}"
            )
        return _Pulled(ref, top_digest, config_raw, list(diff_ids), m.layers)

    async def _small_blob(self, repo: Repository, digest: str, size: int) -> bytes:
        if size > CONFIG_LIMIT:
            raise InvalidArgument(
                f"registry response too large: the manifest names a config "
                f"blob {digest} of {size} bytes, over {CONFIG_LIMIT}"
            )
        async with repo.open_blob(digest) as (r, _):
            data = await read_limited(r, CONFIG_LIMIT, "image config")
        if oci.sha256_digest(data) != digest:
            raise InvalidArgument(
                f"blob {digest} failed verification: the registry sent content "
                f"with digest {oci.sha256_digest(data)}"
            )
        return data

    async def _pull_one(
        self, ref: reference.Reference, platform: str, auth: AuthConfig
    ) -> AsyncIterator[Message]:
        repo, p = await self._resolve(ref, platform, auth)
        label = ref.tag or ref.digest or "latest"
        yield {"status": f"Pulling from {ref.path}", "id": label}
        chains = oci.chain_ids(p.diff_ids)
        store = self.images.layer_store
        queue: asyncio.Queue[Message | None] = asyncio.Queue()
        mine: dict[int, asyncio.Future[Layer]] = {}
        waits: dict[int, asyncio.Future[Layer]] = {}
        todo: list[int] = []
        loop = asyncio.get_running_loop()
        for i, chain in enumerate(chains):
            short = p.layers[i].short
            if store.exists(chain):
                yield {"status": "Already exists", "progressDetail": {}, "id": short}
            elif chain in self._inflight:
                waits[i] = self._inflight[chain]
                yield {"status": "Waiting", "progressDetail": {}, "id": short}
            else:
                fut: asyncio.Future[Layer] = loop.create_future()
                fut.add_done_callback(lambda f: f.exception() if not f.cancelled() else None)
                self._inflight[chain] = mine[i] = fut
                todo.append(i)
                yield {"status": "Pulling fs layer", "progressDetail": {}, "id": short}
        staged: dict[int, StagedLayer] = {}
        sem = asyncio.Semaphore(MAX_DOWNLOADS)

        async def one(i: int) -> None:
            short = p.layers[i].short
            queue.put_nowait({"status": "Waiting", "progressDetail": {}, "id": short})
            async with sem:
                staged[i] = await download(
                    self.images.layer_store, repo, p.layers[i], p.diff_ids[i], short, queue
                )

        async def run() -> None:
            await all_or_none([one(i) for i in todo])
            for i in range(len(chains)):
                short = p.layers[i].short
                if i in waits:
                    await waits[i]
                    queue.put_nowait(
                        {"status": "Already exists", "progressDetail": {}, "id": short}
                    )
                elif i in staged:
                    parent = chains[i - 1] if i else None
                    layer = await asyncio.to_thread(store.commit, staged.pop(i), parent)
                    mine[i].set_result(layer)
                    queue.put_nowait({"status": "Pull complete", "progressDetail": {}, "id": short})

        try:
            async for m in messages(run(), queue):
                yield m
        except BaseException as e:
            for s in staged.values():
                store.discard(s)
            for f in mine.values():
                if not f.done():
                    f.set_exception(
                        e
                        if isinstance(e, BerthError)
                        else Unavailable(f"the pull that shared this layer failed: {e}")
                    )
            raise
        finally:
            for i, f in mine.items():
                if self._inflight.get(chains[i]) is f:
                    del self._inflight[chains[i]]
        existed = await asyncio.to_thread(self._commit, ref, p, chains, repo.name)
        self.emit("image", "pull", ref.familiar, {"name": ref.familiar})
        yield {"status": f"Digest: {p.manifest_digest}"}
        yield {
            "status": f"Status: {'Image is up to date' if existed else 'Downloaded newer image'} for {ref.familiar}"
        }

    def _commit(self, ref: reference.Reference, p: _Pulled, chains: list[str], source: str) -> bool:
        """The pulled image into the stores (blocking: a worker thread's); whether it was
        there already under `ref`."""
        meta = self.images.meta
        for diff_id, la in zip(p.diff_ids, p.layers, strict=True):
            meta.add_blob_source(diff_id, la.digest, la.media_type, la.size, source)
        config_id = oci.sha256_digest(p.config_raw)
        existed = (
            meta.tag_target(str(ref)) == config_id
            if ref.tag
            else meta.digest_target(f"{ref.repository}@{ref.digest}") == config_id
        )
        image_id = self.images.commit_raw_config(
            p.config_raw, chains, [str(ref)] if ref.tag else []
        )
        meta.put_digest(f"{ref.repository}@{p.manifest_digest}", image_id)
        return existed

    # --- push (images/push.py) ----------------------------------------------------------------
    def push(
        self, name: str, tag: str = "", *, auth: AuthConfig | None = None
    ) -> AsyncIterator[Message]:
        """`POST /images/{name}/push`: every tag of `name` without a tag."""
        return pushing.push(self, name, tag, auth=auth)


# SearchResult is the registry client's, named here for the API (which does not reach registry)
__all__ = [
    "Distribution",
    "Platform",
    "RegistryImage",
    "SearchResult",
    "auth_for",
    "parse_platform",
    "progress_bar",
]
