"""The compose orchestrator: converges a daemon's containers, networks and volumes on a
`Project` through the Engine API (`compose.engine`), with Docker Compose's names and labels so
that docker compose and berth compose see each other's projects.

`up` recreates only what changed (the config hash and the image in the labels), in dependency
order, waiting on depends_on's conditions; `down` removes what the project made and never
external objects. Progress goes to a callback, one event per object and state.

Imports the compose modules below it.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from berth.compose import labels as L
from berth.compose.base import ComposeError, ContextTar, Progress, UpOptions
from berth.compose.base import number as _number
from berth.compose.engine import ContainerSummary, Engine
from berth.compose.imaging import Images
from berth.compose.model import Project, Service
from berth.compose.parallel import run_parallel
from berth.compose.prestart import PreStarts
from berth.compose.spec import container_body, endpoint
from berth.compose.templates import service_template
from berth.compose.topology import ensure_networks, ensure_volumes
from berth.compose.waits import Waiter
from berth.errors import BerthError, InvalidArgument, NotFound

__all__ = ["ComposeError", "Orchestrator", "Progress", "UpOptions"]


class Orchestrator:
    def __init__(
        self,
        project: Project,
        engine: Engine,
        progress: Progress,
        warn: Callable[[str], None],
        context_tar: ContextTar | None = None,
        poll: float = 0.1,
        parallel: int = 0,
    ) -> None:
        self.project = project
        self.parallel = parallel if parallel > 0 else 0  # --parallel; -1 (0): no limit
        self.engine = engine
        self.progress = progress
        self.warn = warn
        self.images = Images(project, engine, progress, context_tar)
        self.pre_starts = PreStarts(project, engine, progress, self.images, self.container_of)
        self.waiter = Waiter(project, engine, progress, lambda names: self.containers(names), poll)

    # --- looking ---------------------------------------------------------------------------
    def containers(
        self,
        services: list[str] | None = None,
        all: bool = True,  # noqa: A002
        oneoff: bool = False,
    ) -> list[ContainerSummary]:
        """The project's containers (of `services`), by service then number."""
        found = self.engine.containers(
            [f"{L.PROJECT}={self.project.name}", f"{L.ONEOFF}={'True' if oneoff else 'False'}"],
            all=all,
        )
        if services:
            found = [c for c in found if c.label(L.SERVICE) in services]
        return sorted(found, key=lambda c: (c.label(L.SERVICE), _number(c)))

    def _check_services(self, names: list[str]) -> None:
        for n in names:
            if n not in self.project.services:
                raise NotFound(f"no such service: {n}")

    # --- images, networks and volumes ---------------------------------------------------------
    def image_id(self, svc: Service, opts: UpOptions) -> str:
        return self.images.image_id(svc, opts)

    def pull(self, svc: Service) -> None:
        self.images.pull(svc)

    def build(self, svc: Service) -> str:
        return self.images.build(svc)

    def ensure_networks(self, services: list[str]) -> None:
        ensure_networks(self.project, self.engine, self.progress, self.warn, services)

    def ensure_volumes(self, services: list[str]) -> None:
        ensure_volumes(self.project, self.engine, self.progress, self.warn, services)

    # --- up ----------------------------------------------------------------------------------
    def up(self, opts: UpOptions) -> None:
        self._check_services(opts.services)
        names = (
            list(opts.services)
            if opts.no_deps and opts.services
            else self.project.order(opts.services or None)
        )
        existing = self.containers()
        orphans = [c for c in existing if c.label(L.SERVICE) not in self.project.services]
        if orphans:
            if opts.remove_orphans:
                for c in orphans:
                    self._stop_remove(c, opts.timeout)
            else:
                self.warn(
                    f"Found orphan containers ({', '.join(c.name for c in orphans)}) for "
                    "this project. If you removed or renamed this service in your "
                    "compose file, you can run this command with the --remove-orphans "
                    "flag to clean it up."
                )
        self.ensure_networks(names)
        self.ensure_volumes(names)
        images = {n: self.image_id(self.project.services[n], opts) for n in names}
        recreated: set[str] = set()
        # services at the same depth of the dependency graph converge at once, as docker
        # compose's do; each waits on its own dependencies' conditions first
        for level in self._start_levels(names):

            def one(n: str) -> bool:
                svc = self.project.services[n]
                if not opts.no_start:
                    self.waiter.dependencies(svc, names)
                mine = [c for c in existing if c.label(L.SERVICE) == n]
                force = opts.force_recreate or any(d in recreated for d in svc.dependencies())
                return self.converge(svc, mine, images[n], opts, force)

            for n, changed in zip(level, run_parallel(one, level, self.parallel), strict=True):
                if changed:
                    recreated.add(n)
        for n in names:  # for berthd's dashboard, which has no compose file
            svc = self.project.services[n]
            try:  # a `service:` reference to a service with no container makes none
                tmpl = service_template(
                    self.project, svc, images[n], opts.scale.get(n, svc.replicas), self.container_of
                )
            except ComposeError:
                continue
            self.engine.put_template(self.project.name, n, tmpl)
        if opts.wait:
            self.waiter.running(names, opts.wait_timeout)

    def _start_levels(self, names: list[str]) -> list[list[str]]:
        """`names` (in start order) grouped by depth: a service comes after everything it
        depends on among them."""
        depth: dict[str, int] = {}
        for n in names:  # start order: dependencies first
            deps = [d for d in self.project.services[n].dependencies() if d in depth]
            depth[n] = 1 + max((depth[d] for d in deps), default=-1)
        levels: dict[int, list[str]] = {}
        for n in names:
            levels.setdefault(depth[n], []).append(n)
        return [levels[k] for k in sorted(levels)]

    def converge(
        self,
        svc: Service,
        mine: list[ContainerSummary],
        image_id: str,
        opts: UpOptions,
        force: bool,
    ) -> bool:
        """The service's containers made as the model says; whether any was recreated."""
        want = opts.scale.get(svc.name, svc.replicas)
        if svc.container_name and want > 1:
            raise ComposeError(
                f'service "{svc.name}" has container_name set and cannot be scaled beyond 1'
            )
        h = L.config_hash(svc)
        mine = sorted(mine, key=_number)
        for c in mine[want:][::-1]:
            self._stop_remove(c, opts.timeout)
        recreated = False
        for c in mine[:want]:
            outdated = c.label(L.CONFIG_HASH) != h or c.label(L.IMAGE) != image_id
            if (outdated or force) and not opts.no_recreate:
                self.recreate(svc, c, image_id, opts)
                recreated = True
            elif opts.no_start:
                continue
            elif c.state in ("running", "restarting"):
                self.progress("Container", c.name, "Running")
            elif c.state == "paused":
                self.progress("Container", c.name, "Running")
            else:
                self._start(c.id, c.name, svc, first_image=image_id if c.state == "created" else "")
        used = {_number(c) for c in mine[:want]}
        n = 1
        while len(used) < want:
            while n in used:
                n += 1
            used.add(n)
            self.create(svc, n, image_id, start=not opts.no_start)
        return recreated

    def container_of(self, service: str) -> str:
        """The name of the service's first container (for `service:NAME`, links and
        volumes_from): it must exist."""
        found = self.containers([service])
        if not found:
            raise ComposeError(
                f"service {service!r} has no container: it is needed by another service"
            )
        return found[0].name

    def create(
        self,
        svc: Service,
        number: int,
        image_id: str,
        start: bool = True,
        anonymous: dict[str, str] | None = None,
    ) -> str:
        name = L.container_name(self.project, svc, number)
        self.progress("Container", name, "Creating")
        body = container_body(
            self.project,
            svc,
            number,
            image_id,
            name,
            anonymous=anonymous,
            container_of=self.container_of,
        )
        cid = self.engine.create(name, body)
        try:
            if not svc.network_mode:
                for sn in svc.networks[1:]:
                    net = self.project.networks[sn.name].name
                    ec = endpoint(svc, sn.name, name)
                    self.engine.connect(
                        net, cid, ec["Aliases"], (ec.get("IPAMConfig") or {}).get("IPv4Address", "")
                    )
            self._inline_files(svc, cid)
        except BaseException:
            self.engine.remove(cid, force=True)
            raise
        self.progress("Container", name, "Created")
        if start:
            self._start(cid, name, svc, first_image=image_id)
        return cid

    def _start(self, ref: str, name: str, svc: Service, first_image: str = "") -> None:
        """Starts a container; a failure names it (the daemon's message alone may not).
        `first_image`: the container never ran (its image): its pre_start steps run first."""
        if first_image and svc.pre_start:
            self.pre_starts.before_first_start(svc, ref, name, first_image)
        self.progress("Container", name, "Starting")
        try:
            self.engine.start(ref)
        except BerthError as e:
            self.progress("Container", name, "Error")
            raise ComposeError(
                f"Error response from daemon: failed to start container {name}: {e}"
            ) from None
        self.progress("Container", name, "Started")
        self._hooks(ref, name, svc, "post_start")

    def _hooks(self, ref: str, name: str, svc: Service, which: str) -> None:
        """`post_start` or `pre_stop`: each command run to its end in the container; one
        that fails stops what was being done, naming it."""
        hooks = svc.post_start if which == "post_start" else svc.pre_stop
        for h in hooks:
            env = [f"{k}={v}" for k, v in h.environment.items()]
            code, output = self.engine.exec_run(
                ref,
                list(h.command),
                user=h.user,
                privileged=h.privileged,
                workdir=h.working_dir,
                env=env,
            )
            if code != 0:
                raise ComposeError(
                    f"container {name}: {which} hook {' '.join(h.command)!r} "
                    f"exited with code {code}: "
                    f"{output.decode(errors='replace').strip()}"
                )

    def _inline_files(self, svc: Service, cid: str) -> None:
        """Secrets and configs given as `content` or `environment`: copied into the created
        container (bind mounts serve those from files)."""
        for refs, objs, base in (
            (svc.secrets, self.project.secrets, "/run/secrets/"),
            (svc.configs, self.project.configs, "/"),
        ):
            for r in refs:
                obj = objs[r.source]
                if obj.file or (obj.content is None and not obj.environment):
                    continue
                data = self.images.file_object(obj)
                target = r.target or r.source
                if not target.startswith("/"):
                    target = base + target
                import io
                import tarfile

                buf = io.BytesIO()
                with tarfile.open(fileobj=buf, mode="w") as tf:
                    ti = tarfile.TarInfo(target.lstrip("/"))
                    ti.size = len(data)
                    ti.mode = r.mode if r.mode is not None else 0o444
                    ti.uid = int(r.uid or 0)
                    ti.gid = int(r.gid or 0)
                    ti.mtime = int(time.time())
                    tf.addfile(ti, io.BytesIO(data))
                self.engine.put_archive(cid, "/", buf.getvalue())

    def recreate(self, svc: Service, old: ContainerSummary, image_id: str, opts: UpOptions) -> None:
        """Stop the old container, make the new one under its name (keeping its anonymous
        volumes), remove the old, start the new: as docker compose does."""
        self.progress("Container", old.name, "Recreate")
        state = self.engine.inspect(old.id)
        if state.running:
            self.engine.stop(old.id, opts.timeout)
        self.engine.rename(old.id, f"{old.id[:12]}_{old.name}")
        try:
            cid = self.create(
                svc, _number(old) or 1, image_id, start=False, anonymous=state.anonymous_volumes
            )
        except BaseException:
            self.engine.rename(old.id, old.name)
            raise
        self.engine.remove(old.id, force=True)
        self.progress("Container", old.name, "Recreated")
        if not opts.no_start:
            self._start(cid, old.name, svc, first_image=image_id)

    # --- the other verbs ----------------------------------------------------------------------
    def _pre_stop(self, c: ContainerSummary) -> None:
        svc = self.project.services.get(c.label(L.SERVICE))
        if svc is not None and svc.pre_stop and c.state == "running":
            self._hooks(c.id, c.name, svc, "pre_stop")

    def _stop_remove(self, c: ContainerSummary, timeout: int | None, volumes: bool = False) -> None:
        if c.state in ("running", "restarting", "paused"):
            self._pre_stop(c)
            self.progress("Container", c.name, "Stopping")
            self.engine.stop(c.id, timeout)
            self.progress("Container", c.name, "Stopped")
        self.progress("Container", c.name, "Removing")
        try:
            self.engine.remove(c.id, force=True, volumes=volumes)
        except NotFound:
            pass
        self.progress("Container", c.name, "Removed")

    def _stop_levels(self, containers: list[ContainerSummary]) -> list[list[ContainerSummary]]:
        """Containers grouped for stopping: those no service depends on first, then what
        those depend on, and so on; orphans with the first."""
        rank: dict[str, int] = {}

        def r(name: str, seen: tuple[str, ...] = ()) -> int:
            if name not in rank:
                users = [
                    s.name
                    for s in self.project.services.values()
                    if name in s.dependencies() and s.name not in seen
                ]
                rank[name] = 1 + max((r(u, (*seen, name)) for u in users), default=-1)
            return rank[name]

        levels: dict[int, list[ContainerSummary]] = {}
        for c in containers:
            svc = c.label(L.SERVICE)
            levels.setdefault(r(svc) if svc in self.project.services else 0, []).append(c)
        return [levels[k] for k in sorted(levels)]

    def _each(self, fn: Callable[[ContainerSummary], None], items: list[ContainerSummary]) -> None:
        """fn on every item at once (the daemon stops containers in parallel, as docker
        compose asks it to); the first error is raised once all are done."""
        run_parallel(fn, items, self.parallel)

    def down(
        self,
        *,
        volumes: bool = False,
        remove_orphans: bool = False,
        timeout: int | None = None,
        rmi: str = "",
        services: list[str] | None = None,
    ) -> None:
        """Containers (in reverse dependency order), then networks, then (with `volumes`)
        volumes; external ones are never touched. With `services`, only their containers."""
        if services:
            self._check_services(services)
            for level in self._stop_levels(self.containers(services)):
                self._each(lambda c: self._stop_remove(c, timeout, volumes=volumes), level)
            return
        everything = self.containers() + self.containers(oneoff=True)
        self.engine.remove_templates(self.project.name)
        if not self.project.services:
            self._down_by_labels(everything, volumes, timeout)
            return
        known = [c for c in everything if c.label(L.SERVICE) in self.project.services]
        orphans = [c for c in everything if c.label(L.SERVICE) not in self.project.services]
        for level in self._stop_levels(known + (orphans if remove_orphans else [])):
            self._each(lambda c: self._stop_remove(c, timeout, volumes=volumes), level)
        if orphans and not remove_orphans:
            self.warn(
                f"Found orphan containers ({', '.join(c.name for c in orphans)}) for this "
                "project. If you removed or renamed this service in your compose file, "
                "you can run this command with the --remove-orphans flag to clean it up."
            )
        for net in self.project.networks.values():
            if net.external:
                continue
            found = self.engine.network(net.name)
            if found is None or found.labels.get(L.PROJECT) != self.project.name:
                continue
            self.progress("Network", net.name, "Removing")
            try:
                self.engine.remove_network(found.id)
            except BerthError as e:
                self.warn(f"network {net.name}: {e}")
                continue
            self.progress("Network", net.name, "Removed")
        if volumes:
            for vol in self.project.volumes.values():
                if vol.external:
                    continue
                vfound = self.engine.volume(vol.name)
                if vfound is None or vfound.labels.get(L.PROJECT) != self.project.name:
                    continue
                self.progress("Volume", vol.name, "Removing")
                self.engine.remove_volume(vol.name)
                self.progress("Volume", vol.name, "Removed")
        if rmi:
            if rmi not in ("local", "all"):
                raise InvalidArgument(f"invalid value for --rmi: {rmi}")
            for svc in self.project.services.values():
                if rmi == "local" and svc.image:
                    continue
                ref = svc.image_name(self.project.name)
                if self.engine.image(ref) is None:
                    continue
                self.progress("Image", ref, "Removing")
                try:
                    self.engine.remove_image(ref)
                except BerthError as e:
                    self.warn(f"image {ref}: {e}")
                    continue
                self.progress("Image", ref, "Removed")

    def _down_by_labels(
        self, containers: list[ContainerSummary], volumes: bool, timeout: int | None
    ) -> None:
        """`down` of a project known only by its name (`-p NAME` with no file): what carries
        its label goes, as docker compose does."""
        self._each(lambda c: self._stop_remove(c, timeout, volumes=volumes), containers)
        label = [f"{L.PROJECT}={self.project.name}"]
        for net in self.engine.networks(label):
            self.progress("Network", net.name, "Removing")
            self.engine.remove_network(net.id)
            self.progress("Network", net.name, "Removed")
        if volumes:
            for vol in self.engine.volumes(label):
                self.progress("Volume", vol.name, "Removing")
                self.engine.remove_volume(vol.name)
                self.progress("Volume", vol.name, "Removed")

    def stop(self, services: list[str], timeout: int | None = None) -> None:
        self._check_services(services)

        def one(c: ContainerSummary) -> None:
            self._pre_stop(c)
            self.progress("Container", c.name, "Stopping")
            self.engine.stop(c.id, timeout)
            self.progress("Container", c.name, "Stopped")

        for level in self._stop_levels(self.containers(services or None, all=False)):
            self._each(one, level)

    def start(self, services: list[str]) -> None:
        self._check_services(services)
        names = self.project.order(services or None)
        found = self.containers(names)
        if not found:
            raise ComposeError("service(s) have no container to start: run up first")
        for n in names:
            svc = self.project.services[n]
            self.waiter.dependencies(svc, names)
            for c in found:
                if c.label(L.SERVICE) == n and c.state not in ("running", "restarting"):
                    self._start(
                        c.id,
                        c.name,
                        svc,
                        first_image=c.label(L.IMAGE) or c.image if c.state == "created" else "",
                    )

    def restart(self, services: list[str], timeout: int | None = None) -> None:
        self._check_services(services)
        names = self.project.order(services or None)
        # as docker compose: a service whose depends_on says `restart: true` is restarted
        # with what it depends on
        more = True
        while more:
            more = False
            for s in self.project.services.values():
                if s.name not in names and any(
                    d.restart and d.service in names for d in s.depends_on
                ):
                    names.append(s.name)
                    more = True
        for n in names:
            for c in self.containers([n]):
                self.progress("Container", c.name, "Restarting")
                self.engine.restart(c.id, timeout)
                self.progress("Container", c.name, "Started")

    def kill(self, services: list[str], signal: str = "") -> None:
        self._check_services(services)
        for c in self.containers(services or None, all=False):
            self.progress("Container", c.name, "Killing")
            self.engine.kill(c.id, signal)
            self.progress("Container", c.name, "Killed")

    def pause(self, services: list[str]) -> None:
        self._check_services(services)
        for c in self.containers(services or None, all=False):
            self.progress("Container", c.name, "Pausing")
            self.engine.pause(c.id)
            self.progress("Container", c.name, "Paused")

    def unpause(self, services: list[str]) -> None:
        self._check_services(services)
        for c in self.containers(services or None):
            if c.state != "paused":
                continue
            self.progress("Container", c.name, "Unpausing")
            self.engine.unpause(c.id)
            self.progress("Container", c.name, "Unpaused")

    def rm(
        self,
        services: list[str],
        *,
        stop: bool = False,
        volumes: bool = False,
        timeout: int | None = None,
    ) -> list[ContainerSummary]:
        """Stopped containers removed (running ones too, stopped first, with `stop`)."""
        self._check_services(services)
        gone = []
        for c in self.containers(services or None):
            if c.state in ("running", "restarting", "paused"):
                if not stop:
                    continue
                self._stop_remove(c, timeout, volumes)
            else:
                self.progress("Container", c.name, "Removing")
                self.engine.remove(c.id, force=True, volumes=volumes)
                self.progress("Container", c.name, "Removed")
            gone.append(c)
        return gone
