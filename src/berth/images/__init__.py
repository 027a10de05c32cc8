"""The image service: import, list, inspect, history, tag, remove, save, load, GC.

Imports `content`, `storage`, `metadata`, `reference`, `oci`, `errors`. Methods are blocking
(file and SQLite work); the API runs them in worker threads.

An image is its config blob (the image ID is the config's digest) plus the chain of layers its
`rootfs.diff_ids` name. Tags live in the metadata store. A layer or blob is deleted only when no
image and no container refers to it (`gc`).
"""

from __future__ import annotations

import builtins
import io
import json
import logging
import os
import platform
import re
import shlex
import tarfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO

from berth import oci, reference, storage
from berth.content import ContentStore
from berth.errors import BerthError, Conflict, InvalidArgument, NotFound
from berth.images.layerview import LayerView
from berth.metadata import MetadataStore
from berth.storage import Layer, LayerStore
from berth.storage.archive import decompressed

log = logging.getLogger(__name__)

_ARCH = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "ppc64le": "ppc64le",
         "s390x": "s390x", "riscv64": "riscv64"}


def host_arch() -> str:
    m = platform.machine()
    return _ARCH.get(m, m)


def rfc3339(ts: float) -> str:
    secs = int(ts)
    nanos = int(round((ts - secs) * 1e9))
    base = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs))
    return f"{base}.{nanos:09d}Z" if nanos else base + "Z"


def parse_rfc3339(s: str) -> float:
    m = re.match(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)$", s or "")
    if not m:
        return 0.0
    import calendar
    t = calendar.timegm(time.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S"))
    frac = float("0." + m.group(2)) if m.group(2) else 0.0
    if m.group(3) != "Z":
        sign = 1 if m.group(3)[0] == "+" else -1
        hh, mm = m.group(3)[1:].split(":")
        t -= sign * (int(hh) * 3600 + int(mm) * 60)
    return t + frac


@dataclass(frozen=True, slots=True, kw_only=True)
class Image:
    id: str
    config: dict[str, Any]       # the OCI image config document
    layers: list[str]            # chain IDs, bottom first
    size: int
    created: int

    @property
    def container_config(self) -> dict[str, Any]:
        c: dict[str, Any] = self.config.get("config") or {}
        return c


def apply_changes(cfg: dict[str, Any], changes: list[str]) -> None:
    """Dockerfile-style `--change` instructions on an image's `config` section."""
    for change in changes:
        change = change.strip()
        if not change:
            continue
        instr, _, rest = change.partition(" ")
        instr = instr.upper()
        rest = rest.strip()
        if instr in ("CMD", "ENTRYPOINT"):
            if rest.startswith("["):
                try:
                    val = json.loads(rest)
                except ValueError:
                    val = None
                if not isinstance(val, list) or not all(isinstance(x, str) for x in val):
                    val = ["/bin/sh", "-c", rest]
            else:
                val = ["/bin/sh", "-c", rest]
            cfg["Cmd" if instr == "CMD" else "Entrypoint"] = val
        elif instr == "ENV":
            env = list(cfg.get("Env") or [])
            for k, v in _kv_pairs(rest, "ENV"):
                env = [e for e in env if e.split("=", 1)[0] != k] + [f"{k}={v}"]
            cfg["Env"] = env
        elif instr == "LABEL":
            labels = dict(cfg.get("Labels") or {})
            labels.update(_kv_pairs(rest, "LABEL"))
            cfg["Labels"] = labels
        elif instr == "WORKDIR":
            cfg["WorkingDir"] = rest
        elif instr == "USER":
            cfg["User"] = rest
        elif instr == "EXPOSE":
            ports = dict(cfg.get("ExposedPorts") or {})
            for p in rest.split():
                ports[p if "/" in p else p + "/tcp"] = {}
            cfg["ExposedPorts"] = ports
        elif instr == "VOLUME":
            vols = dict(cfg.get("Volumes") or {})
            items = json.loads(rest) if rest.startswith("[") else rest.split()
            for v in items:
                vols[v] = {}
            cfg["Volumes"] = vols
        elif instr == "STOPSIGNAL":
            cfg["StopSignal"] = rest
        else:
            raise InvalidArgument(f"{instr} is not a valid change command")


def _kv_pairs(rest: str, instr: str) -> list[tuple[str, str]]:
    try:
        words = shlex.split(rest)
    except ValueError as e:
        raise InvalidArgument(f"{instr}: {e}") from None
    if not words:
        raise InvalidArgument(f"{instr} requires at least one argument")
    if "=" not in words[0]:
        if len(words) < 2:
            raise InvalidArgument(f"{instr} names can not be blank")
        return [(words[0], rest.split(None, 1)[1].strip())]
    out = []
    for w in words:
        k, eq, v = w.partition("=")
        if not eq or not k:
            raise InvalidArgument(f"{instr}: invalid key-value pair {w!r}")
        out.append((k, v))
    return out


class ImageService:
    def __init__(self, meta: MetadataStore, content: ContentStore, layers: LayerStore,
                 *, containers_using: Callable[[str], list[dict[str, Any]]] | None = None,
                 layers_in_use: Callable[[], set[str]] | None = None,
                 emit: Callable[[str, str, str, dict[str, str]], None] | None = None) -> None:
        self.meta = meta
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
        return Image(id=image_id, config=doc["config"], layers=doc["layers"], size=doc["size"],
                     created=doc["created"])

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
            target = (self.meta.digest_target(f"{ref.repository}@{ref.digest}") if ref.digest
                      else self.meta.tag_target(str(ref)))
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

    def layer_from_diff(self, upper: str, lowers: list[str], exclude: set[str],
                        parent: str | None) -> Layer:
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
    def diff_changes(upper: str, lowers: list[str], exclude: set[str]
                     ) -> list[tuple[str, str]]:
        """(kind, path) of what a container changed: kind "A", "C" or "D" (see
        storage.upper_changes)."""
        return [(k, rel) for k, rel, _ in storage.upper_changes(upper, lowers, exclude)]

    # --- create -----------------------------------------------------------------------------
    def _commit_image(self, config: dict[str, Any], layers: list[str], tags: list[str]) -> str:
        raw = json.dumps(config, separators=(",", ":")).encode()
        return self._commit_raw_config(raw, layers, tags)

    def _commit_raw_config(self, raw: bytes, layers: list[str], tags: list[str]) -> str:
        image_id = self.content.put(raw)
        config = json.loads(raw)
        size = sum(self.layer_store.get(c).size for c in layers)
        created = int(parse_rfc3339(config.get("created", "")) or time.time())
        self.meta.put_image(image_id, created, {"config": config, "layers": layers, "size": size},
                            tags)
        log.info("image %s committed with tags %s", image_id[7:19], tags)
        return image_id

    def import_(self, src: BinaryIO, *, repo: str = "", tag: str = "",
                changes: list[str] | None = None, message: str = "",
                source_name: str = "-") -> str:
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
            "history": [{"created": rfc3339(now),
                         "comment": message or f"Imported from {source_name}"}],
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
        img = self.resolve(name)
        self.meta.tag(self._tag_ref(repo, tag), img.id, int(time.time()))
        self.emit("image", "tag", img.id, {"name": repo})

    # --- views ------------------------------------------------------------------------------
    @staticmethod
    def familiar(ref: str) -> str:
        return reference.parse(ref).familiar

    def list(self, *, all_: bool = False, filters: dict[str, list[str]] | None = None
             ) -> list[dict[str, Any]]:
        filters = filters or {}
        tags = self.meta.all_tags()
        used = self._container_counts()
        # a build's intermediate images (steps that later steps ran on) show only with -a
        hidden = set() if all_ else self.meta.cache_children()
        out = []
        for image_id, doc in self.meta.images():
            if image_id in hidden and not tags.get(image_id) and \
                    not self.meta.digests_of(image_id):
                continue
            refs = [self.familiar(r) for r in tags.get(image_id, [])]
            cfg = doc["config"].get("config") or {}
            labels = cfg.get("Labels") or {}
            if not self._match(filters, refs, labels, image_id):
                continue
            if filters.get("reference"):
                # as Docker: only the tags that match are shown
                refs = [r for r in refs if self._ref_matches(r, filters["reference"])]
            out.append({
                "Containers": used.get(image_id, 0), "Created": doc["created"], "Id": image_id,
                "Labels": labels or None, "ParentId": "",
                "RepoDigests": [self.familiar(r) for r in self.meta.digests_of(image_id)],
                "RepoTags": refs,
                "SharedSize": -1, "Size": doc["size"], "VirtualSize": doc["size"],
            })
        return out

    def disk_usage(self) -> tuple[int, builtins.list[dict[str, Any]]]:
        """`GET /system/df`'s images: the size of every layer held (each counted once), and the
        images as `images` lists them, each with the size of the layers it shares with
        other images."""
        sizes: dict[str, int] = {}
        holders: dict[str, int] = {}
        chains: dict[str, set[str]] = {}
        for image_id, doc in self.meta.images():
            chains[image_id] = set(doc["layers"])
            for chain in chains[image_id]:
                holders[chain] = holders.get(chain, 0) + 1
                if chain not in sizes:
                    try:
                        sizes[chain] = self.layer_store.get(chain).size
                    except BerthError:
                        sizes[chain] = 0   # a layer being removed
        images = self.list()
        for img in images:
            img["SharedSize"] = sum(sizes[c] for c in chains.get(img["Id"], ())
                                    if holders[c] > 1)
        return sum(sizes.values()), images

    def _container_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for c in self.meta.containers():
            image = str(c.get("image") or c.get("Image"))  # a record, or berthd's older one
            counts[image] = counts.get(image, 0) + 1
        return counts

    @staticmethod
    def _match(filters: dict[str, builtins.list[str]], refs: builtins.list[str], labels: dict[str, str],
               image_id: str) -> bool:
        for key, values in filters.items():
            if key == "dangling":
                want = values[-1].lower() in ("true", "1")
                if want != (not refs):
                    return False
            elif key == "reference":
                if not any(ImageService._ref_matches(r, values) for r in refs):
                    return False
            elif key == "label":
                for v in values:
                    k, eq, val = v.partition("=")
                    if k not in labels or (eq and labels[k] != val):
                        return False
            elif key in ("before", "since", "until"):
                continue  # accepted, not applied yet
            else:
                raise InvalidArgument(f"invalid filter '{key}'")
        return True

    @staticmethod
    def _ref_matches(ref: str, patterns: builtins.list[str]) -> bool:
        import fnmatch
        name = ref.rsplit(":", 1)[0] if ":" in ref.rsplit("/", 1)[-1] else ref
        return any(fnmatch.fnmatchcase(ref, p) or fnmatch.fnmatchcase(name, p) for p in patterns)

    def inspect(self, name: str) -> dict[str, Any]:
        img = self.resolve(name)
        cfg = img.config
        layers = self.layers_of(img)
        return {
            "Id": img.id,
            "RepoTags": [self.familiar(r) for r in self.meta.tags_of(img.id)],
            "RepoDigests": [self.familiar(r) for r in self.meta.digests_of(img.id)],
            "Parent": "",
            "Comment": cfg.get("comment", ""),
            "Created": cfg.get("created", rfc3339(img.created)),
            "DockerVersion": "",
            "Author": cfg.get("author", ""),
            "Config": _full_container_config(img.container_config),
            "Architecture": cfg.get("architecture", host_arch()),
            "Os": cfg.get("os", "linux"),
            "Size": img.size,
            "VirtualSize": img.size,
            "GraphDriver": {"Name": "overlay2", "Data": {
                "LowerDir": ":".join(la.path for la in reversed(layers[:-1])) or None,
                "UpperDir": layers[-1].path if layers else None}},
            "RootFS": {"Type": "layers", "Layers": list(cfg.get("rootfs", {}).get("diff_ids", []))},
            "Metadata": {"LastTagTime": "0001-01-01T00:00:00Z"},
        }

    def history(self, name: str) -> builtins.list[dict[str, Any]]:
        img = self.resolve(name)
        hist = list(img.config.get("history") or [])
        layers = self.layers_of(img)
        out = []
        li = 0
        for h in hist:
            size = 0
            if not h.get("empty_layer"):
                size = layers[li].size if li < len(layers) else 0
                li += 1
            out.append({"Id": "<missing>", "Created": int(parse_rfc3339(h.get("created", ""))),
                        "CreatedBy": h.get("created_by", ""), "Tags": None, "Size": size,
                        "Comment": h.get("comment", "")})
        out.reverse()
        if out:
            out[0]["Id"] = img.id
            out[0]["Tags"] = [self.familiar(r) for r in self.meta.tags_of(img.id)] or None
        return out

    # --- remove -----------------------------------------------------------------------------
    def remove(self, name: str, *, force: bool = False) -> builtins.list[dict[str, str]]:
        """`docker rmi`: untag; delete the image when no tag is left. Docker's conflicts.
        An `untag` or `delete` event for each line of the result."""
        out = self._remove(name, force=force)
        for r in out:
            if "Untagged" in r:
                self.emit("image", "untag", r["Untagged"], {})
            else:
                self.emit("image", "delete", r["Deleted"], {})
        return out

    def _remove(self, name: str, *, force: bool) -> builtins.list[dict[str, str]]:
        img = self.resolve(name)
        digests = self.meta.digests_of(img.id)
        tags = self.meta.tags_of(img.id)
        by_ref = self._named_ref(name, tags + digests)
        if by_ref is not None and by_ref in digests:
            if len(tags) + len(digests) > 1:
                self.meta.delete_digest(by_ref)
                return [{"Untagged": self.familiar(by_ref)}]
            tags = [by_ref]
        users = self.containers_using(img.id)
        running = [c for c in users if c.get("State", {}).get("Running")]
        out: list[dict[str, str]] = []
        if by_ref is not None and len(tags) > 1:
            self.meta.untag(by_ref)
            return [{"Untagged": self.familiar(by_ref)}]
        if by_ref is None and len(tags) > 1 and not force:
            raise Conflict(f"conflict: unable to delete {img.id[7:19]} (must be forced) - "
                           "image is referenced in multiple repositories")
        if running and (by_ref is None or not force):
            raise Conflict(f"conflict: unable to delete {img.id[7:19]} (cannot be forced) - "
                           f"image is being used by running container {running[0]['Id'][:12]}")
        if users and not force:
            if by_ref is not None:
                raise Conflict(
                    f'conflict: unable to remove repository reference "{name}" (must force) - '
                    f"container {users[0]['Id'][:12]} is using its referenced image {img.id[7:19]}")
            raise Conflict(f"conflict: unable to delete {img.id[7:19]} (must be forced) - "
                           f"image is being used by stopped container {users[0]['Id'][:12]}")
        for t in tags:
            self.meta.untag(t)
            self.meta.delete_digest(t)
            out.append({"Untagged": self.familiar(t)})
        for d in digests:
            if d not in tags:
                self.meta.delete_digest(d)
                out.append({"Untagged": self.familiar(d)})
        if users:
            return out  # forced off a container's image: the image stays, untagged
        parent = self.meta.cache_parent_of(img.id)
        self.meta.delete_image(img.id)
        out.append({"Deleted": img.id})
        out += self._delete_unused_parents(parent)
        self.gc()
        return out

    def _delete_unused_parents(self, parent: str | None) -> builtins.list[dict[str, str]]:
        """As Docker's rmi: a build's intermediate images go with the last image that needed
        them (untagged, no container, no other step made from them)."""
        out = []
        while parent and parent.startswith("sha256:") and self.meta.get_image(parent):
            if self.meta.tags_of(parent) or self.meta.digests_of(parent) or \
                    self.containers_using(parent) or self.meta.cache_by_parent(parent):
                break
            up = self.meta.cache_parent_of(parent)
            if up is None:
                break   # not a build's intermediate image (a base image): it stays
            self.meta.delete_image(parent)
            out.append({"Deleted": parent})
            parent = up
        return out

    @staticmethod
    def _named_ref(name: str, tags: builtins.list[str]) -> str | None:
        raw = name.removeprefix("sha256:")
        if re.fullmatch(r"[a-f0-9]{4,64}", raw):
            try:
                if str(reference.parse(name)) in tags:
                    return str(reference.parse(name))
            except InvalidArgument:
                pass
            return None
        try:
            ref = str(reference.parse(name))
        except InvalidArgument:
            return None
        return ref if ref in tags else None

    def gc(self) -> None:
        """Delete layers and blobs that no image and no container refers to."""
        keep_layers: set[str] = set(self.layers_in_use())
        keep_blobs: set[str] = set()
        for image_id, doc in self.meta.images():
            keep_layers.update(doc["layers"])
            keep_blobs.add(image_id)
        for chain in keep_layers.copy():
            try:
                keep_blobs.add(self.layer_store.get(chain).diff_id)
            except NotFound:
                pass
        for chain in self.layer_store.list():
            if chain not in keep_layers:
                self.layer_store.delete(chain)
        for blob in self.content.list():
            if blob not in keep_blobs:
                self.content.delete(blob)

    def prune(self, *, all_: bool = False) -> dict[str, Any]:
        deleted: list[dict[str, str]] = []
        tags = self.meta.all_tags()
        used = self._container_counts()
        parents = set() if all_ else self.meta.cache_children()
        for image_id, _ in self.meta.images():
            if used.get(image_id) or image_id in parents or not self.meta.get_image(image_id):
                continue
            if tags.get(image_id) and not all_:
                continue
            for t in tags.get(image_id, []):
                self.meta.untag(t)
                deleted.append({"Untagged": self.familiar(t)})
            for d in self.meta.digests_of(image_id):
                self.meta.delete_digest(d)
            parent = self.meta.cache_parent_of(image_id)
            self.meta.delete_image(image_id)
            deleted.append({"Deleted": image_id})
            deleted += self._delete_unused_parents(parent)
        self.gc()
        return {"ImagesDeleted": deleted or None, "SpaceReclaimed": 0}

    # --- save / load ------------------------------------------------------------------------
    def save(self, names: builtins.list[str], out: BinaryIO) -> None:
        """docker-archive with the OCI layout beside it, as Docker 25+ writes it; a `save`
        event for each name."""
        self._save(names, out)
        for n in names:
            self.emit("image", "save", self.resolve(n).id, {"name": n})

    def _save(self, names: builtins.list[str], out: BinaryIO) -> None:
        images: list[tuple[Image, list[str]]] = []
        for n in names:
            img = self.resolve(n)
            tagged: list[str] = []
            if not re.fullmatch(r"(sha256:)?[a-f0-9]{4,64}", n):
                ref = str(reference.parse(n))
                if ref in self.meta.tags_of(img.id):
                    tagged = [ref]
            images.append((img, tagged))
        written: set[str] = set()
        manifest = []
        index_manifests = []
        with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tf:
            def add_bytes(name: str, data: bytes) -> None:
                ti = tarfile.TarInfo(name)
                ti.size = len(data)
                ti.mtime = 0
                ti.mode = 0o644
                tf.addfile(ti, io.BytesIO(data))

            def add_blob(digest: str, path: str | None = None) -> str:
                name = "blobs/sha256/" + oci.hex_of(digest)
                if name not in written:
                    written.add(name)
                    src = path or self.content.path(digest)
                    ti = tf.gettarinfo(src, arcname=name)
                    ti.mtime = 0
                    ti.uid = ti.gid = 0
                    ti.uname = ti.gname = ""
                    ti.mode = 0o644
                    with open(src, "rb") as f:
                        tf.addfile(ti, f)
                return name

            for img, tagged in images:
                cfg_name = add_blob(img.id)
                layer_names = []
                layer_descs = []
                for layer in self.layers_of(img):
                    layer_names.append(add_blob(layer.diff_id))
                    layer_descs.append({"mediaType": oci.MEDIA_OCI_LAYER, "digest": layer.diff_id,
                                        "size": self.content.size(layer.diff_id)})
                fam = [self.familiar(t) for t in tagged]
                manifest.append({"Config": cfg_name, "RepoTags": fam or None,
                                 "Layers": layer_names})
                m = {"schemaVersion": 2, "mediaType": oci.MEDIA_OCI_MANIFEST,
                     "config": {"mediaType": oci.MEDIA_OCI_CONFIG, "digest": img.id,
                                "size": self.content.size(img.id)},
                     "layers": layer_descs}
                mraw = json.dumps(m, separators=(",", ":")).encode()
                mdigest = oci.sha256_digest(mraw)
                if "blobs/sha256/" + oci.hex_of(mdigest) not in written:
                    written.add("blobs/sha256/" + oci.hex_of(mdigest))
                    add_bytes("blobs/sha256/" + oci.hex_of(mdigest), mraw)
                for t in tagged or [""]:  # "": the untagged image's one entry
                    desc: dict[str, Any] = {"mediaType": oci.MEDIA_OCI_MANIFEST, "digest": mdigest,
                                            "size": len(mraw)}
                    if t:
                        desc["annotations"] = {"io.containerd.image.name": t,
                                               "org.opencontainers.image.ref.name": t.rsplit(":", 1)[1]}
                    index_manifests.append(desc)
            add_bytes("index.json", json.dumps({"schemaVersion": 2, "mediaType": oci.MEDIA_OCI_INDEX,
                                                "manifests": index_manifests}).encode())
            add_bytes("manifest.json", json.dumps(manifest).encode())
            add_bytes("oci-layout", b'{"imageLayoutVersion":"1.0.0"}')

    def load(self, src: BinaryIO) -> Iterator[str]:
        """`docker load` of a docker-archive (old per-layer directories or Docker 25+'s
        blobs/ layout). Everything is verified before a tag moves. Yields the lines to print."""
        import tempfile
        with tempfile.TemporaryDirectory(dir=self.content.root, prefix="load-") as tmp:
            try:
                with tarfile.open(fileobj=src, mode="r|*") as tf:
                    for m in tf:
                        parts = [p for p in m.name.split("/") if p not in ("", ".")]
                        if not parts or ".." in parts or not (m.isreg() or m.isdir()):
                            continue
                        dest = os.path.join(tmp, *parts)
                        if m.isdir():
                            os.makedirs(dest, exist_ok=True)
                            continue
                        os.makedirs(os.path.dirname(dest), exist_ok=True)
                        f = tf.extractfile(m)
                        assert f is not None
                        with open(dest, "wb") as outf:
                            while chunk := f.read(1 << 20):
                                outf.write(chunk)
            except (tarfile.TarError, EOFError) as e:
                raise InvalidArgument(f"Error processing tar file(exit status 1): {e}") from e
            mpath = os.path.join(tmp, "manifest.json")
            if not os.path.exists(mpath):
                raise InvalidArgument("invalid archive: no manifest.json "
                                      "(only docker-archive tarballs can be loaded)")
            try:
                with open(mpath) as mf:
                    manifest = json.load(mf)
                assert isinstance(manifest, list)
            except (ValueError, AssertionError):
                raise InvalidArgument("invalid archive: malformed manifest.json") from None
            lines = []
            for entry in manifest:
                image_id, tags = self._load_one(tmp, entry)
                if tags:
                    lines += [f"Loaded image: {self.familiar(t)}" for t in tags]
                else:
                    lines.append(f"Loaded image ID: {image_id}")
        yield from lines
        self.emit("image", "load", "", {})

    def _load_one(self, tmp: str, entry: dict[str, Any]) -> tuple[str, builtins.list[str]]:
        def inside(rel: str) -> str:
            p = os.path.normpath(os.path.join(tmp, rel))
            if not p.startswith(tmp + "/"):
                raise InvalidArgument(f"invalid archive: path {rel!r} escapes the archive")
            return p
        try:
            with open(inside(entry["Config"]), "rb") as f:
                raw = f.read()
            config = json.loads(raw)
        except (OSError, ValueError, KeyError) as e:
            raise InvalidArgument(f"invalid archive: image config: {e}") from None
        diff_ids = (config.get("rootfs") or {}).get("diff_ids") or []
        layer_paths = entry.get("Layers") or []
        if len(diff_ids) != len(layer_paths):
            raise InvalidArgument("invalid archive: the config names "
                                  f"{len(diff_ids)} layers, the manifest {len(layer_paths)}")
        tags = []
        for t in entry.get("RepoTags") or []:
            ref = reference.parse(t)
            tags.append(str(ref))
        chain: list[str] = []
        parent = None
        for diff_id, lp in zip(diff_ids, layer_paths, strict=True):
            expect = oci.chain_ids([*([self.layer_store.get(c).diff_id for c in chain]), diff_id])[-1]
            if self.layer_store.exists(expect):
                chain.append(expect)
                parent = expect
                continue
            try:
                with open(inside(lp), "rb") as f:
                    layer = self.layer_store.create(f, parent, expected_diff_id=diff_id)
            except FileNotFoundError:
                raise InvalidArgument(f"invalid archive: missing layer {lp}") from None
            chain.append(layer.chain_id)
            parent = layer.chain_id
        return self._commit_raw_config(raw, chain, tags), tags


def _full_container_config(cfg: dict[str, Any]) -> dict[str, Any]:
    base: dict[str, Any] = {
        "Hostname": "", "Domainname": "", "User": "", "AttachStdin": False,
        "AttachStdout": False, "AttachStderr": False, "Tty": False, "OpenStdin": False,
        "StdinOnce": False, "Env": None, "Cmd": None, "Image": "", "Volumes": None,
        "WorkingDir": "", "Entrypoint": None, "OnBuild": None, "Labels": None,
    }
    base.update(cfg)
    return base


# Layer and LayerView are the types of ImageService's layer methods; decompressed (any of the
# compressions a layer or a build context may come in) is storage's, named here for the builder
__all__ = ["ImageService", "Image", "Layer", "LayerView", "apply_changes", "decompressed",
           "rfc3339", "parse_rfc3339", "host_arch"]
