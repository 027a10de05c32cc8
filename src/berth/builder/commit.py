"""`commit` and `diff` of a container: its read-write layer as an image's layer, or as a list of
changes.

Imports `images`, `errors`. The container is reached through the builder's `ContainerRunner`.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from berth.builder.runner import ContainerLayer, ContainerRunner
from berth.containers.settings import ContainerConfig
from berth.errors import InvalidArgument
from berth.images import ImageService, apply_changes, rfc3339


def _run_config(c: ContainerConfig) -> dict[str, Any]:
    """The image config's `config` of a container's: the fields an image made by commit
    keeps, as Docker's, where they have a value."""
    hc = c.healthcheck
    health = (
        None
        if hc is None
        else {
            k: v
            for k, v in (
                ("Test", list(hc.test) if hc.test is not None else None),
                ("Interval", hc.interval),
                ("Timeout", hc.timeout),
                ("StartPeriod", hc.start_period),
                ("StartInterval", hc.start_interval),
                ("Retries", hc.retries),
            )
            if v
        }
    )
    out: dict[str, Any] = {
        "Hostname": c.hostname,
        "Domainname": c.domainname,
        "User": c.user,
        "AttachStdin": c.attach_stdin,
        "AttachStdout": c.attach_stdout,
        "AttachStderr": c.attach_stderr,
        "ExposedPorts": {str(p): {} for p in c.exposed_ports},
        "Tty": c.tty,
        "OpenStdin": c.open_stdin,
        "StdinOnce": c.stdin_once,
        "Env": list(c.env or ()),
        "Cmd": list(c.cmd or ()),
        "Healthcheck": health,
        "Volumes": {v: {} for v in c.volumes or ()},
        "WorkingDir": c.working_dir,
        "Entrypoint": list(c.entrypoint or ()),
        "OnBuild": c.extra.get("OnBuild"),
        "Labels": dict(c.labels),
        "StopSignal": c.stop_signal,
        "Shell": c.extra.get("Shell"),
    }
    return {k: v for k, v in out.items() if v not in (None, "", [], {})}


def changes(images: ImageService, runner: ContainerRunner, ref: str) -> list[dict[str, Any]]:
    """Docker's /containers/{id}/changes: Kind 0 changed, 1 added, 2 deleted."""
    c = runner.layer(ref)
    if not c.diffable:
        raise InvalidArgument("diff needs the overlay2 storage driver")
    kinds = {"C": 0, "A": 1, "D": 2}
    return [
        {"Path": "/" + rel, "Kind": kinds[k]}
        for k, rel in images.diff_changes(c.upper, c.lowers, set(c.mount_points))
    ]


async def commit(
    images: ImageService,
    runner: ContainerRunner,
    ref: str,
    *,
    repo: str = "",
    tag: str = "",
    comment: str = "",
    author: str = "",
    changes: list[str] | None = None,
    config: dict[str, Any] | None = None,
    pause: bool = True,
) -> str:
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
        layer = await asyncio.to_thread(
            images.layer_from_diff,
            c.upper,
            c.lowers,
            set(c.mount_points),
            c.layers[-1] if c.layers else None,
        )
    finally:
        if paused:
            await runner.unpause(c.id)
    layers = list(c.layers) + [layer.chain_id]
    cfg = _image_config(
        images, c, layers, comment=comment, author=author, changes=changes, config=config
    )
    tags = [images._tag_ref(repo, tag)] if repo else []
    image_id = images._commit_image(cfg, layers, tags)
    runner.committed(ref)
    return image_id


def _image_config(
    images: ImageService,
    c: ContainerLayer,
    layers: list[str],
    *,
    comment: str,
    author: str,
    changes: list[str] | None,
    config: dict[str, Any] | None,
) -> dict[str, Any]:
    """The committed image's config: the container's image's, with the container's config,
    `config` over it and the Dockerfile `changes` applied, on `layers`."""
    image = images.get(c.image)
    cfg = dict(image.config)
    ccfg = _run_config(c.config)
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
        {
            "created": rfc3339(now),
            **({"author": author} if author else {}),
            **({"comment": comment} if comment else {}),
        }
    ]
    return cfg


__all__ = ["changes", "commit"]
