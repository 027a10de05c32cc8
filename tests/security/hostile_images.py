"""Hostile images for the security tests: tar archives built member by member, and images
loaded with such an archive as their top layer."""

from __future__ import annotations

import hashlib
import io
import json
import subprocess
import tarfile
from pathlib import Path

from tests.integration.conftest import Daemon


def tar_of(*members: tuple[tarfile.TarInfo, bytes | None]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for ti, data in members:
            if data is not None:
                ti.size = len(data)
                tf.addfile(ti, io.BytesIO(data))
            else:
                tf.addfile(ti)
    return buf.getvalue()


def tar_info(
    name: str, typ: bytes = tarfile.REGTYPE, link: str = "", mode: int = 0o644
) -> tarfile.TarInfo:
    ti = tarfile.TarInfo(name)
    ti.type, ti.linkname, ti.mode = typ, link, mode
    return ti


def load_with_layer(
    d: Daemon, tmp_path: Path, data: bytes, name: str, busybox_below: bool = True
) -> subprocess.CompletedProcess[str]:
    """An image of busybox's layer with `data` as a second layer (a docker-archive, loaded)."""
    layers = []
    if busybox_below:
        info = d.inspect("busybox")
        base = (
            d.data_root / "content" / "blobs" / "sha256" / info["RootFS"]["Layers"][0].split(":")[1]
        ).read_bytes()
        layers.append(base)
    layers.append(data)
    diff_ids = ["sha256:" + hashlib.sha256(x).hexdigest() for x in layers]
    config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "config": {"Cmd": ["sh"]},
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
        }
    ).encode()
    members = [(tar_info(f"l{i}.tar"), x) for i, x in enumerate(layers)]
    members.append((tar_info("config.json"), config))
    members.append(
        (
            tar_info("manifest.json"),
            json.dumps(
                [
                    {
                        "Config": "config.json",
                        "RepoTags": [name],
                        "Layers": [f"l{i}.tar" for i in range(len(layers))],
                    }
                ]
            ).encode(),
        )
    )
    archive = tmp_path / f"{name.replace(':', '-').replace('/', '-')}.tar"
    archive.write_bytes(tar_of(*members))
    return d.berth("load", "-i", str(archive))
