"""The image service: import, list, inspect, history, tag, remove, save, load, GC.

Imports `content`, `storage`, `metadata`, `reference`, `oci`, `errors`. Methods are blocking
(file and SQLite work); the API runs them in worker threads.

Split by job: `records` (the Image, its typed config, and their formats), `changes`
(`--change`), `views` (list, inspect, history, typed: the API makes Docker's JSON of them),
`removal` (rmi, prune, GC), `archive` (save, load), `layerview` (a chain's files unmounted), and
the registry side: `distribution` (pull, registry queries), `manifests` (typed descriptors),
`download` (one layer), `push`, `streams` (the progress messages).

An image is its config blob (the image ID is the config's digest) plus the chain of layers its
`rootfs.diff_ids` name. Tags live in the metadata store. A layer or blob is deleted only when no
image and no container refers to it (`gc`).
"""

from __future__ import annotations

import builtins
import json
import logging
import os
import re
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, BinaryIO

from berth import reference, storage
from berth.content import ContentStore
from berth.errors import InvalidArgument, NotFound
from berth.images import archive, removal, views
from berth.images.changes import apply_changes
from berth.images.layerview import LayerView
from berth.images.records import (
    Image,
    ImageConfig,
    ImageUser,
    Removed,
    RunConfig,
    host_arch,
    parse_rfc3339,
    rfc3339,
)
from berth.images.views import HistoryLine, ImageDetails, ImageSummary
from berth.metadata import MetadataStore
from berth.storage import Layer, LayerStore
from berth.storage.archive import decompressed

log = logging.getLogger(__name__)


class ImageService:
    def __init__(
        self,
        meta: MetadataStore,
        content: ContentStore,
        layers: LayerStore,
        *,
        containers_using: Callable[[str], list[ImageUser]] | None = None,
        layers_in_use: Callable[[], set[str]] | None = None,
        emit: Callable[[str, str, str, dict[str, str]], None] | None = None,
    ) -> None:
        self.meta = meta
        # rmi, prune and tag, one at a time: an rmi that resolved a tag another one removed
        # meanwhile would take the name for an ID and remove the image under its other tags
        self.names_lock = threading.RLock()
        # the daemon's event bus: tag, untag, delete, import, load, save are published here
        self.emit = emit or (lambda typ, action, actor, attrs: None)
        self.content = content
        self.layer_store = layers
        # set by the daemon's wiring: which containers use an image, which layers containers hold
        self.containers_using = containers_using or (lambda image_id: [])
        self.layers_in_use = layers_in_use or set

    # --- lookup -----------------------------------------------------------------------------
    def get(self, image_id: str) -> Image:
        doc = self.meta.get_image(image_id)
        if doc is None:
            raise NotFound(f"No such image: {image_id}")
        return Image(
            id=image_id,
            config=doc["config"],
            layers=doc["layers"],
            size=doc["size"],
            created=doc["created"],
        )

    def resolve(self, name: str) -> Image:
        """By full ID, tag, or unique ID prefix; NotFound with Docker's wording otherwise."""
        if not name:
            raise InvalidArgument("image name cannot be blank")
        raw = name.removeprefix("sha256:")
        if re.fullmatch(r"[a-f0-9]{64}", raw):
            return self.get("sha256:" + raw)
        try:
            ref = reference.parse(name)
        except InvalidArgument:
            ref = None
        if ref is not None:
            target = (
                self.meta.digest_target(f"{ref.repository}@{ref.digest}")
                if ref.digest
                else self.meta.tag_target(str(ref))
            )
            if target:
                return self.get(target)
        if re.fullmatch(r"[a-f0-9]{1,63}", raw) and (len(raw) >= 4 or name.startswith("sha256:")):
            ids = self.meta.resolve_id_prefix(raw)
            if len(ids) == 1:
                return self.get(ids[0])
        raise NotFound(f"No such image: {name}")

    def layers_of(self, image: Image) -> list[Layer]:
        return [self.layer_store.get(c) for c in image.layers]

    # --- layers for the builder and commit ------------------------------------------------
    def layer_dirs(self, chain_ids: list[str]) -> list[str]:
        """The directories of a chain of layers, the top layer first (as overlayfs stacks)."""
        return [self.layer_store.get(c).path for c in reversed(chain_ids)]

    def diff_ids(self, chain_ids: list[str]) -> list[str]:
        return [self.layer_store.get(c).diff_id for c in chain_ids]

    def layer_view(self, chain_ids: list[str]) -> LayerView:
        """The merged files of a chain of layers, read without mounting."""
        return LayerView(self.layer_dirs(chain_ids), self.layer_store.shift)

    def add_layer(self, tar: BinaryIO, parent: str | None) -> Layer:
        """A layer from a tar stream, on top of the chain `parent` (or of nothing)."""
        return self.layer_store.create(tar, parent)

    def layer_from_diff(
        self, upper: str, lowers: list[str], exclude: set[str], parent: str | None
    ) -> Layer:
        """A layer of what a container changed in `upper` over `lowers` (its image's layer
        directories, top first), less the paths in `exclude` (the runtime's mount points).
        The diff tar is written in a thread and read into the layer store as it comes."""
        r, w = os.pipe()
        rf = os.fdopen(r, "rb")
        err: list[BaseException] = []

        def writer() -> None:
            try:
                with os.fdopen(w, "wb") as wf:
                    storage.write_diff_tar(upper, lowers, wf, exclude, self.layer_store.shift)
            except BaseException as e:  # noqa: BLE001 - handed to the reader
                err.append(e)

        import threading

        t = threading.Thread(target=writer, daemon=True)
        t.start()
        try:
            layer = self.layer_store.create(rf, parent)
        finally:
            rf.close()
            t.join()
        if err:
            raise err[0]
        return layer

    @staticmethod
    def diff_changes(upper: str, lowers: list[str], exclude: set[str]) -> list[tuple[str, str]]:
        """(kind, path) of what a container changed: kind "A", "C" or "D" (see
        storage.upper_changes)."""
        return [(k, rel) for k, rel, _ in storage.upper_changes(upper, lowers, exclude)]

    # --- create -----------------------------------------------------------------------------
    def _commit_image(self, config: dict[str, Any], layers: list[str], tags: list[str]) -> str:
        raw = json.dumps(config, separators=(",", ":")).encode()
        return self.commit_raw_config(raw, layers, tags)

    def commit_raw_config(self, raw: bytes, layers: list[str], tags: list[str]) -> str:
        """An image of the config document `raw` (its digest is the image's ID: the bytes are
        kept as they are) over the chain `layers`, tagged `tags`."""
        image_id = self.content.put(raw)
        config = json.loads(raw)
        size = sum(self.layer_store.get(c).size for c in layers)
        created = int(parse_rfc3339(config.get("created", "")) or time.time())
        self.meta.put_image(
            image_id, created, {"config": config, "layers": layers, "size": size}, tags
        )
        log.info("image %s committed with tags %s", image_id[7:19], tags)
        return image_id

    def import_(
        self,
        src: BinaryIO,
        *,
        repo: str = "",
        tag: str = "",
        changes: list[str] | None = None,
        message: str = "",
        source_name: str = "-",
    ) -> str:
        """`docker import`: one layer from a tarball, a fresh config, optionally tagged."""
        tags = [self._tag_ref(repo, tag)] if repo else []
        cfg: dict[str, Any] = {}
        apply_changes(cfg, changes or [])
        layer = self.layer_store.create(src, None)
        now = time.time()
        config = {
            "architecture": host_arch(),
            "config": cfg,
            "created": rfc3339(now),
            "history": [
                {"created": rfc3339(now), "comment": message or f"Imported from {source_name}"}
            ],
            "os": "linux",
            "rootfs": {"type": "layers", "diff_ids": [layer.diff_id]},
        }
        if message:
            config["comment"] = message
        image_id = self._commit_image(config, [layer.chain_id], tags)
        self.emit("image", "import", image_id, {})
        return image_id

    @staticmethod
    def _tag_ref(repo: str, tag: str) -> str:
        ref = reference.parse(repo, default_tag=False)
        if ref.digest:
            raise InvalidArgument("refusing to create a tag with a digest reference")
        if tag:
            reference.validate_tag(tag)
        elif ref.tag:
            tag = ref.tag
        return f"{ref.repository}:{tag or 'latest'}"

    def tag(self, name: str, repo: str, tag: str = "") -> None:
        with self.names_lock:
            img = self.resolve(name)
            self.meta.tag(self._tag_ref(repo, tag), img.id, int(time.time()))
        self.emit("image", "tag", img.id, {"name": repo})

    # --- views (images/views.py) --------------------------------------------------------------
    @staticmethod
    def familiar(ref: str) -> str:
        return views.familiar(ref)

    def list(
        self, *, all_: bool = False, filters: dict[str, builtins.list[str]] | None = None
    ) -> builtins.list[ImageSummary]:
        return views.list_images(self, all_=all_, filters=filters)

    def disk_usage(self) -> tuple[int, builtins.list[ImageSummary]]:
        """The bytes the layers take, and the images each with the size it shares with
        other images."""
        return views.disk_usage(self)

    def inspect(self, name: str) -> ImageDetails:
        return views.inspect(self, name)

    def history(self, name: str) -> builtins.list[HistoryLine]:
        return views.history(self, name)

    # --- remove (images/removal.py) -----------------------------------------------------------
    def remove(self, name: str, *, force: bool = False) -> builtins.list[Removed]:
        """`docker rmi`: untag; delete the image when no tag is left. Docker's conflicts.
        An `untag` or `delete` event for each line of the result."""
        return removal.remove(self, name, force=force)

    def gc(self) -> None:
        """Delete layers and blobs that no image and no container refers to."""
        removal.gc(self)

    def prune(self, *, all_: bool = False) -> builtins.list[Removed]:
        with self.names_lock:
            return removal.prune(self, all_=all_)

    # --- save / load (images/archive.py) ------------------------------------------------------
    def save(self, names: builtins.list[str], out: BinaryIO) -> None:
        """docker-archive with the OCI layout beside it, as Docker 25+ writes it; a `save`
        event for each name."""
        archive.save(self, names, out)

    def load(self, src: BinaryIO) -> Iterator[str]:
        """`docker load` of a docker-archive (old per-layer directories or Docker 25+'s
        blobs/ layout). Everything is verified before a tag moves. Yields the lines to print."""
        return archive.load(self, src)


# Layer and LayerView are the types of ImageService's layer methods; decompressed (any of the
# compressions a layer or a build context may come in) is storage's, named here for the builder
__all__ = [
    "ImageService",
    "Image",
    "ImageConfig",
    "ImageUser",
    "Removed",
    "RunConfig",
    "ImageSummary",
    "ImageDetails",
    "HistoryLine",
    "Layer",
    "LayerView",
    "apply_changes",
    "decompressed",
    "rfc3339",
    "parse_rfc3339",
    "host_arch",
]
