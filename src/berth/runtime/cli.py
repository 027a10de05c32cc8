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
    linux.set_child_subreaper()   # the process is our grandchild: wait for it
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
    out = {"ociVersion": st["ociVersion"], "id": st["id"],
           "status": container.status_of(st, a.root),
           "pid": st["pid"], "bundle": st["bundle"], "rootfs": st["rootfs"],
           "created": st["created"], "annotations": st["annotations"]}
    if out["status"] == "stopped":
        out["pid"] = 0
    print(json.dumps(out, indent=2))
    return 0


_SIGNALS = {k: v for k, v in vars(signal).items()
            if k.startswith("SIG") and not k.startswith("SIG_") and isinstance(v, int)}


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
    if a.all:   # runc's --all: every process in the container's cgroup
        container.signal_all(st, sig)
    else:
        os.kill(st["pid"], sig)
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
            rows.append((cid, str(st["pid"]), container.status_of(st, a.root), st["bundle"],
                         st["created"]))
    print(f"{'ID':<20}{'PID':<10}{'STATUS':<10}{'BUNDLE':<40}CREATED")
    for r in rows:
        print(f"{r[0]:<20}{r[1]:<10}{r[2]:<10}{r[3]:<40}{r[4]}")
    return 0


def cmd_run(a: Args) -> int:
    # the init is our child, or re-parented to us when an intermediate exits: we can wait for it
    linux.set_child_subreaper()
    st, cg, err_r = container.create_container(a.root, a.id, a.bundle or ".", a.pid_file,
                                               a.console_socket, a.spec, a.trampoline,
                                               keep_err=True)
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
        container.release(a.root, st, err_r)   # `start`, without reading back our own state
    except SystemExit:   # a startContainer hook failed: the init is gone
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


class Args:
    """The parsed command line: options by their long names ('-' as '_'), and positionals."""

    fn: Any
    root: str
    log: str
    log_format: str
    debug: bool
    systemd_cgroup: bool
    id: str
    bundle: str
    pid_file: str | None
    console_socket: str | None
    process: str
    tty: bool
    detach: bool
    cwd: str
    env: list[str]
    user: str
    all: bool
    force: bool
    signal: str
    command: list[str]
    spec: dict[str, Any] | None
    trampoline: int | None

    def __init__(self, **kw: Any) -> None:
        self.__dict__.update(kw)


# global options, then per command: {option: (dest, takes a value, repeatable)}, positionals
_GLOBAL = {"--root": ("root", True, False), "--log": ("log", True, False),
           "--log-format": ("log_format", True, False), "--debug": ("debug", False, False),
           "--systemd-cgroup": ("systemd_cgroup", False, False)}
_BUNDLE = {"-b": ("bundle", True, False), "--bundle": ("bundle", True, False)}
_CREATE = {**_BUNDLE, "--pid-file": ("pid_file", True, False),
           "--console-socket": ("console_socket", True, False)}
_COMMANDS: dict[str, tuple[Any, dict[str, tuple[str, bool, bool]], list[str]]] = {
    "spec": (cmd_spec, _BUNDLE, []),
    "create": (cmd_create, _CREATE, ["id"]),
    "run": (cmd_run, _CREATE, ["id"]),
    "start": (cmd_start, {}, ["id"]),
    "state": (cmd_state, {}, ["id"]),
    "exec": (cmd_exec, {
        "--process": ("process", True, False), "-p": ("process", True, False),
        "--tty": ("tty", False, False), "-t": ("tty", False, False),
        "--detach": ("detach", False, False), "-d": ("detach", False, False),
        "--console-socket": ("console_socket", True, False),
        "--pid-file": ("pid_file", True, False), "--cwd": ("cwd", True, False),
        "--env": ("env", True, True), "-e": ("env", True, True),
        "--user": ("user", True, False), "-u": ("user", True, False)}, ["id", "command..."]),
    "kill": (cmd_kill, {"-a": ("all", False, False), "--all": ("all", False, False)},
             ["id", "signal?"]),
    "delete": (cmd_delete, {"-f": ("force", False, False), "--force": ("force", False, False)},
               ["id"]),
    "list": (cmd_list, {}, []),
}
_DEFAULTS = {"root": DEFAULT_ROOT, "log": "", "log_format": "text", "debug": False,
             "systemd_cgroup": False, "bundle": "", "pid_file": None, "console_socket": None,
             "process": "", "tty": False, "detach": False, "cwd": "", "env": [], "user": "",
             "all": False, "force": False, "signal": "SIGTERM", "command": [], "spec": None,
             "trampoline": None}


def _usage(msg: str) -> NoReturn:
    sys.stderr.write(f"usage: berth-runtime [--root ROOT] COMMAND [OPTIONS] ID\n"
                     f"berth-runtime: error: {msg}\n"
                     f"commands: {', '.join(_COMMANDS)}\n")
    sys.exit(2)


_SUMMARY = {
    "spec": ("create a new specification file", ""),
    "create": ("create a container", "<container-id>"),
    "run": ("create and run a container", "<container-id>"),
    "start": ("executes the user defined process in a created container", "<container-id>"),
    "state": ("output the state of a container", "<container-id>"),
    "exec": ("execute new process inside the container",
             "<container-id> <command> [command options]"),
    "kill": ("kill sends the specified signal (default: SIGTERM) to the container's init "
             "process", "<container-id> [signal]"),
    "delete": ("delete any resources held by the container often used with detached "
               "container", "<container-id>"),
    "list": ("lists containers started by berth-runtime with the given root", ""),
}
_OPTION_HELP = {
    "--root": "root directory for storage of container state (default: \"/run/berth-runtime\")",
    "--log": "set the log file to write berth-runtime logs to (default is '/dev/stderr')",
    "--log-format": "set the log format ('text' (default), or 'json')",
    "--debug": "enable debug logging", "--systemd-cgroup": "accepted for runc's callers; "
    "berth-runtime manages cgroupfs itself",
    "--bundle": "path to the root of the bundle directory, defaults to the current directory",
    "--pid-file": "specify the file to write the process id to",
    "--console-socket": "path to an AF_UNIX socket which will receive a file descriptor "
    "referencing the master end of the console's pseudoterminal",
    "--process": "path to the process.json", "--tty": "allocate a pseudo-TTY",
    "--detach": "detach from the container's process", "--cwd": "current working directory "
    "in the container", "--env": "set environment variables", "--user": "UID (format: "
    "<uid>[:<gid>])", "--all": "send the specified signal to all processes inside the "
    "container", "--force": "forcibly deletes the container if it is still running (uses "
    "SIGKILL)",
}


def _help(command: str | None) -> NoReturn:
    """runc's help, on stdout with exit 0: the whole command's, or one command's."""
    def options(table: dict[str, tuple[str, bool, bool]]) -> list[str]:
        by_dest: dict[str, list[str]] = {}
        for name, (dest, takes, _m) in table.items():
            by_dest.setdefault(dest, []).append(name + (" value" if takes else ""))
        lines = []
        for names in by_dest.values():
            long = next((n for n in names if n.startswith("--")), names[0]).split()[0]
            lines.append(f"   {', '.join(sorted(names, key=len, reverse=True)):<28} "
                         f"{_OPTION_HELP.get(long, '')}")
        return lines + [f"   {'--help, -h':<28} show help"]
    if command is None:
        text = ["NAME:", "   berth-runtime - Open Container Initiative runtime", "",
                "berth-runtime is berth's implementation of the OCI runtime specification, "
                "with runc's", "command line.", "", "USAGE:",
                "   berth-runtime [global options] command [command options] [arguments...]",
                "", "COMMANDS:"]
        text += [f"   {c:<10} {d}" for c, (d, _) in _SUMMARY.items()]
        text += ["", "GLOBAL OPTIONS:", *options(_GLOBAL)]
    else:
        summary, usage = _SUMMARY[command]
        text = ["NAME:", f"   berth-runtime {command} - {summary}", "", "USAGE:",
                f"   berth-runtime {command} [command options] {usage}".rstrip(), "",
                "OPTIONS:", *options(_COMMANDS[command][1])]
    sys.stdout.write("\n".join(text) + "\n")
    sys.stdout.flush()
    os._exit(0)


def parse(argv: list[str]) -> Args:
    """runc's command line (argparse's rules for what berth-runtime takes, without its ~7 ms of
    imports): global options, a command, its options and positionals; `exec`'s command takes
    everything after the id."""
    vals: dict[str, Any] = {k: (list(v) if isinstance(v, list) else v)
                            for k, v in _DEFAULTS.items()}
    opts = _GLOBAL
    fn = None
    want: list[str] = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        i += 1
        if arg.startswith("-") and arg != "-":
            name, eq, value = arg.partition("=")
            if name in ("-h", "--help"):
                _help(next((c for c, v in _COMMANDS.items() if v[0] is fn), None))
            if name not in opts:
                _usage(f"unrecognized arguments: {arg}")
            dest, takes, multi = opts[name]
            if takes and not eq:
                if i >= len(argv):
                    _usage(f"argument {name}: expected one argument")
                value, i = argv[i], i + 1
            if multi:
                vals[dest].append(value)
            else:
                vals[dest] = value if takes else True
        elif fn is None:
            if arg == "help":
                _help(argv[i] if i < len(argv) and argv[i] in _COMMANDS else None)
            if arg not in _COMMANDS:
                _usage(f"argument cmd: invalid choice: {arg!r}")
            fn, opts, want = _COMMANDS[arg][0], _COMMANDS[arg][1], list(_COMMANDS[arg][2])
        elif not want:
            _usage(f"unrecognized arguments: {arg}")
        else:
            vals[want.pop(0).rstrip("?")] = arg
            if want and want[0] == "command...":
                vals["command"] = argv[i:]  # everything after the id, options too
                want.pop(0)
                break
    if fn is None:
        _usage("the following arguments are required: cmd")
    missing = [w for w in want if not w.endswith(("?", "..."))]
    if missing:
        _usage(f"the following arguments are required: {', '.join(missing)}")
    return Args(fn=fn, **vals)


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
        if not any(ns.get("type") == "pid" and not ns.get("path")
                   for ns in spec["linux"]["namespaces"]):
            return None
    except (OSError, ValueError, LookupError, TypeError, AttributeError):
        return None   # the sealed process reports it
    from berth.runtime.sealed import trampoline
    try:
        fd = trampoline()
    except OSError:
        return None   # no executable memfd: the sealed path says why
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
        os._exit(code)   # no interpreter tear-down: ~2 ms of every command


if __name__ == "__main__":
    main()
