"""`berth compose`: the compose commands, their flags and their output. The work is done by
`berth.compose` (loading the project, driving the daemon); this module parses and prints.

Imports `client`, `compose`, `cmdline`, `cli.main` and the other compose modules of the
CLI (compose_common, compose_up, compose_tools). Loaded only for `berth compose`: the YAML and
JSON schema libraries come with it, never on another command's path.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

from berth.cli.main import err, out
from berth.client import Client
from berth.cmdline import (
    Options,
    UsageError,
    boolean,
    integer,
    optional_string,
    string,
    strings,
)

TYPE_CHECKING = False  # not typing's: importing typing costs ~5 ms of every compose command
if TYPE_CHECKING:
    from typing import Any

    Handler = Callable[[Client, Any, Any, list[str]], int]


class ComposeOptions(Options):
    INTERSPERSED = False
    file = strings("file", "f", help="Compose configuration files")
    project_name = optional_string("project-name", "p", help="Project name")
    project_directory = optional_string(
        "project-directory",
        help="Specify an alternate working "
        "directory (default: the path "
        "of the, first specified, "
        "Compose file)",
    )
    env_file = strings("env-file", help="Specify an alternate environment file")
    profile = strings("profile", help="Specify a profile to enable")
    ansi = string(
        "ansi",
        default="auto",
        help='Control when to print ANSI control characters ("never"|"always"|"auto")',
    )
    progress = string(
        "progress",
        default="auto",
        help='Set type of progress output ("auto"|"tty"|"plain"|"quiet")',
    )
    parallel = integer("parallel", default=-1, help="Control max parallelism, -1 for unlimited")


class ConfigOptions(Options):
    format = string("format", default="", help="Format the output. Values: [yaml | json]")
    quiet = boolean("quiet", "q", help="Only validate the configuration, don't print anything")
    services = boolean("services", help="Print the service names, one per line")
    volumes = boolean("volumes", help="Print the volume names, one per line")
    networks = boolean("networks", help="Print the network names, one per line")
    profiles = boolean("profiles", help="Print the profile names, one per line")
    images = boolean("images", help="Print the image names, one per line")
    hash = optional_string(
        "hash", help='Print the service config hash, one per line ("*" for all services)'
    )
    output = optional_string("output", "o", help="Save to file (default to stdout)")
    no_interpolate = boolean("no-interpolate", help="Don't interpolate environment variables")
    variables = boolean("variables", help="Print model variables and default values.")


def _print_variables(variables: dict[str, Any], fmt: str) -> None:
    """`config --variables`: docker compose's table (the docker CLI's tabwriter: columns at
    least 20 wide, 3 apart), or its JSON or YAML of the variables by name."""
    names = sorted(variables)
    if fmt == "json":
        import json

        sys.stdout.write(
            json.dumps(
                {
                    n: {
                        "Name": n,
                        "DefaultValue": variables[n].default,
                        "PresenceValue": variables[n].alternate,
                        "Required": variables[n].required,
                    }
                    for n in names
                },
                separators=(",", ":"),
            )
            + "\n"
        )
        return
    if fmt == "yaml":
        import yaml

        sys.stdout.write(
            yaml.safe_dump(
                {
                    n: {
                        "name": n,
                        "defaultvalue": variables[n].default,
                        "presencevalue": variables[n].alternate,
                        "required": variables[n].required,
                    }
                    for n in names
                },
                sort_keys=False,
                default_flow_style=False,
            )
        )
        return
    if fmt not in ("", "table"):
        raise UsageError(f"unsupported format {fmt!r}")
    rows = [["NAME", "REQUIRED", "DEFAULT VALUE", "ALTERNATE VALUE"]] + [
        [n, str(variables[n].required).lower(), variables[n].default, variables[n].alternate]
        for n in names
    ]
    widths = [max(20, max(len(r[i]) for r in rows) + 3) for i in range(3)]
    for r in rows:
        out("".join(cell.ljust(w) for cell, w in zip(r, widths, strict=False)) + r[3])


def cmd_config(c: Client, g: ComposeOptions, opts: ConfigOptions, args: list[str]) -> int:
    from berth.cli.compose_common import _load

    if opts.variables or opts.no_interpolate:
        # the files as written: no typed model, whose values must be interpolated
        from berth.cli.compose_common import _load_options
        from berth.compose import load_canonical
        from berth.compose.loader import load

        lopts = _load_options(g, tuple(args), interpolate=False)
        if opts.variables:
            _print_variables(load(lopts).variables, opts.format)
            return 0
        canonical, loaded = load_canonical(lopts)
        for w in loaded.warnings:
            err(f"WARN[0000] {w}")
        if opts.quiet:
            return 0
        return _print_model(canonical, opts, args)
    project = _load(g, tuple(args))
    if opts.quiet:
        return 0
    if opts.services:
        out("\n".join(project.order()))
        return 0
    if opts.volumes:
        out("\n".join(project.volumes))
        return 0
    if opts.networks:
        out("\n".join(project.networks))
        return 0
    if opts.profiles:
        names = sorted({p for s in project.services.values() for p in s.profiles})
        out("\n".join(names))
        return 0
    if opts.images:
        out("\n".join(project.services[n].image_name(project.name) for n in project.order()))
        return 0
    if opts.hash is not None:
        from berth.compose.labels import config_hash

        names = list(project.services) if opts.hash == "*" else opts.hash.split(",")
        for n in names:
            if n not in project.services:
                raise UsageError(f"no such service: {n}")
            out(f"{n} {config_hash(project.services[n])}")
        return 0
    return _print_model(project.canonical, opts, args)


def _print_model(data: dict[str, Any], opts: ConfigOptions, args: list[str]) -> int:
    if args:
        data = {**data, "services": {k: v for k, v in data["services"].items() if k in args}}
    if opts.format == "json":
        import json

        text = json.dumps(data, indent=2) + "\n"
    elif opts.format in ("yaml", ""):
        import yaml

        text = yaml.safe_dump(data, sort_keys=False, default_flow_style=False, allow_unicode=True)
    else:
        raise UsageError(f"unsupported format {opts.format!r}")
    if opts.output:
        with open(opts.output, "w") as f:
            f.write(text)
    else:
        sys.stdout.write(text)
    return 0


def subcommands() -> dict[str, tuple[type[Options], Handler, str, str]]:
    """The commands, their flags and handlers (imported here: an unchanged `up -d` needs
    none of them)."""
    from berth.cli import compose_tools as T
    from berth.cli import compose_up as U

    return _table(T, U)


def _table(T: Any, U: Any) -> dict[str, tuple[type[Options], Handler, str, str]]:  # noqa: N803
    return {
        "build": (
            T.BuildOptions,
            T.cmd_build,
            "[OPTIONS] [SERVICE...]",
            "Build or rebuild services",
        ),
        "config": (
            ConfigOptions,
            cmd_config,
            "[OPTIONS] [SERVICE...]",
            "Parse, resolve and render compose file in canonical format",
        ),
        "cp": (
            T.CpOptions,
            T.cmd_cp,
            "[OPTIONS] SERVICE:SRC_PATH DEST_PATH|-",
            "Copy files/folders between a service container and the local filesystem",
        ),
        "create": (
            U.CreateOptions,
            U.cmd_create,
            "[OPTIONS] [SERVICE...]",
            "Creates containers for a service",
        ),
        "down": (
            U.DownOptions,
            U.cmd_down,
            "[OPTIONS] [SERVICES]",
            "Stop and remove containers, networks",
        ),
        "events": (
            T.EventsOptions,
            T.cmd_events,
            "[OPTIONS] [SERVICE...]",
            "Receive real time events from containers",
        ),
        "exec": (
            T.ExecOptions,
            T.cmd_exec,
            "[OPTIONS] SERVICE COMMAND [ARGS...]",
            "Execute a command in a running container",
        ),
        "images": (
            T.ImagesOptions,
            T.cmd_images,
            "[OPTIONS] [SERVICE...]",
            "List images used by the created containers",
        ),
        "kill": (
            U.KillOptions,
            U.cmd_kill,
            "[OPTIONS] [SERVICE...]",
            "Force stop service containers",
        ),
        "logs": (
            T.LogsOptions,
            T.cmd_logs,
            "[OPTIONS] [SERVICE...]",
            "View output from containers",
        ),
        "ls": (T.LsOptions, T.cmd_ls, "[OPTIONS]", "List running compose projects"),
        "pause": (Options, U.cmd_pause, "[SERVICE...]", "Pause services"),
        "port": (
            T.PortOptions,
            T.cmd_port,
            "[OPTIONS] SERVICE PRIVATE_PORT",
            "Print the public port for a port binding",
        ),
        "ps": (T.PsOptions, T.cmd_ps, "[OPTIONS] [SERVICE...]", "List containers"),
        "pull": (T.PullOptions, T.cmd_pull, "[OPTIONS] [SERVICE...]", "Pull service images"),
        "push": (T.PushOptions, T.cmd_push, "[OPTIONS] [SERVICE...]", "Push service images"),
        "restart": (
            U.TimeoutOptions,
            U.cmd_restart,
            "[OPTIONS] [SERVICE...]",
            "Restart service containers",
        ),
        "rm": (
            U.RmOptions,
            U.cmd_rm,
            "[OPTIONS] [SERVICE...]",
            "Removes stopped service containers",
        ),
        "run": (
            T.RunOptions,
            T.cmd_run,
            "[OPTIONS] SERVICE [COMMAND] [ARGS...]",
            "Run a one-off command on a service",
        ),
        "start": (Options, U.cmd_start, "[SERVICE...]", "Start services"),
        "stop": (U.TimeoutOptions, U.cmd_stop, "[OPTIONS] [SERVICE...]", "Stop services"),
        "top": (Options, T.cmd_top, "[SERVICES...]", "Display the running processes"),
        "unpause": (Options, U.cmd_unpause, "[SERVICE...]", "Unpause services"),
        "up": (
            U.ComposeUpOptions,
            U.cmd_up,
            "[OPTIONS] [SERVICE...]",
            "Create and start containers",
        ),
        "version": (
            T.VersionOptions,
            T.cmd_version,
            "[OPTIONS]",
            "Show the berth compose version information",
        ),
        "watch": (
            U.WatchOptions,
            U.cmd_watch,
            "[SERVICE...]",
            "Watch build context for service and rebuild/refresh containers when files are updated",
        ),
        "wait": (
            T.WaitOptions,
            T.cmd_wait,
            "SERVICE [SERVICE...] [OPTIONS]",
            "Block until containers of all (or specified) services stop.",
        ),
    }


def usage() -> str:
    lines = [
        "Usage:  berth compose [OPTIONS] COMMAND",
        "",
        "Define and run multi-container applications with berth",
        "",
        "Options:",
        ComposeOptions.usage(),
        "",
        "Commands:",
    ]
    for name, (_, _, _, h) in subcommands().items():
        lines.append(f"  {name:<10} {h}")
    lines += ["", "Run 'berth compose COMMAND --help' for more information on a command."]
    return "\n".join(lines)


def cmd_compose(c: Client, gopts: ComposeOptions, args: list[str]) -> int:
    """`berth compose [OPTIONS] COMMAND [ARGS...]`."""
    from berth.errors import BerthError

    if not args or args[0] in ("help", "--help", "-h"):
        out(usage())
        return 0
    sub = args[0]
    plain_up = sub == "up" and args[1:] in (["-d"], ["--detach"])
    if plain_up:
        from berth.cli.compose_common import up_unchanged

        if up_unchanged(c, gopts):
            return 0
    entry = subcommands().get(sub)
    if entry is None:
        err(
            f"berth: unknown command: berth compose {sub}\n\nRun 'berth compose --help' for "
            "more information"
        )
        return 1
    spec, fn, argline, h = entry
    if args[1:2] in (["--help"], ["-h"]):
        text = f"Usage:  berth compose {sub} {argline}\n\n{h}"
        if spec.FLAGS:
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

    if plain_up:
        from berth.cli.compose_up import cmd_up_remembered

        fn = cmd_up_remembered
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
