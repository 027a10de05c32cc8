"""The image service's views in Docker's shapes: the list, `system df`'s images, inspect and
history.

Imports `reference`, `errors` and the modules beside it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from berth import reference
from berth.errors import BerthError, InvalidArgument
from berth.images.records import host_arch, parse_rfc3339, rfc3339

if TYPE_CHECKING:
    from berth.images import ImageService


def familiar(ref: str) -> str:
    return reference.parse(ref).familiar


def list_images(svc: ImageService, *, all_: bool = False,
                filters: dict[str, list[str]] | None = None) -> list[dict[str, Any]]:
    filters = filters or {}
    tags = svc.meta.all_tags()
    used = container_counts(svc)
    # a build's intermediate images (steps that later steps ran on) show only with -a
    hidden = set() if all_ else svc.meta.cache_children()
    out = []
    for image_id, doc in svc.meta.images():
        if image_id in hidden and not tags.get(image_id) and \
                not svc.meta.digests_of(image_id):
            continue
        refs = [familiar(r) for r in tags.get(image_id, [])]
        cfg = doc["config"].get("config") or {}
        labels = cfg.get("Labels") or {}
        if not _match(filters, refs, labels, image_id):
            continue
        if filters.get("reference"):
            # as Docker: only the tags that match are shown
            refs = [r for r in refs if _ref_matches(r, filters["reference"])]
        out.append({
            "Containers": used.get(image_id, 0), "Created": doc["created"], "Id": image_id,
            "Labels": labels or None, "ParentId": "",
            "RepoDigests": [familiar(r) for r in svc.meta.digests_of(image_id)],
            "RepoTags": refs,
            "SharedSize": -1, "Size": doc["size"], "VirtualSize": doc["size"],
        })
    return out


def disk_usage(svc: ImageService) -> tuple[int, list[dict[str, Any]]]:
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
                    sizes[chain] = 0   # a layer being removed
    images = list_images(svc)
    for img in images:
        img["SharedSize"] = sum(sizes[c] for c in chains.get(img["Id"], ())
                                if holders[c] > 1)
    return sum(sizes.values()), images


def container_counts(svc: ImageService) -> dict[str, int]:
    counts: dict[str, int] = {}
    for c in svc.meta.containers():
        counts[c["Image"]] = counts.get(c["Image"], 0) + 1
    return counts


def _match(filters: dict[str, list[str]], refs: list[str], labels: dict[str, str],
           image_id: str) -> bool:
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


def inspect(svc: ImageService, name: str) -> dict[str, Any]:
    img = svc.resolve(name)
    cfg = img.config
    layers = svc.layers_of(img)
    return {
        "Id": img.id,
        "RepoTags": [familiar(r) for r in svc.meta.tags_of(img.id)],
        "RepoDigests": [familiar(r) for r in svc.meta.digests_of(img.id)],
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


def history(svc: ImageService, name: str) -> list[dict[str, Any]]:
    img = svc.resolve(name)
    hist = list(img.config.get("history") or [])
    layers = svc.layers_of(img)
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
        out[0]["Tags"] = [familiar(r) for r in svc.meta.tags_of(img.id)] or None
    return out


def _full_container_config(cfg: dict[str, Any]) -> dict[str, Any]:
    base: dict[str, Any] = {
        "Hostname": "", "Domainname": "", "User": "", "AttachStdin": False,
        "AttachStdout": False, "AttachStderr": False, "Tty": False, "OpenStdin": False,
        "StdinOnce": False, "Env": None, "Cmd": None, "Image": "", "Volumes": None,
        "WorkingDir": "", "Entrypoint": None, "OnBuild": None, "Labels": None,
    }
    base.update(cfg)
    return base


__all__ = ["container_counts", "disk_usage", "familiar", "history", "inspect", "list_images"]
