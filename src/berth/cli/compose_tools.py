"""`berth compose` commands that look at and work in a project's containers: ps, logs, ls,
version, top, port, images, wait, build, pull, push, events; and, from `cli.compose_run`
(the ones that run the plain CLI's own commands), exec, run and cp.

Imports `client`, `compose`, `cmdline`, `cli.main`, `cli.compose_common`, `cli.compose_run`.
"""

from __future__ import annotations

import sys

from berth.cli.compose_common import (
    _one_container,
    _orch,
    _ports,
    _stream_lines,
    _table,
    _warn,
)
from berth.cli.compose_run import CpOptions as CpOptions
from berth.cli.compose_run import ExecOptions as ExecOptions
from berth.cli.compose_run import RunOptions as RunOptions
from berth.cli.compose_run import cmd_cp as cmd_cp
from berth.cli.compose_run import cmd_exec as cmd_exec
from berth.cli.compose_run import cmd_run as cmd_run
from berth.cli.main import err, out
from berth.client import Client
from berth.cmdline import (
    Options,
    UsageError,
    boolean,
    integer,
    string,
    strings,
)

TYPE_CHECKING = False  # not typing's: importing typing costs ~5 ms of every compose command
if TYPE_CHECKING:
    from typing import Any


class PsOptions(Options):
    all = boolean(
        "all", "a", help="Show all stopped containers (including those created by the run command)"
    )
    quiet = boolean("quiet", "q", help="Only display IDs")
    services = boolean("services", help="Display services")
    status = strings(
        "status",
        help="Filter services by status. Values: [paused | restarting | "
        "removing | running | dead | created | exited]",
    )
    format = string(
        "format",
        default="table",
        help='Format output using a custom template: "table", "json", "TEMPLATE" (a Go template)',
    )
    no_trunc = boolean("no-trunc", help="Don't truncate output")
    orphans = string(
        "orphans", default="true", help="Include orphaned services (not declared by project)"
    )


def cmd_ps(c: Client, g: Any, opts: Any, args: list[str]) -> int:
    import time

    from berth.compose import labels as L
    from berth.units import human_duration

    o = _orch(c, g, by_name=True)
    found = o.containers(args or None, all=bool(opts.all or opts.status))
    if opts.all:
        found += o.containers(args or None, all=True, oneoff=True)
    if opts.status:
        found = [x for x in found if x.state in opts.status]
    if opts.orphans == "false":
        found = [x for x in found if x.label(L.SERVICE) in o.project.services]
    if opts.quiet:
        for x in found:
            out(x.id)
        return 0
    if opts.services:
        for s in dict.fromkeys(x.label(L.SERVICE) for x in found):
            out(s)
        return 0
    now = time.time()
    rows = [
        {
            "ID": x.id[:12] if not opts.no_trunc else x.id,
            "Name": x.name,
            "Image": x.image,
            "Command": f'"{x.command}"',
            "Project": o.project.name,
            "Service": x.label(L.SERVICE),
            "Created": f"{human_duration(now - x.created)} ago",
            "State": x.state,
            "Status": x.status,
            "Ports": _ports(x.ports),
            "ExitCode": 0,
        }
        for x in found
    ]
    from berth.cli import fmt

    cols = [
        ("NAME", "Name"),
        ("IMAGE", "Image"),
        ("COMMAND", "Command"),
        ("SERVICE", "Service"),
        ("CREATED", "Created"),
        ("STATUS", "Status"),
        ("PORTS", "Ports"),
    ]
    labels = {x.id[:12] if not opts.no_trunc else x.id: x.labels for x in found}
    # table, json (one object a line) or a Go template, as docker compose ps takes
    fmt.render([fmt.Row(r, labels.get(r["ID"])) for r in rows], opts.format, cols)
    return 0


class LogsOptions(Options):
    follow = boolean("follow", "f", help="Follow log output")
    tail = string(
        "tail",
        "n",
        default="all",
        help="Number of lines to show from the end of the logs for each container",
    )
    timestamps = boolean("timestamps", "t", help="Show timestamps")
    no_color = boolean("no-color", help="Produce monochrome output")
    no_log_prefix = boolean("no-log-prefix", help="Don't print prefix in logs")
    since = string("since", default="", help="Show logs since timestamp or relative")
    until = string("until", default="", help="Show logs before a timestamp or relative")
    index = integer(
        "index", default=0, help="index of the container if service has multiple replicas"
    )


def cmd_logs(c: Client, g: Any, opts: Any, args: list[str]) -> int:
    import threading

    from berth.compose import labels as L

    o = _orch(c, g, by_name=True)
    found = o.containers(args or None)
    if opts.index:
        found = [x for x in found if x.label(L.NUMBER) == str(opts.index)]
    width = max((len(x.name) for x in found), default=0)
    colour = sys.stdout.isatty() and not opts.no_color
    lock = threading.Lock()

    def one(i: int, x: Any) -> None:
        prefix = "" if opts.no_log_prefix else f"{x.name:<{width}}  | "
        if colour and prefix:
            prefix = f"\x1b[{31 + i % 6}m{prefix}\x1b[0m"
        st = o.engine.inspect(x.id)
        _stream_lines(
            o.engine.logs(
                x.id,
                follow=opts.follow,
                tail=opts.tail,
                timestamps=opts.timestamps,
                tty=st.tty,
                since=opts.since,
                until=opts.until,
            ),
            prefix,
            lock,
        )

    if not opts.follow:
        for i, x in enumerate(found):
            one(i, x)
        return 0
    threads = [threading.Thread(target=one, args=(i, x), daemon=True) for i, x in enumerate(found)]
    for t in threads:
        t.start()
    try:
        for t in threads:
            t.join()
    except KeyboardInterrupt:
        return 130
    return 0


class LsOptions(Options):
    all = boolean("all", "a", help="Show all stopped Compose projects")
    quiet = boolean("quiet", "q", help="Only display project names")
    format = string("format", default="table", help="Format the output. Values: [table | json]")
    filter = strings("filter", help="Filter output based on conditions provided")


def cmd_ls(c: Client, g: Any, opts: Any, args: list[str]) -> int:
    from berth.compose import labels as L
    from berth.compose.engine import Engine

    found = Engine(c).containers([L.PROJECT], all=bool(opts.all))
    projects: dict[str, dict[str, Any]] = {}
    for x in found:
        p = projects.setdefault(x.label(L.PROJECT), {"states": {}, "files": ""})
        p["states"][x.state] = p["states"].get(x.state, 0) + 1
        p["files"] = p["files"] or x.label(L.CONFIG_FILES)
    rows = [
        {
            "Name": n,
            "Status": ", ".join(f"{s}({k})" for s, k in sorted(p["states"].items())),
            "ConfigFiles": p["files"],
        }
        for n, p in sorted(projects.items())
    ]
    if opts.filter:
        for f in opts.filter:
            k, _, v = f.partition("=")
            if k == "name":
                rows = [r for r in rows if v in r["Name"]]
    if opts.quiet:
        for r in rows:
            out(r["Name"])
        return 0
    if opts.format == "json":
        import json

        out(json.dumps(rows))
        return 0
    _table([("NAME", "Name"), ("STATUS", "Status"), ("CONFIG FILES", "ConfigFiles")], rows)
    return 0


class VersionOptions(Options):
    short = boolean("short", help="Shows only Compose's version number")
    format = string("format", "f", default="", help="Format the output. Values: [pretty | json]")


def cmd_version(c: Client, g: Any, opts: Any, args: list[str]) -> int:
    from berth import __version__
    from berth.compose.labels import COMPOSE_VERSION

    if opts.short:
        out(COMPOSE_VERSION)
    elif opts.format == "json":
        import json

        out(json.dumps({"version": f"v{COMPOSE_VERSION}", "berth": __version__}))
    else:
        out(f"berth compose version v{COMPOSE_VERSION} (berth {__version__})")
    return 0


def cmd_top(c: Client, g: Any, opts: Any, args: list[str]) -> int:
    o = _orch(c, g, by_name=True)
    for x in o.containers(args or None, all=False):
        titles, procs = o.engine.top(x.id)
        out(x.name)
        _table(
            [(t, str(i)) for i, t in enumerate(titles)],
            [{str(i): v for i, v in enumerate(p)} for p in procs],
        )
        out()
    return 0


class PortOptions(Options):
    protocol = string("protocol", default="tcp", help="tcp or udp")
    index = integer(
        "index", default=0, help="Index of the container if service has multiple replicas"
    )


def cmd_port(c: Client, g: Any, opts: Any, args: list[str]) -> int:
    if len(args) != 2:
        raise UsageError('"port" requires exactly 2 arguments.')
    o = _orch(c, g)
    x = _one_container(o, args[0], opts.index)
    for p in x.ports:
        if str(p.private) == args[1] and p.protocol == opts.protocol and p.public:
            out(f"{p.ip}:{p.public}")
            return 0
    err(f"no port {args[1]}/{opts.protocol} for container {x.name}")
    return 1


class ImagesOptions(Options):
    quiet = boolean("quiet", "q", help="Only display IDs")
    format = string("format", default="table", help="Format the output. Values: [table | json]")


def cmd_images(c: Client, g: Any, opts: Any, args: list[str]) -> int:
    from berth.compose import labels as L
    from berth.units import human_size

    o = _orch(c, g, by_name=True)
    rows = []
    for x in o.containers(args or None):
        img = o.engine.image(x.label(L.IMAGE) or x.image)
        repo, _, tag = (
            x.image.rpartition(":")
            if ":" in x.image.rsplit("/", 1)[-1]
            else (x.image, "", "latest")
        )
        rows.append(
            {
                "ContainerName": x.name,
                "Repository": repo or x.image,
                "Tag": tag,
                "ID": (img.id if img else "").removeprefix("sha256:")[:12],
                "Size": human_size(img.size) if img else "",
            }
        )
    if opts.quiet:
        for r in dict.fromkeys(r["ID"] for r in rows):
            out(r)
        return 0
    if opts.format == "json":
        import json

        out(json.dumps(rows))
        return 0
    _table(
        [
            ("CONTAINER", "ContainerName"),
            ("REPOSITORY", "Repository"),
            ("TAG", "Tag"),
            ("IMAGE ID", "ID"),
            ("SIZE", "Size"),
        ],
        rows,
    )
    return 0


class WaitOptions(Options):
    down_project = boolean("down-project", help="Drops project when the first container stops")


def cmd_wait(c: Client, g: Any, opts: Any, args: list[str]) -> int:
    if not args:
        raise UsageError('"wait" requires at least 1 argument.')
    o = _orch(c, g)
    code = 0
    for x in o.containers(args):
        code = o.engine.wait(x.id)
        out(str(code))
        if opts.down_project:
            o.down()
            break
    return code


class BuildOptions(Options):
    no_cache = boolean("no-cache", help="Do not use cache when building the image")
    pull = boolean("pull", help="Always attempt to pull a newer version of the image")
    quiet = boolean("quiet", "q", help="Don't print anything to STDOUT")
    build_arg = strings("build-arg", help="Set build-time variables for services")


def cmd_build(c: Client, g: Any, opts: Any, args: list[str]) -> int:
    o = _orch(c, g, tuple(args))
    for n in o.project.order(args or None):
        svc = o.project.services[n]
        if svc.build is not None and (not args or n in args):
            o.build(svc)
    return 0


class PullOptions(Options):
    ignore_pull_failures = boolean(
        "ignore-pull-failures", help="Pull what it can and ignores images with pull failures"
    )
    quiet = boolean("quiet", "q", help="Pull without printing progress information")
    ignore_buildable = boolean("ignore-buildable", help="Ignore images that can be built")


def cmd_pull(c: Client, g: Any, opts: Any, args: list[str]) -> int:
    from berth.errors import BerthError

    o = _orch(c, g, tuple(args))
    for n in o.project.order(args or None):
        svc = o.project.services[n]
        if not svc.image or (svc.build is not None and opts.ignore_buildable):
            continue
        try:
            o.pull(svc)
        except BerthError as e:
            if not opts.ignore_pull_failures:
                raise
            _warn(str(e))  # as docker compose: reported, and the exit code stays 0
    return 0


class PushOptions(Options):
    ignore_push_failures = boolean(
        "ignore-push-failures", help="Push what it can and ignores images with push failures"
    )
    quiet = boolean("quiet", "q", help="Push without printing progress information")


def cmd_push(c: Client, g: Any, opts: Any, args: list[str]) -> int:
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
            if not opts.ignore_push_failures:
                raise
            _warn(f"{svc.image}: {e}")
            continue
        o.progress("Image", svc.image, "Pushed")
    return 0


class EventsOptions(Options):
    json = boolean("json", help="Output events as a stream of json objects")


def cmd_events(c: Client, g: Any, opts: Any, args: list[str]) -> int:
    import json

    from berth.compose import labels as L

    o = _orch(c, g)
    try:
        for ev in o.engine.events([f"{L.PROJECT}={o.project.name}"]):
            attrs = (ev.get("Actor") or {}).get("Attributes") or {}
            service = attrs.get(L.SERVICE, "")
            if args and service not in args:
                continue
            if opts.json:
                out(
                    json.dumps(
                        {
                            "time": ev.get("time"),
                            "type": ev.get("Type"),
                            "action": ev.get("Action"),
                            "id": (ev.get("Actor") or {}).get("ID"),
                            "service": service,
                            "attributes": attrs,
                        }
                    )
                )
            else:
                out(
                    f"{ev.get('time')} {ev.get('Type')} {ev.get('Action')} "
                    f"{(ev.get('Actor') or {}).get('ID', '')} ({attrs.get('name', '')})"
                )
            sys.stdout.flush()
    except KeyboardInterrupt:
        return 130
    return 0
