"""`berth compose` commands that bring a project up and down: up (attached too), create,
down, start, stop, restart, kill, pause, unpause, rm, watch.

Imports `client`, `compose`, `cli.flags`, `cli.common`, `cli.compose_common`.
"""

from __future__ import annotations

import sys

from berth.cli.common import err
from berth.cli.compose_common import _orch, _stream_lines, _timeout
from berth.cli.flags import Spec, UsageError, flag
from berth.client import Client

TYPE_CHECKING = False  # not typing's: importing typing costs ~5 ms of every compose command
if TYPE_CHECKING:
    from typing import Any

UP = Spec([
    flag("detach", "d", help="Detached mode: Run containers in the background"),
    flag("build", help="Build images before starting containers"),
    flag("no-build", help="Don't build an image, even if it's policy"),
    flag("pull", kind="str", default="", help='Pull image before running ("always"|"missing"|'
         '"never")'),
    flag("force-recreate", help="Recreate containers even if their configuration and image "
         "haven't changed"),
    flag("no-recreate", help="If containers already exist, don't recreate them"),
    flag("no-deps", help="Don't start linked services"),
    flag("no-start", help="Don't start the services after creating them"),
    flag("remove-orphans", help="Remove containers for services not defined in the Compose "
         "file"),
    flag("scale", kind="list", help="Scale SERVICE to NUM instances. Overrides the `scale` "
         "setting in the Compose file if present"),
    flag("wait", help="Wait for services to be running|healthy. Implies detached mode"),
    flag("wait-timeout", kind="int", default=0, help="Maximum duration in seconds to wait for "
         "the project to be running|healthy"),
    flag("timeout", "t", "int", None, help="Use this timeout in seconds for container shutdown "
         "when attached or when containers are already running"),
    flag("abort-on-container-exit", help="Stops all containers if any container was stopped. "
         "Incompatible with -d"),
    flag("exit-code-from", kind="str", default="", help="Return the exit code of the selected "
         "service container. Implies --abort-on-container-exit"),
    flag("no-color", help="Produce monochrome output"),
    flag("no-log-prefix", help="Don't print prefix in logs"),
    flag("timestamps", help="Show timestamps"),
    flag("quiet-pull", help="Pull without printing progress information"),
    flag("watch", "w", help="Watch source code and rebuild/refresh containers when files are "
         "updated."),
])


def _up_options(opts: dict[str, Any], args: list[str]) -> Any:
    from berth.compose.orchestrator import UpOptions
    scale = {}
    for s in opts.get("scale") or []:
        name, eq, num = s.partition("=")
        if not eq or not num.isdigit():
            raise UsageError(f"invalid --scale value: {s!r} (SERVICE=NUM)")
        scale[name] = int(num)
    if opts.get("force-recreate") and opts.get("no-recreate"):
        raise UsageError("--force-recreate and --no-recreate are incompatible")
    if opts.get("build") and opts.get("no-build"):
        raise UsageError("--build and --no-build are incompatible")
    return UpOptions(services=list(args), force_recreate=bool(opts.get("force-recreate")),
                     no_recreate=bool(opts.get("no-recreate")),
                     no_deps=bool(opts.get("no-deps")), no_start=bool(opts.get("no-start")),
                     remove_orphans=bool(opts.get("remove-orphans")),
                     build=bool(opts.get("build")), no_build=bool(opts.get("no-build")),
                     pull=opts.get("pull") or "", scale=scale, wait=bool(opts.get("wait")),
                     wait_timeout=float(opts.get("wait-timeout") or 0),
                     timeout=_timeout(opts))


def cmd_up(c: Client, g: dict[str, Any], opts: dict[str, Any], args: list[str]) -> int:
    if opts["exit-code-from"]:
        opts["abort-on-container-exit"] = True
    if opts["detach"] and opts["abort-on-container-exit"]:
        raise UsageError('"-d" and "--abort-on-container-exit" cannot be combined.')
    o = _orch(c, g, tuple(args))
    up = _up_options(opts, args)
    watcher = None
    if opts["watch"]:
        from berth.compose.watch import Watcher
        watcher = Watcher(o, list(args), lambda m: err(m))
    o.up(up)
    if watcher is not None:
        import threading
        stop = threading.Event()
        t = threading.Thread(target=watcher.run, args=(stop.is_set,), daemon=True)
        t.start()
        if opts["detach"]:
            try:
                t.join()
            except KeyboardInterrupt:
                stop.set()
            return 0
    if opts["detach"] or opts["wait"] or opts["no-start"]:
        return 0
    names = o.project.order(args or None)
    return _attached(c, o, names, opts)


def _attached(c: Client, o: Any, names: list[str], opts: dict[str, Any]) -> int:
    """`up` without -d: the containers' logs, prefixed, until they all exit (or one does with
    --abort-on-container-exit); Ctrl-C stops them."""
    import queue
    import threading

    from berth.compose import labels as L
    containers = [x for x in o.containers(names)
                  if o.project.services.get(x.label(L.SERVICE)) is None
                  or o.project.services[x.label(L.SERVICE)].attach]
    width = max((len(x.name) for x in containers), default=0)
    colour = sys.stdout.isatty() and not opts.get("no-color")
    lock = threading.Lock()
    ended: queue.Queue[tuple[str, str]] = queue.Queue()

    def follow(idx: int, cid: str, name: str, service: str) -> None:
        prefix = "" if opts.get("no-log-prefix") else f"{name:<{width}}  | "
        if colour and prefix:
            prefix = f"\x1b[{31 + idx % 6}m{prefix}\x1b[0m"
        try:
            st = o.engine.inspect(cid)
            _stream_lines(o.engine.logs(cid, follow=True, tail="all",
                                        timestamps=bool(opts.get("timestamps")), tty=st.tty),
                          prefix, lock)
        except Exception:  # noqa: BLE001 - a container gone mid-stream ends its stream
            pass
        ended.put((cid, service))

    threads = []
    for i, x in enumerate(containers):
        t = threading.Thread(target=follow, args=(i, x.id, x.name, x.label(L.SERVICE)),
                             daemon=True)
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
            if opts.get("exit-code-from") == service or (
                    not opts.get("exit-code-from") and opts.get("abort-on-container-exit")):
                code = st.exit_code
            if opts.get("abort-on-container-exit"):
                err("Aborting on container exit...")
                o.stop(names, _timeout(opts))
                break
    except KeyboardInterrupt:
        err("Gracefully stopping... (press Ctrl+C again to force)")
        o.stop(names, _timeout(opts))
        return 130
    return code


CREATE = Spec([f for f in UP.flags if f.long in (
    "build", "no-build", "pull", "force-recreate", "no-recreate", "remove-orphans", "scale",
    "quiet-pull")])


def cmd_create(c: Client, g: dict[str, Any], opts: dict[str, Any], args: list[str]) -> int:
    o = _orch(c, g, tuple(args))
    up = _up_options(opts, args)
    up.no_start = True
    o.up(up)
    return 0


DOWN = Spec([
    flag("volumes", "v", help="Remove named volumes declared in the \"volumes\" section of the "
         "Compose file and anonymous volumes attached to containers"),
    flag("remove-orphans", help="Remove containers for services not defined in the Compose "
         "file"),
    flag("rmi", kind="str", default="", help='Remove images used by services. "local" remove '
         'only images that don\'t have a custom tag ("local"|"all")'),
    flag("timeout", "t", "int", None, help="Specify a shutdown timeout in seconds"),
])


def cmd_down(c: Client, g: dict[str, Any], opts: dict[str, Any], args: list[str]) -> int:
    o = _orch(c, g, by_name=True)
    o.down(volumes=opts["volumes"], remove_orphans=opts["remove-orphans"],
           timeout=_timeout(opts), rmi=opts["rmi"], services=args)
    return 0


TIMEOUT = Spec([flag("timeout", "t", "int", None, help="Specify a shutdown timeout in seconds")])


def cmd_stop(c: Client, g: dict[str, Any], opts: dict[str, Any], args: list[str]) -> int:
    _orch(c, g, by_name=True).stop(args, _timeout(opts))
    return 0


def cmd_restart(c: Client, g: dict[str, Any], opts: dict[str, Any], args: list[str]) -> int:
    _orch(c, g, by_name=True).restart(args, _timeout(opts))
    return 0


def cmd_start(c: Client, g: dict[str, Any], opts: dict[str, Any], args: list[str]) -> int:
    _orch(c, g, by_name=True).start(args)
    return 0


KILL = Spec([flag("signal", "s", "str", "SIGKILL", help="SIGNAL to send to the container"),
             flag("remove-orphans", help="Remove containers for services not defined in the "
                  "Compose file")])


def cmd_kill(c: Client, g: dict[str, Any], opts: dict[str, Any], args: list[str]) -> int:
    _orch(c, g, by_name=True).kill(args, opts["signal"])
    return 0


def cmd_pause(c: Client, g: dict[str, Any], opts: dict[str, Any], args: list[str]) -> int:
    _orch(c, g, by_name=True).pause(args)
    return 0


def cmd_unpause(c: Client, g: dict[str, Any], opts: dict[str, Any], args: list[str]) -> int:
    _orch(c, g, by_name=True).unpause(args)
    return 0


RM = Spec([flag("force", "f", help="Don't ask to confirm removal"),
           flag("stop", "s", help="Stop the containers, if required, before removing"),
           flag("volumes", "v", help="Remove any anonymous volumes attached to containers")])


def cmd_rm(c: Client, g: dict[str, Any], opts: dict[str, Any], args: list[str]) -> int:
    o = _orch(c, g, by_name=True)
    running = ("running", "restarting", "paused")
    doomed = [x for x in o.containers(args or None) if opts["stop"] or x.state not in running]
    if not doomed:
        err("No stopped containers")
        return 0
    if not opts["force"] and sys.stdin.isatty():
        sys.stderr.write(f"Going to remove {', '.join(x.name for x in doomed)}\n"
                         "? Are you sure? [yN] ")
        sys.stderr.flush()
        if sys.stdin.readline().strip().lower() not in ("y", "yes"):
            return 0
    o.rm(args, stop=opts["stop"], volumes=opts["volumes"])
    return 0


WATCH = Spec([flag("no-up", help="Do not build & start services before watching"),
              flag("quiet", help="hide build output"),
              flag("prune", default=True, help="Prune dangling images on rebuild")])


def cmd_watch(c: Client, g: dict[str, Any], opts: dict[str, Any], args: list[str]) -> int:
    """Applies the services' `develop.watch` rules as files change, until Ctrl-C."""
    from berth.compose.watch import Watcher
    o = _orch(c, g, tuple(args))
    watcher = Watcher(o, list(args), lambda m: err(m))
    if not opts["no-up"]:
        o.up(_up_options({}, args))
    try:
        watcher.run()
    except KeyboardInterrupt:
        pass
    return 0

