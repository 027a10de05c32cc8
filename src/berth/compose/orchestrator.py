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
from dataclasses import dataclass, field

from berth.compose import labels as L
from berth.compose.engine import ContainerSummary, Engine
from berth.compose.model import Condition, FileObject, Project, Service
from berth.compose.spec import container_body, endpoint, network_body, volume_body
from berth.errors import BerthError, InvalidArgument, NotFound

TYPE_CHECKING = False  # not typing's: importing typing costs ~5 ms of every compose command
if TYPE_CHECKING:
    from typing import Any

# (kind, name, state): ("Container", "proj-web-1", "Started")
Progress = Callable[[str, str, str], None]
# (context directory, Dockerfile) -> the context as a tar
ContextTar = Callable[[str, str], bytes]


def _parallel(fn: Callable[[Any], Any], items: list[Any], limit: int = 0) -> list[Any]:
    """fn on each item, each in a thread of its own (plain threads: concurrent.futures and the
    logging it imports cost an unchanged `up` milliseconds); the results in order, or the
    first error once all are done. `limit`: at most that many at once (0: no limit)."""
    if len(items) <= 1 or limit == 1:
        return [fn(x) for x in items]
    import threading
    results: list[Any] = [None] * len(items)
    errors: list[BaseException | None] = [None] * len(items)
    gate = threading.Semaphore(limit) if limit > 0 else None

    def run(i: int) -> None:
        try:
            if gate is not None:
                with gate:
                    results[i] = fn(items[i])
            else:
                results[i] = fn(items[i])
        except BaseException as e:  # noqa: BLE001 - handed to the caller below
            errors[i] = e

    threads = [threading.Thread(target=run, args=(i,), daemon=True) for i in range(len(items))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for e in errors:
        if e is not None:
            raise e
    return results


class ComposeError(BerthError):
    """A failure of a compose operation that names the service or container at fault."""

    status = 500


def _number(c: ContainerSummary) -> int:
    try:
        return int(c.label(L.NUMBER))
    except ValueError:
        return 0


@dataclass(slots=True, kw_only=True)
class UpOptions:
    services: list[str] = field(default_factory=list)
    force_recreate: bool = False
    no_recreate: bool = False
    no_deps: bool = False
    no_start: bool = False
    remove_orphans: bool = False
    build: bool = False
    no_build: bool = False
    pull: str = ""                  # "", always, missing, never
    scale: dict[str, int] = field(default_factory=dict)
    wait: bool = False
    wait_timeout: float = 0.0
    timeout: int | None = None


class Orchestrator:
    def __init__(self, project: Project, engine: Engine, progress: Progress,
                 warn: Callable[[str], None], context_tar: ContextTar | None = None,
                 poll: float = 0.1, parallel: int = 0) -> None:
        self.project = project
        self.parallel = parallel if parallel > 0 else 0   # --parallel; -1 (0): no limit
        self.engine = engine
        self.progress = progress
        self.warn = warn
        self.context_tar = context_tar
        self.poll = poll
        self._images: dict[str, str] = {}

    # --- looking ---------------------------------------------------------------------------
    def containers(self, services: list[str] | None = None, all: bool = True,  # noqa: A002
                   oneoff: bool = False) -> list[ContainerSummary]:
        """The project's containers (of `services`), by service then number."""
        found = self.engine.containers(
            [f"{L.PROJECT}={self.project.name}", f"{L.ONEOFF}={'True' if oneoff else 'False'}"],
            all=all)
        if services:
            found = [c for c in found if c.label(L.SERVICE) in services]
        return sorted(found, key=lambda c: (c.label(L.SERVICE), _number(c)))

    def _check_services(self, names: list[str]) -> None:
        for n in names:
            if n not in self.project.services:
                raise NotFound(f"no such service: {n}")

    # --- images ------------------------------------------------------------------------------
    def image_id(self, svc: Service, opts: UpOptions) -> str:
        """The image the service runs, built or pulled if it must be; its ID."""
        ref = svc.image_name(self.project.name)
        if ref in self._images:
            return self._images[ref]
        info = self.engine.image(ref)
        policy = opts.pull or svc.pull_policy or "missing"
        if svc.build is not None and not opts.no_build and (
                opts.build or info is None or policy == "build"):
            self.build(svc)
            info = self.engine.image(ref)
        elif policy == "always" or (info is None and policy in ("missing", "if_not_present")):
            self.pull(svc)
            info = self.engine.image(ref)
        if info is None:
            raise ComposeError(f"service {svc.name!r}: no such image: {ref}")
        self._images[ref] = info.id
        return info.id

    def pull(self, svc: Service) -> None:
        ref = svc.image_name(self.project.name)
        self.progress("Image", ref, "Pulling")
        for msg in self.engine.pull(ref):
            if msg.get("error"):
                self.progress("Image", ref, "Error")
                raise ComposeError(f"service {svc.name!r}: pull {ref}: {msg['error']}")
            if msg.get("id") and msg.get("status"):
                detail = msg.get("progressDetail") or {}
                state = str(msg["status"])
                if detail.get("total"):
                    state += f" {detail.get('current', 0)}/{detail['total']}"
                self.progress("Layer", str(msg["id"]), state)
        self.progress("Image", ref, "Pulled")

    def build(self, svc: Service) -> str:
        assert svc.build is not None
        if self.context_tar is None:
            raise ComposeError("building is not available here")
        ref = svc.image_name(self.project.name)
        self.progress("Image", ref, "Building")
        tar = self.context_tar(svc.build.context, svc.build.dockerfile)
        import json
        query: dict[str, object] = {"t": ref, "dockerfile": svc.build.dockerfile, "rm": True}
        if svc.build.args:
            query["buildargs"] = json.dumps(svc.build.args)
        if svc.build.target:
            query["target"] = svc.build.target
        if svc.build.labels:
            query["labels"] = json.dumps(svc.build.labels)
        b = svc.build
        if b.cache_from:
            query["cachefrom"] = json.dumps(list(b.cache_from))
        if b.network:
            query["networkmode"] = b.network
        if b.extra_hosts:
            query["extrahosts"] = ",".join(f"{k}:{v}" for k, v in b.extra_hosts.items())
        if b.shm_size:
            query["shmsize"] = b.shm_size
        if b.no_cache:
            query["nocache"] = True
        if b.pull:
            query["pull"] = True
        headers = {}
        if b.secrets:
            import base64
            data = {key: base64.b64encode(self._file_object(self.project.secrets[key])).decode()
                    for key in b.secrets}
            headers["X-Berth-Build-Secrets"] = base64.b64encode(
                json.dumps(data).encode()).decode()
        for msg in self.engine.build(tar, query, headers):
            if msg.get("error"):
                self.progress("Image", ref, "Error")
                raise ComposeError(f"service {svc.name!r} failed to build: {msg['error']}")
        for extra in b.tags:
            name, _, tag = extra.rpartition(":") if ":" in extra.rsplit("/", 1)[-1] else (
                extra, "", "latest")
            self.engine.tag(ref, name or extra, tag)
        self.progress("Image", ref, "Built")
        self._images.pop(ref, None)
        return ref

    def _file_object(self, obj: FileObject) -> bytes:
        """A secret's or config's contents: its file, its content, or its variable."""
        if obj.file:
            try:
                with open(obj.file, "rb") as f:
                    return f.read(1 << 20)
            except OSError as e:
                raise ComposeError(f"secret {obj.key}: {e.strerror}: {obj.file}") from None
        if obj.content is not None:
            return obj.content.encode()
        return self.project.env.get(obj.environment, "").encode()

    # --- networks and volumes ---------------------------------------------------------------
    def ensure_networks(self, services: list[str]) -> None:
        used = {n.name for s in services for n in self.project.services[s].networks}
        for key in sorted(used):
            net = self.project.networks[key]
            found = self.engine.network(net.name)
            if net.external:
                if found is None:
                    raise ComposeError(f"network {net.name} declared as external, but could "
                                       "not be found")
                continue
            if found is not None:
                if found.labels.get(L.PROJECT, self.project.name) != self.project.name:
                    self.warn(f'a network with name {net.name} exists but was not created for '
                              f'project "{self.project.name}".')
                continue
            self.progress("Network", net.name, "Creating")
            self.engine.create_network(network_body(self.project, net))
            self.progress("Network", net.name, "Created")

    def ensure_volumes(self, services: list[str]) -> None:
        used = {m.source for s in services for m in self.project.services[s].mounts
                if m.type.value == "volume" and m.source}
        for key in sorted(used):
            vol = self.project.volumes[key]
            found = self.engine.volume(vol.name)
            if vol.external:
                if found is None:
                    raise ComposeError(f"external volume \"{vol.name}\" not found")
                continue
            if found is not None:
                if found.labels.get(L.PROJECT, self.project.name) != self.project.name:
                    self.warn(f'volume "{vol.name}" already exists but was not created by '
                              "Docker Compose. Use `external: true` to use an existing volume")
                continue
            self.progress("Volume", vol.name, "Creating")
            self.engine.create_volume(volume_body(self.project, vol))
            self.progress("Volume", vol.name, "Created")

    # --- up ----------------------------------------------------------------------------------
    def up(self, opts: UpOptions) -> None:
        self._check_services(opts.services)
        names = (list(opts.services) if opts.no_deps and opts.services
                 else self.project.order(opts.services or None))
        existing = self.containers()
        orphans = [c for c in existing if c.label(L.SERVICE) not in self.project.services]
        if orphans:
            if opts.remove_orphans:
                for c in orphans:
                    self._stop_remove(c, opts.timeout)
            else:
                self.warn(f"Found orphan containers ({', '.join(c.name for c in orphans)}) for "
                          "this project. If you removed or renamed this service in your "
                          "compose file, you can run this command with the --remove-orphans "
                          "flag to clean it up.")
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
                    self.wait_dependencies(svc, names)
                mine = [c for c in existing if c.label(L.SERVICE) == n]
                force = opts.force_recreate or any(d in recreated for d in svc.dependencies())
                return self.converge(svc, mine, images[n], opts, force)
            for n, changed in zip(level, self._map(one, level), strict=True):
                if changed:
                    recreated.add(n)
        if opts.wait:
            self.wait_running(names, opts.wait_timeout)

    def _start_levels(self, names: list[str]) -> list[list[str]]:
        """`names` (in start order) grouped by depth: a service comes after everything it
        depends on among them."""
        depth: dict[str, int] = {}
        for n in names:   # start order: dependencies first
            deps = [d for d in self.project.services[n].dependencies() if d in depth]
            depth[n] = 1 + max((depth[d] for d in deps), default=-1)
        levels: dict[int, list[str]] = {}
        for n in names:
            levels.setdefault(depth[n], []).append(n)
        return [levels[k] for k in sorted(levels)]

    def _map(self, fn: Callable[[str], bool], items: list[str]) -> list[bool]:
        """fn on each item at once; the first error is raised once all are done."""
        return _parallel(fn, items, self.parallel)

    def converge(self, svc: Service, mine: list[ContainerSummary], image_id: str,
                 opts: UpOptions, force: bool) -> bool:
        """The service's containers made as the model says; whether any was recreated."""
        want = opts.scale.get(svc.name, svc.replicas)
        if svc.container_name and want > 1:
            raise ComposeError(f'service "{svc.name}" has container_name set and cannot be '
                               "scaled beyond 1")
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
                self._start(c.id, c.name, svc)
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
            raise ComposeError(f"service {service!r} has no container: it is needed by "
                               "another service")
        return found[0].name

    def create(self, svc: Service, number: int, image_id: str, start: bool = True,
               anonymous: dict[str, str] | None = None) -> str:
        name = L.container_name(self.project, svc, number)
        self.progress("Container", name, "Creating")
        body = container_body(self.project, svc, number, image_id, name,
                              anonymous=anonymous, container_of=self.container_of)
        cid = self.engine.create(name, body)
        try:
            if not svc.network_mode:
                for sn in svc.networks[1:]:
                    net = self.project.networks[sn.name].name
                    ec = endpoint(svc, sn.name, name)
                    self.engine.connect(net, cid, ec["Aliases"],
                                        (ec.get("IPAMConfig") or {}).get("IPv4Address", ""))
            self._inline_files(svc, cid)
        except BaseException:
            self.engine.remove(cid, force=True)
            raise
        self.progress("Container", name, "Created")
        if start:
            self._start(cid, name, svc)
        return cid

    def _start(self, ref: str, name: str, svc: Service) -> None:
        """Starts a container; a failure names it (the daemon's message alone may not)."""
        self.progress("Container", name, "Starting")
        try:
            self.engine.start(ref)
        except BerthError as e:
            self.progress("Container", name, "Error")
            raise ComposeError(f"Error response from daemon: failed to start container "
                               f"{name}: {e}") from None
        self.progress("Container", name, "Started")
        self._hooks(ref, name, svc, "post_start")

    def _hooks(self, ref: str, name: str, svc: Service, which: str) -> None:
        """`post_start` or `pre_stop`: each command run to its end in the container; one
        that fails stops what was being done, naming it."""
        hooks = svc.post_start if which == "post_start" else svc.pre_stop
        for h in hooks:
            env = [f"{k}={v}" for k, v in h.environment.items()]
            code, output = self.engine.exec_run(ref, list(h.command), user=h.user,
                                                privileged=h.privileged,
                                                workdir=h.working_dir, env=env)
            if code != 0:
                raise ComposeError(f"container {name}: {which} hook {' '.join(h.command)!r} "
                                   f"exited with code {code}: "
                                   f"{output.decode(errors='replace').strip()}")

    def _inline_files(self, svc: Service, cid: str) -> None:
        """Secrets and configs given as `content` or `environment`: copied into the created
        container (bind mounts serve those from files)."""
        for refs, objs, base in ((svc.secrets, self.project.secrets, "/run/secrets/"),
                                 (svc.configs, self.project.configs, "/")):
            for r in refs:
                obj = objs[r.source]
                if obj.file or (obj.content is None and not obj.environment):
                    continue
                data = self._file_object(obj)
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

    def recreate(self, svc: Service, old: ContainerSummary, image_id: str,
                 opts: UpOptions) -> None:
        """Stop the old container, make the new one under its name (keeping its anonymous
        volumes), remove the old, start the new: as docker compose does."""
        self.progress("Container", old.name, "Recreate")
        state = self.engine.inspect(old.id)
        if state.running:
            self.engine.stop(old.id, opts.timeout)
        self.engine.rename(old.id, f"{old.id[:12]}_{old.name}")
        try:
            self.create(svc, _number(old) or 1, image_id, start=False,
                        anonymous=state.anonymous_volumes)
        except BaseException:
            self.engine.rename(old.id, old.name)
            raise
        self.engine.remove(old.id, force=True)
        self.progress("Container", old.name, "Recreated")
        if not opts.no_start:
            self._start(old.name, old.name, svc)

    # --- waiting -----------------------------------------------------------------------------
    def wait_dependencies(self, svc: Service, started: list[str]) -> None:
        for dep in svc.depends_on:
            if dep.service not in self.project.services or dep.service not in started:
                continue
            if dep.condition is Condition.STARTED:
                continue
            for c in self.containers([dep.service]):
                if dep.condition is Condition.HEALTHY:
                    self._wait_healthy(c)
                else:
                    self._wait_completed(dep.service, c)

    def _wait_healthy(self, c: ContainerSummary, deadline: float = 0.0) -> None:
        self.progress("Container", c.name, "Waiting")
        while True:
            st = self.engine.inspect(c.id)
            if st.health == "healthy":
                self.progress("Container", c.name, "Healthy")
                return
            if st.health == "unhealthy":
                self.progress("Container", c.name, "Error")
                raise ComposeError(f"dependency failed to start: container {c.name} is "
                                   "unhealthy")
            if not st.health:
                raise ComposeError(f"container {c.name} has no healthcheck configured")
            if not st.running:
                self.progress("Container", c.name, "Error")
                raise ComposeError(f"dependency failed to start: container {c.name} exited "
                                   f"({st.exit_code})")
            if deadline and time.monotonic() > deadline:
                raise ComposeError(f"container {c.name} is not healthy in time: "
                                   f"{st.health}")
            time.sleep(self.poll)

    def _wait_completed(self, service: str, c: ContainerSummary) -> None:
        self.progress("Container", c.name, "Waiting")
        while True:
            st = self.engine.inspect(c.id)
            if not st.running and st.status in ("exited", "dead"):
                if st.exit_code != 0:
                    self.progress("Container", c.name, "Error")
                    raise ComposeError(f"service \"{service}\" didn't complete successfully: "
                                       f"exit {st.exit_code}")
                self.progress("Container", c.name, "Exited")
                return
            time.sleep(self.poll)

    def wait_running(self, services: list[str], timeout: float) -> None:
        """`up --wait`: every container running, and healthy where it has a health check."""
        deadline = time.monotonic() + timeout if timeout else 0.0
        for c in self.containers(services):
            svc = self.project.services[c.label(L.SERVICE)]
            while True:
                st = self.engine.inspect(c.id)
                if st.health == "healthy" or (st.running and not st.health):
                    self.progress("Container", c.name, "Healthy" if st.health else "Running")
                    break
                if st.health == "unhealthy":
                    raise ComposeError(f"container {c.name} is unhealthy")
                if not st.running and st.status in ("exited", "dead"):
                    if any(d.condition is Condition.COMPLETED and d.service == svc.name
                           for s in self.project.services.values() for d in s.depends_on):
                        if st.exit_code == 0:
                            break
                    raise ComposeError(f"container {c.name} exited ({st.exit_code})")
                if deadline and time.monotonic() > deadline:
                    raise ComposeError(f"container {c.name} is not running and healthy "
                                       f"after {timeout:g}s")
                time.sleep(self.poll)

    # --- the other verbs ----------------------------------------------------------------------
    def _pre_stop(self, c: ContainerSummary) -> None:
        svc = self.project.services.get(c.label(L.SERVICE))
        if svc is not None and svc.pre_stop and c.state == "running":
            self._hooks(c.id, c.name, svc, "pre_stop")

    def _stop_remove(self, c: ContainerSummary, timeout: int | None,
                     volumes: bool = False) -> None:
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
                users = [s.name for s in self.project.services.values()
                         if name in s.dependencies() and s.name not in seen]
                rank[name] = 1 + max((r(u, (*seen, name)) for u in users), default=-1)
            return rank[name]

        levels: dict[int, list[ContainerSummary]] = {}
        for c in containers:
            svc = c.label(L.SERVICE)
            levels.setdefault(r(svc) if svc in self.project.services else 0, []).append(c)
        return [levels[k] for k in sorted(levels)]

    def _each(self, fn: Callable[[ContainerSummary], None],
              items: list[ContainerSummary]) -> None:
        """fn on every item at once (the daemon stops containers in parallel, as docker
        compose asks it to); the first error is raised once all are done."""
        _parallel(fn, items, self.parallel)

    def down(self, *, volumes: bool = False, remove_orphans: bool = False,
             timeout: int | None = None, rmi: str = "", services: list[str] | None = None,
             ) -> None:
        """Containers (in reverse dependency order), then networks, then (with `volumes`)
        volumes; external ones are never touched. With `services`, only their containers."""
        if services:
            self._check_services(services)
            for level in self._stop_levels(self.containers(services)):
                self._each(lambda c: self._stop_remove(c, timeout, volumes=volumes), level)
            return
        everything = self.containers() + self.containers(oneoff=True)
        if not self.project.services:
            self._down_by_labels(everything, volumes, timeout)
            return
        known = [c for c in everything if c.label(L.SERVICE) in self.project.services]
        orphans = [c for c in everything if c.label(L.SERVICE) not in self.project.services]
        for level in self._stop_levels(known + (orphans if remove_orphans else [])):
            self._each(lambda c: self._stop_remove(c, timeout, volumes=volumes), level)
        if orphans and not remove_orphans:
            self.warn(f"Found orphan containers ({', '.join(c.name for c in orphans)}) for this "
                      "project. If you removed or renamed this service in your compose file, "
                      "you can run this command with the --remove-orphans flag to clean it up.")
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

    def _down_by_labels(self, containers: list[ContainerSummary], volumes: bool,
                        timeout: int | None) -> None:
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
            self.wait_dependencies(svc, names)
            for c in found:
                if c.label(L.SERVICE) == n and c.state not in ("running", "restarting"):
                    self._start(c.id, c.name, svc)

    def restart(self, services: list[str], timeout: int | None = None) -> None:
        self._check_services(services)
        names = self.project.order(services or None)
        # as docker compose: a service whose depends_on says `restart: true` is restarted
        # with what it depends on
        more = True
        while more:
            more = False
            for s in self.project.services.values():
                if s.name not in names and any(d.restart and d.service in names
                                               for d in s.depends_on):
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

    def rm(self, services: list[str], *, stop: bool = False, volumes: bool = False,
           timeout: int | None = None) -> list[ContainerSummary]:
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
