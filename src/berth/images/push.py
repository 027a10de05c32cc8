"""Push: the blobs a registry lacks (HEAD first, then a cross-repository mount where berth has
seen the blob on that registry, else an upload compressed as it is sent), the manifest last.

Imports `registry`, `storage`, `oci`, `reference`, `errors` and the modules beside it.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import json
import threading
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from berth import oci, reference
from berth.errors import InvalidArgument, NotFound
from berth.images.manifests import Descriptor
from berth.images.records import Image
from berth.images.streams import Message, all_or_none, messages, progress_bar
from berth.registry import AuthConfig, Repository
from berth.storage import Layer

if TYPE_CHECKING:
    from berth.images.distribution import Distribution

MAX_UPLOADS = 5  # Docker's max-concurrent-uploads


async def push(
    dist: Distribution, name: str, tag: str = "", *, auth: AuthConfig | None = None
) -> AsyncIterator[Message]:
    auth = auth or AuthConfig()
    ref = reference.parse(name, default_tag=False)
    if ref.digest:
        raise InvalidArgument("cannot push a digest reference")
    if tag or ref.tag:
        tags = [reference.validate_tag(tag or ref.tag or "")]
    else:
        prefix = ref.repository + ":"
        tags = sorted(
            t[len(prefix) :]
            for ts in dist.images.meta.all_tags().values()
            for t in ts
            if t.startswith(prefix)
        )
    images = []
    for t in tags:
        tref = f"{ref.repository}:{t}"
        target = dist.images.meta.tag_target(tref)
        if target is None:
            raise NotFound(
                f"An image does not exist locally with the tag: "
                f"{reference.parse(tref).familiar_repository}"
            )
        images.append((t, dist.images.get(target)))
    if not images:
        raise NotFound(f"An image does not exist locally with the tag: {ref.familiar_repository}")
    host = dist.registry.endpoints(ref.domain, push=True)[0].host
    others = sorted(
        {
            r.split("/", 1)[1]
            for _, img in images
            for la in dist.images.layers_of(img)
            for _, _, _, r in dist.images.meta.blob_sources(la.diff_id)
            if r.split("/", 1)[0] == host and r.split("/", 1)[1] != ref.path
        }
    )
    repo = await dist.registry.repository(
        ref.domain, ref.path, auth, push=True, mount_from=others[:5]
    )
    yield {"status": f"The push refers to repository [{ref.repository}]"}
    for t, img in images:
        async for m in _push_one(dist, repo, ref, t, img):
            yield m


async def _push_one(
    dist: Distribution, repo: Repository, ref: reference.Reference, tag: str, img: Image
) -> AsyncIterator[Message]:
    layers = dist.images.layers_of(img)
    queue: asyncio.Queue[Message | None] = asyncio.Queue()
    for la in reversed(layers):
        yield {"status": "Preparing", "progressDetail": {}, "id": la.diff_id[7:19]}
    sem = asyncio.Semaphore(MAX_UPLOADS)
    descs: dict[int, Descriptor] = {}

    async def one(i: int, la: Layer) -> None:
        short = la.diff_id[7:19]
        queue.put_nowait({"status": "Waiting", "progressDetail": {}, "id": short})
        async with sem:
            descs[i] = await _push_layer(dist, repo, la, short, queue)

    async for m in messages(all_or_none([one(i, la) for i, la in enumerate(layers)]), queue):
        yield m
    config_raw = await asyncio.to_thread(dist.images.content.read, img.id)
    await repo.put_blob(config_raw)
    ordered = [descs[i] for i in range(len(layers))]
    # Docker's manifest where every layer is Docker's gzip type, else OCI's
    docker_types = all(d.media_type == oci.MEDIA_DOCKER_LAYER for d in ordered)
    config = Descriptor(
        media_type=oci.MEDIA_DOCKER_CONFIG if docker_types else oci.MEDIA_OCI_CONFIG,
        size=len(config_raw),
        digest=img.id,
    )
    if not docker_types:
        ordered = [dataclasses.replace(d, media_type=_oci_type(d.media_type)) for d in ordered]
    manifest = {
        "schemaVersion": 2,
        "mediaType": oci.MEDIA_DOCKER_MANIFEST if docker_types else oci.MEDIA_OCI_MANIFEST,
        "config": config.to_doc(),
        "layers": [d.to_doc() for d in ordered],
    }
    raw = json.dumps(manifest, indent=3).encode()
    mdigest = await repo.put_manifest(tag, str(manifest["mediaType"]), raw)
    dist.images.meta.put_digest(f"{ref.repository}@{mdigest}", img.id)
    dist.emit(
        "image",
        "push",
        f"{ref.familiar_repository}:{tag}",
        {"name": f"{ref.familiar_repository}:{tag}"},
    )
    yield {"status": f"{tag}: digest: {mdigest} size: {len(raw)}"}
    yield {"progressDetail": {}, "aux": {"Tag": tag, "Digest": mdigest, "Size": len(raw)}}


async def _push_layer(
    dist: Distribution,
    repo: Repository,
    la: Layer,
    short: str,
    queue: asyncio.Queue[Message | None],
) -> Descriptor:
    meta = dist.images.meta
    known = [k for k in meta.blob_sources(la.diff_id) if k[3].split("/", 1)[0] == repo.ep.host]
    for digest, media, size, where in known:
        if where == repo.name and await repo.blob_exists(digest):
            queue.put_nowait({"status": "Layer already exists", "progressDetail": {}, "id": short})
            return Descriptor(media_type=media, size=size, digest=digest)
    for digest, media, size, where in known:
        src = where.split("/", 1)[1]
        if src == repo.path:
            continue
        if await repo.blob_exists(digest):
            queue.put_nowait({"status": "Layer already exists", "progressDetail": {}, "id": short})
            meta.add_blob_source(la.diff_id, digest, media, size, repo.name)
            return Descriptor(media_type=media, size=size, digest=digest)
        mounted, _ = await repo.start_upload(digest, src)
        if mounted:
            queue.put_nowait({"status": f"Mounted from {src}", "progressDetail": {}, "id": short})
            meta.add_blob_source(la.diff_id, digest, media, size, repo.name)
            return Descriptor(media_type=media, size=size, digest=digest)
    digest, size = await _upload_layer(dist, repo, la, short, queue)
    meta.add_blob_source(la.diff_id, digest, oci.MEDIA_DOCKER_LAYER, size, repo.name)
    queue.put_nowait({"status": "Pushed", "progressDetail": {}, "id": short})
    return Descriptor(media_type=oci.MEDIA_DOCKER_LAYER, size=size, digest=digest)


async def _upload_layer(
    dist: Distribution,
    repo: Repository,
    la: Layer,
    short: str,
    queue: asyncio.Queue[Message | None],
) -> tuple[str, int]:
    path = dist.images.content.path(la.diff_id)
    total = dist.images.content.size(la.diff_id)
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
                queue.put_nowait(
                    {
                        "status": "Pushing",
                        "id": short,
                        "progressDetail": {"current": read[0], "total": total},
                        "progress": progress_bar(read[0], total),
                    }
                )
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


def _oci_type(media: str) -> str:
    return {oci.MEDIA_DOCKER_LAYER: oci.MEDIA_OCI_LAYER_GZIP}.get(media, media)


__all__ = ["MAX_UPLOADS", "push"]
