"""`docker save` and `docker load`: docker-archive tarballs, with the OCI layout beside the old
manifest.json as Docker 25+ writes them.

Imports `oci`, `reference`, `errors` and the modules beside it.
"""

from __future__ import annotations

import io
import json
import os
import re
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, BinaryIO

from berth import oci, reference
from berth.errors import InvalidArgument
from berth.images.records import Image, ImageConfig
from berth.images.views import familiar

if TYPE_CHECKING:
    from berth.images import ImageService


def save(svc: ImageService, names: list[str], out: BinaryIO) -> None:
    """docker-archive with the OCI layout beside it, as Docker 25+ writes it; a `save`
    event for each name."""
    _save(svc, names, out)
    for n in names:
        svc.emit("image", "save", svc.resolve(n).id, {"name": n})


def _save(svc: ImageService, names: list[str], out: BinaryIO) -> None:
    images: list[tuple[Image, list[str]]] = []
    for n in names:
        img = svc.resolve(n)
        tagged: list[str] = []
        if not re.fullmatch(r"(sha256:)?[a-f0-9]{4,64}", n):
            ref = str(reference.parse(n))
            if ref in svc.meta.tags_of(img.id):
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
                src = path or svc.content.path(digest)
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
            for layer in svc.layers_of(img):
                layer_names.append(add_blob(layer.diff_id))
                layer_descs.append(
                    {
                        "mediaType": oci.MEDIA_OCI_LAYER,
                        "digest": layer.diff_id,
                        "size": svc.content.size(layer.diff_id),
                    }
                )
            fam = [familiar(t) for t in tagged]
            manifest.append({"Config": cfg_name, "RepoTags": fam or None, "Layers": layer_names})
            m = {
                "schemaVersion": 2,
                "mediaType": oci.MEDIA_OCI_MANIFEST,
                "config": {
                    "mediaType": oci.MEDIA_OCI_CONFIG,
                    "digest": img.id,
                    "size": svc.content.size(img.id),
                },
                "layers": layer_descs,
            }
            mraw = json.dumps(m, separators=(",", ":")).encode()
            mdigest = oci.sha256_digest(mraw)
            if "blobs/sha256/" + oci.hex_of(mdigest) not in written:
                written.add("blobs/sha256/" + oci.hex_of(mdigest))
                add_bytes("blobs/sha256/" + oci.hex_of(mdigest), mraw)
            for t in tagged or [""]:  # "": the untagged image's one entry
                desc: dict[str, Any] = {
                    "mediaType": oci.MEDIA_OCI_MANIFEST,
                    "digest": mdigest,
                    "size": len(mraw),
                }
                if t:
                    desc["annotations"] = {
                        "io.containerd.image.name": t,
                        "org.opencontainers.image.ref.name": t.rsplit(":", 1)[1],
                    }
                index_manifests.append(desc)
        add_bytes(
            "index.json",
            json.dumps(
                {"schemaVersion": 2, "mediaType": oci.MEDIA_OCI_INDEX, "manifests": index_manifests}
            ).encode(),
        )
        add_bytes("manifest.json", json.dumps(manifest).encode())
        add_bytes("oci-layout", b'{"imageLayoutVersion":"1.0.0"}')


# what is read whole from an archive, bounded as a registry's answers are (registry/answers.py)
CONFIG_LIMIT = 8 << 20  # an image config
MANIFEST_LIMIT = 8 << 20  # manifest.json (an entry per image)


@dataclass(frozen=True, slots=True)
class _Entry:
    """An image of a docker-archive's manifest.json."""

    config: str  # the config's path in the archive
    layers: list[str]  # the layers' paths, the bottom first
    repo_tags: list[str]


def _entries(doc: object) -> list[_Entry]:
    def strings(v: object) -> list[str] | None:
        return v if isinstance(v, list) and all(isinstance(x, str) for x in v) else None

    bad = InvalidArgument("invalid archive: malformed manifest.json")
    if not isinstance(doc, list):
        raise bad
    out = []
    for e in doc:
        if not isinstance(e, dict) or not isinstance(e.get("Config"), str):
            raise bad
        layers, tags = strings(e.get("Layers") or []), strings(e.get("RepoTags") or [])
        if layers is None or tags is None:
            raise bad
        out.append(_Entry(e["Config"], layers, tags))
    return out


def _read_bounded(path: str, limit: int, what: str) -> bytes:
    """A small file of the archive, whole: an archive is not trusted with the daemon's memory."""
    with open(path, "rb") as f:
        data = f.read(limit + 1)
    if len(data) > limit:
        raise InvalidArgument(f"invalid archive: the {what} is over {limit} bytes")
    return data


def load(svc: ImageService, src: BinaryIO) -> Iterator[str]:
    """`docker load` of a docker-archive (old per-layer directories or Docker 25+'s
    blobs/ layout). Everything is verified before a tag moves. Yields the lines to print."""
    import tempfile

    with tempfile.TemporaryDirectory(dir=svc.content.root, prefix="load-") as tmp:
        name = ""
        try:
            with tarfile.open(fileobj=src, mode="r|*") as tf:
                for m in tf:
                    name = m.name
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
        except OSError as e:  # a name that is a file and a directory both
            raise InvalidArgument(f"invalid archive: {name}: {e.strerror or e}") from None
        mpath = os.path.join(tmp, "manifest.json")
        if not os.path.exists(mpath):
            raise InvalidArgument(
                "invalid archive: no manifest.json (only docker-archive tarballs can be loaded)"
            )
        try:
            manifest = json.loads(_read_bounded(mpath, MANIFEST_LIMIT, "manifest.json"))
        except (ValueError, OSError):
            raise InvalidArgument("invalid archive: malformed manifest.json") from None
        lines = []
        for entry in _entries(manifest):
            image_id, tags = _load_one(svc, tmp, entry)
            if tags:
                lines += [f"Loaded image: {familiar(t)}" for t in tags]
            else:
                lines.append(f"Loaded image ID: {image_id}")
    yield from lines
    svc.emit("image", "load", "", {})


def _load_one(svc: ImageService, tmp: str, entry: _Entry) -> tuple[str, list[str]]:
    def inside(rel: str) -> str:
        p = os.path.normpath(os.path.join(tmp, rel))
        if not p.startswith(tmp + "/"):
            raise InvalidArgument(f"invalid archive: path {rel!r} escapes the archive")
        return p

    try:
        raw = _read_bounded(inside(entry.config), CONFIG_LIMIT, "image config")
        config = json.loads(raw)
    except (OSError, ValueError) as e:
        raise InvalidArgument(f"invalid archive: image config: {e}") from None
    if not isinstance(config, dict):
        raise InvalidArgument("invalid archive: image config: not a JSON object")
    diff_ids = ImageConfig.from_doc(config).diff_ids
    for d in diff_ids:
        oci.validate_digest(d)
    if len(diff_ids) != len(entry.layers):
        raise InvalidArgument(
            "invalid archive: the config names "
            f"{len(diff_ids)} layers, the manifest {len(entry.layers)}"
        )
    tags = [str(reference.parse(t)) for t in entry.repo_tags]
    chain: list[str] = []
    parent = None
    for diff_id, lp in zip(diff_ids, entry.layers, strict=True):
        expect = oci.chain_ids([*([svc.layer_store.get(c).diff_id for c in chain]), diff_id])[-1]
        if svc.layer_store.exists(expect):
            chain.append(expect)
            parent = expect
            continue
        try:
            with open(inside(lp), "rb") as f:
                layer = svc.layer_store.create(f, parent, expected_diff_id=diff_id)
        except (FileNotFoundError, IsADirectoryError):
            raise InvalidArgument(f"invalid archive: missing layer {lp}") from None
        chain.append(layer.chain_id)
        parent = layer.chain_id
    return svc.commit_raw_config(raw, chain, tags), tags


__all__ = ["load", "save"]
