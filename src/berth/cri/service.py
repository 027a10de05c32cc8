"""The CRI's assembly, as berthd calls it: `start_cri` makes the CNI runner, the pods and the
two services' handlers over the daemon's own services, and serves them."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from berth.containers import ContainerService
from berth.containers.execs import ExecService
from berth.cri.cni import Cni
from berth.cri.events import CriEvents
from berth.cri.extras import Extras
from berth.cri.gen import api
from berth.cri.images import ImageHandlers
from berth.cri.metrics import MetricsHandlers
from berth.cri.pods import PodHandlers
from berth.cri.runtime import ContainerHandlers
from berth.cri.sandboxes import Pods
from berth.cri.server import CriServer
from berth.cri.streaming import StreamServer
from berth.events import EventBus
from berth.images import ImageService
from berth.images.distribution import Distribution

DEFAULT_CNI_BIN_DIRS = ("/opt/cni/bin", "/usr/lib/cni")  # the second: Debian's plug-ins


@dataclass(frozen=True, slots=True, kw_only=True)
class CriConfig:
    socket: str  # unix:///PATH
    data_root: str  # the daemon's: the CRI keeps DATA_ROOT/cri
    cni_conf_dir: str = "/etc/cni/net.d"
    cni_bin_dirs: tuple[str, ...] = field(default=DEFAULT_CNI_BIN_DIRS)


async def start_cri(
    cfg: CriConfig,
    *,
    containers: ContainerService,
    execs: ExecService,
    images: ImageService,
    distribution: Distribution,
    events: EventBus | None = None,
) -> CriServer:
    api()  # compile the messages now, not in the first request
    root = os.path.join(cfg.data_root, "cri")
    os.makedirs(root, mode=0o700, exist_ok=True)
    cni = Cni(cfg.cni_conf_dir, list(cfg.cni_bin_dirs), os.path.join(root, "cni-results"))
    pods = Pods(root, cni)
    pods.prepare()
    streams = StreamServer(containers, execs)
    await streams.start()
    runtime = ContainerHandlers(pods, containers, execs, cni, streams, CriEvents(events))
    runtime.resume_logs()
    pod_handlers = PodHandlers(pods, cni, runtime)
    metrics = MetricsHandlers(pods, runtime)
    image_handlers = ImageHandlers(images, distribution, cfg.data_root)
    # the streamed lists, the checkpoints refused, pod resources: over the handlers above
    extras = Extras(pods, pod_handlers, runtime, metrics, image_handlers)
    server = CriServer((pod_handlers, runtime, metrics, extras), (image_handlers, extras))
    await server.start(cfg.socket)
    return server


__all__ = ["DEFAULT_CNI_BIN_DIRS", "CriConfig", "start_cri"]
