"""`berth compose` commands that bring a project up and down: up (attached too), create,
down, start, stop, restart, kill, pause, unpause, rm, watch.

Imports `client`, `compose`, `cmdline`, `cli.main`, `cli.compose_common`.
"""

from __future__ import annotations

import sys

from berth.cli.compose_common import _orch, _stream_lines, _timeout
from berth.cli.main import err
from berth.client import Client
from berth.cmdline import (
    Options,
    UsageError,
    boolean,
    integer,
    optional_integer,
    string,
    strings,
)

TYPE_CHECKING = False  # not typing's: importing typing costs ~5 ms of every compose command
if TYPE_CHECKING:
    from typing import Any


class ComposeUpOptions(Options):
    detach = boolean("detach", "d", help="Detached mode: Run containers in the background")
    build = boolean("build", help="Build images before starting containers")
    no_build = boolean("no-build", help="Don't build an image, even if it's policy")
    pull = string("pull", default="", help='Pull image before running ("always"|"missing"|"never")')
    force_recreate = boolean(
        "force-recreate",
        help="Recreate containers even if their configuration and image haven't changed",
    )
    no_recreate = boolean("no-recreate", help="If containers already exist, don't recreate them")
    no_deps = boolean("no-deps", help="Don't start linked services")
    no_start = boolean("no-start", help="Don't start the services after creating them")
    remove_orphans = boolean(
        "remove-orphans", help="Remove containers for services not defined in the Compose file"
    )
    scale = strings(
        "scale",
        help="Scale SERVICE to NUM instances. Overrides the `scale` setting "
        "in the Compose file if present",
    )
    wait = boolean("wait", help="Wait for services to be running|healthy. Implies detached mode")
    wait_timeout = integer(
        "wait-timeout",
        default=0,
        help="Maximum duration in seconds to wait for the project to be running|healthy",
    )
    timeout = optional_integer(
        "timeout",
        "t",
        help="Use this timeout in seconds for container "
        "shutdown when attached or when containers "
        "are already running",
    )
    abort_on_container_exit = boolean(
        "abort-on-container-exit",
        help="Stops all containers if any container was stopped. Incompatible with -d",
    )
    exit_code_from = string(
        "exit-code-from",
        default="",
        help="Return the exit code of the "
        "selected service container. "
        "Implies --abort-on-container-exit",
    )
    no_color = boolean("no-color", help="Produce monochrome output")
    no_log_prefix = boolean("no-log-prefix", help="Don't print prefix in logs")
    timestamps = boolean("timestamps", help="Show timestamps")
    quiet_pull = boolean("quiet-pull", help="Pull without printing progress information")
    watch = boolean(
        "watch",
        "w",
        help="Watch source code and rebuild/refresh containers when files are updated.",
    )


def _up_options(opts: object, args: list[str]) -> Any:
    """The orchestrator's plan from up's (or create's, or nothing's) flags."""
    from berth.compose.orchestrator import UpOptions as Plan

    def get(name: str) -> Any:
        return getattr(opts, name, None)

    scale = {}
    for s in get("scale") or []:
        name, eq, num = s.partition("=")
        if not eq or not num.isdigit():
            raise UsageError(f"invalid --scale value: {s!r} (SERVICE=NUM)")
        scale[name] = int(num)
    if get("force_recreate") and get("no_recreate"):
        raise UsageError("--force-recreate and --no-recreate are incompatible")
    if get("build") and get("no_build"):
        raise UsageError("--build and --no-build are incompatible")
    return Plan(
        services=list(args),
        force_recreate=bool(get("force_recreate")),
        no_recreate=bool(get("no_recreate")),
        no_deps=bool(get("no_deps")),
        no_start=bool(get("no_start")),
        remove_orphans=bool(get("remove_orphans")),
        build=bool(get("build")),
        no_build=bool(get("no_build")),
        pull=get("pull") or "",
        scale=scale,
        wait=bool(get("wait")),
        wait_timeout=float(get("wait_timeout") or 0),
        timeout=_timeout(opts),
    )


def cmd_up(c: Client, g: Any, opts: Any, args: list[str]) -> int:
    if opts.exit_code_from:
        opts.abort_on_container_exit = True
    if opts.detach and opts.abort_on_container_exit:
        raise UsageError('"-d" and "--abort-on-container-exit" cannot be combined.')
    o = _orch(c, g, tuple(args))
    up = _up_options(opts, args)
    watcher = None
    if opts.watch:
        from berth.compose.watch import Watcher

        watcher = Watcher(o, list(args), lambda m: err(m))
    o.up(up)
    if watcher is not None:
        import threading

        stop = threading.Event()
        t = threading.Thread(target=watcher.run, args=(stop.is_set,), daemon=True)
        t.start()
        if opts.detach:
            try:
                t.join()
            except KeyboardInterrupt:
                stop.set()
            return 0
    if opts.detach or opts.wait or opts.no_start:
        return 0
    names = o.project.order(args or None)
    return _attached(c, o, names, opts)


def cmd_up_remembered(c: Client, g: Any, opts: Any, args: list[str]) -> int:
    """A plain `up -d`, as cmd_up runs it, that then remembers what it converged on for the
    next one's fast path (compose.upcache)."""
    from berth.cli.compose_common import _up_cache_entry, load_noted

    project, inputs, warnings = load_noted(g)
    o = _orch(c, g, project=project)
    o.up(_up_options(opts, args))
    path = _up_cache_entry(g)
    if path is not None:
        from berth.compose.labels import config_hash
        from berth.compose.upcache import save

        save(path, inputs, project, warnings, config_hash)
    return 0


def _attached(c: Client, o: Any, names: list[str], opts: Any) -> int:
    """`up` without -d: the containers' logs, prefixed, until they all exit (or one does with
    --abort-on-container-exit); Ctrl-C stops them."""
    import queue
    import threading

    from berth.compose import labels as L

    containers = [
        x
        for x in o.containers(names)
        if o.project.services.get(x.label(L.SERVICE)) is None
        or o.project.services[x.label(L.SERVICE)].attach
    ]
    width = max((len(x.name) for x in containers), default=0)
    colour = sys.stdout.isatty() and not opts.no_color
    lock = threading.Lock()
    ended: queue.Queue[tuple[str, str]] = queue.Queue()

    def follow(idx: int, cid: str, name: str, service: str) -> None:
        prefix = "" if opts.no_log_prefix else f"{name:<{width}}  | "
        if colour and prefix:
            prefix = f"\x1b[{31 + idx % 6}m{prefix}\x1b[0m"
        try:
            st = o.engine.inspect(cid)
            _stream_lines(
                o.engine.logs(
                    cid, follow=True, tail="all", timestamps=bool(opts.timestamps), tty=st.tty
                ),
                prefix,
                lock,
            )
        except Exception:  # noqa: BLE001 - a container gone mid-stream ends its stream
            pass
        ended.put((cid, service))

    threads = []
    for i, x in enumerate(containers):
        t = threading.Thread(target=follow, args=(i, x.id, x.name, x.label(L.SERVICE)), daemon=True)
        t.start()
        threads.append(t)
    code = 0
    try:
        left = len(threads)
        while left:
            cid, service = ended.get()
            left -= 1
            st = o.engine.inspect(cid)
            with lock:
                sys.stdout.write(f"{st.name} exited with code {st.exit_code}\n")
                sys.stdout.flush()
            if opts.exit_code_from == service or (
                not opts.exit_code_from and opts.abort_on_container_exit
            ):
                code = st.exit_code
            if opts.abort_on_container_exit:
                err("Aborting on container exit...")
                o.stop(names, _timeout(opts))
                break
    except KeyboardInterrupt:
        err("Gracefully stopping... (press Ctrl+C again to force)")
        o.stop(names, _timeout(opts))
        return 130
    return code


class CreateOptions(Options):
    build = ComposeUpOptions.build
    no_build = ComposeUpOptions.no_build
    pull = ComposeUpOptions.pull
    force_recreate = ComposeUpOptions.force_recreate
    no_recreate = ComposeUpOptions.no_recreate
    remove_orphans = ComposeUpOptions.remove_orphans
    scale = ComposeUpOptions.scale
    quiet_pull = ComposeUpOptions.quiet_pull


def cmd_create(c: Client, g: Any, opts: Any, args: list[str]) -> int:
    o = _orch(c, g, tuple(args))
    up = _up_options(opts, args)
    up.no_start = True
    o.up(up)
    return 0


class DownOptions(Options):
    volumes = boolean(
        "volumes",
        "v",
        help='Remove named volumes declared in the "volumes" '
        "section of the Compose file and anonymous volumes "
        "attached to containers",
    )
    remove_orphans = boolean(
        "remove-orphans", help="Remove containers for services not defined in the Compose file"
    )
    rmi = string(
        "rmi",
        default="",
        help='Remove images used by services. "local" remove only '
        'images that don\'t have a custom tag ("local"|"all")',
    )
    timeout = optional_integer("timeout", "t", help="Specify a shutdown timeout in seconds")


def cmd_down(c: Client, g: Any, opts: Any, args: list[str]) -> int:
    o = _orch(c, g, by_name=True)
    o.down(
        volumes=opts.volumes,
        remove_orphans=opts.remove_orphans,
        timeout=_timeout(opts),
        rmi=opts.rmi,
        services=args,
    )
    return 0


class TimeoutOptions(Options):
    timeout = optional_integer("timeout", "t", help="Specify a shutdown timeout in seconds")


def cmd_stop(c: Client, g: Any, opts: Any, args: list[str]) -> int:
    _orch(c, g, by_name=True).stop(args, _timeout(opts))
    return 0


def cmd_restart(c: Client, g: Any, opts: Any, args: list[str]) -> int:
    _orch(c, g, by_name=True).restart(args, _timeout(opts))
    return 0


def cmd_start(c: Client, g: Any, opts: Any, args: list[str]) -> int:
    _orch(c, g, by_name=True).start(args)
    return 0


class KillOptions(Options):
    signal = string("signal", "s", default="SIGKILL", help="SIGNAL to send to the container")
    remove_orphans = boolean(
        "remove-orphans", help="Remove containers for services not defined in the Compose file"
    )


def cmd_kill(c: Client, g: Any, opts: Any, args: list[str]) -> int:
    _orch(c, g, by_name=True).kill(args, opts.signal)
    return 0


def cmd_pause(c: Client, g: Any, opts: Any, args: list[str]) -> int:
    _orch(c, g, by_name=True).pause(args)
    return 0


def cmd_unpause(c: Client, g: Any, opts: Any, args: list[str]) -> int:
    _orch(c, g, by_name=True).unpause(args)
    return 0


class RmOptions(Options):
    force = boolean("force", "f", help="Don't ask to confirm removal")
    stop = boolean("stop", "s", help="Stop the containers, if required, before removing")
    volumes = boolean("volumes", "v", help="Remove any anonymous volumes attached to containers")


def cmd_rm(c: Client, g: Any, opts: Any, args: list[str]) -> int:
    o = _orch(c, g, by_name=True)
    running = ("running", "restarting", "paused")
    doomed = [x for x in o.containers(args or None) if opts.stop or x.state not in running]
    if not doomed:
        err("No stopped containers")
        return 0
    if not opts.force and sys.stdin.isatty():
        sys.stderr.write(
            f"Going to remove {', '.join(x.name for x in doomed)}\n? Are you sure? [yN] "
        )
        sys.stderr.flush()
        if sys.stdin.readline().strip().lower() not in ("y", "yes"):
            return 0
    o.rm(args, stop=opts.stop, volumes=opts.volumes)
    return 0


class WatchOptions(Options):
    no_up = boolean("no-up", help="Do not build & start services before watching")
    quiet = boolean("quiet", help="hide build output")
    prune = boolean("prune", default=True, help="Prune dangling images on rebuild")


def cmd_watch(c: Client, g: Any, opts: Any, args: list[str]) -> int:
    """Applies the services' `develop.watch` rules as files change, until Ctrl-C."""
    from berth.compose.watch import Watcher

    o = _orch(c, g, tuple(args))
    watcher = Watcher(o, list(args), lambda m: err(m))
    if not opts.no_up:
        o.up(_up_options(None, args))
    try:
        watcher.run()
    except KeyboardInterrupt:
        pass
    return 0
