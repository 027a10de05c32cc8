"""A container's `create`: `Creator`, a part of `containers.service.ContainerService`, handed
the store, the daemon's config, the images, the storage driver, and the `Mounts` and
`Networking` parts. What `create` decides before anything is made is `containers.create`'s
(pure functions); here is the order of its steps and their undo.

Imports `containers` modules, `images`, `storage`, `errors`, and `reference` (lazily).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import secrets
import shutil
import time

from berth import storage
from berth.containers.config import Config, log_config
from berth.containers.create import (
    CreateRequest,
    check_host_config,
    container_config,
    pick_name,
)
from berth.containers.mounts import Mounts
from berth.containers.networking import Networking
from berth.containers.record import ContainerRecord
from berth.containers.store import ContainerStore
from berth.errors import InvalidArgument, NotFound
from berth.images import ImageService

log = logging.getLogger("berth.containers.service")  # as before the move: one logger


class Creator:
    """Create of containers (a part of the container service)."""

    def __init__(
        self,
        store: ContainerStore,
        cfg: Config,
        ncpu: int,
        images: ImageService,
        driver: storage.Driver,
        mounts: Mounts,
        net: Networking,
    ) -> None:
        self.store = store
        self.cfg = cfg
        self.ncpu = ncpu
        self.images = images
        self.driver = driver
        self.mounts = mounts
        self.net = net
        self._reserved: dict[str, str] = {}  # names of creates under way: their IDs

    async def create(self, req: CreateRequest, name: str = "") -> tuple[str, list[str]]:
        """A container of `req` (read from Docker's JSON at the API edge); its ID and the
        warnings of its HostConfig."""
        image_name = req.config.image
        if not image_name:
            raise InvalidArgument("image name cannot be blank")
        try:
            image = self.images.resolve(image_name)
        except NotFound:
            from berth import reference

            try:
                shown = reference.parse(image_name).familiar
            except InvalidArgument:
                shown = image_name
            raise NotFound(f"No such image: {shown}") from None
        icfg = image.spec.config
        cid = secrets.token_hex(32)
        hc = dataclasses.replace(req.host_config)  # create fills in dockerd's defaults
        req = dataclasses.replace(req, host_config=hc)
        try:
            warnings = check_host_config(req.config, hc, self.cfg, self.ncpu, self.store.resolve)
            full_cfg = container_config(req, icfg, cid)
        except (TypeError, AttributeError, ValueError) as e:
            # a field of the wrong JSON type (dockerd's typed decoding refuses it: 400)
            raise InvalidArgument(f"invalid container config: {e}") from None
        # a name is taken from its pick until the record holds it: two creates at once (the
        # steps of concurrent builds) could pick the same random name, and the second failed
        # with a conflict at its save
        name = pick_name(name, self.store.all(), self._reserved)
        self._reserved[name] = cid
        try:
            mount_specs = self.mounts.specs(req.config.volumes, hc, icfg.volumes)
            nets = self.net.requested(hc, req.endpoints)
            links = self.net.register_links(hc, nets)
            if full_cfg.mac_address and nets:  # the older, container-wide field
                nets[0].mac = nets[0].mac or full_cfg.mac_address
            elif full_cfg.mac_address:
                full_cfg = dataclasses.replace(full_cfg, mac_address="")
            cdir = self.store.dir(cid)
            now = time.time()
            layers = self.images.layers_of(image)
            hc.log_config = log_config(hc.log_config)
            args = [*(full_cfg.entrypoint or ()), *(full_cfg.cmd or ())]
            rec = ContainerRecord(
                id=cid,
                name="/" + name,
                created_ns=int(now * 1e9),
                image=image.id,
                path=args[0],
                args=args[1:],
                config=full_cfg,
                host_config=hc,
                driver=self.driver.name,
                upper_dir=self.driver.upper(cid),
                lower_dirs=[la.path for la in reversed(layers)],
                resolv_conf_path=os.path.join(cdir, "resolv.conf"),
                hostname_path=os.path.join(cdir, "hostname"),
                hosts_path=os.path.join(cdir, "hosts"),
                log_path=""
                if hc.log_config.type == "none"
                else os.path.join(cdir, f"{cid}-json.log"),
                layers=[la.chain_id for la in layers],
                nets=nets,
                links=links,
            )
            # each step registers its undo; nothing half made stays if a later one fails
            with contextlib.ExitStack() as undo:
                os.makedirs(cdir, exist_ok=True)
                undo.callback(shutil.rmtree, cdir, ignore_errors=True)
                undo.callback(self.driver.remove, cid)
                await asyncio.to_thread(self.driver.prepare, cid, layers)
                rec.mounts = await asyncio.to_thread(
                    self.mounts.make, cid, mount_specs, layers, undo
                )
                self.net.write_etc_files(rec)
                self.store.add(rec)
                undo.callback(self.store.forget, cid)
                self.store.save(rec)
                undo.pop_all()
            log.info("created container %s", cid[:12], extra={"container": cid})
            self.store.event(rec, "create")
            return cid, warnings
        finally:
            self._reserved.pop(name, None)
