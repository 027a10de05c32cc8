"""Removing images: `docker rmi` with Docker's conflicts, prune, and the collection of layers
and blobs that nothing refers to any more.

Imports `reference`, `errors` and the modules beside it.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from berth import reference
from berth.errors import Conflict, InvalidArgument, NotFound
from berth.images.records import Removed
from berth.images.views import familiar

if TYPE_CHECKING:
    from berth.images import ImageService


def remove(svc: ImageService, name: str, *, force: bool = False) -> list[Removed]:
    """`docker rmi`: untag; delete the image when no tag is left. Docker's conflicts.
    An `untag` or `delete` event for each line of the result."""
    with svc.names_lock:
        out = _remove(svc, name, force=force)
    for r in out:
        svc.emit("image", "delete" if r.deleted else "untag", r.ref, {})
    return out


def _remove(svc: ImageService, name: str, *, force: bool) -> list[Removed]:
    img = svc.resolve(name)
    digests = svc.meta.digests_of(img.id)
    tags = svc.meta.tags_of(img.id)
    by_ref = _named_ref(name, tags + digests)
    if by_ref is not None and by_ref in digests:
        if len(tags) + len(digests) > 1:
            svc.meta.delete_digest(by_ref)
            return [Removed(familiar(by_ref))]
        tags = [by_ref]
    users = svc.containers_using(img.id)
    running = [u for u in users if u.running]
    out: list[Removed] = []
    if by_ref is not None and len(tags) > 1:
        svc.meta.untag(by_ref)
        return [Removed(familiar(by_ref))]
    if by_ref is None and len(tags) > 1 and not force:
        raise Conflict(
            f"conflict: unable to delete {img.id[7:19]} (must be forced) - "
            "image is referenced in multiple repositories"
        )
    if running and (by_ref is None or not force):
        raise Conflict(
            f"conflict: unable to delete {img.id[7:19]} (cannot be forced) - "
            f"image is being used by running container {running[0].id[:12]}"
        )
    if users and not force:
        if by_ref is not None:
            raise Conflict(
                f'conflict: unable to remove repository reference "{name}" (must force) - '
                f"container {users[0].id[:12]} is using its referenced image {img.id[7:19]}"
            )
        raise Conflict(
            f"conflict: unable to delete {img.id[7:19]} (must be forced) - "
            f"image is being used by stopped container {users[0].id[:12]}"
        )
    for t in tags:
        svc.meta.untag(t)
        svc.meta.delete_digest(t)
        out.append(Removed(familiar(t)))
    for d in digests:
        if d not in tags:
            svc.meta.delete_digest(d)
            out.append(Removed(familiar(d)))
    if users:
        return out  # forced off a container's image: the image stays, untagged
    parent = svc.meta.cache_parent_of(img.id)
    svc.meta.delete_image(img.id)
    out.append(Removed(img.id, deleted=True))
    out += _delete_unused_parents(svc, parent)
    gc(svc)
    return out


def _delete_unused_parents(svc: ImageService, parent: str | None) -> list[Removed]:
    """As Docker's rmi: a build's intermediate images go with the last image that needed
    them (untagged, no container, no other step made from them)."""
    out = []
    while parent and parent.startswith("sha256:") and svc.meta.get_image(parent):
        if (
            svc.meta.tags_of(parent)
            or svc.meta.digests_of(parent)
            or svc.containers_using(parent)
            or svc.meta.cache_by_parent(parent)
        ):
            break
        up = svc.meta.cache_parent_of(parent)
        if up is None:
            break  # not a build's intermediate image (a base image): it stays
        svc.meta.delete_image(parent)
        out.append(Removed(parent, deleted=True))
        parent = up
    return out


def _named_ref(name: str, tags: list[str]) -> str | None:
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


def gc(svc: ImageService) -> None:
    """Delete layers and blobs that no image and no container refers to."""
    keep_layers: set[str] = set(svc.layers_in_use())
    keep_blobs: set[str] = set()
    for image_id, doc in svc.meta.images():
        keep_layers.update(doc["layers"])
        keep_blobs.add(image_id)
    for chain in keep_layers.copy():
        try:
            keep_blobs.add(svc.layer_store.get(chain).diff_id)
        except NotFound:
            pass
    for chain in svc.layer_store.list():
        if chain not in keep_layers:
            svc.layer_store.delete(chain)
    for blob in svc.content.list():
        if blob not in keep_blobs:
            svc.content.delete(blob)


def prune(svc: ImageService, *, all_: bool = False) -> list[Removed]:
    """Unused images: dangling ones, or with `all_` every one no container uses."""
    deleted: list[Removed] = []
    tags = svc.meta.all_tags()
    parents = set() if all_ else svc.meta.cache_children()
    for image_id, _ in svc.meta.images():
        if (
            image_id in parents
            or svc.containers_using(image_id)
            or not svc.meta.get_image(image_id)
        ):
            continue
        if tags.get(image_id) and not all_:
            continue
        for t in tags.get(image_id, []):
            svc.meta.untag(t)
            deleted.append(Removed(familiar(t)))
        for d in svc.meta.digests_of(image_id):
            svc.meta.delete_digest(d)
        parent = svc.meta.cache_parent_of(image_id)
        svc.meta.delete_image(image_id)
        deleted.append(Removed(image_id, deleted=True))
        deleted += _delete_unused_parents(svc, parent)
    gc(svc)
    return deleted


__all__ = ["gc", "prune", "remove"]
