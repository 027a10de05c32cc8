"""ImageService: the daemon's images (the same image service and registry client as the Engine
API), named as the CRI names them (`docker.io/library/busybox:latest`, not Docker's familiar
`busybox`). A name with no registry host is refused when the daemon's Docker Hub is off, as it
is in berth's tests.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
import os
import re
import time
from typing import Any

from berth import reference
from berth.cri.gen import api
from berth.errors import InvalidArgument, NotFound, System
from berth.images import ImageService
from berth.images.distribution import Distribution
from berth.images.views import ImageSummary
from berth.registry.auth import AuthConfig

log = logging.getLogger(__name__)


def full_name(ref: str) -> str:
    """`busybox:latest` -> `docker.io/library/busybox:latest` (as containerd shows names)."""
    try:
        return str(reference.parse(ref))
    except InvalidArgument:
        return ref


_UID = re.compile(r"[0-9]{1,10}")
UID_MAX = (1 << 32) - 1


def _user(config: dict[str, Any]) -> tuple[int | None, str]:
    """Image.uid or Image.username from the image's User (its user part). The image is
    hostile: a uid is ASCII digits within a uid's range (str.isdigit takes "²", which int()
    refuses, and a number past Int64Value's range fails the message, as does a string that
    is not UTF-8: each broke ListImages for the whole node); anything else is a name (a kubelet cannot tell a name's uid, so it
    refuses runAsNonRoot for it rather than trust it)."""
    user = str(config.get("User") or "").split(":", 1)[0][:256]
    user = user.encode("utf-8", "replace").decode()  # a lone surrogate fails the message too
    if not user:
        return None, ""
    if _UID.fullmatch(user) and int(user) <= UID_MAX:
        return int(user), ""
    return None, user


class ImageHandlers:
    def __init__(self, images: ImageService, distribution: Distribution, data_root: str) -> None:
        self.images = images
        self.distribution = distribution
        self.data_root = data_root

    def _message(self, image_id: str, tags: list[str], digests: list[str], size: int) -> Any:
        a = api()
        uid, username = _user(self.images.get(image_id).container_config)
        img = a.Image(
            id=image_id,
            repo_tags=[full_name(t) for t in tags],
            repo_digests=[full_name(d) for d in digests],
            size=size,
            username=username,
        )
        if uid is not None:
            img.uid.value = uid
        return img

    def _summary(self, s: ImageSummary) -> Any:
        return self._message(s.id, list(s.repo_tags), list(s.repo_digests), s.size)

    async def ListImages(self, req: Any) -> Any:  # noqa: N802 - the RPC's name
        want = req.filter.image.image if req.HasField("filter") else ""
        out = []
        wanted_id = ""
        if want:
            try:
                wanted_id = self.images.resolve(want).id
            except NotFound:
                return api().ListImagesResponse()
        for s in self.images.list():
            if wanted_id and s.id != wanted_id:
                continue
            out.append(self._summary(s))
        return api().ListImagesResponse(images=out)

    async def ImageStatus(self, req: Any) -> Any:  # noqa: N802
        try:
            d = self.images.inspect(req.image.image)
        except (NotFound, InvalidArgument):
            return api().ImageStatusResponse()  # no image: an empty answer, not an error
        img = self._message(d.image.id, list(d.repo_tags), list(d.repo_digests), d.image.size)
        return api().ImageStatusResponse(image=img)

    async def PullImage(self, req: Any) -> Any:  # noqa: N802
        name = req.image.image
        if not name:
            raise InvalidArgument("PullImage needs an image name")
        a = req.auth
        auth = AuthConfig(
            username=a.username,
            password=a.password,
            identitytoken=a.identity_token,
            registrytoken=a.registry_token,
            serveraddress=a.server_address,
        )
        if a.auth and not a.username:
            try:
                user, _, pw = base64.b64decode(a.auth).decode().partition(":")
            except (ValueError, binascii.Error):
                raise InvalidArgument("auth is not base64 of user:password") from None
            auth = AuthConfig(username=user, password=pw, serveraddress=a.server_address)
        ref = str(reference.parse(name))  # a name with no tag is :latest, not every tag
        async for m in self.distribution.pull(ref, auth=auth):
            if m.get("error"):
                raise System(f"failed to pull {name}: {m['error']}")
        image = self.images.resolve(ref)
        return api().PullImageResponse(image_ref=image.id)

    async def RemoveImage(self, req: Any) -> Any:  # noqa: N802
        name = req.image.image
        try:
            image = self.images.resolve(name)
        except NotFound:
            return api().RemoveImageResponse()  # idempotent, as the CRI asks
        if name.startswith("sha256:") or image.id.startswith(name):
            await asyncio.to_thread(self.images.remove, image.id, force=True)
        else:
            await asyncio.to_thread(self.images.remove, name)
        return api().RemoveImageResponse()

    async def ImageFsInfo(self, req: Any) -> Any:  # noqa: N802
        """The filesystem that holds the layers: its used bytes and inodes (statvfs: a walk
        of the layers would cost seconds on every kubelet poll)."""
        a = api()
        root = os.path.join(self.data_root, "storage")
        st = os.statvfs(root)
        fs = a.FilesystemUsage(
            timestamp=time.time_ns(),
            fs_id=a.FilesystemIdentifier(mountpoint=root),
            used_bytes=a.UInt64Value(value=(st.f_blocks - st.f_bfree) * st.f_frsize),
            inodes_used=a.UInt64Value(value=st.f_files - st.f_ffree),
        )
        return a.ImageFsInfoResponse(image_filesystems=[fs])


__all__ = ["ImageHandlers", "full_name"]
