"""Pull and push: images between the local stores and a registry, with Docker's progress stream.

Imports `registry`, `storage`, `oci`, `reference`, and the image service beside it. Pulls download
up to three layers at once and unpack each while it arrives (a layer's files do not depend on its
parent); every blob is checked against its digest before anything is committed, and the layers
are committed in order only when all of them are complete, so a failed pull keeps nothing. A
dropped connection is resumed with a Range request. Two pulls that need the same layer share one
download. Pushes send only the blobs the registry lacks (HEAD first, then a cross-repository
mount where berth has seen the blob on that registry) and put the manifest last.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import io
import json
import logging
import threading
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp

from berth import oci, reference
from berth.errors import BerthError, InvalidArgument, NotFound, System, Unavailable
from berth.images import ImageService, host_arch
from berth.registry import (
    CONFIG_LIMIT,
    LIST_LIMIT,
    SMALL_LIMIT,
    AuthConfig,
    RegistryClient,
    Repository,
    read_limited,
)
from berth.storage import Layer, StagedLayer

log = logging.getLogger(__name__)

MAX_DOWNLOADS = 3         # Docker's max-concurrent-downloads
MAX_UPLOADS = 5           # Docker's max-concurrent-uploads
CHUNK = 1 << 18
RETRIES = 5
_LAYER_TYPES = {
    oci.MEDIA_DOCKER_LAYER, oci.MEDIA_OCI_LAYER, oci.MEDIA_OCI_LAYER_GZIP, oci.MEDIA_OCI_LAYER_ZSTD,
    "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
}
Message = dict[str, Any]


def auth_for(auths: dict[str, Any], domain: str) -> AuthConfig:
    """The credentials for `domain` among X-Registry-Config's (keyed by server, in any of the
    spellings `docker login` writes); anonymous where none is given. The last match wins."""
    from berth.registry import normalize_server
    auth = AuthConfig()
    for key, value in auths.items():
        if normalize_server(key) == domain and isinstance(value, dict):
            auth = AuthConfig.from_dict(value)
    return auth


def progress_bar(current: int, total: int) -> str:
    """Docker's `[=====>      ]  1.2MB/3.4MB`."""
    from berth.units import human_size
    if total <= 0:
        return f"{human_size(current)}"
    width = 50
    done = min(width, current * width // total)
    bar = "=" * done + (">" if done < width else "") + " " * max(0, width - done - 1)
    return f"[{bar}] {human_size(current):>8}/{human_size(total)}"


def parse_platform(s: str) -> tuple[str, str, str]:
    """`linux/arm64/v8` → (os, architecture, variant); the host's by default."""
    if not s:
        return "linux", host_arch(), ""
    parts = s.lower().split("/")
    if len(parts) > 3 or not all(parts):
        raise InvalidArgument(f'"{s}": unknown operating system or architecture: invalid '
                              "argument")
    os_, arch = (parts + [""])[:2]
    if not arch:
        arch = host_arch()
    variant = parts[2] if len(parts) == 3 else ""
    arch = {"x86_64": "amd64", "x86-64": "amd64", "aarch64": "arm64", "armhf": "arm"}.get(arch, arch)
    if arch == "arm64" and variant == "v8":
        variant = ""
    return os_, arch, variant


@dataclass(slots=True)
class _Pulled:
    ref: reference.Reference
    manifest_digest: str
    config_raw: bytes
    diff_ids: list[str]
    layers: list[dict[str, Any]]


class _Feed(io.RawIOBase):
    """A file for the unpacking thread, fed chunk by chunk from the event loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.q: asyncio.Queue[bytes | BaseException | None] = asyncio.Queue(maxsize=32)
        self._buf = memoryview(b"")
        self._eof = False

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        if self._eof:
            return 0
        if not self._buf:
            item = asyncio.run_coroutine_threadsafe(self.q.get(), self.loop).result()
            if item is None:
                self._eof = True
                return 0
            if isinstance(item, BaseException):
                self._eof = True
                raise item
            self._buf = memoryview(item)
        n = min(len(b), len(self._buf))
        b[:n] = self._buf[:n]
        self._buf = self._buf[n:]
        return n

    def fail(self, exc: BaseException) -> None:
        while not self.q.empty():
            self.q.get_nowait()
        self.q.put_nowait(exc)


class Distribution:
    def __init__(self, images: ImageService, registry: RegistryClient, *,
                 emit: Callable[[str, str, str, dict[str, str]], None] | None = None) -> None:
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
    async def pull(self, name: str, tag: str = "", *, platform: str = "",
                   auth: AuthConfig | None = None) -> AsyncIterator[Message]:
        """`POST /images/create?fromImage=NAME&tag=TAG`. An empty tag pulls every tag (`-a`).
        Errors before the first message are plain errors (an HTTP status); later ones end the
        stream, as in Docker."""
        auth = auth or AuthConfig()
        base = reference.parse(name, default_tag=False)
        if tag.startswith("sha256:"):
            refs = [reference.Reference(domain=base.domain, path=base.path, digest=tag)]
        elif tag:
            refs = [reference.Reference(domain=base.domain, path=base.path,
                                        tag=reference.validate_tag(tag))]
        elif base.tag or base.digest:
            refs = [base]
        else:
            refs = [reference.Reference(domain=base.domain, path=base.path, tag=t)
                    for t in await self._tags(base, auth)]
        for ref in refs:
            async for m in self._pull_one(ref, platform, auth):
                yield m

    async def inspect(self, name: str, *, auth: AuthConfig | None = None) -> dict[str, Any]:
        """`GET /distribution/{name}/json`: the descriptor of the manifest a name resolves to
        on its registry, and the platforms it offers, without pulling anything."""
        auth = auth or AuthConfig()
        ref = reference.parse(name)
        last: BerthError | None = None
        async for repo in self.registry.candidates(ref.domain, ref.path, auth):
            try:
                media, raw, digest = await repo.get_manifest(ref.digest or ref.tag or "latest")
                return {"Descriptor": {"mediaType": media, "digest": digest, "size": len(raw)},
                        "Platforms": await self._platforms(repo, ref, media, raw)}
            except (NotFound, Unavailable) as e:
                if not repo.ep.mirror:
                    raise self._pull_error(ref, e) from None
                last = e
        raise self._pull_error(ref, last or NotFound("manifest unknown"))

    async def _platforms(self, repo: Repository, ref: reference.Reference, media: str,
                         raw: bytes) -> list[dict[str, Any]]:
        """An index's platforms; a single manifest's, from its image config."""
        try:
            doc = json.loads(raw)
            if "manifests" in doc:
                found = [m.get("platform") for m in doc["manifests"]]
            else:
                cdesc = doc["config"]
                oci.validate_digest(cdesc["digest"])
                cfg = json.loads(await self._small_blob(repo, cdesc["digest"],
                                                        int(cdesc.get("size", 0))))
                found = [{"architecture": cfg.get("architecture"), "os": cfg.get("os"),
                          "os.version": cfg.get("os.version"),
                          "os.features": cfg.get("os.features"),
                          "variant": cfg.get("variant")}]
        except (ValueError, KeyError, TypeError, AttributeError):
            raise InvalidArgument(f"{ref.familiar}: malformed manifest ({media})") from None
        # as the OCI platform's JSON: the fields that are set
        return [{k: v for k, v in p.items() if v} for p in found if isinstance(p, dict)]

    async def search(self, term: str, *, limit: int = 25,
                     filters: dict[str, list[str]] | None = None,
                     auth: AuthConfig | None = None) -> list[dict[str, Any]]:
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
        return [r for r in results
                if r["star_count"] >= int(want.get("stars", 0))
                and want.get("is-official", r["is_official"]) == r["is_official"]
                and want.get("is-automated", r["is_automated"]) == r["is_automated"]]

    async def _tags(self, ref: reference.Reference, auth: AuthConfig) -> list[str]:
        async for repo in self.registry.candidates(ref.domain, ref.path, auth):
            async with repo.request("GET", repo.url("tags/list")) as r:
                if r.status == 404 and repo.ep.mirror:
                    continue
                body = await read_limited(r, LIST_LIMIT if r.status == 200 else SMALL_LIMIT,
                                          "tag list" if r.status == 200 else "error body")
                if r.status != 200:
                    from berth.registry import status_error
                    raise status_error(r.status, body, f"tags of {ref.familiar_repository}")
            tags = json.loads(body).get("tags") or []
            if not tags:
                raise NotFound(f"no tags found for {ref.familiar_repository}")
            return sorted(tags)
        raise NotFound(f"repository {ref.familiar_repository} not found")

    async def _resolve(self, ref: reference.Reference, platform: str, auth: AuthConfig
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

    async def _manifest(self, repo: Repository, ref: reference.Reference,
                        want: tuple[str, str, str]) -> _Pulled:
        media, raw, digest = await repo.get_manifest(ref.digest or ref.tag or "latest")
        doc = json.loads(raw)
        top_digest = digest
        if media in (oci.MEDIA_OCI_INDEX, oci.MEDIA_DOCKER_LIST) or (
                not media and "manifests" in doc):
            child = self._select(doc.get("manifests") or [], want)
            if child is None:
                os_, arch, variant = want
                raise NotFound(f"no matching manifest for {os_}/{arch}"
                               f"{'/' + variant if variant else ''} in the manifest list entries")
            media, raw, digest = await repo.get_manifest(child["digest"])
            doc = json.loads(raw)
        if media not in (oci.MEDIA_OCI_MANIFEST, oci.MEDIA_DOCKER_MANIFEST):
            if doc.get("schemaVersion") == 1:
                raise InvalidArgument(f"{ref.familiar}: Docker Image manifest schema 1 is not "
                                      "supported: the image must be pushed again with a newer "
                                      "client")
            raise InvalidArgument(f"{ref.familiar}: unsupported manifest media type {media!r}")
        try:
            cdesc = doc["config"]
            layers = list(doc.get("layers") or [])
            oci.validate_digest(cdesc["digest"])
            for la in layers:
                oci.validate_digest(la["digest"])
                if la.get("mediaType") not in _LAYER_TYPES:
                    raise InvalidArgument(f"{ref.familiar}: unsupported layer media type "
                                          f"{la.get('mediaType')!r}")
        except (KeyError, TypeError):
            raise InvalidArgument(f"{ref.familiar}: malformed manifest {digest}") from None
        if self.images.content.exists(cdesc["digest"]):
            config_raw = self.images.content.read(cdesc["digest"])
        else:
            config_raw = await self._small_blob(repo, cdesc["digest"], int(cdesc.get("size", 0)))
        try:
            config = json.loads(config_raw)
            diff_ids = list(config["rootfs"]["diff_ids"])
        except (ValueError, KeyError, TypeError):
            raise InvalidArgument(f"{ref.familiar}: malformed image config") from None
        if len(diff_ids) != len(layers):
            raise InvalidArgument(f"{ref.familiar}: the manifest has {len(layers)} layers, the "
                                  f"config {len(diff_ids)}")
        return _Pulled(ref, top_digest, config_raw, diff_ids, layers)

    @staticmethod
    def _select(entries: list[dict[str, Any]], want: tuple[str, str, str]) -> dict[str, Any] | None:
        os_, arch, variant = want
        best = None
        for e in entries:
            p = e.get("platform") or {}
            if p.get("os") != os_ or p.get("architecture") != arch:
                continue
            v = p.get("variant", "")
            if arch == "arm64" and v == "v8":
                v = ""
            if variant and v != variant:
                continue
            if v == variant:
                return e
            best = best or e
        return best

    async def _small_blob(self, repo: Repository, digest: str, size: int) -> bytes:
        if size > CONFIG_LIMIT:
            raise InvalidArgument(f"registry response too large: the manifest names a config "
                                  f"blob {digest} of {size} bytes, over {CONFIG_LIMIT}")
        async with repo.open_blob(digest) as (r, _):
            data = await read_limited(r, CONFIG_LIMIT, "image config")
        if oci.sha256_digest(data) != digest:
            raise InvalidArgument(f"blob {digest} failed verification: the registry sent content "
                                  f"with digest {oci.sha256_digest(data)}")
        return data

    async def _pull_one(self, ref: reference.Reference, platform: str, auth: AuthConfig
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
            short = p.layers[i]["digest"][7:19]
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
            short = p.layers[i]["digest"][7:19]
            queue.put_nowait({"status": "Waiting", "progressDetail": {}, "id": short})
            async with sem:
                staged[i] = await self._download(repo, p.layers[i], p.diff_ids[i], short, queue)

        async def run() -> None:
            await _all_or_none([one(i) for i in todo])
            for i in range(len(chains)):
                short = p.layers[i]["digest"][7:19]
                if i in waits:
                    await waits[i]
                    queue.put_nowait({"status": "Already exists", "progressDetail": {},
                                      "id": short})
                elif i in staged:
                    parent = chains[i - 1] if i else None
                    layer = await asyncio.to_thread(store.commit, staged.pop(i), parent)
                    mine[i].set_result(layer)
                    queue.put_nowait({"status": "Pull complete", "progressDetail": {},
                                      "id": short})

        try:
            async for m in _messages(run(), queue):
                yield m
        except BaseException as e:
            for s in staged.values():
                store.discard(s)
            for f in mine.values():
                if not f.done():
                    f.set_exception(e if isinstance(e, BerthError) else
                                    Unavailable(f"the pull that shared this layer failed: {e}"))
            raise
        finally:
            for i, f in mine.items():
                if self._inflight.get(chains[i]) is f:
                    del self._inflight[chains[i]]
        for i, la in enumerate(p.layers):
            self.images.meta.add_blob_source(p.diff_ids[i], la["digest"], la["mediaType"],
                                             int(la.get("size", 0)), repo.name)
        config_id = oci.sha256_digest(p.config_raw)
        existed = (self.images.meta.tag_target(str(ref)) == config_id if ref.tag else
                   self.images.meta.digest_target(f"{ref.repository}@{ref.digest}") == config_id)
        tags = [str(ref)] if ref.tag else []
        image_id = self.images._commit_raw_config(p.config_raw, chains, tags)
        self.images.meta.put_digest(f"{ref.repository}@{p.manifest_digest}", image_id)
        self.emit("image", "pull", ref.familiar, {"name": ref.familiar})
        yield {"status": f"Digest: {p.manifest_digest}"}
        yield {"status": f"Status: {'Image is up to date' if existed else 'Downloaded newer image'} for {ref.familiar}"}

    async def _download(self, repo: Repository, desc: dict[str, Any], diff_id: str, short: str,
                        queue: asyncio.Queue[Message | None]) -> StagedLayer:
        digest, size = desc["digest"], int(desc.get("size", 0))
        loop = asyncio.get_running_loop()
        feed = _Feed(loop)
        store = self.images.layer_store
        stage = asyncio.ensure_future(asyncio.to_thread(
            store.stage, io.BufferedReader(feed, 1 << 20), expected_diff_id=diff_id))
        h = hashlib.sha256()
        got = 0
        last_report = 0.0
        try:
            for attempt in range(RETRIES + 1):
                try:
                    async with repo.open_blob(digest, got) as (r, start):
                        skip = got - start
                        async for chunk in r.content.iter_chunked(CHUNK):
                            if skip:
                                cut = min(skip, len(chunk))
                                chunk, skip = chunk[cut:], skip - cut
                                if not chunk:
                                    continue
                            got += len(chunk)
                            if size and got > size:
                                raise InvalidArgument(f"blob {digest}: the registry sent more than "
                                                      f"the {size} bytes the manifest names")
                            h.update(chunk)
                            await self._feed(feed, chunk, stage)
                            now = loop.time()
                            if now - last_report > 0.1:
                                last_report = now
                                queue.put_nowait({"status": "Downloading", "id": short,
                                                  "progressDetail": {"current": got, "total": size},
                                                  "progress": progress_bar(got, size)})
                    if size and got < size:
                        raise aiohttp.ClientPayloadError(f"short read: {got} of {size} bytes")
                    break
                except (aiohttp.ClientPayloadError, aiohttp.ServerDisconnectedError,
                        aiohttp.ClientOSError, ConnectionResetError, TimeoutError) as e:
                    if attempt == RETRIES:
                        raise Unavailable(f"downloading {digest}: {e} (after {RETRIES} retries)"
                                          ) from None
                    log.info("layer %s: %s; resuming at byte %d", short, e, got)
                    await asyncio.sleep(min(2 ** attempt * 0.2, 3))
                except Unavailable:
                    if attempt == RETRIES:
                        raise
                    await asyncio.sleep(min(2 ** attempt * 0.2, 3))
            queue.put_nowait({"status": "Verifying Checksum", "progressDetail": {}, "id": short})
            actual = "sha256:" + h.hexdigest()
            if actual != digest:
                raise InvalidArgument(f"filesystem layer verification failed for digest {digest}: "
                                      f"the registry sent content with digest {actual}")
            queue.put_nowait({"status": "Download complete", "progressDetail": {}, "id": short})
            await self._feed(feed, None, stage)
            queue.put_nowait({"status": "Extracting", "id": short,
                              "progressDetail": {"current": size, "total": size},
                              "progress": progress_bar(size, size)})
            return await stage
        except BaseException as e:
            if not stage.done():
                feed.fail(e if isinstance(e, Exception) else System("pull cancelled"))
            with contextlib.suppress(BaseException):
                s = await stage
                store.discard(s)
            raise

    @staticmethod
    async def _feed(feed: _Feed, chunk: bytes | None, stage: asyncio.Future[Any]) -> None:
        try:
            feed.q.put_nowait(chunk)
            return
        except asyncio.QueueFull:
            pass
        put = asyncio.ensure_future(feed.q.put(chunk))
        done, _ = await asyncio.wait({put, stage}, return_when=asyncio.FIRST_COMPLETED)
        if put not in done:
            put.cancel()
            exc = stage.exception()
            raise exc if exc else System("the layer ended before its download")

    # --- push ---------------------------------------------------------------------------------
    async def push(self, name: str, tag: str = "", *, auth: AuthConfig | None = None
                   ) -> AsyncIterator[Message]:
        auth = auth or AuthConfig()
        ref = reference.parse(name, default_tag=False)
        if ref.digest:
            raise InvalidArgument("cannot push a digest reference")
        if tag or ref.tag:
            tags = [reference.validate_tag(tag or ref.tag or "")]
        else:
            prefix = ref.repository + ":"
            tags = sorted(t[len(prefix):] for ts in self.images.meta.all_tags().values()
                          for t in ts if t.startswith(prefix))
        images = []
        for t in tags:
            tref = f"{ref.repository}:{t}"
            target = self.images.meta.tag_target(tref)
            if target is None:
                raise NotFound(f"An image does not exist locally with the tag: "
                               f"{reference.parse(tref).familiar_repository}")
            images.append((t, self.images.get(target)))
        if not images:
            raise NotFound(f"An image does not exist locally with the tag: {ref.familiar_repository}")
        host = self.registry.endpoints(ref.domain, push=True)[0].host
        others = sorted({r.split("/", 1)[1] for _, img in images for la in self.images.layers_of(img)
                         for _, _, _, r in self.images.meta.blob_sources(la.diff_id)
                         if r.split("/", 1)[0] == host and r.split("/", 1)[1] != ref.path})
        repo = await self.registry.repository(ref.domain, ref.path, auth, push=True,
                                              mount_from=others[:5])
        yield {"status": f"The push refers to repository [{ref.repository}]"}
        for t, img in images:
            async for m in self._push_one(repo, ref, t, img):
                yield m

    async def _push_one(self, repo: Repository, ref: reference.Reference, tag: str, img: Any
                        ) -> AsyncIterator[Message]:
        layers = self.images.layers_of(img)
        queue: asyncio.Queue[Message | None] = asyncio.Queue()
        for la in reversed(layers):
            yield {"status": "Preparing", "progressDetail": {}, "id": la.diff_id[7:19]}
        sem = asyncio.Semaphore(MAX_UPLOADS)
        descs: dict[int, dict[str, Any]] = {}

        async def one(i: int, la: Layer) -> None:
            short = la.diff_id[7:19]
            queue.put_nowait({"status": "Waiting", "progressDetail": {}, "id": short})
            async with sem:
                descs[i] = await self._push_layer(repo, la, short, queue)

        async for m in _messages(_all_or_none([one(i, la) for i, la in enumerate(layers)]),
                                 queue):
            yield m
        config_raw = self.images.content.read(img.id)
        await repo.put_blob(config_raw)
        ordered = [descs[i] for i in range(len(layers))]
        docker_types = all(d["mediaType"] == oci.MEDIA_DOCKER_LAYER for d in ordered)
        if docker_types:
            manifest = {"schemaVersion": 2, "mediaType": oci.MEDIA_DOCKER_MANIFEST,
                        "config": {"mediaType": oci.MEDIA_DOCKER_CONFIG, "size": len(config_raw),
                                   "digest": img.id},
                        "layers": ordered}
        else:
            manifest = {"schemaVersion": 2, "mediaType": oci.MEDIA_OCI_MANIFEST,
                        "config": {"mediaType": oci.MEDIA_OCI_CONFIG, "size": len(config_raw),
                                   "digest": img.id},
                        "layers": [{**d, "mediaType": _oci_type(d["mediaType"])} for d in ordered]}
        raw = json.dumps(manifest, indent=3).encode()
        mdigest = await repo.put_manifest(tag, str(manifest["mediaType"]), raw)
        self.images.meta.put_digest(f"{ref.repository}@{mdigest}", img.id)
        self.emit("image", "push", f"{ref.familiar_repository}:{tag}",
                  {"name": f"{ref.familiar_repository}:{tag}"})
        yield {"status": f"{tag}: digest: {mdigest} size: {len(raw)}"}
        yield {"progressDetail": {}, "aux": {"Tag": tag, "Digest": mdigest, "Size": len(raw)}}

    async def _push_layer(self, repo: Repository, la: Layer, short: str,
                          queue: asyncio.Queue[Message | None]) -> dict[str, Any]:
        meta = self.images.meta
        known = [k for k in meta.blob_sources(la.diff_id)
                 if k[3].split("/", 1)[0] == repo.ep.host]
        for digest, media, size, where in known:
            if where == repo.name and await repo.blob_exists(digest):
                queue.put_nowait({"status": "Layer already exists", "progressDetail": {},
                                  "id": short})
                return {"mediaType": media, "size": size, "digest": digest}
        for digest, media, size, where in known:
            src = where.split("/", 1)[1]
            if src == repo.path:
                continue
            if await repo.blob_exists(digest):
                queue.put_nowait({"status": "Layer already exists", "progressDetail": {},
                                  "id": short})
                meta.add_blob_source(la.diff_id, digest, media, size, repo.name)
                return {"mediaType": media, "size": size, "digest": digest}
            mounted, _ = await repo.start_upload(digest, src)
            if mounted:
                queue.put_nowait({"status": f"Mounted from {src}", "progressDetail": {},
                                  "id": short})
                meta.add_blob_source(la.diff_id, digest, media, size, repo.name)
                return {"mediaType": media, "size": size, "digest": digest}
        digest, size = await self._upload_layer(repo, la, short, queue)
        meta.add_blob_source(la.diff_id, digest, oci.MEDIA_DOCKER_LAYER, size, repo.name)
        queue.put_nowait({"status": "Pushed", "progressDetail": {}, "id": short})
        return {"mediaType": oci.MEDIA_DOCKER_LAYER, "size": size, "digest": digest}

    async def _upload_layer(self, repo: Repository, la: Layer, short: str,
                            queue: asyncio.Queue[Message | None]) -> tuple[str, int]:
        path = self.images.content.path(la.diff_id)
        total = self.images.content.size(la.diff_id)
        loop = asyncio.get_running_loop()
        chunks: asyncio.Queue[bytes | BaseException | None] = asyncio.Queue(maxsize=16)
        stop = threading.Event()
        read = [0]

        def compress() -> None:
            from isal import isal_zlib
            try:
                z = isal_zlib.compressobj(1, isal_zlib.DEFLATED, 31)
                with open(path, "rb") as f:
                    while not stop.is_set() and (data := f.read(1 << 20)):
                        read[0] += len(data)
                        out = z.compress(data)
                        if out:
                            asyncio.run_coroutine_threadsafe(chunks.put(out), loop).result()
                    asyncio.run_coroutine_threadsafe(chunks.put(z.flush()), loop).result()
                    asyncio.run_coroutine_threadsafe(chunks.put(None), loop).result()
            except BaseException as e:  # noqa: BLE001 - handed to the uploader
                if not stop.is_set():
                    asyncio.run_coroutine_threadsafe(chunks.put(e), loop).result()

        h = hashlib.sha256()
        sent = [0]

        async def body() -> AsyncIterator[bytes]:
            last = 0.0
            while True:
                item = await chunks.get()
                if item is None:
                    return
                if isinstance(item, BaseException):
                    raise item
                h.update(item)
                sent[0] += len(item)
                now = loop.time()
                if now - last > 0.1:
                    last = now
                    queue.put_nowait({"status": "Pushing", "id": short,
                                      "progressDetail": {"current": read[0], "total": total},
                                      "progress": progress_bar(read[0], total)})
                yield item

        worker = asyncio.ensure_future(asyncio.to_thread(compress))
        try:
            _, location = await repo.start_upload()
            digest = await repo.upload(location, body(), lambda: "sha256:" + h.hexdigest())
            await worker
            return digest, sent[0]
        finally:
            stop.set()
            while not chunks.empty():
                chunks.get_nowait()
            with contextlib.suppress(BaseException):
                await asyncio.wait_for(worker, 5)


async def _messages(work: Any, queue: asyncio.Queue[Message | None]) -> AsyncIterator[Message]:
    """The progress messages `work` (a coroutine) puts on `queue`, as they come, then its
    result; if the consumer goes away or `work` fails, `work` is cancelled and waited for."""
    async def run() -> None:
        try:
            await work
        finally:
            queue.put_nowait(None)

    task = asyncio.create_task(run())
    try:
        while (m := await queue.get()) is not None:
            yield m
        await task
    except BaseException:
        task.cancel()
        with contextlib.suppress(BaseException):
            await task
        raise


async def _all_or_none(coros: list[Any]) -> None:
    """Run these together; when one fails, cancel the others and wait for them to clean up
    (a download discards what it staged) before the error goes on."""
    tasks = [asyncio.ensure_future(c) for c in coros]
    try:
        await asyncio.gather(*tasks)
    except BaseException:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise


def _oci_type(media: str) -> str:
    return {oci.MEDIA_DOCKER_LAYER: oci.MEDIA_OCI_LAYER_GZIP}.get(media, media)


__all__ = ["Distribution", "auth_for", "progress_bar", "parse_platform"]
