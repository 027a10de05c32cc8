"""The `berth` command: the command table, the global flags and the dispatch.

Each command lives in the module of its group (ps, containers, create, attach, inspect,
images, networks, volumes, system, registry, build, cp, context) and only the one a command
needs is imported: `berth ps`, `run` and `exec` must not import aiohttp, rich, YAML or the daemon (a unit test
checks `sys.modules`). `--version` and `--help` import nothing else of berth's but
`cmdline` and `errors`: the client and the command's module come once a command runs. Also
what every command module shares (output, exit codes, filters, the one-name-at-a-time loop).
Imports `client`, `cmdline`, `errors`.
"""

from __future__ import annotations

import os
import sys

from berth.cmdline import (
    Options,
    UsageError,
    boolean,
    optional_string,
    string,
    strings,
    tristate,
)
from berth.errors import BerthError

TYPE_CHECKING = False  # not typing's: importing typing costs ~3 ms of CLI start-up
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from berth.client import Client

    Handler = Callable[[Client, Any, list[str]], int]
    # a command's flags: its options class (berth.cmdline)
    FlagTable = type[Options]

# A command: (module under berth.cli, its options class's name (berth.cmdline.Options) or ""
# for no flags, its handler's name, its arguments as docker's usage line names them, the
# one-line help: "" hides an alias from the lists). `--help`, the completion scripts and the tests all read this table.
Command = tuple[str, str, str, str, str]

# a hand-aligned table: the formatter would put each field of each entry on its own line
# fmt: off
COMMANDS: dict[str, Command] = {
    "run": ("create", "RunOptions", "cmd_run", "[OPTIONS] IMAGE [COMMAND] [ARG...]",
            "Create and run a new container from an image"),
    "create": ("create", "CreateOptions", "cmd_create", "[OPTIONS] IMAGE [COMMAND] [ARG...]",
               "Create a new container"),
    "start": ("attach", "StartOptions", "cmd_start", "[OPTIONS] CONTAINER [CONTAINER...]",
              "Start one or more stopped containers"),
    "exec": ("attach", "ExecOptions", "cmd_exec", "[OPTIONS] CONTAINER COMMAND [ARG...]",
             "Execute a command in a running container"),
    "attach": ("attach", "AttachOptions", "cmd_attach", "[OPTIONS] CONTAINER",
               "Attach local standard input, output, and error streams to a running container"),
    "ps": ("ps", "PsOptions", "cmd_ps", "[OPTIONS]", "List containers"),
    "logs": ("containers", "LogsOptions", "cmd_logs", "[OPTIONS] CONTAINER",
             "Fetch the logs of a container"),
    "stop": ("containers", "StopOptions", "cmd_stop", "[OPTIONS] CONTAINER [CONTAINER...]",
             "Stop one or more running containers"),
    "restart": ("containers", "StopOptions", "cmd_restart", "[OPTIONS] CONTAINER [CONTAINER...]",
                "Restart one or more containers"),
    "kill": ("containers", "KillOptions", "cmd_kill", "[OPTIONS] CONTAINER [CONTAINER...]",
             "Kill one or more running containers"),
    "rm": ("containers", "RmOptions", "cmd_rm", "[OPTIONS] CONTAINER [CONTAINER...]",
           "Remove one or more containers"),
    "wait": ("containers", "", "cmd_wait", "CONTAINER [CONTAINER...]",
             "Block until containers stop, then print their exit codes"),
    "rename": ("containers", "", "cmd_rename", "CONTAINER NEW_NAME", "Rename a container"),
    "pause": ("containers", "", "cmd_pause", "CONTAINER [CONTAINER...]",
              "Pause all processes within one or more containers"),
    "unpause": ("containers", "", "cmd_unpause", "CONTAINER [CONTAINER...]",
                "Unpause all processes within one or more containers"),
    "update": ("containers", "UpdateOptions", "cmd_update", "[OPTIONS] CONTAINER [CONTAINER...]",
               "Update configuration of one or more containers"),
    "top": ("containers", "", "cmd_top", "CONTAINER [ps OPTIONS]",
            "Display the running processes of a container"),
    "port": ("containers", "", "cmd_port", "CONTAINER [PRIVATE_PORT[/PROTO]]",
             "List port mappings or a specific mapping for the container"),
    "stats": ("containers", "StatsOptions", "cmd_stats", "[OPTIONS] [CONTAINER...]",
              "Display a live stream of container(s) resource usage"),
    "events": ("system", "EventsOptions", "cmd_events", "[OPTIONS]",
               "Get real time events from the server"),
    "inspect": ("inspect", "InspectOptions", "cmd_inspect", "[OPTIONS] NAME|ID [NAME|ID...]",
                "Return low-level information on berth objects"),
    "export": ("images", "ExportOptions", "cmd_export", "[OPTIONS] CONTAINER",
               "Export a container's filesystem as a tar archive"),
    "images": ("images", "ImagesOptions", "cmd_images",
               "[OPTIONS] [REPOSITORY[:TAG]]", "List images"),
    "import": ("images", "ImportOptions", "cmd_import", "[OPTIONS] file|URL|- [REPOSITORY[:TAG]]",
               "Import the contents from a tarball to create an image"),
    "tag": ("images", "", "cmd_tag", "SOURCE_IMAGE[:TAG] TARGET_IMAGE[:TAG]",
            "Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE"),
    "rmi": ("images", "RmiOptions", "cmd_rmi",
            "[OPTIONS] IMAGE [IMAGE...]", "Remove one or more images"),
    "history": ("images", "HistoryOptions", "cmd_history", "[OPTIONS] IMAGE",
                "Show the history of an image"),
    "save": ("images", "SaveOptions", "cmd_save", "[OPTIONS] IMAGE [IMAGE...]",
             "Save one or more images to a tar archive"),
    "load": ("images", "LoadOptions", "cmd_load", "[OPTIONS]",
             "Load an image from a tar archive or STDIN"),
    "pull": ("registry", "PullOptions", "cmd_pull", "[OPTIONS] NAME[:TAG|@DIGEST]",
             "Download an image from a registry"),
    "push": ("registry", "PushOptions", "cmd_push", "[OPTIONS] NAME[:TAG]",
             "Upload an image to a registry"),
    "login": ("registry", "LoginOptions", "cmd_login",
              "[OPTIONS] [SERVER]", "Log in to a registry"),
    "search": ("registry", "SearchOptions", "cmd_search", "[OPTIONS] TERM",
               "Search Docker Hub for images"),
    "build": ("build", "BuildOptions", "cmd_build", "[OPTIONS] PATH | URL | -",
              "Build an image from a Dockerfile"),
    "commit": ("build", "CommitOptions", "cmd_commit", "[OPTIONS] CONTAINER [REPOSITORY[:TAG]]",
               "Create a new image from a container's changes"),
    "diff": ("build", "", "cmd_diff", "CONTAINER",
             "Inspect changes to files or directories on a container's filesystem"),
    "logout": ("registry", "", "cmd_logout", "[SERVER]", "Log out from a registry"),
    "cp": ("cp", "CpOptions", "cmd_cp", "[OPTIONS] CONTAINER:SRC_PATH DEST_PATH|-",
           "Copy files/folders between a container and the local filesystem"),
    "version": ("system", "VersionOptions", "cmd_version", "[OPTIONS]",
                "Show the berth version information"),
    "info": ("system", "InfoOptions", "cmd_info", "[OPTIONS]", "Display system-wide information"),
    "compose": ("compose", "ComposeOptions", "cmd_compose", "[OPTIONS] COMMAND",
                "Define and run multi-container applications"),
    "completion": ("completion", "", "cmd_completion", "bash|zsh|fish",
                   "Generate the autocompletion script for the specified shell"),
}

GROUPS: dict[str, dict[str, Command]] = {
    "builder": {
        "prune": ("system", "BuilderPruneOptions", "cmd_builder_prune", "[OPTIONS]",
                  "Remove build cache"),
        **{k: COMMANDS[k] for k in (
            "build",)},
    },
    "network": {
        "create": ("networks", "NetworkCreateOptions", "cmd_network_create", "[OPTIONS] NETWORK",
                   "Create a network"),
        "ls": ("networks", "NetworkLsOptions", "cmd_network_ls", "[OPTIONS]", "List networks"),
        "list": ("networks", "NetworkLsOptions", "cmd_network_ls", "[OPTIONS]", ""),
        "inspect": ("networks", "NetworkInspectOptions", "cmd_network_inspect",
                    "[OPTIONS] NETWORK [NETWORK...]",
                    ""),
        "rm": ("networks", "NetworkRmOptions", "cmd_network_rm", "[OPTIONS] NETWORK [NETWORK...]",
               "Remove one or more networks"),
        "remove": ("networks", "NetworkRmOptions", "cmd_network_rm",
                   "[OPTIONS] NETWORK [NETWORK...]",
                   ""),
        "prune": ("networks", "NetworkPruneOptions", "cmd_network_prune", "[OPTIONS]",
                  "Remove all unused networks"),
        "connect": ("networks", "NetworkConnectOptions", "cmd_network_connect",
                    "[OPTIONS] NETWORK CONTAINER",
                    "Connect a container to a network"),
        "disconnect": ("networks", "NetworkDisconnectOptions", "cmd_network_disconnect",
                       "[OPTIONS] NETWORK CONTAINER",
                       "Disconnect a container from a network"),
    },
    "volume": {
        "create": ("volumes", "VolumeCreateOptions", "cmd_volume_create", "[OPTIONS] [VOLUME]",
                   "Create a volume"),
        "ls": ("volumes", "VolumeLsOptions", "cmd_volume_ls", "[OPTIONS]", "List volumes"),
        "list": ("volumes", "VolumeLsOptions", "cmd_volume_ls", "[OPTIONS]", ""),
        "inspect": ("volumes", "VolumeInspectOptions", "cmd_volume_inspect",
                    "[OPTIONS] VOLUME [VOLUME...]",
                    ""),
        "rm": ("volumes", "VolumeRmOptions", "cmd_volume_rm", "[OPTIONS] VOLUME [VOLUME...]",
               "Remove one or more volumes"),
        "remove": ("volumes", "VolumeRmOptions", "cmd_volume_rm",
                   "[OPTIONS] VOLUME [VOLUME...]", ""),
        "prune": ("volumes", "VolumePruneOptions", "cmd_volume_prune", "[OPTIONS]",
                  "Remove unused volumes"),
    },
    "container": {
        "ls": ("ps", "PsOptions", "cmd_ps", "[OPTIONS]", ""),
        "list": ("ps", "PsOptions", "cmd_ps", "[OPTIONS]", ""),
        "ps": ("ps", "PsOptions", "cmd_ps", "[OPTIONS]", ""),
        "prune": ("containers", "ContainerPruneOptions", "cmd_container_prune", "[OPTIONS]",
                  "Remove all stopped containers"),
        "inspect": ("inspect", "InspectOptions", "cmd_container_inspect",
                    "[OPTIONS] CONTAINER [CONTAINER...]",
                    ""),
        **{k: COMMANDS[k] for k in (
            "run", "create", "start", "logs", "stop", "restart", "kill", "rm", "wait", "rename",
            "export", "exec", "attach", "pause", "unpause", "update", "top", "stats", "port",
            "commit", "diff",)},
    },
    "system": {
        "df": ("system", "SystemDfOptions", "cmd_system_df", "[OPTIONS]", "Show docker disk usage"),
        "prune": ("system", "SystemPruneOptions", "cmd_system_prune",
                  "[OPTIONS]", "Remove unused data"),
        **{k: COMMANDS[k] for k in (
            "info", "events",)},
    },
    "context": {
        "create": ("context", "ContextCreateOptions", "cmd_create",
                   "[OPTIONS] CONTEXT", "Create a context"),
        "inspect": ("context", "ContextInspectOptions", "cmd_inspect",
                    "[OPTIONS] [CONTEXT] [CONTEXT...]",
                    "Display detailed information on one or more contexts"),
        "ls": ("context", "ContextLsOptions", "cmd_ls", "[OPTIONS]", "List contexts"),
        "list": ("context", "ContextLsOptions", "cmd_ls", "[OPTIONS]", ""),
        "rm": ("context", "ContextRmOptions", "cmd_rm", "[OPTIONS] CONTEXT [CONTEXT...]",
               "Remove one or more contexts"),
        "remove": ("context", "ContextRmOptions", "cmd_rm", "[OPTIONS] CONTEXT [CONTEXT...]", ""),
        "show": ("context", "", "cmd_show", "", "Print the name of the current context"),
        "use": ("context", "", "cmd_use", "CONTEXT", "Set the current berth context"),
    },
    "image": {
        "ls": ("images", "ImagesOptions", "cmd_images", "[OPTIONS] [REPOSITORY[:TAG]]", ""),
        "list": ("images", "ImagesOptions", "cmd_images", "[OPTIONS] [REPOSITORY[:TAG]]", ""),
        "rm": ("images", "RmiOptions", "cmd_rmi", "[OPTIONS] IMAGE [IMAGE...]", ""),
        "prune": ("images", "ImagePruneOptions", "cmd_image_prune",
                  "[OPTIONS]", "Remove unused images"),
        "inspect": ("inspect", "InspectOptions", "cmd_image_inspect",
                    "[OPTIONS] IMAGE [IMAGE...]", ""),
        **{k: COMMANDS[k] for k in (
            "import", "tag", "history", "save", "load", "pull", "push", "build",)},
    },
}
# fmt: on


def load(cmd: Command) -> tuple[FlagTable, Handler]:
    """A command's flags and handler, importing its module (only now: the lean fast path)."""
    name = f"berth.cli.{cmd[0]}"
    __import__(name)
    mod = sys.modules[name]
    spec = getattr(mod, cmd[1]) if cmd[1] else Options
    return spec, getattr(mod, cmd[2])


class GlobalOptions(Options):
    """The flags before the command (`berth -H HOST ps`)."""

    INTERSPERSED = False
    config = optional_string("config", help='Location of client config files (default "~/.docker")')
    context = optional_string(
        "context",
        "c",
        help="Name of the context to use to connect to the daemon (overrides "
        'DOCKER_HOST env var and default context set with "berth context use")',
    )
    debug = boolean("debug", "D", help="Enable debug mode")
    host = strings("host", "H", help="Daemon socket to connect to")
    log_level = string("log-level", "l", default="info", help="Set the logging level")
    tls = boolean("tls", help="Use TLS; implied by --tlsverify")
    tlscacert = optional_string(
        "tlscacert", help='Trust certs signed only by this CA (default "~/.docker/ca.pem")'
    )
    tlscert = optional_string(
        "tlscert", help='Path to TLS certificate file (default "~/.docker/cert.pem")'
    )
    tlskey = optional_string("tlskey", help='Path to TLS key file (default "~/.docker/key.pem")')
    # None until given: --tlsverify=false still turns TLS on, as for the docker CLI
    tlsverify = tristate("tlsverify", help="Use TLS and verify the remote")
    version = boolean("version", "v", help="Print version information and quit")
    help = boolean("help", help="Print usage")


GLOBAL = GlobalOptions


def make_client(gopts: GlobalOptions) -> Client:
    """The client for the context this command talks to (berth.client.contexts). A unix
    socket's costs nothing more than before but a look at config.json."""
    from berth.client import Client, InvalidHost

    if gopts.config:
        os.environ["DOCKER_CONFIG"] = gopts.config
    hosts = gopts.host
    if len(hosts) > 1:
        raise InvalidHost("Specify only one -H")
    host = hosts[0] if hosts else None
    if not (host or gopts.context or gopts.tls or gopts.tlsverify is not None):
        env = os.environ
        env_host = env.get("BERTH_HOST") or env.get("DOCKER_HOST")
        if (
            env_host
            and env_host.startswith("unix://")
            and not (env.get("DOCKER_TLS") or env.get("DOCKER_TLS_VERIFY"))
        ):
            return Client(env_host)  # the fast path: nothing to read
    from berth.client import contexts

    ctx = contexts.resolve(
        host,
        gopts.context,
        gopts.tls,
        gopts.tlsverify,
        gopts.tlscacert,
        gopts.tlscert,
        gopts.tlskey,
    )
    return Client(ctx.host, tls=ctx.tls(), context=ctx.name)


def _context_name(gopts: GlobalOptions) -> str:
    from berth.client import contexts

    try:
        return contexts.resolve_name(gopts.host[0] if gopts.host else None, gopts.context)
    except BerthError:
        return gopts.context or contexts.DEFAULT


def command_help(path: str, cmd: Command, spec: FlagTable) -> str:
    """`berth COMMAND --help`, laid out as docker's."""
    text = f"Usage:  berth {path} {cmd[3]}".rstrip()
    if cmd[4]:
        text += f"\n\n{cmd[4]}"
    if spec.FLAGS:
        text += f"\n\nOptions:\n{spec.usage()}"
    return text


def usage() -> str:
    lines = [
        "Usage:  berth [OPTIONS] COMMAND",
        "",
        "A Docker-compatible container engine",
        "",
        "Commands:",
    ]
    for name, (*_, h) in COMMANDS.items():
        if h and name != "completion":  # docker's list leaves completion out too
            lines.append(f"  {name:<10} {h}")
    lines += [
        "",
        "Management Commands:",
        "  container  Manage containers",
        "  context    Manage contexts",
        "  image      Manage images",
        "  network    Manage networks",
        "  system     Manage berth",
        "  volume     Manage volumes",
        "",
        "Global Options:",
        GLOBAL.usage(),
        "",
        "Run 'berth COMMAND --help' for more information on a command.",
    ]
    return "\n".join(lines)


# --- what the command modules share (here, where nothing more has to be imported) -----------
ENGINE_ERROR = 125


def out(s: str = "") -> None:
    sys.stdout.write(s + "\n")


def err(s: str) -> None:
    sys.stderr.write(s + "\n")


class CommandFailed(BerthError):
    """A command that failed in a way that chose its own exit code (a failed build's step, as
    the docker CLI): `main` prints the message alone and exits with `code`."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


def parse_filters(values: list[str]) -> str | None:
    """`--filter k=v` flags as the JSON of docker's filter map (None for none)."""
    if not values:
        return None
    from berth import jsonc as json

    f: dict[str, list[str]] = {}
    for v in values:
        k, eq, val = v.partition("=")
        if not eq:
            raise UsageError(f"bad format of filter (expected name=value): {v}")
        f.setdefault(k.strip(), []).append(val)
    return json.dumps(f)


def _each(c: Client, args: list[str], what: str, fn: Callable[[str], None], verb: str) -> int:
    """`fn` for each name, printed once done; an error is reported and the rest go on."""
    if not args:
        raise UsageError(f'"{what}" requires at least 1 argument.')
    failed = []
    for name in args:
        try:
            fn(name)
            out(name)
        except BerthError as e:
            err(f"Error response from daemon: {e}")
            failed.append(name)
    return 1 if failed else 0


def _simple(
    action: Callable[[Client, str], None], what: str
) -> Callable[[Client, Options, list[str]], int]:
    """A command that does one route's `action` to each name it is given."""

    def cmd(c: Client, opts: Options, args: list[str]) -> int:
        return _each(c, args, what, lambda name: action(c, name), what)

    return cmd


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    sys.exit(run(argv))


def run(argv: list[str]) -> int:
    try:
        gopts, rest = GLOBAL.parse(argv)
    except UsageError as e:
        err(f"{e}\nSee 'berth --help'.")
        return ENGINE_ERROR
    if gopts.version:
        from berth import __version__

        out(f"berth version {__version__}")
        return 0
    if gopts.help or not rest:
        out(usage())
        return 0
    found = _find(rest[0], rest[1:])
    if isinstance(found, int):
        return found
    path, cmd, args = found
    spec, fn = load(cmd)
    if args[:1] in (["--help"],):
        out(command_help(path, cmd, spec))
        return 0
    try:
        opts, pos = spec.parse(args)
    except UsageError as e:  # a bad flag is 125 everywhere
        err(f"{e}\nSee 'berth {path} --help'.")
        return ENGINE_ERROR
    from berth.client import DEFAULT_HOST, Client, ConflictingOptions

    try:
        client = make_client(gopts)
    except BerthError as e:
        if path.split()[0] != "context":
            err(
                f"{e}"
                if isinstance(e, ConflictingOptions)
                else f"Failed to initialize: unable to resolve docker endpoint: {e}"
            )
            return 1
        # the context commands work whatever the current context is
        client = Client("unix://" + DEFAULT_HOST.split("://", 1)[1])
        client.context = _context_name(gopts)
    return _call(fn, client, opts, pos, path)


def _find(name: str, args: list[str]) -> tuple[str, Command, list[str]] | int:
    """The command `berth NAME ARGS...` names: its path ("network ls"), its entry and its
    arguments; or the exit code once its group's help or an unknown command is reported."""
    if name in GROUPS:
        if not args or args[0] in ("--help", "-h"):
            out(
                f"Usage:  berth {name} COMMAND\n\nCommands:\n"
                + "\n".join(f"  {k}" for k in GROUPS[name])
            )
            return 0
        sub = args[0]
        if sub not in GROUPS[name]:
            err(
                f"berth: unknown command: berth {name} {sub}\n\nRun 'berth {name} --help' "
                "for more information"
            )
            return 1
        return f"{name} {sub}", GROUPS[name][sub], args[1:]
    if name in COMMANDS:
        return name, COMMANDS[name], args
    err(f"berth: unknown command: berth {name}\n\nRun 'berth --help' for more information")
    return 1


def _call(fn: Handler, client: Client, opts: Any, pos: list[str], path: str) -> int:
    """Run a command; its errors, by type, to docker's messages and exit codes."""
    from berth.client import ConnectionFailed

    # as the docker CLI: only `run` reports engine errors with 125 (and a "berth: " prefix)
    is_run = path.split()[-1] == "run"
    try:
        return int(fn(client, opts, pos))
    except UsageError as e:
        err(f"{'berth: ' if is_run else ''}{e}\nSee 'berth {path} --help'.")
        return ENGINE_ERROR if is_run else 1
    except ConnectionFailed as e:
        err(str(e))
        return ENGINE_ERROR if is_run else 1
    except CommandFailed as e:
        err(str(e))  # as the docker CLI: a failed build's message, and its code
        return e.code or 1
    except BerthError as e:
        err(f"{'berth: ' if is_run else ''}Error response from daemon: {e}")
        if is_run:
            err(f"\nRun 'berth {path} --help' for more information")
            return ENGINE_ERROR
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0
    except Exception as e:
        # a --format that failed (cli.fmt, imported only by the commands that format)
        fmt = sys.modules.get("berth.cli.fmt")
        if fmt is None or not isinstance(e, fmt.FormatFailed):
            raise
        sys.stdout.write(e.stdout)
        err(str(e))
        return int(e.code)


if __name__ == "__main__":
    main()
