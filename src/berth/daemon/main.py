"""berthd: wiring of the services, the fork server, start-up and shutdown.

Imports everything below it. The flags and daemon.json are `config`, the modes of the roots
`roots`, `GET /info` is `info`, the API's listeners `listeners`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import resource
import signal
import socket
import sys
import time
from typing import Any

from aiohttp import web

from berth import __version__, cgroups, storage, ui
from berth.api import Api
from berth.builder import Builder
from berth.containers import Config as ContainersConfig
from berth.containers import ContainerService
from berth.containers.buildrunner import BuildRunner
from berth.containers.execs import ExecService
from berth.containers.health import HealthChecker
from berth.content import ContentStore
from berth.daemon import listeners
from berth.daemon.config import DaemonConfig, log_defaults, parse_args
from berth.daemon.info import system_info
from berth.daemon.roots import close_roots, lock_data_root
from berth.errors import BerthError, InvalidArgument, System
from berth.events import EventBus
from berth.images import ImageService, ImageUser
from berth.images.distribution import Distribution
from berth.metadata import MetadataStore
from berth.networks import NetConfig, NetworkService
from berth.registry import RegistryClient, RegistryOptions
from berth.shim.launch import start_forkserver
from berth.volumes import VolumeService

log = logging.getLogger("berthd")

# how often the packet filter rules are checked (and put back if flushed under the daemon)
RULES_CHECK_INTERVAL = 5.0


class Daemon:
    def __init__(self, cfg: DaemonConfig) -> None:
        self.cfg = cfg
        self.started = time.time()
        # before anything reads or cleans the data root: a second daemon on it is refused
        self.root_lock = lock_data_root(cfg.data_root)
        close_roots(cfg)
        self.meta = MetadataStore(os.path.join(cfg.data_root, "berth.db"))
        self.content = ContentStore(os.path.join(cfg.data_root, "content"))
        self.content.clean_ingest()
        shift = (cfg.idmap[0], cfg.idmap[1]) if cfg.idmap else (0, 0)
        self.layers = storage.LayerStore(
            os.path.join(cfg.data_root, "storage"), self.content, shift
        )
        self.layers.clean()
        driver_name = cfg.storage_driver or (
            "overlay2" if storage.overlay_supported(cfg.data_root) else "vfs"
        )
        self.driver = storage.make_driver(driver_name, os.path.join(cfg.data_root, "storage"))
        self.driver.shift = shift
        self.events = EventBus()
        self.images = ImageService(self.meta, self.content, self.layers, emit=self._emit)
        self.forkserver_sock = os.path.join(cfg.exec_root, "forkserver.sock")
        self.ui_url_file = os.path.join(cfg.exec_root, "ui-url")  # --ui's URL, 0600
        self.networks = NetworkService(
            self.meta,
            NetConfig(
                bridge=cfg.bridge,
                bip=cfg.bip,
                iptables=cfg.iptables,
                ip_forward=cfg.ip_forward,
                ipv6=cfg.ipv6,
                fixed_cidr_v6=cfg.fixed_cidr_v6,
                run_dir=os.path.join(cfg.exec_root, "networks"),
            ),
            emit=self._emit,
        )
        self.volumes = VolumeService(
            self.meta, os.path.join(cfg.data_root, "volumes"), owner=shift, emit=self._emit
        )
        self.networks.load()
        self.containers = ContainerService(
            ContainersConfig(
                data_root=cfg.data_root,
                exec_root=cfg.exec_root,
                forkserver=self.forkserver_sock,
                cgroup_parent=cfg.cgroup_parent,
                dns=cfg.dns,
                dns_search=cfg.dns_search,
                dns_options=cfg.dns_opts,
                runtime=cfg.default_runtime,
                runtimes=dict(cfg.runtimes),
                idmap=cfg.idmap,
                init_path=cfg.init_path,
                cdi_spec_dirs=cfg.cdi_spec_dirs,
                **log_defaults(cfg.log_opts),
            ),
            self.meta,
            self.images,
            self.driver,
            emit=self._emit,
            volumes=self.volumes,
            networks=self.networks,
        )
        self.images.containers_using = lambda image_id: [
            ImageUser(c["Id"], bool(c["State"]["Running"]))
            for c in self.containers.containers_using(image_id)
        ]
        self.images.layers_in_use = self.containers.layers_in_use
        self.execs = ExecService(self.containers)
        self.containers.on_remove.append(self.execs.forget_container)
        self.health = HealthChecker(self.containers, self.execs)
        self.registry = RegistryClient(
            RegistryOptions(
                mirrors=cfg.registry_mirrors,
                insecure=cfg.insecure_registries,
                certs_dir=cfg.certs_dir,
                docker_hub=cfg.docker_hub,
            )
        )
        self.distribution = Distribution(self.images, self.registry, emit=self._emit)
        self.builder = Builder(
            self.images,
            BuildRunner(self.containers),
            data_root=cfg.data_root,
            pull=self.distribution.pull,
            entitlements=cfg.insecure_entitlements,
        )
        self.api = Api(
            containers=self.containers,
            images=self.images,
            info=self.info,
            execs=self.execs,
            events=self.events,
            distribution=self.distribution,
            builder=self.builder,
            networks=self.networks,
            volumes=self.volumes,
        )
        self.forkserver: asyncio.subprocess.Process | None = None
        self.loop: asyncio.AbstractEventLoop | None = None  # run() sets it
        self.cri: Any = None  # berth.cri's server, with --cri-socket
        self.nofile_soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]  # main() sets it

    def _emit(self, typ: str, action: str, actor: str, attrs: dict[str, str]) -> None:
        log.debug("event %s %s %s %s", typ, action, actor[:12], attrs)
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            # a service's blocking method in a worker thread (rmi, volume rm, load): the bus's
            # subscriber queues are the loop's, and an asyncio.Queue is not thread-safe
            if self.loop is not None:
                with contextlib.suppress(RuntimeError):  # the loop has closed: no one listens
                    self.loop.call_soon_threadsafe(
                        self.events.publish, typ, action, actor, dict(attrs)
                    )
                    return
        self.events.publish(typ, action, actor, attrs)

    def info(self) -> dict[str, Any]:
        """`GET /info`."""
        return system_info(self)

    async def start_forkserver(self) -> None:
        self.forkserver = await start_forkserver(self.forkserver_sock, self.nofile_soft)

    async def run(self) -> None:
        self.loop = asyncio.get_running_loop()
        for path in self.cfg.socket_paths:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                probe.connect(path)
            except OSError:
                pass
            else:
                raise InvalidArgument(f"another daemon answers on {path}: stop it first")
            finally:
                probe.close()
        tcp = [h for h in self.cfg.hosts if h.startswith("tcp://")]
        ssl_ctx = listeners.server_context(self.cfg.tls) if tcp and self.cfg.tls else None
        for h in tcp:
            # as dockerd (loadListeners): the warnings, and the wait, before anything listens
            await listeners.warn_insecure(h, self.cfg.tls, self.cfg.tls_explicit)
        # another berthd on our bridge or chains is refused before anything is touched: its
        # exit would tear them down under us (and ours under it)
        self.networks.claim()
        await self.start_forkserver()
        await asyncio.to_thread(self.networks.setup)
        watcher = asyncio.create_task(self._watch_rules()) if self.cfg.iptables else None
        await self.containers.restore()
        await self.containers.start_restartable()
        if self.cfg.cri_socket:
            from berth.cri.service import CriConfig, start_cri  # grpc: only when asked for

            self.cri = await start_cri(
                CriConfig(
                    socket=self.cfg.cri_socket,
                    data_root=self.cfg.data_root,
                    cni_conf_dir=self.cfg.cni_conf_dir,
                    cni_bin_dirs=self.cfg.cni_bin_dirs,
                ),
                containers=self.containers,
                execs=self.execs,
                images=self.images,
                distribution=self.distribution,
                events=self.events,
            )
        # streams that never end on their own (events, logs -f) must not hold up a shutdown
        runner = web.AppRunner(
            self.api.app(), access_log=None, handle_signals=False, shutdown_timeout=1.0
        )
        await runner.setup()
        runners = [runner]
        owned: list[tuple[str, tuple[int, int]]] = []
        for h in self.cfg.hosts:
            site: web.SockSite
            if h.startswith("tcp://"):
                sock = listeners.bind_tcp(h)
                site = (
                    listeners.TLSSite(runner, sock, ssl_context=ssl_ctx)
                    if ssl_ctx
                    else web.SockSite(runner, sock)
                )
            else:
                path = h[len("unix://") :]
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(path)
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                sock.bind(path)
                os.chmod(path, 0o660)
                st = os.stat(path)
                # the inode number alone does not say the socket is still ours at shutdown:
                # a daemon started after us may have bound the path again and got the same
                # number back
                owned.append((path, (st.st_ino, st.st_ctime_ns)))
                site = web.SockSite(runner, sock)
            await site.start()
            log.info(
                "API listen on %s%s",
                h[len("unix://") :] if h.startswith("unix://") else h[len("tcp://") :],
                " (TLS)" if h.startswith("tcp://") and ssl_ctx else "",
            )
        if self.cfg.ui is not None:
            ui_runner, _gate = await ui.start(
                self.cfg.ui,
                containers=self.containers,
                images=self.images,
                execs=self.execs,
                events=self.events,
                networks=self.networks,
                volumes=self.volumes,
                distribution=self.distribution,
                ssl_context=listeners.server_context(self.cfg.tls) if self.cfg.tls else None,
                url_file=self.ui_url_file,
            )
            runners.append(ui_runner)
        if self.cfg.pidfile:
            with open(self.cfg.pidfile, "w") as f:
                f.write(str(os.getpid()))
        log.info(
            "berthd %s listening on %s (storage %s, cgroup v%s)",
            __version__,
            ", ".join(self.cfg.hosts),
            self.driver.name,
            "2" if cgroups.is_v2() else "1",
        )
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for s in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(s, stop.set)
        try:
            await stop.wait()
        finally:
            log.info("shutting down; running containers are left running (live restore)")
            if watcher is not None:
                watcher.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await watcher
            await self._shutdown(runners, owned)

    async def _watch_rules(self) -> None:
        """Every RULES_CHECK_INTERVAL seconds, the rules are put back if a firewall reload or
        an `iptables -F` removed them (dockerd does it on firewalld's reload signal; without
        firewalld nothing tells a daemon, so it looks)."""
        while True:
            await asyncio.sleep(RULES_CHECK_INTERVAL)
            try:
                await asyncio.to_thread(self.networks.check_rules)
            except Exception:  # noqa: BLE001 - the daemon's edge: log, look again later
                log.exception("putting the iptables rules back failed")

    async def _shutdown(
        self, runners: list[web.AppRunner], owned: list[tuple[str, tuple[int, int]]]
    ) -> None:
        """Every step runs, whatever the one before it did."""

        async def step(what: str, coro: Any) -> None:
            t0 = time.monotonic()
            try:
                await coro
            except Exception:  # noqa: BLE001 - the daemon's edge: log, go on
                log.exception("shutdown: %s failed", what)
            log.debug("shutdown: %s took %.3f s", what, time.monotonic() - t0)

        async def unlink_own() -> None:
            # a daemon started after us may have bound the path again: leave its socket be
            for path, sock_id in owned:
                with contextlib.suppress(FileNotFoundError):
                    st = os.stat(path)
                    if (st.st_ino, st.st_ctime_ns) == sock_id:
                        os.unlink(path)
            if self.cfg.pidfile:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(self.cfg.pidfile)
            if self.cfg.ui is not None:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(self.ui_url_file)

        async def stop_forkserver() -> None:
            if self.forkserver and self.forkserver.returncode is None:
                self.forkserver.kill()
                await self.forkserver.wait()

        async def networks_down() -> None:
            if not self.containers.counts()["ContainersRunning"]:
                # nothing runs on them: bridges and rules go, to be made again at start
                await asyncio.to_thread(self.networks.teardown)

        for runner in runners:
            await step("http server", runner.cleanup())
        if self.cri is not None:
            await step("CRI server", self.cri.stop())
        await step("containers", self.containers.close())
        await step("registry client", self.registry.close())
        await step("fork server", stop_forkserver())
        await step("socket and pidfile", unlink_own())
        await step(
            "cgroup parent", asyncio.to_thread(cgroups.remove_parent, self.cfg.cgroup_parent)
        )
        await step("networks", networks_down())
        self.meta.close()


def raise_nofile() -> int:
    """Raise the soft RLIMIT_NOFILE to the hard limit, as dockerd and containerd do: the
    daemon holds sockets, pipes and proxied connections by the thousand. Returns the soft
    limit it had, which the fork server gives back to monitors and containers."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = hard
    if want == resource.RLIM_INFINITY:  # the kernel caps open files at nr_open anyway
        with open("/proc/sys/fs/nr_open") as f:
            want = int(f.read())
    if soft != resource.RLIM_INFINITY and soft < want:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
        except (ValueError, OSError) as e:
            log.warning("cannot raise RLIMIT_NOFILE from %d to %d: %s", soft, want, e)
    return soft


def main(argv: list[str] | None = None) -> None:
    cfg = parse_args(sys.argv[1:] if argv is None else argv)
    level = {"warn": "WARNING", "fatal": "CRITICAL"}.get(cfg.log_level, cfg.log_level.upper())
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if os.geteuid() != 0:
        print("berthd: must run as root", file=sys.stderr)
        sys.exit(1)
    nofile = raise_nofile()
    try:
        try:
            daemon = Daemon(cfg)
        except OSError as e:
            # the roots cannot be made or written (read-only, full, not a directory): say
            # so in words, as dockerd does, not with a traceback
            raise System(
                f"cannot start with data root {cfg.data_root} and exec root {cfg.exec_root}: {e}"
            ) from None
        daemon.nofile_soft = nofile
        asyncio.run(daemon.run())
    except BerthError as e:
        print(f"berthd: {e}", file=sys.stderr)
        sys.exit(1)


# DaemonConfig and parse_args are config's, named here for berthd's callers
__all__ = ["Daemon", "DaemonConfig", "main", "parse_args", "raise_nofile"]


if __name__ == "__main__":
    main()
