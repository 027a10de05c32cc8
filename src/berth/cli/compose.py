"""`berth compose`: the compose commands, their flags and their output. The work is done by
`berth.compose` (loading the project, driving the daemon); this module parses and prints.

Imports `client`, `compose`, `cli.flags`, `cli.common`. Loaded only for `berth compose`: the
YAML and JSON schema libraries come with it, never on another command's path.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import Any

from berth.cli.common import err, out
from berth.cli.flags import Spec, UsageError, flag
from berth.client import Client

Handler = Callable[[Client, dict[str, Any], dict[str, Any], list[str]], int]

COMPOSE = Spec([
    flag("file", "f", "list", help="Compose configuration files"),
    flag("project-name", "p", "str", None, help="Project name"),
    flag("project-directory", kind="str", default=None,
         help="Specify an alternate working directory (default: the path of the, first "
         "specified, Compose file)"),
    flag("env-file", kind="list", help="Specify an alternate environment file"),
    flag("profile", kind="list", help="Specify a profile to enable"),
    flag("ansi", kind="str", default="auto",
         help='Control when to print ANSI control characters ("never"|"always"|"auto")'),
    flag("progress", kind="str", default="auto",
         help='Set type of progress output ("auto"|"tty"|"plain"|"quiet")'),
    flag("parallel", kind="int", default=-1, help="Control max parallelism, -1 for unlimited"),
], interspersed=False)


def _cache_dir() -> str | None:
    """Where validated compose trees are remembered: $XDG_CACHE_HOME/berth/compose-valid."""
    base = os.environ.get("XDG_CACHE_HOME") or (
        os.path.join(os.environ["HOME"], ".cache") if os.environ.get("HOME") else "")
    return os.path.join(base, "berth", "compose-valid") if base else None


def _load(gopts: dict[str, Any], enable: tuple[str, ...] = (), by_name: bool = False) -> Any:
    from berth.compose import ComposeFileError, LoadOptions, load_project
    if by_name and gopts["project-name"] and not gopts["file"]:
        try:
            return _load(gopts, enable)
        except ComposeFileError as e:
            if "no configuration file provided" not in str(e):
                raise
            from pathlib import Path

            from berth.compose.model import Project
            return Project(name=gopts["project-name"], working_dir=Path(os.getcwd()),
                           config_files=(), services={}, networks={}, volumes={},
                           secrets={}, configs={})
    opts = LoadOptions(files=tuple(gopts["file"]), project_name=gopts["project-name"],
                       project_directory=gopts["project-directory"],
                       env_files=tuple(gopts["env-file"]), profiles=tuple(gopts["profile"]),
                       environ=dict(os.environ), cwd=os.getcwd(), enable=enable,
                       cache_dir=_cache_dir())
    project, warnings = load_project(opts)
    for w in warnings:
        err(f"WARN[0000] {w}")
    return project


# --- config ---------------------------------------------------------------------------------

CONFIG = Spec([
    flag("format", kind="str", default="yaml", help='Format the output. Values: [yaml | json]'),
    flag("quiet", "q", help="Only validate the configuration, don't print anything"),
    flag("services", help="Print the service names, one per line"),
    flag("volumes", help="Print the volume names, one per line"),
    flag("networks", help="Print the network names, one per line"),
    flag("profiles", help="Print the profile names, one per line"),
    flag("images", help="Print the image names, one per line"),
    flag("hash", kind="str", default=None, help='Print the service config hash, one per line '
         '("*" for all services)'),
    flag("output", "o", "str", None, help="Save to file (default to stdout)"),
])


def cmd_config(c: Client, g: dict[str, Any], opts: dict[str, Any], args: list[str]) -> int:
    project = _load(g, tuple(args))
    if opts["quiet"]:
        return 0
    if opts["services"]:
        out("\n".join(project.order()))
        return 0
    if opts["volumes"]:
        out("\n".join(project.volumes))
        return 0
    if opts["networks"]:
        out("\n".join(project.networks))
        return 0
    if opts["profiles"]:
        names = sorted({p for s in project.services.values() for p in s.profiles})
        out("\n".join(names))
        return 0
    if opts["images"]:
        out("\n".join(project.services[n].image_name(project.name) for n in project.order()))
        return 0
    if opts["hash"] is not None:
        from berth.compose.labels import config_hash
        names = list(project.services) if opts["hash"] == "*" else opts["hash"].split(",")
        for n in names:
            if n not in project.services:
                raise UsageError(f"no such service: {n}")
            out(f"{n} {config_hash(project.services[n])}")
        return 0
    data = project.canonical
    if args:
        data = {**data, "services": {k: v for k, v in data["services"].items() if k in args}}
    if opts["format"] == "json":
        import json
        text = json.dumps(data, indent=2) + "\n"
    elif opts["format"] == "yaml":
        import yaml
        text = yaml.safe_dump(data, sort_keys=False, default_flow_style=False,
                              allow_unicode=True)
    else:
        raise UsageError(f"unsupported format {opts['format']!r}")
    if opts["output"]:
        with open(opts["output"], "w") as f:
            f.write(text)
    else:
        sys.stdout.write(text)
    return 0



# --- the orchestrator's commands ---------------------------------------------------------------

def _warn(msg: str) -> None:
    err(f"WARN[0000] {msg}")


def _context_tar(context: str, dockerfile: str) -> bytes:
    """A build context as the classic builder takes it, filtered by .dockerignore."""
    import io

    from berth import dockerignore
    from berth.cli.build import _tar_context
    if not os.path.isdir(context):
        raise UsageError(f"unable to prepare context: path {context!r} not found")
    matcher = dockerignore.load(context, os.path.join(context, dockerfile))
    buf = io.BytesIO()
    _tar_context(context, matcher, {".dockerignore", dockerfile}, [], buf)
    return buf.getvalue()


def _orch(c: Client, g: dict[str, Any], enable: tuple[str, ...] = (),
          project: Any = None, by_name: bool = False) -> Any:
    """The orchestrator of the project the flags name. `by_name`: with `-p NAME` and no
    compose file, a project with no services, known by its labels alone (down, ps, logs,
    stop, ... work on it as docker compose's do)."""
    from berth.cli.composeprogress import Progress, mode_for
    from berth.compose.engine import Engine
    from berth.compose.orchestrator import Orchestrator
    if project is None:
        project = _load(g, enable, by_name=by_name)
    progress = Progress(sys.stderr, mode_for(g["progress"], g["ansi"], sys.stderr.isatty()))
    return Orchestrator(project, Engine(c), progress, _warn, _context_tar)


def _timeout(opts: dict[str, Any]) -> int | None:
    t = opts.get("timeout")
    return int(t) if t is not None else None


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


def _stream_lines(pieces: Any, prefix: str, lock: Any) -> None:
    buf = b""
    for _stream, data in pieces:
        buf += data
        while b"\n" in buf:
            line, _, buf = buf.partition(b"\n")
            with lock:
                sys.stdout.write(prefix + line.decode(errors="replace") + "\n")
                sys.stdout.flush()
    if buf:
        with lock:
            sys.stdout.write(prefix + buf.decode(errors="replace") + "\n")
            sys.stdout.flush()


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


PS = Spec([
    flag("all", "a", help="Show all stopped containers (including those created by the run "
         "command)"),
    flag("quiet", "q", help="Only display IDs"),
    flag("services", help="Display services"),
    flag("status", kind="list", help="Filter services by status. Values: [paused | restarting "
         "| removing | running | dead | created | exited]"),
    flag("format", kind="str", default="table", help='Format output using a custom template: '
         '"table", "json"'),
    flag("no-trunc", help="Don't truncate output"),
    flag("orphans", kind="str", default="true", help="Include orphaned services (not declared "
         "by project)"),
])


def _ports(ports: Any) -> str:
    shown = []
    for p in sorted(ports, key=lambda p: (p.private, p.ip)):
        if p.public:
            shown.append(f"{p.ip}:{p.public}->{p.private}/{p.protocol}")
        else:
            shown.append(f"{p.private}/{p.protocol}")
    return ", ".join(dict.fromkeys(shown))


def cmd_ps(c: Client, g: dict[str, Any], opts: dict[str, Any], args: list[str]) -> int:
    import time

    from berth.compose import labels as L
    from berth.units import human_duration
    o = _orch(c, g, by_name=True)
    found = o.containers(args or None, all=bool(opts["all"] or opts["status"]))
    if opts["all"]:
        found += o.containers(args or None, all=True, oneoff=True)
    if opts["status"]:
        found = [x for x in found if x.state in opts["status"]]
    if opts["orphans"] == "false":
        found = [x for x in found if x.label(L.SERVICE) in o.project.services]
    if opts["quiet"]:
        for x in found:
            out(x.id)
        return 0
    if opts["services"]:
        for s in dict.fromkeys(x.label(L.SERVICE) for x in found):
            out(s)
        return 0
    now = time.time()
    rows = [{"ID": x.id[:12] if not opts["no-trunc"] else x.id, "Name": x.name,
             "Image": x.image, "Command": f'"{x.command}"', "Project": o.project.name,
             "Service": x.label(L.SERVICE), "Created": f"{human_duration(now - x.created)} ago",
             "State": x.state, "Status": x.status, "Ports": _ports(x.ports),
             "ExitCode": 0} for x in found]
    if opts["format"] == "json":
        import json
        for r in rows:
            out(json.dumps(r))
        return 0
    if opts["format"] != "table":
        raise UsageError(f"unsupported format {opts['format']!r}: table or json")
    cols = [("NAME", "Name"), ("IMAGE", "Image"), ("COMMAND", "Command"),
            ("SERVICE", "Service"), ("CREATED", "Created"), ("STATUS", "Status"),
            ("PORTS", "Ports")]
    _table(cols, rows)
    return 0


def _table(cols: list[tuple[str, str]], rows: list[dict[str, Any]]) -> None:
    widths = [max([len(h)] + [len(str(r[k])) for r in rows]) for h, k in cols]
    out("   ".join(h.ljust(w) for (h, _), w in zip(cols, widths, strict=True)).rstrip())
    for r in rows:
        out("   ".join(str(r[k]).ljust(w)
                       for (_, k), w in zip(cols, widths, strict=True)).rstrip())


LOGS = Spec([
    flag("follow", "f", help="Follow log output"),
    flag("tail", "n", "str", "all", help="Number of lines to show from the end of the logs "
         "for each container"),
    flag("timestamps", "t", help="Show timestamps"),
    flag("no-color", help="Produce monochrome output"),
    flag("no-log-prefix", help="Don't print prefix in logs"),
    flag("since", kind="str", default="", help="Show logs since timestamp or relative"),
    flag("until", kind="str", default="", help="Show logs before a timestamp or relative"),
    flag("index", kind="int", default=0, help="index of the container if service has multiple "
         "replicas"),
])


def cmd_logs(c: Client, g: dict[str, Any], opts: dict[str, Any], args: list[str]) -> int:
    import threading

    from berth.compose import labels as L
    o = _orch(c, g, by_name=True)
    found = o.containers(args or None)
    if opts["index"]:
        found = [x for x in found if x.label(L.NUMBER) == str(opts["index"])]
    width = max((len(x.name) for x in found), default=0)
    colour = sys.stdout.isatty() and not opts["no-color"]
    lock = threading.Lock()

    def one(i: int, x: Any) -> None:
        prefix = "" if opts["no-log-prefix"] else f"{x.name:<{width}}  | "
        if colour and prefix:
            prefix = f"\x1b[{31 + i % 6}m{prefix}\x1b[0m"
        st = o.engine.inspect(x.id)
        _stream_lines(o.engine.logs(x.id, follow=opts["follow"], tail=opts["tail"],
                                    timestamps=opts["timestamps"], tty=st.tty,
                                    since=opts["since"], until=opts["until"]), prefix, lock)

    if not opts["follow"]:
        for i, x in enumerate(found):
            one(i, x)
        return 0
    threads = [threading.Thread(target=one, args=(i, x), daemon=True)
               for i, x in enumerate(found)]
    for t in threads:
        t.start()
    try:
        for t in threads:
            t.join()
    except KeyboardInterrupt:
        return 130
    return 0


def _one_container(o: Any, service: str, index: int) -> Any:
    from berth.compose import labels as L
    if service not in o.project.services:
        raise UsageError(f"no such service: {service}")
    found = [x for x in o.containers([service], all=False)
             if x.label(L.NUMBER) == str(index or 1)]
    if not found:
        from berth.errors import NotFound
        raise NotFound(f"service \"{service}\" is not running")
    return found[0]


EXEC = Spec([
    flag("detach", "d", help="Detached mode: Run command in the background"),
    flag("env", "e", "list", help="Set environment variables"),
    flag("index", kind="int", default=0, help="Index of the container if service has multiple "
         "replicas"),
    flag("no-TTY", "T", help="Disable pseudo-TTY allocation. By default `berth compose exec` "
         "allocates a TTY."),
    flag("privileged", help="Give extended privileges to the process"),
    flag("user", "u", "str", "", help="Run the command as this user"),
    flag("workdir", "w", "str", "", help="Path to workdir directory for this command"),
    flag("interactive", "i", default=True, help="Keep STDIN open even if not attached"),
], interspersed=False)


def cmd_exec(c: Client, g: dict[str, Any], opts: dict[str, Any], args: list[str]) -> int:
    if len(args) < 2:
        raise UsageError('"exec" requires at least 2 arguments.')
    from berth.cli import attach
    o = _orch(c, g)
    x = _one_container(o, args[0], opts["index"])
    argv: list[str] = []
    tty = not opts["no-TTY"] and sys.stdin.isatty()
    if opts["detach"]:
        argv.append("-d")
    else:
        argv.append("-i")
        if tty:
            argv.append("-t")
    for e in opts["env"]:
        argv += ["-e", e]
    if opts["user"]:
        argv += ["-u", opts["user"]]
    if opts["workdir"]:
        argv += ["-w", opts["workdir"]]
    if opts["privileged"]:
        argv.append("--privileged")
    eopts, pos = attach.EXEC.parse([*argv, x.id, *args[1:]])
    return attach.cmd_exec(c, eopts, pos)


RUN = Spec([
    flag("detach", "d", help="Run container in background and print container ID"),
    flag("rm", help="Automatically remove the container when it exits"),
    flag("env", "e", "list", help="Set environment variables"),
    flag("no-deps", help="Don't start linked services"),
    flag("no-TTY", "T", help="Disable pseudo-TTY allocation (default: auto-detected)"),
    flag("name", kind="str", default="", help="Assign a name to the container"),
    flag("entrypoint", kind="str", default=None, help="Override the entrypoint of the image"),
    flag("user", "u", "str", "", help="Run as specified username or uid"),
    flag("workdir", "w", "str", "", help="Working directory inside the container"),
    flag("service-ports", help="Run command with all service's ports enabled and mapped to "
         "the host"),
    flag("interactive", "i", default=True, help="Keep STDIN open even if not attached"),
    flag("build", help="Build image before starting container"),
    flag("volume", "v", "list", help="Bind mount a volume"),
    flag("publish", "p", "list", help="Publish a container's port(s) to the host"),
    flag("label", "l", "list", help="Add or override a label"),
    flag("quiet-pull", help="Pull without printing progress information"),
], interspersed=False)


def cmd_run(c: Client, g: dict[str, Any], opts: dict[str, Any], args: list[str]) -> int:
    import dataclasses
    import secrets

    from berth.cli import attach
    from berth.compose import labels as L
    from berth.compose.orchestrator import UpOptions
    from berth.compose.spec import container_body, endpoint
    if not args:
        raise UsageError('"run" requires at least 1 argument.')
    o = _orch(c, g, (args[0],))
    name = args[0]
    if name not in o.project.services:
        raise UsageError(f"no such service: {name}")
    svc = o.project.services[name]
    deps = [d for d in o.project.order([name]) if d != name]
    if deps and not opts["no-deps"]:
        o.up(UpOptions(services=deps, no_recreate=True))
    else:
        o.ensure_networks([name])
        o.ensure_volumes([name])
    tty = not opts["no-TTY"] and sys.stdin.isatty()
    changes: dict[str, Any] = {"tty": tty, "stdin_open": True}
    if opts["entrypoint"] is not None:
        import shlex
        changes["entrypoint"] = tuple(shlex.split(opts["entrypoint"]))
    if opts["user"]:
        changes["user"] = opts["user"]
    if opts["workdir"]:
        changes["working_dir"] = opts["workdir"]
    if not opts["service-ports"]:
        changes["ports"] = ()
    if opts["publish"]:
        from berth.compose.model import Port
        from berth.compose.normalize import parse_ports
        changes["ports"] = tuple(changes.get("ports", svc.ports)) + tuple(
            Port(target=int(x["target"]), published=str(x.get("published") or ""),
                 host_ip=str(x.get("host_ip") or ""), protocol=str(x["protocol"]))
            for x in parse_ports(list(opts["publish"]), "--publish"))
    if opts["volume"]:
        from pathlib import Path

        from berth.compose.model import Mount, MountType
        from berth.compose.normalize import parse_volume
        extra_mounts = []
        for v in opts["volume"]:
            m = parse_volume(v, Path(os.getcwd()), "--volume")
            if m["type"] == "volume" and m.get("source") and \
                    m["source"] not in o.project.volumes:
                raise UsageError(f"invalid volume {v!r}: {m['source']} is not a volume of "
                                 "the project")
            extra_mounts.append(Mount(type=MountType(m["type"]), target=m["target"],
                                      source=str(m.get("source") or ""),
                                      read_only=bool(m.get("read_only", False))))
        kept = [m for m in svc.mounts if m.target not in {x.target for x in extra_mounts}]
        changes["mounts"] = tuple(kept + extra_mounts)
    if opts["label"]:
        changes["labels"] = {**svc.labels, **dict(
            x.split("=", 1) if "=" in x else (x, "") for x in opts["label"])}
    svc = dataclasses.replace(svc, **changes)
    image_id = o.image_id(svc, UpOptions(build=opts["build"]))
    cname = opts["name"] or L.oneoff_name(o.project, svc, secrets.token_hex(6))
    extra = dict(e.split("=", 1) if "=" in e else (e, os.environ.get(e, ""))
                 for e in opts["env"])
    body = container_body(o.project, svc, 1, image_id, cname, oneoff=True,
                          command=args[1:] or None, extra_env=extra,
                          container_of=o.container_of)
    if svc.networks and not svc.network_mode:
        net = o.project.networks[svc.networks[0].name].name
        body["NetworkingConfig"] = {"EndpointsConfig": {net: endpoint(svc, svc.networks[0].name,
                                                                      cname)}}
    body["AttachStdin"] = body["AttachStdout"] = body["AttachStderr"] = not opts["detach"]
    body["StdinOnce"] = not opts["detach"]
    if opts["rm"]:
        body["HostConfig"]["AutoRemove"] = True
    cid = o.engine.create(cname, body)
    if opts["detach"]:
        o.engine.start(cid)
        out(cid)
        return 0
    sopts, pos = attach.START.parse(["-a", "-i", cid])
    return attach.cmd_start(c, sopts, pos)


def cmd_ls(c: Client, g: dict[str, Any], opts: dict[str, Any], args: list[str]) -> int:
    from berth.compose import labels as L
    from berth.compose.engine import Engine
    found = Engine(c).containers([L.PROJECT], all=bool(opts["all"]))
    projects: dict[str, dict[str, Any]] = {}
    for x in found:
        p = projects.setdefault(x.label(L.PROJECT), {"states": {}, "files": ""})
        p["states"][x.state] = p["states"].get(x.state, 0) + 1
        p["files"] = p["files"] or x.label(L.CONFIG_FILES)
    rows = [{"Name": n, "Status": ", ".join(f"{s}({k})" for s, k in sorted(p["states"].items())),
             "ConfigFiles": p["files"]} for n, p in sorted(projects.items())]
    if opts["filter"]:
        for f in opts["filter"]:
            k, _, v = f.partition("=")
            if k == "name":
                rows = [r for r in rows if v in r["Name"]]
    if opts["quiet"]:
        for r in rows:
            out(r["Name"])
        return 0
    if opts["format"] == "json":
        import json
        out(json.dumps(rows))
        return 0
    _table([("NAME", "Name"), ("STATUS", "Status"), ("CONFIG FILES", "ConfigFiles")], rows)
    return 0


LS = Spec([flag("all", "a", help="Show all stopped Compose projects"),
           flag("quiet", "q", help="Only display project names"),
           flag("format", kind="str", default="table", help='Format the output. Values: '
                '[table | json]'),
           flag("filter", kind="list", help="Filter output based on conditions provided")])


VERSION = Spec([flag("short", help="Shows only Compose's version number"),
                flag("format", "f", "str", "", help='Format the output. Values: [pretty | '
                     'json]')])


def cmd_version(c: Client, g: dict[str, Any], opts: dict[str, Any], args: list[str]) -> int:
    from berth import __version__
    from berth.compose.labels import COMPOSE_VERSION
    if opts["short"]:
        out(COMPOSE_VERSION)
    elif opts["format"] == "json":
        import json
        out(json.dumps({"version": f"v{COMPOSE_VERSION}", "berth": __version__}))
    else:
        out(f"berth compose version v{COMPOSE_VERSION} (berth {__version__})")
    return 0


def cmd_top(c: Client, g: dict[str, Any], opts: dict[str, Any], args: list[str]) -> int:
    o = _orch(c, g, by_name=True)
    for x in o.containers(args or None, all=False):
        titles, procs = o.engine.top(x.id)
        out(x.name)
        _table([(t, str(i)) for i, t in enumerate(titles)],
               [{str(i): v for i, v in enumerate(p)} for p in procs])
        out()
    return 0


PORT = Spec([flag("protocol", kind="str", default="tcp", help="tcp or udp"),
             flag("index", kind="int", default=0, help="Index of the container if service has "
                  "multiple replicas")])


def cmd_port(c: Client, g: dict[str, Any], opts: dict[str, Any], args: list[str]) -> int:
    if len(args) != 2:
        raise UsageError('"port" requires exactly 2 arguments.')
    o = _orch(c, g)
    x = _one_container(o, args[0], opts["index"])
    for p in x.ports:
        if str(p.private) == args[1] and p.protocol == opts["protocol"] and p.public:
            out(f"{p.ip}:{p.public}")
            return 0
    err(f"no port {args[1]}/{opts['protocol']} for container {x.name}")
    return 1


IMAGES = Spec([flag("quiet", "q", help="Only display IDs"),
               flag("format", kind="str", default="table", help='Format the output. Values: '
                    '[table | json]')])


def cmd_images(c: Client, g: dict[str, Any], opts: dict[str, Any], args: list[str]) -> int:
    from berth.compose import labels as L
    from berth.units import human_size
    o = _orch(c, g, by_name=True)
    rows = []
    for x in o.containers(args or None):
        img = o.engine.image(x.label(L.IMAGE) or x.image)
        repo, _, tag = x.image.rpartition(":") if ":" in x.image.rsplit("/", 1)[-1] else (
            x.image, "", "latest")
        rows.append({"ContainerName": x.name, "Repository": repo or x.image, "Tag": tag,
                     "ID": (img.id if img else "").removeprefix("sha256:")[:12],
                     "Size": human_size(img.size) if img else ""})
    if opts["quiet"]:
        for r in dict.fromkeys(r["ID"] for r in rows):
            out(r)
        return 0
    if opts["format"] == "json":
        import json
        out(json.dumps(rows))
        return 0
    _table([("CONTAINER", "ContainerName"), ("REPOSITORY", "Repository"), ("TAG", "Tag"),
            ("IMAGE ID", "ID"), ("SIZE", "Size")], rows)
    return 0


WAIT = Spec([flag("down-project", help="Drops project when the first container stops")])


def cmd_wait(c: Client, g: dict[str, Any], opts: dict[str, Any], args: list[str]) -> int:
    if not args:
        raise UsageError('"wait" requires at least 1 argument.')
    o = _orch(c, g)
    code = 0
    for x in o.containers(args):
        code = o.engine.wait(x.id)
        out(str(code))
        if opts["down-project"]:
            o.down()
            break
    return code


BUILD = Spec([flag("no-cache", help="Do not use cache when building the image"),
              flag("pull", help="Always attempt to pull a newer version of the image"),
              flag("quiet", "q", help="Don't print anything to STDOUT"),
              flag("build-arg", kind="list", help="Set build-time variables for services")])


def cmd_build(c: Client, g: dict[str, Any], opts: dict[str, Any], args: list[str]) -> int:
    o = _orch(c, g, tuple(args))
    for n in o.project.order(args or None):
        svc = o.project.services[n]
        if svc.build is not None and (not args or n in args):
            o.build(svc)
    return 0


PULL = Spec([flag("ignore-pull-failures", help="Pull what it can and ignores images with pull "
                  "failures"),
             flag("quiet", "q", help="Pull without printing progress information"),
             flag("ignore-buildable", help="Ignore images that can be built")])


def cmd_pull(c: Client, g: dict[str, Any], opts: dict[str, Any], args: list[str]) -> int:
    from berth.errors import BerthError
    o = _orch(c, g, tuple(args))
    code = 0
    for n in o.project.order(args or None):
        svc = o.project.services[n]
        if not svc.image or (svc.build is not None and opts["ignore-buildable"]):
            continue
        try:
            o.pull(svc)
        except BerthError as e:
            if not opts["ignore-pull-failures"]:
                raise
            _warn(str(e))
            code = 0
    return code


PUSH = Spec([flag("ignore-push-failures", help="Push what it can and ignores images with push "
                  "failures"),
             flag("quiet", "q", help="Push without printing progress information")])


def cmd_push(c: Client, g: dict[str, Any], opts: dict[str, Any], args: list[str]) -> int:
    from berth.errors import BerthError
    o = _orch(c, g, tuple(args))
    for n in o.project.order(args or None):
        svc = o.project.services[n]
        if not svc.image:
            continue
        o.progress("Image", svc.image, "Pushing")
        try:
            for msg in o.engine.push(svc.image):
                if msg.get("error"):
                    raise BerthError(msg["error"])
        except BerthError as e:
            if not opts["ignore-push-failures"]:
                raise
            _warn(f"{svc.image}: {e}")
            continue
        o.progress("Image", svc.image, "Pushed")
    return 0


EVENTS = Spec([flag("json", help="Output events as a stream of json objects")])


def cmd_events(c: Client, g: dict[str, Any], opts: dict[str, Any], args: list[str]) -> int:
    import json

    from berth.compose import labels as L
    o = _orch(c, g)
    try:
        for ev in o.engine.events([f"{L.PROJECT}={o.project.name}"]):
            attrs = (ev.get("Actor") or {}).get("Attributes") or {}
            service = attrs.get(L.SERVICE, "")
            if args and service not in args:
                continue
            if opts["json"]:
                out(json.dumps({"time": ev.get("time"), "type": ev.get("Type"),
                                "action": ev.get("Action"), "id": (ev.get("Actor") or {}).get(
                                    "ID"), "service": service, "attributes": attrs}))
            else:
                out(f"{ev.get('time')} {ev.get('Type')} {ev.get('Action')} "
                    f"{(ev.get('Actor') or {}).get('ID', '')} ({attrs.get('name', '')})")
            sys.stdout.flush()
    except KeyboardInterrupt:
        return 130
    return 0


CP = Spec([flag("index", kind="int", default=0, help="Index of the container if service has "
                "multiple replicas"),
           flag("archive", "a", help="Archive mode (copy all uid/gid information)"),
           flag("follow-link", "L", help="Always follow symbol link in SRC_PATH")])


def cmd_cp(c: Client, g: dict[str, Any], opts: dict[str, Any], args: list[str]) -> int:
    """`cp SERVICE:SRC DEST` / `cp SRC SERVICE:DEST`: berth cp on the service's container."""
    if len(args) != 2:
        raise UsageError('"cp" requires exactly 2 arguments.')
    from berth.cli import cp
    o = _orch(c, g)
    conv = []
    for a in args:
        svc, colon, path = a.partition(":")
        if colon and svc in o.project.services:
            conv.append(f"{_one_container(o, svc, opts['index']).id}:{path}")
        else:
            conv.append(a)
    flags = (["-a"] if opts["archive"] else []) + (["-L"] if opts["follow-link"] else [])
    copts, pos = cp.CP.parse([*flags, *conv])
    return cp.cmd_cp(c, copts, pos)


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


# --- the table --------------------------------------------------------------------------------

# name -> (its flags, its handler, its arguments, its help)
SUBCOMMANDS: dict[str, tuple[Spec, Handler, str, str]] = {
    "build": (BUILD, cmd_build, "[OPTIONS] [SERVICE...]", "Build or rebuild services"),
    "config": (CONFIG, cmd_config, "[OPTIONS] [SERVICE...]",
               "Parse, resolve and render compose file in canonical format"),
    "cp": (CP, cmd_cp, "[OPTIONS] SERVICE:SRC_PATH DEST_PATH|-",
           "Copy files/folders between a service container and the local filesystem"),
    "create": (CREATE, cmd_create, "[OPTIONS] [SERVICE...]",
               "Creates containers for a service"),
    "down": (DOWN, cmd_down, "[OPTIONS] [SERVICES]", "Stop and remove containers, networks"),
    "events": (EVENTS, cmd_events, "[OPTIONS] [SERVICE...]",
               "Receive real time events from containers"),
    "exec": (EXEC, cmd_exec, "[OPTIONS] SERVICE COMMAND [ARGS...]",
             "Execute a command in a running container"),
    "images": (IMAGES, cmd_images, "[OPTIONS] [SERVICE...]",
               "List images used by the created containers"),
    "kill": (KILL, cmd_kill, "[OPTIONS] [SERVICE...]", "Force stop service containers"),
    "logs": (LOGS, cmd_logs, "[OPTIONS] [SERVICE...]", "View output from containers"),
    "ls": (LS, cmd_ls, "[OPTIONS]", "List running compose projects"),
    "pause": (Spec([]), cmd_pause, "[SERVICE...]", "Pause services"),
    "port": (PORT, cmd_port, "[OPTIONS] SERVICE PRIVATE_PORT",
             "Print the public port for a port binding"),
    "ps": (PS, cmd_ps, "[OPTIONS] [SERVICE...]", "List containers"),
    "pull": (PULL, cmd_pull, "[OPTIONS] [SERVICE...]", "Pull service images"),
    "push": (PUSH, cmd_push, "[OPTIONS] [SERVICE...]", "Push service images"),
    "restart": (TIMEOUT, cmd_restart, "[OPTIONS] [SERVICE...]",
                "Restart service containers"),
    "rm": (RM, cmd_rm, "[OPTIONS] [SERVICE...]", "Removes stopped service containers"),
    "run": (RUN, cmd_run, "[OPTIONS] SERVICE [COMMAND] [ARGS...]",
            "Run a one-off command on a service"),
    "start": (Spec([]), cmd_start, "[SERVICE...]", "Start services"),
    "stop": (TIMEOUT, cmd_stop, "[OPTIONS] [SERVICE...]", "Stop services"),
    "top": (Spec([]), cmd_top, "[SERVICES...]", "Display the running processes"),
    "unpause": (Spec([]), cmd_unpause, "[SERVICE...]", "Unpause services"),
    "up": (UP, cmd_up, "[OPTIONS] [SERVICE...]", "Create and start containers"),
    "version": (VERSION, cmd_version, "[OPTIONS]", "Show the berth compose version information"),
    "watch": (WATCH, cmd_watch, "[SERVICE...]",
              "Watch build context for service and rebuild/refresh containers when files are "
              "updated"),
    "wait": (WAIT, cmd_wait, "SERVICE [SERVICE...] [OPTIONS]",
             "Block until containers of all (or specified) services stop."),
}


def usage() -> str:
    lines = ["Usage:  berth compose [OPTIONS] COMMAND", "", "Define and run multi-container "
             "applications with berth", "", "Options:", COMPOSE.usage(), "", "Commands:"]
    for name, (_, _, _, h) in SUBCOMMANDS.items():
        lines.append(f"  {name:<10} {h}")
    lines += ["", "Run 'berth compose COMMAND --help' for more information on a command."]
    return "\n".join(lines)


def cmd_compose(c: Client, gopts: dict[str, Any], args: list[str]) -> int:
    """`berth compose [OPTIONS] COMMAND [ARGS...]`."""
    from berth.errors import BerthError
    if not args or args[0] in ("help", "--help", "-h"):
        out(usage())
        return 0
    sub = args[0]
    entry = SUBCOMMANDS.get(sub)
    if entry is None:
        err(f"berth: unknown command: berth compose {sub}\n\nRun 'berth compose --help' for "
            "more information")
        return 1
    spec, fn, argline, h = entry
    if args[1:2] in (["--help"], ["-h"]):
        text = f"Usage:  berth compose {sub} {argline}\n\n{h}"
        if spec.flags:
            text += f"\n\nOptions:\n{spec.usage()}"
        out(text)
        return 0
    try:
        opts, pos = spec.parse(args[1:])
    except UsageError as e:
        err(f"{e}\nSee 'berth compose {sub} --help'.")
        return 1
    from berth.compose import ComposeFileError
    from berth.compose.orchestrator import ComposeError
    try:
        return fn(c, gopts, opts, pos)
    except (ComposeFileError, ComposeError) as e:
        err(str(e))
        return 1
    except BerthError as e:
        if str(e).startswith("no such service"):
            err(str(e))
            return 1
        raise
