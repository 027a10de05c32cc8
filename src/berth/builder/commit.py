"""`commit` and `diff` of a container: its read-write layer as an image's layer, or as a list of
changes.

Imports `images`, `errors`. The container is reached through the builder's `ContainerRunner`.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from berth.builder.runner import ContainerLayer, ContainerRunner
from berth.errors import InvalidArgument
from berth.images import ImageService, apply_changes, rfc3339

# the container config fields an image made by commit keeps, as Docker's
_KEPT = ("Hostname", "Domainname", "User", "AttachStdin", "AttachStdout", "AttachStderr",
         "ExposedPorts", "Tty", "OpenStdin", "StdinOnce", "Env", "Cmd", "Healthcheck",
         "Image", "Volumes", "WorkingDir", "Entrypoint", "OnBuild", "Labels", "StopSignal",
         "Shell")


def changes(images: ImageService, runner: ContainerRunner, ref: str) -> list[dict[str, Any]]:
    """Docker's /containers/{id}/changes: Kind 0 changed, 1 added, 2 deleted."""
    c = runner.layer(ref)
    if not c.diffable:
        raise InvalidArgument("diff needs the overlay2 storage driver")
    kinds = {"C": 0, "A": 1, "D": 2}
    return [{"Path": "/" + rel, "Kind": kinds[k]}
            for k, rel in images.diff_changes(c.upper, c.lowers, set(c.mount_points))]


async def commit(images: ImageService, runner: ContainerRunner, ref: str, *, repo: str = "",
                 tag: str = "", comment: str = "", author: str = "",
                 changes: list[str] | None = None, config: dict[str, Any] | None = None,
                 pause: bool = True) -> str:
    """An image of the container's image plus its changes (paused meanwhile, unless not
    `pause`); its ID."""
    c = runner.layer(ref)
    if not c.diffable:
        raise InvalidArgument("commit needs the overlay2 storage driver")
    paused = False
    if pause and c.running and not c.paused:
        await runner.pause(c.id)
        paused = True
    try:
        layer = await asyncio.to_thread(images.layer_from_diff, c.upper, c.lowers,
                                        set(c.mount_points), c.layers[-1] if c.layers else None)
    finally:
        if paused:
            await runner.unpause(c.id)
    layers = list(c.layers) + [layer.chain_id]
    cfg = _image_config(images, c, layers, comment=comment, author=author, changes=changes,
                        config=config)
    tags = [images._tag_ref(repo, tag)] if repo else []
    image_id = images._commit_image(cfg, layers, tags)
    runner.committed(ref)
    return image_id


def _image_config(images: ImageService, c: ContainerLayer, layers: list[str], *, comment: str,
                  author: str, changes: list[str] | None, config: dict[str, Any] | None
                  ) -> dict[str, Any]:
    """The committed image's config: the container's image's, with the container's config,
    `config` over it and the Dockerfile `changes` applied, on `layers`."""
    image = images.get(c.image)
    cfg = dict(image.config)
    ccfg = {k: c.config.get(k) for k in _KEPT if c.config.get(k) not in (None, "", [], {})}
    ccfg.pop("Image", None)
    if config:
        ccfg.update({k: v for k, v in config.items() if v not in (None, "")})
    apply_changes(ccfg, changes or [])
    now = time.time()
    cfg["config"] = ccfg
    cfg["created"] = rfc3339(now)
    cfg["container"] = c.id
    if author:
        cfg["author"] = author
    if comment:
        cfg["comment"] = comment
    cfg["rootfs"] = {"type": "layers", "diff_ids": images.diff_ids(layers)}
    cfg["history"] = list(cfg.get("history") or []) + [
        {"created": rfc3339(now), **({"author": author} if author else {}),
         **({"comment": comment} if comment else {})}]
    return cfg


__all__ = ["changes", "commit"]
