"""`pre_start` (compose-spec "pre_start"): init containers. Each step runs to its end in an
ephemeral container of its own, in order, before a service's container first starts; one that
exits non-zero stops `up` with the step named, and the service container is not started.

A step sees what the service's container sees: its networks (without the service's aliases,
so that its name never resolves to the step) and its volumes (`VolumesFrom` the created
service container, as docker compose shares them). Steps with `per_replica: false` (the
default) run once for the service, when none of its containers is running; with
`per_replica: true`, before each new container. A container is new until it first starts,
so a step that failed runs again on the next `up`, and one that succeeded does not (a
changed definition recreates the container, which runs it again).

Imports the compose modules below it.
"""

from __future__ import annotations

from collections.abc import Callable

from berth.compose import labels as L
from berth.compose.base import ComposeError, Progress
from berth.compose.engine import Engine
from berth.compose.imaging import Images
from berth.compose.model import PreStart, Project, Service
from berth.compose.spec import endpoint

TYPE_CHECKING = False  # not typing's: importing typing costs ~5 ms of every compose command
if TYPE_CHECKING:
    from typing import Any


class PreStarts:
    def __init__(
        self,
        project: Project,
        engine: Engine,
        progress: Progress,
        images: Images,
        container_of: Callable[[str], str],
    ) -> None:
        self.project = project
        self.container_of = container_of  # a service's first container, for service:NAME
        self.engine = engine
        self.progress = progress
        self.images = images
        self._done: set[str] = set()  # services whose once-only steps ran in this run

    def before_first_start(self, svc: Service, cid: str, name: str, image_id: str) -> None:
        """The steps due before container `cid` (created, never started) of `svc` starts."""
        if not svc.pre_start:
            return
        once = [s for s in svc.pre_start if not s.per_replica]
        if once and svc.name not in self._done:
            self._done.add(svc.name)
            running = self.engine.containers(
                [
                    f"{L.PROJECT}={self.project.name}",
                    f"{L.SERVICE}={svc.name}",
                    f"{L.ONEOFF}=False",
                ],
                all=False,
            )
            if not running:
                for i, step in enumerate(svc.pre_start, 1):
                    if not step.per_replica:
                        self._run(svc, step, i, cid, f"{self.project.name}-{svc.name}", image_id)
        for i, step in enumerate(svc.pre_start, 1):
            if step.per_replica:
                self._run(svc, step, i, cid, name, image_id)

    def _image(self, step: PreStart, image_id: str) -> str:
        if not step.image:
            return image_id
        if self.engine.image(step.image) is None:
            self.images.pull_ref(step.image)
        return step.image

    def body(
        self, svc: Service, step: PreStart, cid: str, name: str, image_id: str
    ) -> dict[str, Any]:
        """The step's container: `cid`'s volumes and networks, the service's environment
        with the step's over it, its own user and directory or the service's."""
        env = {**svc.environment, **step.environment}
        body: dict[str, Any] = {
            "Image": self._image(step, image_id),
            "Env": [f"{k}={v}" for k, v in env.items()],
            "Labels": {
                L.PROJECT: self.project.name,
                L.SERVICE: svc.name,
                L.ONEOFF: "True",
                L.VERSION: L.COMPOSE_VERSION,
            },
            "Tty": False,
            "OpenStdin": False,
            "AttachStdin": False,
            "AttachStdout": False,
            "AttachStderr": False,
        }
        if step.command is not None:
            body["Cmd"] = list(step.command)
        user = step.user or ("" if step.image else svc.user)
        if user:
            body["User"] = user
        if step.working_dir or svc.working_dir:
            body["WorkingDir"] = step.working_dir or svc.working_dir
        host: dict[str, Any] = {"VolumesFrom": [cid]}
        if step.privileged:
            host["Privileged"] = True
        if svc.network_mode:
            mode = svc.network_mode
            host["NetworkMode"] = (
                f"container:{self.container_of(mode[len('service:') :])}"
                if mode.startswith("service:")
                else mode
            )
        elif svc.networks:
            first = svc.networks[0]
            net = self.project.networks[first.name].name
            host["NetworkMode"] = net
            ec = endpoint(svc, first.name, name)
            body["NetworkingConfig"] = {
                "EndpointsConfig": {
                    net: {k: v for k, v in ec.items() if k not in ("Aliases", "IPAMConfig")}
                }
            }
        body["HostConfig"] = host
        return body

    def _run(
        self, svc: Service, step: PreStart, index: int, cid: str, owner: str, image_id: str
    ) -> None:
        name = f"{owner}-pre_start-{index}"
        what = " ".join(step.command) if step.command is not None else step.image or "image"
        self.progress("Container", name, "Creating")
        body = self.body(svc, step, cid, name, image_id)
        sid = self.engine.create(name, body)
        try:
            if not svc.network_mode:
                for sn in svc.networks[1:]:
                    self.engine.connect(self.project.networks[sn.name].name, sid, [], "")
            self.progress("Container", name, "Starting")
            self.engine.start(sid)
            code = self.engine.wait(sid)
            if code != 0:
                tail = b"".join(
                    p
                    for _, p in self.engine.logs(
                        sid, follow=False, tail="5", timestamps=False, tty=False
                    )
                )
                self.progress("Container", name, "Error")
                raise ComposeError(
                    f"service {svc.name!r}: pre_start step {index} ({what}) exited with code "
                    f"{code}" + (f": {tail.decode(errors='replace').strip()}" if tail else "")
                )
            self.progress("Container", name, "Exited")
        finally:
            self.engine.remove(sid, force=True)
