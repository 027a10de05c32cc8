"""`berth-runtime`: a runc-compatible command over berth's runtime.

Imports `runtime.container` (state and the lifecycle verbs), `runtime.process`, `runtime.hooks`,
`oci.defaults`, `linux`. Supported: `spec`, `create`,
`start`, `state`, `kill`, `delete`, `list`, `run`, `exec`, with `--root`, `--bundle/-b`,
`--pid-file`, `--console-socket` (a terminal's master end is sent over it, as runc sends it),
and for `exec` `--process`, `-t`, `-d`, `--cwd`, `-e`, `-u`.

State lives in ROOT/<id>/state.json (see `runtime.container`).
"""

from __future__ import annotations

import _signal as signal  # `signal`, `argparse`, `json`, `shutil`, `typing`: ~20 ms of start-up
import os
import sys
import time

from berth import jsonc as json
from berth import linux
from berth.cmdline import (
    Options,
    UsageError,
    boolean,
    optional_string,
    string,
    strings,
)
from berth.runtime import container, hooks, process

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, NoReturn

DEFAULT_ROOT = "/run/berth-runtime"


def cmd_spec(a: Args) -> int:
    path = os.path.join(a.bundle or ".", "config.json")
    if os.path.exists(path):
        container.die("File config.json exists. Remove it first")
    from berth.oci.defaults import default_spec

    spec = default_spec(["sh"], hostname="berth")
    spec["root"]["readonly"] = True
    with open(path, "w") as f:
        json.dump(spec, f, indent=4)
    return 0


def cmd_create(a: Args) -> int:
    container.create(a.root, a.id, a.bundle or ".", a.pid_file, a.console_socket)
    return 0


def cmd_exec(a: Args) -> int:
    """A new process in a running container, as `runc exec`: the container's namespaces,
    cgroups, capabilities and seccomp filter, the process from --process or the arguments."""
    st = container.load(a.root, a.id)
    if container.status_of(st, a.root) != "running":
        container.die(f"cannot exec in a stopped container: {a.id}")
    with open(os.path.join(st["bundle"], "config.json")) as f:
        spec = json.load(f)
    if a.process:
        try:
            with open(a.process) as f:
                proc = json.load(f)
        except (OSError, ValueError) as e:
            container.die(f"cannot read the process file {a.process}: {e}")
    else:
        if not a.command:
            container.die("exec needs a command, or --process")
        proc = dict(spec.get("process") or {})
        proc["args"] = a.command
        proc["terminal"] = a.tty
        proc["env"] = list(proc.get("env") or []) + list(a.env)
        if a.cwd:
            proc["cwd"] = a.cwd
        if a.user:
            uid, _, gid = a.user.partition(":")
            proc["user"] = {"uid": int(uid), "gid": int(gid or 0)}
    lx = spec.get("linux") or {}
    if lx.get("seccomp"):
        proc["_seccomp"] = lx["seccomp"]
    stdio = container.stdio_for(bool(proc.get("terminal")), a.console_socket)
    linux.set_child_subreaper()  # the process is our grandchild: wait for it
    pid, err_r = process.spawn_exec(st["pid"], proc, stdio)
    if stdio.console >= 0:
        os.close(stdio.console)
    try:
        process.wait_exec(err_r)
    except process.StartError as e:
        container.die(e.message, e.code)
    if a.pid_file:
        with open(a.pid_file, "w") as f:
            f.write(str(pid))
    if a.detach:
        return 0
    while True:
        try:
            _, status = os.waitpid(pid, 0)
            break
        except InterruptedError:
            continue
        except ChildProcessError:
            return 0
    code = os.waitstatus_to_exitcode(status)
    return 128 - code if code < 0 else code


def cmd_start(a: Args) -> int:
    container.start(a.root, a.id)
    return 0


def cmd_state(a: Args) -> int:
    st = container.load(a.root, a.id)
    out = {
        "ociVersion": st["ociVersion"],
        "id": st["id"],
        "status": container.status_of(st, a.root),
        "pid": st["pid"],
        "bundle": st["bundle"],
        "rootfs": st["rootfs"],
        "created": st["created"],
        "annotations": st["annotations"],
    }
    if out["status"] == "stopped":
        out["pid"] = 0
    print(json.dumps(out, indent=2))
    return 0


_SIGNALS = {
    k: v
    for k, v in vars(signal).items()
    if k.startswith("SIG") and not k.startswith("SIG_") and isinstance(v, int)
}


def _signal(name: str) -> int:
    if name.isdigit():
        return int(name)
    n = name.upper()
    return _SIGNALS[n if n.startswith("SIG") else "SIG" + n]


def cmd_kill(a: Args) -> int:
    st = container.load(a.root, a.id)
    if container.status_of(st, a.root) == "stopped":
        container.die("container not running")
    try:
        sig = _signal(a.signal)
    except KeyError:
        container.die(f"unknown signal {a.signal!r}")
    if a.all:  # runc's --all: every process in the container's cgroup
        container.signal_all(st, sig)
    else:
        os.kill(st["pid"], sig)
    return 0


def cmd_pause(a: Args) -> int:
    container.pause(a.root, a.id, True)
    return 0


def cmd_resume(a: Args) -> int:
    container.pause(a.root, a.id, False)
    return 0


def cmd_delete(a: Args) -> int:
    container.delete(a.root, a.id, a.force)
    return 0


def cmd_list(a: Args) -> int:
    rows = []
    if os.path.isdir(a.root):
        for cid in sorted(os.listdir(a.root)):
            try:
                st = container.load(a.root, cid)
            except SystemExit:
                continue
            rows.append(
                (cid, str(st["pid"]), container.status_of(st, a.root), st["bundle"], st["created"])
            )
    print(f"{'ID':<20}{'PID':<10}{'STATUS':<10}{'BUNDLE':<40}CREATED")
    for r in rows:
        print(f"{r[0]:<20}{r[1]:<10}{r[2]:<10}{r[3]:<40}{r[4]}")
    return 0


def cmd_run(a: Args) -> int:
    # the init is our child, or re-parented to us when an intermediate exits: we can wait for it
    linux.set_child_subreaper()
    st, cg, err_r = container.create_container(
        a.root,
        a.id,
        a.bundle or ".",
        a.pid_file,
        a.console_socket,
        a.spec,
        a.trampoline,
        keep_err=True,
    )
    if a.trampoline is not None:
        os.close(a.trampoline)

    def destroy() -> None:
        """`delete -f` of what we hold: the init is reaped, its pid namespace gone with it
        (without a pid namespace of its own, what outlives it is killed here)."""
        for _ in range(50 if not st.get("ownPidNamespace", True) else 0):
            if not container.signal_all(st, signal.SIGKILL):
                break
            time.sleep(0.01)
        if cg:
            cg.remove()
        hooks.run_warn(st, "poststop", container.hook_state(st, "stopped"), container.warn)
        container.rmtree(os.path.join(a.root, a.id))

    try:
        container.release(a.root, st, err_r)  # `start`, without reading back our own state
    except SystemExit:  # a startContainer hook failed: the init is gone
        destroy()
        raise
    hooks.run_warn(st, "poststart", container.hook_state(st, "running"), container.warn)
    for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(s, lambda signo, _f: os.kill(st["pid"], signo))
    while True:
        try:
            _, status = os.waitpid(st["pid"], 0)
            break
        except InterruptedError:
            continue
        except ChildProcessError:
            status = 0
            break
    destroy()
    code = os.waitstatus_to_exitcode(status)
    return 128 - code if code < 0 else code


class GlobalArgs(Options):
    """Options before the command (`berth-runtime --root R create ...`)."""

    INTERSPERSED = False
    root = string(
        "root",
        default=DEFAULT_ROOT,
        help='root directory for storage of container state (default: "/run/berth-runtime")',
    )
    log = string(
        "log", help="set the log file to write berth-runtime logs to (default is '/dev/stderr')"
    )
    log_format = string(
        "log-format", default="text", help="set the log format ('text' (default), or 'json')"
    )
    debug = boolean("debug", help="enable debug logging")
    systemd_cgroup = boolean(
        "systemd-cgroup", help="accepted for runc's callers; berth-runtime manages cgroupfs itself"
    )
    help = boolean("help", "h", help="show help")


class CommandArgs(Options):
    help = boolean("help", "h", help="show help")


class SpecArgs(CommandArgs):
    bundle = string(
        "bundle",
        "b",
        help="path to the root of the bundle directory, defaults to the current directory",
    )


class CreateArgs(SpecArgs):
    pid_file = optional_string("pid-file", help="specify the file to write the process id to")
    console_socket = optional_string(
        "console-socket",
        help="path to an AF_UNIX socket which will receive a file "
        "descriptor referencing the master end of the console's pseudoterminal",
    )


class ExecArgs(CommandArgs):
    INTERSPERSED = False  # everything after the id is the command
    process = string("process", "p", help="path to the process.json")
    tty = boolean("tty", "t", help="allocate a pseudo-TTY")
    detach = boolean("detach", "d", help="detach from the container's process")
    console_socket = optional_string(
        "console-socket",
        help="path to an AF_UNIX socket which will receive a file "
        "descriptor referencing the master end of the console's pseudoterminal",
    )
    pid_file = optional_string("pid-file", help="specify the file to write the process id to")
    cwd = string("cwd", help="current working directory in the container")
    env = strings("env", "e", help="set environment variables")
    user = string("user", "u", help="UID (format: <uid>[:<gid>])")


class KillArgs(CommandArgs):
    all = boolean(
        "all", "a", help="send the specified signal to all processes inside the container"
    )


class DeleteArgs(CommandArgs):
    force = boolean(
        "force", "f", help="forcibly deletes the container if it is still running (uses SIGKILL)"
    )


class Args:
    """The parsed command line: the global options, the command's, and its positionals."""

    def __init__(self, fn: Any, g: GlobalArgs, opts: CommandArgs, **pos: Any) -> None:
        self.fn = fn
        self.root, self.log, self.debug = g.root, g.log, g.debug
        self.bundle = getattr(opts, "bundle", "")
        self.pid_file: str | None = getattr(opts, "pid_file", None)
        self.console_socket: str | None = getattr(opts, "console_socket", None)
        self.process = getattr(opts, "process", "")
        self.tty = getattr(opts, "tty", False)
        self.detach = getattr(opts, "detach", False)
        self.cwd = getattr(opts, "cwd", "")
        self.env: list[str] = getattr(opts, "env", [])
        self.user = getattr(opts, "user", "")
        self.all = getattr(opts, "all", False)
        self.force = getattr(opts, "force", False)
        self.id: str = pos.get("id", "")
        self.signal: str = pos.get("signal", "SIGTERM")
        self.command: list[str] = pos.get("command", [])
        self.spec: dict[str, Any] | None = None
        self.trampoline: int | None = None


# per command: its handler, its options, its positionals ("?" optional, "..." the rest)
_COMMANDS: dict[str, tuple[Any, type[CommandArgs], list[str]]] = {
    "spec": (cmd_spec, SpecArgs, []),
    "create": (cmd_create, CreateArgs, ["id"]),
    "run": (cmd_run, CreateArgs, ["id"]),
    "start": (cmd_start, CommandArgs, ["id"]),
    "state": (cmd_state, CommandArgs, ["id"]),
    "exec": (cmd_exec, ExecArgs, ["id", "command..."]),
    "kill": (cmd_kill, KillArgs, ["id", "signal?"]),
    "delete": (cmd_delete, DeleteArgs, ["id"]),
    "pause": (cmd_pause, CommandArgs, ["id"]),
    "resume": (cmd_resume, CommandArgs, ["id"]),
    "list": (cmd_list, CommandArgs, []),
}


def _usage(msg: str) -> NoReturn:
    sys.stderr.write(
        f"usage: berth-runtime [--root ROOT] COMMAND [OPTIONS] ID\n"
        f"berth-runtime: error: {msg}\n"
        f"commands: {', '.join(_COMMANDS)}\n"
    )
    sys.exit(2)


_SUMMARY = {
    "spec": ("create a new specification file", ""),
    "create": ("create a container", "<container-id>"),
    "run": ("create and run a container", "<container-id>"),
    "start": ("executes the user defined process in a created container", "<container-id>"),
    "state": ("output the state of a container", "<container-id>"),
    "exec": (
        "execute new process inside the container",
        "<container-id> <command> [command options]",
    ),
    "kill": (
        "kill sends the specified signal (default: SIGTERM) to the container's init process",
        "<container-id> [signal]",
    ),
    "delete": (
        "delete any resources held by the container often used with detached container",
        "<container-id>",
    ),
    "list": ("lists containers started by berth-runtime with the given root", ""),
    "pause": ("pause suspends all processes inside the container", "<container-id>"),
    "resume": ("resumes all processes that have been previously paused", "<container-id>"),
}


def _help(command: str | None) -> NoReturn:
    """runc's help, on stdout with exit 0: the whole command's, or one command's."""

    def options(cls: type[Options]) -> list[str]:
        lines = []
        for f in cls.FLAGS:
            names = f"--{f.long}" + (", -" + f.short if f.short else "")
            names += " value" if f.kind != "bool" else ""
            lines.append(f"   {names:<28} {f.help}")
        return lines

    if command is None:
        text = [
            "NAME:",
            "   berth-runtime - Open Container Initiative runtime",
            "",
            "berth-runtime is berth's implementation of the OCI runtime specification, with runc's",
            "command line.",
            "",
            "USAGE:",
            "   berth-runtime [global options] command [command options] [arguments...]",
            "",
            "COMMANDS:",
        ]
        text += [f"   {c:<10} {d}" for c, (d, _) in _SUMMARY.items()]
        text += ["", "GLOBAL OPTIONS:", *options(GlobalArgs)]
    else:
        summary, usage = _SUMMARY[command]
        text = [
            "NAME:",
            f"   berth-runtime {command} - {summary}",
            "",
            "USAGE:",
            f"   berth-runtime {command} [command options] {usage}".rstrip(),
            "",
            "OPTIONS:",
            *options(_COMMANDS[command][1]),
        ]
    sys.stdout.write("\n".join(text) + "\n")
    sys.stdout.flush()
    os._exit(0)


def parse(argv: list[str]) -> Args:
    """runc's command line (berth.cmdline, the CLI's parser): global options, a command, its
    options and positionals; `exec`'s command takes everything after the id."""
    try:
        g, rest = GlobalArgs.parse(argv)
    except UsageError as e:
        _usage(str(e))
    if g.help:
        _help(None)
    if not rest:
        _usage("the following arguments are required: cmd")
    name = rest[0]
    if name == "help":
        _help(rest[1] if len(rest) > 1 and rest[1] in _COMMANDS else None)
    if name not in _COMMANDS:
        _usage(f"argument cmd: invalid choice: {name!r}")
    fn, cls, want = _COMMANDS[name]
    try:
        opts, pos = cls.parse(rest[1:])
    except UsageError as e:
        _usage(str(e))
    if opts.help:
        _help(name)
    got: dict[str, Any] = {}
    for w in want:
        if w == "command...":
            got["command"], pos = pos, []
        elif pos:
            got[w.rstrip("?")] = pos.pop(0)
        elif not w.endswith("?"):
            _usage(f"the following arguments are required: {w}")
    if pos:
        _usage(f"unrecognized arguments: {' '.join(pos)}")
    return Args(fn, g, opts, **got)


def _fast_run(a: Args) -> tuple[dict[str, Any], int] | None:
    """For `run`: the spec and a sealed trampoline, when this process may set the container
    up from the host's interpreter, not from a sealed copy of it (one start-up fewer).

    That is safe when nothing of the container can reach this process's /proc/PID/exe (the
    host's interpreter, CVE-2019-5736) before its init execs the program, which it then does
    through the sealed trampoline (so `#!/proc/self/exe` finds only that): the init is PID 1 of
    a new pid namespace, not dumpable, and `exec` refuses a container until `start` is done,
    which under `run` is once the init has exec'd (`container.release`). Anything else
    (`create`, `exec`, a shared pid namespace, an architecture without a trampoline) runs from
    a sealed copy of the interpreter."""
    try:
        with open(os.path.join(os.path.abspath(a.bundle or "."), "config.json")) as f:
            spec = json.load(f)
        if not any(
            ns.get("type") == "pid" and not ns.get("path") for ns in spec["linux"]["namespaces"]
        ):
            return None
    except (OSError, ValueError, LookupError, TypeError, AttributeError):
        return None  # the sealed process reports it
    from berth.runtime.sealed import trampoline

    try:
        fd = trampoline()
    except OSError:
        return None  # no executable memfd: the sealed path says why
    return None if fd is None else (spec, fd)


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    a = parse(args)
    fast = _fast_run(a) if a.fn is cmd_run else None
    if fast is not None:
        a.spec, a.trampoline = fast
    elif a.fn in (cmd_create, cmd_run, cmd_exec):
        from berth.runtime.sealed import reexec_sealed

        try:
            reexec_sealed("berth.runtime.cli", args)
        except OSError as e:
            container.die(f"cannot run from a sealed copy of the interpreter: {e}")
    os.makedirs(a.root, mode=0o700, exist_ok=True)
    code = a.fn(a)
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    finally:
        os._exit(code)  # no interpreter tear-down: ~2 ms of every command


if __name__ == "__main__":
    main()
