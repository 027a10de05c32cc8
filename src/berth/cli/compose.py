"""`berth compose`: the compose commands, their flags and their output. The work is done by
`berth.compose` (loading the project, driving the daemon); this module parses and prints.

Imports `client`, `compose`, `cli.flags`, `cli.common` and the other compose modules of the
CLI (compose_common, compose_up, compose_tools). Loaded only for `berth compose`: the YAML and
JSON schema libraries come with it, never on another command's path.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

from berth.cli import compose_tools as T
from berth.cli import compose_up as U
from berth.cli.common import err, out
from berth.cli.compose_common import _load
from berth.cli.flags import Spec, UsageError, flag
from berth.client import Client

TYPE_CHECKING = False  # not typing's: importing typing costs ~5 ms of every compose command
if TYPE_CHECKING:
    from typing import Any

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


SUBCOMMANDS: dict[str, tuple[Spec, Handler, str, str]] = {
    "build": (T.BUILD, T.cmd_build, "[OPTIONS] [SERVICE...]", "Build or rebuild services"),
    "config": (CONFIG, cmd_config, "[OPTIONS] [SERVICE...]",
               "Parse, resolve and render compose file in canonical format"),
    "cp": (T.CP, T.cmd_cp, "[OPTIONS] SERVICE:SRC_PATH DEST_PATH|-",
           "Copy files/folders between a service container and the local filesystem"),
    "create": (U.CREATE, U.cmd_create, "[OPTIONS] [SERVICE...]",
               "Creates containers for a service"),
    "down": (U.DOWN, U.cmd_down, "[OPTIONS] [SERVICES]", "Stop and remove containers, networks"),
    "events": (T.EVENTS, T.cmd_events, "[OPTIONS] [SERVICE...]",
               "Receive real time events from containers"),
    "exec": (T.EXEC, T.cmd_exec, "[OPTIONS] SERVICE COMMAND [ARGS...]",
             "Execute a command in a running container"),
    "images": (T.IMAGES, T.cmd_images, "[OPTIONS] [SERVICE...]",
               "List images used by the created containers"),
    "kill": (U.KILL, U.cmd_kill, "[OPTIONS] [SERVICE...]", "Force stop service containers"),
    "logs": (T.LOGS, T.cmd_logs, "[OPTIONS] [SERVICE...]", "View output from containers"),
    "ls": (T.LS, T.cmd_ls, "[OPTIONS]", "List running compose projects"),
    "pause": (Spec([]), U.cmd_pause, "[SERVICE...]", "Pause services"),
    "port": (T.PORT, T.cmd_port, "[OPTIONS] SERVICE PRIVATE_PORT",
             "Print the public port for a port binding"),
    "ps": (T.PS, T.cmd_ps, "[OPTIONS] [SERVICE...]", "List containers"),
    "pull": (T.PULL, T.cmd_pull, "[OPTIONS] [SERVICE...]", "Pull service images"),
    "push": (T.PUSH, T.cmd_push, "[OPTIONS] [SERVICE...]", "Push service images"),
    "restart": (U.TIMEOUT, U.cmd_restart, "[OPTIONS] [SERVICE...]",
                "Restart service containers"),
    "rm": (U.RM, U.cmd_rm, "[OPTIONS] [SERVICE...]", "Removes stopped service containers"),
    "run": (T.RUN, T.cmd_run, "[OPTIONS] SERVICE [COMMAND] [ARGS...]",
            "Run a one-off command on a service"),
    "start": (Spec([]), U.cmd_start, "[SERVICE...]", "Start services"),
    "stop": (U.TIMEOUT, U.cmd_stop, "[OPTIONS] [SERVICE...]", "Stop services"),
    "top": (Spec([]), T.cmd_top, "[SERVICES...]", "Display the running processes"),
    "unpause": (Spec([]), U.cmd_unpause, "[SERVICE...]", "Unpause services"),
    "up": (U.UP, U.cmd_up, "[OPTIONS] [SERVICE...]", "Create and start containers"),
    "version": (T.VERSION, T.cmd_version, "[OPTIONS]", "Show the berth compose version information"),
    "watch": (U.WATCH, U.cmd_watch, "[SERVICE...]",
              "Watch build context for service and rebuild/refresh containers when files are "
              "updated"),
    "wait": (T.WAIT, T.cmd_wait, "SERVICE [SERVICE...] [OPTIONS]",
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

