"""The image service's views, typed: the list (and `system df`'s images), inspect and history.
The API makes Docker's JSON of them.

Imports `reference`, `errors` and the modules beside it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from berth import reference
from berth.errors import BerthError, InvalidArgument
from berth.images.records import Image, ImageConfig

if TYPE_CHECKING:
    from berth.images import ImageService


@dataclass(frozen=True, slots=True, kw_only=True)
class ImageSummary:
    """An image as `images` lists it."""

    id: str
    created: int  # seconds since the epoch
    size: int
    labels: Mapping[str, str] | None
    repo_tags: list[str]  # familiar names
    repo_digests: list[str]
    containers: int  # containers made from it
    shared_size: int = -1  # bytes of its layers other images hold too; -1: not counted


@dataclass(frozen=True, slots=True, kw_only=True)
class ImageDetails:
    """An image as `image inspect` shows it."""

    image: Image
    spec: ImageConfig
    repo_tags: list[str]
    repo_digests: list[str]
    layer_dirs: list[str]  # its layers' directories, the bottom first


@dataclass(frozen=True, slots=True, kw_only=True)
class HistoryLine:
    """A line of `image history`, the newest first."""

    id: str  # the image's ID on the top line, else "<missing>"
    created: int
    created_by: str
    tags: list[str] | None  # the image's tags, on the top line
    size: int
    comment: str


def familiar(ref: str) -> str:
    return reference.parse(ref).familiar


def list_images(
    svc: ImageService, *, all_: bool = False, filters: dict[str, list[str]] | None = None
) -> list[ImageSummary]:
    filters = filters or {}
    tags = svc.meta.all_tags()
    # a build's intermediate images (steps that later steps ran on) show only with -a
    hidden = set() if all_ else svc.meta.cache_children()
    out = []
    for image_id, doc in svc.meta.images():
        if image_id in hidden and not tags.get(image_id) and not svc.meta.digests_of(image_id):
            continue
        refs = [familiar(r) for r in tags.get(image_id, [])]
        labels = ImageConfig.from_doc(doc["config"]).config.labels
        if not _match(filters, refs, labels or {}, image_id):
            continue
        if filters.get("reference"):
            # as Docker: only the tags that match are shown
            refs = [r for r in refs if _ref_matches(r, filters["reference"])]
        out.append(
            ImageSummary(
                id=image_id,
                created=doc["created"],
                size=doc["size"],
                labels=labels or None,
                repo_tags=refs,
                repo_digests=[familiar(r) for r in svc.meta.digests_of(image_id)],
                containers=len(svc.containers_using(image_id)),
            )
        )
    return out


def disk_usage(svc: ImageService) -> tuple[int, list[ImageSummary]]:
    """`GET /system/df`'s images: the size of every layer held (each counted once), and the
    images as `images` lists them, each with the size of the layers it shares with
    other images."""
    sizes: dict[str, int] = {}
    holders: dict[str, int] = {}
    chains: dict[str, set[str]] = {}
    for image_id, doc in svc.meta.images():
        chains[image_id] = set(doc["layers"])
        for chain in chains[image_id]:
            holders[chain] = holders.get(chain, 0) + 1
            if chain not in sizes:
                try:
                    sizes[chain] = svc.layer_store.get(chain).size
                except BerthError:
                    sizes[chain] = 0  # a layer being removed
    images = [
        dataclasses.replace(
            img, shared_size=sum(sizes[c] for c in chains.get(img.id, ()) if holders[c] > 1)
        )
        for img in list_images(svc)
    ]
    return sum(sizes.values()), images


def _match(
    filters: dict[str, list[str]], refs: list[str], labels: Mapping[str, str], image_id: str
) -> bool:
    for key, values in filters.items():
        if key == "dangling":
            want = values[-1].lower() in ("true", "1")
            if want != (not refs):
                return False
        elif key == "reference":
            if not any(_ref_matches(r, values) for r in refs):
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


def _ref_matches(ref: str, patterns: list[str]) -> bool:
    import fnmatch

    name = ref.rsplit(":", 1)[0] if ":" in ref.rsplit("/", 1)[-1] else ref
    return any(fnmatch.fnmatchcase(ref, p) or fnmatch.fnmatchcase(name, p) for p in patterns)


def inspect(svc: ImageService, name: str) -> ImageDetails:
    img = svc.resolve(name)
    return ImageDetails(
        image=img,
        spec=img.spec,
        repo_tags=[familiar(r) for r in svc.meta.tags_of(img.id)],
        repo_digests=[familiar(r) for r in svc.meta.digests_of(img.id)],
        layer_dirs=[la.path for la in svc.layers_of(img)],
    )


def history(svc: ImageService, name: str) -> list[HistoryLine]:
    img = svc.resolve(name)
    layers = svc.layers_of(img)
    out = []
    li = 0
    for h in img.spec.history:
        size = 0
        if not h.empty_layer:
            size = layers[li].size if li < len(layers) else 0
            li += 1
        out.append(
            HistoryLine(
                id="<missing>",
                created=int(h.created),
                created_by=h.created_by,
                tags=None,
                size=size,
                comment=h.comment,
            )
        )
    out.reverse()
    if out:
        out[0] = dataclasses.replace(
            out[0], id=img.id, tags=[familiar(r) for r in svc.meta.tags_of(img.id)] or None
        )
    return out


__all__ = [
    "HistoryLine",
    "ImageDetails",
    "ImageSummary",
    "disk_usage",
    "familiar",
    "history",
    "inspect",
    "list_images",
]
