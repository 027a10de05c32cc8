"""A container's OCI bundle for its next start: `config.json` made from its record, with the
namespaces it joins (another container's network, PID or IPC), its CDI devices, its mounts;
and the request that has the fork server start its shim on it.

A part of the container service (see `berth.containers.service`), holding the shared
`ContainerStore`.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil

from berth import storage
from berth.containers import cdi
from berth.containers.ipc import Ipc
from berth.containers.mounts import Mounts
from berth.containers.networking import Networking
from berth.containers.output import Output
from berth.containers.record import ContainerEndpoint, ContainerRecord
from berth.containers.spec import build_spec
from berth.containers.store import ContainerStore
from berth.errors import Conflict, InvalidArgument, System
from berth.fs import atomic_write
from berth.images import ImageService
from berth.networks import link_spec
from berth.shim import protocol
from berth.shim.protocol import StartRequest

# the annotations by which berth.cri has a container join a pod sandbox's namespaces
CRI_NETNS = "io.berth.cri.netns"
CRI_IPCNS = "io.berth.cri.ipcns"
CRI_PIDNS = "io.berth.cri.pidns"


class Bundles:
    """Writes the bundle a container's shim hands its runtime."""

    def __init__(
        self,
        store: ContainerStore,
        ipc: Ipc,
        mounts: Mounts,
        net: Networking,
        *,
        images: ImageService,
        driver: storage.Driver,
        output: Output,
    ) -> None:
        self.store = store
        self.cfg = store.cfg
        self.ipc = ipc
        self.mounts = mounts
        self.net = net
        self.images = images
        self.driver = driver
        self.output = output

    def write(self, rec: ContainerRecord) -> tuple[str, str]:
        """The bundle's directory and the shim's (emptied) state directory."""
        cid = rec.id
        run_dir = self.store.run_dir(cid)
        bundle = os.path.join(run_dir, "bundle")
        state_dir = os.path.join(run_dir, "state")
        shutil.rmtree(state_dir, ignore_errors=True)
        os.makedirs(bundle, exist_ok=True)
        os.makedirs(os.path.join(bundle, "rootfs"), exist_ok=True)
        netns = None
        mode = rec.host_config.network_mode or "bridge"
        if mode.startswith("container:"):
            other = self.store.resolve(mode.split(":", 1)[1])
            if not other.state.status.is_running:
                raise Conflict(f"cannot join network of a non running container: {other.id}")
            netns = f"/proc/{other.state.pid}/ns/net"
        # DeviceRequests (--gpus, CDI --device): CDI devices, or dockerd's error
        requests = rec.host_config.device_requests or ()
        registry = cdi.Registry(self.cfg.cdi_spec_dirs).load() if requests else None
        cdi_devices = cdi.resolve(requests, registry) if registry else []
        pidns = ipcns = None
        pid_mode = rec.host_config.pid_mode
        if pid_mode.startswith("container:"):
            pidns = f"/proc/{self.ipc.running_donor(pid_mode).state.pid}/ns/pid"
        ipc_mode = rec.host_config.ipc_mode
        if ipc_mode.startswith("container:"):
            donor = self.ipc.running_donor(ipc_mode)
            if self.ipc.shm_path(donor) is None:
                raise InvalidArgument(
                    f"container {ipc_mode[10:]}: non-shareable IPC (hint: use "
                    "IpcMode:shareable for the donor container)"
                )
            ipcns = f"/proc/{donor.state.pid}/ns/ipc"
        elif ipc_mode == "shareable":
            self.ipc.mount_shm(rec)
        # a CRI pod's container (berth.cri) joins its sandbox holder's namespaces by path
        ann = rec.host_config.annotations or {}
        if mode == "none" and re.fullmatch(r"/proc/[0-9]+/ns/net", ann.get(CRI_NETNS, "")):
            netns = ann[CRI_NETNS]
        if ipc_mode == "private" and re.fullmatch(r"/proc/[0-9]+/ns/ipc", ann.get(CRI_IPCNS, "")):
            ipcns = ann[CRI_IPCNS]
        if not pid_mode and re.fullmatch(r"/proc/[0-9]+/ns/pid", ann.get(CRI_PIDNS, "")):
            pidns = ann[CRI_PIDNS]
        if rec.host_config.init and not (self.cfg.init_path and os.path.exists(self.cfg.init_path)):
            raise System(
                'exec: "docker-init": executable file not found in $PATH '
                "(berthd --init-path names a static tini)"
            )
        # legacy links: their targets run, and their environment is the process's
        rec.link_env = self.net.links_env(rec)
        spec = build_spec(
            cid=cid,
            config=rec.config,
            host_config=rec.host_config,
            link_env=rec.link_env,
            hostname_path=rec.hostname_path,
            hosts_path=rec.hosts_path,
            resolv_path=rec.resolv_conf_path,
            cgroup_parent=self.cfg.cgroup_parent,
            netns_path=netns,
            init_path=self.cfg.init_path,
            mounts=self.mounts.runtime_mounts(rec),
            idmap=self.cfg.idmap,
            pidns_path=pidns,
            ipcns_path=ipcns,
            shm_path=self.ipc.shm_path(rec),
        )
        if registry is not None:
            cdi.apply(spec, cdi_devices, registry)
        if self.cfg.idmap is not None:
            # the files the runtime binds in belong to the container's root, as in Docker
            for path in (rec.hostname_path, rec.hosts_path, rec.resolv_conf_path):
                with contextlib.suppress(OSError):
                    os.chown(path, self.cfg.idmap[0], self.cfg.idmap[1])
        if mode == "host":
            spec["linux"]["namespaces"] = [
                ns for ns in spec["linux"]["namespaces"] if ns["type"] != "network"
            ]
        # the container's environment is in it: 0600 (no fsync: made again at every start)
        atomic_write(os.path.join(bundle, "config.json"), json.dumps(spec).encode(), sync=False)
        return bundle, state_dir

    def start_request(
        self, rec: ContainerRecord, bundle: str, state_dir: str, eps: list[ContainerEndpoint]
    ) -> StartRequest:
        """What the fork server needs to start the container's shim."""
        cid = rec.id
        cfg = rec.config
        layers = [self.images.layer_store.get(c) for c in rec.layers]
        rotation = self.output.log_rotation(rec)
        runtime, runtime_root = self.store.runtime_of(rec)
        mount = self.driver.mount(cid, layers)
        dns = (
            protocol.DnsConfig(
                hosts=tuple(
                    self.net.networks.hosts_files([ep.to_dict() for ep in eps])
                    if self.net.networks
                    else ()
                ),
                upstream=tuple(self.net.upstream_dns(rec.host_config, False)),
                forward=self.net.dns_forward([ep.netname for ep in eps]),
                links=self.net.dns_links(rec.nets),
            )
            if any(self.net.networks and self.net.networks.user_defined(ep.netname) for ep in eps)
            else None
        )
        size = rec.host_config.console_size
        return StartRequest(
            id=cid,
            bundle=bundle,
            log_path=rec.log_path,
            state_dir=state_dir,
            runtime=runtime,
            runtime_root=runtime_root,
            socket=self.store.monitor_socket(cid),
            rootfs_mount=protocol.RootfsMount(
                type=mount.type, source=mount.source, options=tuple(mount.options)
            ),
            stdin=cfg.open_stdin,
            tty=cfg.tty,
            console_size=(int(size[0]), int(size[1])) if size else None,
            networks=tuple(link_spec(ep.to_dict()) for ep in eps),
            dns=dns,
            log_max_size=rotation["log_max_size"],
            log_max_file=rotation["log_max_file"],
        )


__all__ = ["CRI_IPCNS", "CRI_NETNS", "CRI_PIDNS", "Bundles"]
