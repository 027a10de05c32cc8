"""`berth-runtime`: a runc-compatible command over berth's runtime.

Imports `runtime.process`, `oci.defaults`, `cgroups`, `linux`. Supported: `spec`, `create`,
`start`, `state`, `kill`, `delete`, `list`, `run`, `exec`, with `--root`, `--bundle/-b`,
`--pid-file`, `--console-socket` (a terminal's master end is sent over it, as runc sends it),
and for `exec` `--process`, `-t`, `-d`, `--cwd`, `-e`, `-u`.

State lives in ROOT/<id>/state.json; `create` leaves the container's init blocked on
ROOT/<id>/exec.fifo (as runc does) until `start` opens it. The init is re-parented to the
caller's subreaper, or to init, when `create` returns.
"""

from __future__ import annotations

import _signal as signal  # `signal`, `argparse`, `json`, `shutil`, `typing`: ~20 ms of start-up
import os
import sys
import time

from berth import cgroups, linux
from berth import jsonc as json
from berth.fs import atomic_write
from berth.runtime import hooks, process, validate

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, NoReturn

DEFAULT_ROOT = "/run/berth-runtime"


def _die(msg: str, code: int = 1) -> NoReturn:
    sys.stderr.write(f"berth-runtime: {msg}\n")
    sys.exit(code)


def _state_dir(root: str, cid: str) -> str:
    if not cid or "/" in cid or cid in (".", ".."):
        _die(f"invalid container id: {cid!r}")
    return os.path.join(root, cid)


def _load(root: str, cid: str) -> dict[str, Any]:
    try:
        with open(os.path.join(_state_dir(root, cid), "state.json")) as f:
            data: dict[str, Any] = json.load(f)
            return data
    except FileNotFoundError:
        _die(f"container does not exist: {cid}")
        raise


def _status(st: dict[str, Any], root: str) -> str:
    pid = st.get("pid", 0)
    try:
        os.kill(pid, 0)
        with open(f"/proc/{pid}/stat") as f:
            if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                return "stopped"
    except (ProcessLookupError, FileNotFoundError, ValueError):
        return "stopped"
    fifo = os.path.join(root, st["id"], "exec.fifo")
    return "created" if os.path.exists(fifo) else "running"


def _save(root: str, st: dict[str, Any]) -> None:
    # as before: no fsync (a runtime's state lives in a run directory, gone at boot)
    atomic_write(os.path.join(root, st["id"], "state.json"), json.dumps(st).encode(),
                 sync=False)


def cmd_spec(a: Args) -> int:
    path = os.path.join(a.bundle or ".", "config.json")
    if os.path.exists(path):
        _die("File config.json exists. Remove it first")
    from berth.oci.defaults import default_spec
    spec = default_spec(["sh"], hostname="berth")
    spec["root"]["readonly"] = True
    with open(path, "w") as f:
        json.dump(spec, f, indent=4)
    return 0


def _stdio(terminal: bool, console_socket: str | None) -> process.Stdio:
    if not terminal:
        if console_socket:
            _die("--console-socket is for a process with a terminal (process.terminal)")
        return process.Stdio(0, 1, 2)
    if not console_socket:
        _die("cannot allocate tty if runc will detach without setting console socket")
    import socket
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(console_socket)
    except OSError as e:
        _die(f"cannot connect to the console socket {console_socket}: {e.strerror}")
    return process.Stdio(console=sock.detach())


def create(root: str, cid: str, bundle: str, pid_file: str | None,
           console_socket: str | None = None) -> dict[str, Any]:
    return _create(root, cid, bundle, pid_file, console_socket)[0]


def _create(root: str, cid: str, bundle: str, pid_file: str | None,
            console_socket: str | None, spec: dict[str, Any] | None = None,
            trampoline: int | None = None, keep_err: bool = False,
            ) -> tuple[dict[str, Any], cgroups.CgroupManager | None, int | None]:
    """`create`; and for `run`, the container's cgroup manager and, with `keep_err`, the init's
    error pipe, open, to wait for its exec."""
    bundle = os.path.abspath(bundle)
    sdir = _state_dir(root, cid)
    if spec is None:
        try:
            with open(os.path.join(bundle, "config.json")) as f:
                spec = json.load(f)
        except (OSError, ValueError) as e:
            _die(f"cannot read {bundle}/config.json: {e}")
    try:
        hooks.check(spec)
        for warning in validate.check(spec):
            _warn(warning)
    except (hooks.HookError, validate.SpecError) as e:
        _die(str(e))
    try:
        os.makedirs(sdir)
    except FileExistsError:
        _die(f"container with id exists: {cid}")
    fifo = os.path.join(sdir, "exec.fifo")
    # as runc, 0622: the init opens it for writing once it is the spec's user (through the
    # descriptor below: the state directory stays ours alone)
    os.mkfifo(fifo)
    os.chmod(fifo, 0o622)
    lx = spec.get("linux", {})
    # as runc: the init gets the fifo as a descriptor (it may not be able to reach our state
    # directory), and a new user namespace's root owns it, to open it for writing
    fifo_fd = os.open(fifo, os.O_PATH | os.O_CLOEXEC)
    if any(ns.get("type") == "user" and not ns.get("path") for ns in lx.get("namespaces", [])):
        os.chown(fifo, _host_id(lx.get("uidMappings")), _host_id(lx.get("gidMappings")))
    st = {"ociVersion": spec.get("ociVersion", "1.0.2"), "id": cid, "pid": 0,
          "bundle": bundle, "rootfs": os.path.join(bundle, spec.get("root", {}).get(
              "path", "rootfs")), "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
          "annotations": spec.get("annotations") or {},
          # as runc: without a cgroupsPath, a cgroup named after the container, under ours
          "cgroupsPath": lx.get("cgroupsPath") or cid, "cgroupBases": cgroups.own_cgroups()}
    if spec.get("hooks"):
        st["hooks"] = spec["hooks"]
    cg = None
    sync = None
    if any(hooks.of(spec, k) for k in ("prestart", "createRuntime", "createContainer",
                                       "startContainer")):
        sync = os.pipe()

    def on_hooks() -> None:
        """The init waits before pivot_root: prestart and createRuntime hooks here, then
        the state to the init, for its createContainer and startContainer hooks."""
        assert sync is not None
        state = _hook_state(st, "creating")
        try:
            hooks.run_all(spec, "prestart", state)
            hooks.run_all(spec, "createRuntime", state)
        except hooks.HookError as e:
            raise process.StartError(str(e), 1) from None
        os.write(sync[1], json.dumps(state).encode() + b"\n")
        os.close(sync[1])

    mem = (lx.get("resources") or {}).get("memory") or {}
    if mem.get("kernel") and not cgroups.kernel_memory_enforced():
        _warn("linux.resources.memory.kernel is ignored: Linux 5.16 and later no longer "
              "limit kernel memory")
    try:
        if st["cgroupsPath"]:
            cg = cgroups.for_spec(st["cgroupsPath"])
            cg.create(cgroups.Resources.from_spec(process.cgroup_resources(lx)))
        stdio = _stdio(bool(spec.get("process", {}).get("terminal")), console_socket)
        pid, err_r = process.spawn(spec, bundle, stdio, cgroup=cg, exec_fifo=fifo_fd,
                                   trampoline=trampoline, hook_sync=sync)
        st["pid"] = pid
        if sync is not None:
            os.close(sync[0])
        if stdio.console >= 0:
            os.close(stdio.console)
        process.wait_exec(err_r, until_ready=True, close=not keep_err,
                          on_hooks=on_hooks if sync is not None else None)
    except (process.StartError, OSError, Exception) as e:
        if st["pid"]:
            _kill_reap(st["pid"])
        if cg:
            cg.remove()
        # runtime-spec lifecycle: a create that fails continues at "destroy", then poststop
        hooks.run_warn(spec, "poststop", _hook_state(st, "stopped"), _warn)
        _rmtree(sdir)
        _die(str(getattr(e, "message", e)), getattr(e, "code", 1))
        raise
    finally:
        os.close(fifo_fd)
        if sync is not None:
            for fd in sync:
                try:
                    os.close(fd)
                except OSError:
                    pass
    _save(root, st)
    if pid_file:
        with open(pid_file, "w") as f:
            f.write(str(pid))
    return st, cg, err_r if keep_err else None


def _host_id(mappings: list[dict[str, int]] | None) -> int:
    """The host id that id 0 of a user namespace maps to (-1, no change, if none does)."""
    for m in mappings or []:
        try:
            if m["containerID"] <= 0 < m["containerID"] + m["size"]:
                return int(m["hostID"]) - int(m["containerID"])
        except (KeyError, TypeError):
            continue
    return -1


def _hook_state(st: dict[str, Any], status: str) -> dict[str, Any]:
    """The container's state as a hook reads it on its stdin (runtime-spec "State"): no pid
    once stopped, no annotations where there are none (both optional there, as runc)."""
    out = {"ociVersion": st["ociVersion"], "id": st["id"], "status": status}
    if status != "stopped":
        out["pid"] = st["pid"]
    out["bundle"] = st["bundle"]
    if st["annotations"]:
        out["annotations"] = st["annotations"]
    return out


def _warn(message: str) -> None:
    sys.stderr.write(f"berth-runtime: warning: {message}\n")


def _kill_reap(pid: int) -> None:
    """SIGKILL a failed create's init, and reap it where it is our child."""
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        return
    try:
        os.waitpid(pid, 0)
    except ChildProcessError:
        pass


def start(root: str, cid: str) -> None:
    st = _load(root, cid)
    if _status(st, root) != "created":
        _die(f"cannot start a container that is not created: {cid}")
    _release(root, st)
    hooks.run_warn(st, "poststart", _hook_state(st, "running"), _warn)


def _release(root: str, st: dict[str, Any], err_r: int | None = None) -> None:
    """Let a created container's init run its startContainer hooks and exec its program. With
    its error pipe, the container stays `created` (no `exec` joins it) until the init has
    exec'd, and an exec that failed is told. A startContainer hook that failed fails this
    (the init has exited; as the spec says, the container is stopped)."""
    fifo = os.path.join(root, st["id"], "exec.fifo")
    fd = os.open(fifo, os.O_RDONLY)
    got = b""
    try:
        while len(got) < 65536 and (chunk := os.read(fd, 65536)):
            got += chunk
    finally:
        os.close(fd)
    if got[:1] == b"E":
        os.unlink(fifo)
        _kill_reap(st["pid"])
        _die(got[1:].decode(errors="replace"))
    if err_r is not None:
        try:
            process.wait_exec(err_r)
        except process.StartError as e:
            sys.stderr.write(f"berth-runtime: {e.message}\n")
    os.unlink(fifo)


def cmd_create(a: Args) -> int:
    create(a.root, a.id, a.bundle or ".", a.pid_file, a.console_socket)
    return 0


def cmd_exec(a: Args) -> int:
    """A new process in a running container, as `runc exec`: the container's namespaces,
    cgroups, capabilities and seccomp filter, the process from --process or the arguments."""
    st = _load(a.root, a.id)
    if _status(st, a.root) != "running":
        _die(f"cannot exec in a stopped container: {a.id}")
    with open(os.path.join(st["bundle"], "config.json")) as f:
        spec = json.load(f)
    if a.process:
        try:
            with open(a.process) as f:
                proc = json.load(f)
        except (OSError, ValueError) as e:
            _die(f"cannot read the process file {a.process}: {e}")
    else:
        if not a.command:
            _die("exec needs a command, or --process")
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
    stdio = _stdio(bool(proc.get("terminal")), a.console_socket)
    linux.set_child_subreaper()   # the process is our grandchild: wait for it
    pid, err_r = process.spawn_exec(st["pid"], proc, stdio)
    if stdio.console >= 0:
        os.close(stdio.console)
    try:
        process.wait_exec(err_r)
    except process.StartError as e:
        _die(e.message, e.code)
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
    start(a.root, a.id)
    return 0


def cmd_state(a: Args) -> int:
    st = _load(a.root, a.id)
    out = {"ociVersion": st["ociVersion"], "id": st["id"], "status": _status(st, a.root),
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


def _rmtree(path: str) -> None:
    """shutil.rmtree(ignore_errors=True) for a state directory (flat, or one level deep)."""
    try:
        entries = os.listdir(path)
    except OSError:
        return
    for e in entries:
        p = os.path.join(path, e)
        try:
            if os.path.isdir(p) and not os.path.islink(p):
                _rmtree(p)
            else:
                os.unlink(p)
        except OSError:
            pass
    try:
        os.rmdir(path)
    except OSError:
        pass


def cmd_kill(a: Args) -> int:
    st = _load(a.root, a.id)
    if _status(st, a.root) == "stopped":
        _die("container not running")
    try:
        os.kill(st["pid"], _signal(a.signal))
    except KeyError:
        _die(f"unknown signal {a.signal!r}")
    return 0


def delete(root: str, cid: str, force: bool) -> None:
    st = _load(root, cid)
    status = _status(st, root)
    if status == "running" and not force:
        _die(f"cannot delete container {cid} that is not stopped: {status}")
    if status != "stopped":
        try:
            os.kill(st["pid"], signal.SIGKILL)
        except ProcessLookupError:
            pass
        for _ in range(200):
            if _status(st, root) == "stopped":
                break
            time.sleep(0.01)
    if st.get("cgroupsPath"):
        cgroups.for_spec(st["cgroupsPath"], st.get("cgroupBases")).remove()
    hooks.run_warn(st, "poststop", _hook_state(st, "stopped"), _warn)
    _rmtree(os.path.join(root, cid))


def cmd_delete(a: Args) -> int:
    delete(a.root, a.id, a.force)
    return 0


def cmd_list(a: Args) -> int:
    rows = []
    if os.path.isdir(a.root):
        for cid in sorted(os.listdir(a.root)):
            try:
                st = _load(a.root, cid)
            except SystemExit:
                continue
            rows.append((cid, str(st["pid"]), _status(st, a.root), st["bundle"], st["created"]))
    print(f"{'ID':<20}{'PID':<10}{'STATUS':<10}{'BUNDLE':<40}CREATED")
    for r in rows:
        print(f"{r[0]:<20}{r[1]:<10}{r[2]:<10}{r[3]:<40}{r[4]}")
    return 0


def cmd_run(a: Args) -> int:
    # the init is our child, or re-parented to us when an intermediate exits: we can wait for it
    linux.set_child_subreaper()
    st, cg, err_r = _create(a.root, a.id, a.bundle or ".", a.pid_file, a.console_socket,
                            a.spec, a.trampoline, keep_err=True)
    if a.trampoline is not None:
        os.close(a.trampoline)
    _release(a.root, st, err_r)   # `start`, without reading back what we just wrote
    hooks.run_warn(st, "poststart", _hook_state(st, "running"), _warn)
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
    # `delete -f` of what we hold: the init is reaped, and its pid namespace gone with it
    if cg:
        cg.remove()
    hooks.run_warn(st, "poststop", _hook_state(st, "stopped"), _warn)
    _rmtree(os.path.join(a.root, a.id))
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
    which under `run` is once the init has exec'd (`_release`). Anything else (`create`,
    `exec`, a shared pid namespace, an architecture without a trampoline) runs from a sealed
    copy of the interpreter."""
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
            _die(f"cannot run from a sealed copy of the interpreter: {e}")
    os.makedirs(a.root, mode=0o700, exist_ok=True)
    code = a.fn(a)
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    finally:
        os._exit(code)   # no interpreter tear-down: ~2 ms of every command


if __name__ == "__main__":
    main()
