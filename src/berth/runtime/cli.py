"""`berth-runtime`: a runc-compatible command over berth's runtime.

Imports `runtime.process`, `runtime.spec`, `cgroups`, `linux`. Supported: `spec`, `create`,
`start`, `state`, `kill`, `delete`, `list`, `run`, `exec`, with `--root`, `--bundle/-b`,
`--pid-file`, `--console-socket` (a terminal's master end is sent over it, as runc sends it),
and for `exec` `--process`, `-t`, `-d`, `--cwd`, `-e`, `-u`.

State lives in ROOT/<id>/state.json; `create` leaves the container's init blocked on
ROOT/<id>/exec.fifo (as runc does) until `start` opens it. The init is re-parented to the
caller's subreaper, or to init, when `create` returns.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import sys
import time
from typing import Any

from berth import cgroups, linux
from berth.runtime import process
from berth.runtime.spec import default_spec

DEFAULT_ROOT = "/run/berth-runtime"


def _die(msg: str, code: int = 1) -> None:
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
    path = os.path.join(root, st["id"], "state.json")
    with open(path + ".tmp", "w") as f:
        json.dump(st, f)
    os.rename(path + ".tmp", path)


def cmd_spec(a: argparse.Namespace) -> int:
    path = os.path.join(a.bundle or ".", "config.json")
    if os.path.exists(path):
        _die("File config.json exists. Remove it first")
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
    bundle = os.path.abspath(bundle)
    sdir = _state_dir(root, cid)
    try:
        with open(os.path.join(bundle, "config.json")) as f:
            spec = json.load(f)
    except (OSError, ValueError) as e:
        _die(f"cannot read {bundle}/config.json: {e}")
    try:
        os.makedirs(sdir)
    except FileExistsError:
        _die(f"container with id exists: {cid}")
    fifo = os.path.join(sdir, "exec.fifo")
    os.mkfifo(fifo, 0o600)
    lx = spec.get("linux", {})
    cg = None
    try:
        if lx.get("cgroupsPath"):
            cg = cgroups.for_spec(lx["cgroupsPath"])
            cg.create(cgroups.Resources.from_spec(process.cgroup_resources(lx)))
        stdio = _stdio(bool(spec.get("process", {}).get("terminal")), console_socket)
        pid, err_r = process.spawn(spec, bundle, stdio,
                                   cgroup=cg, exec_fifo=fifo)
        if stdio.console >= 0:
            os.close(stdio.console)
        process.wait_exec(err_r, until_ready=True)
    except (process.StartError, OSError, Exception) as e:
        if cg:
            cg.remove()
        shutil.rmtree(sdir, ignore_errors=True)
        _die(str(getattr(e, "message", e)), getattr(e, "code", 1))
        raise
    st = {"ociVersion": spec.get("ociVersion", "1.0.2"), "id": cid, "pid": pid,
          "bundle": bundle, "rootfs": os.path.join(bundle, spec.get("root", {}).get(
              "path", "rootfs")), "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
          "annotations": spec.get("annotations") or {},
          "cgroupsPath": lx.get("cgroupsPath", ""), "cgroupBases": cgroups.own_cgroups()}
    _save(root, st)
    if pid_file:
        with open(pid_file, "w") as f:
            f.write(str(pid))
    return st


def start(root: str, cid: str) -> None:
    st = _load(root, cid)
    if _status(st, root) != "created":
        _die(f"cannot start a container that is not created: {cid}")
    fifo = os.path.join(root, cid, "exec.fifo")
    fd = os.open(fifo, os.O_RDONLY)
    os.read(fd, 1)
    os.close(fd)
    os.unlink(fifo)


def cmd_create(a: argparse.Namespace) -> int:
    create(a.root, a.id, a.bundle or ".", a.pid_file, a.console_socket)
    return 0


def cmd_exec(a: argparse.Namespace) -> int:
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


def cmd_start(a: argparse.Namespace) -> int:
    start(a.root, a.id)
    return 0


def cmd_state(a: argparse.Namespace) -> int:
    st = _load(a.root, a.id)
    out = {"ociVersion": st["ociVersion"], "id": st["id"], "status": _status(st, a.root),
           "pid": st["pid"], "bundle": st["bundle"], "rootfs": st["rootfs"],
           "created": st["created"], "annotations": st["annotations"]}
    if out["status"] == "stopped":
        out["pid"] = 0
    print(json.dumps(out, indent=2))
    return 0


def _signal(name: str) -> int:
    if name.isdigit():
        return int(name)
    n = name.upper()
    return int(signal.Signals[n if n.startswith("SIG") else "SIG" + n])


def cmd_kill(a: argparse.Namespace) -> int:
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
    shutil.rmtree(os.path.join(root, cid), ignore_errors=True)


def cmd_delete(a: argparse.Namespace) -> int:
    delete(a.root, a.id, a.force)
    return 0


def cmd_list(a: argparse.Namespace) -> int:
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


def cmd_run(a: argparse.Namespace) -> int:
    # the init is re-parented to us when the intermediate exits: we can wait for it
    linux.set_child_subreaper()
    st = create(a.root, a.id, a.bundle or ".", a.pid_file, a.console_socket)
    start(a.root, a.id)
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
    delete(a.root, a.id, True)
    code = os.waitstatus_to_exitcode(status)
    return 128 - code if code < 0 else code


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    if any(c in args for c in ("create", "run", "exec")):
        from berth.runtime.sealed import reexec_sealed
        reexec_sealed("berth.runtime.cli", args)
    p = argparse.ArgumentParser(prog="berth-runtime", description="berth's OCI runtime "
                                "(a runc-compatible command line)")
    p.add_argument("--root", default=DEFAULT_ROOT)
    p.add_argument("--log", default="")
    p.add_argument("--log-format", default="text")
    p.add_argument("--debug", action="store_true")
    p.add_argument("--systemd-cgroup", action="store_true")
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("spec")
    s.add_argument("-b", "--bundle", default="")
    s.set_defaults(fn=cmd_spec)
    for name, fn in (("create", cmd_create), ("run", cmd_run)):
        s = sub.add_parser(name)
        s.add_argument("-b", "--bundle", default="")
        s.add_argument("--pid-file", default=None)
        s.add_argument("--console-socket", default=None)
        s.add_argument("id")
        s.set_defaults(fn=fn)
    for name, fn in (("start", cmd_start), ("state", cmd_state)):
        s = sub.add_parser(name)
        s.add_argument("id")
        s.set_defaults(fn=fn)
    s = sub.add_parser("exec")
    s.add_argument("--process", "-p", default="")
    s.add_argument("--tty", "-t", action="store_true")
    s.add_argument("--detach", "-d", action="store_true")
    s.add_argument("--console-socket", default=None)
    s.add_argument("--pid-file", default=None)
    s.add_argument("--cwd", default="")
    s.add_argument("--env", "-e", action="append", default=[])
    s.add_argument("--user", "-u", default="")
    s.add_argument("id")
    s.add_argument("command", nargs=argparse.REMAINDER)
    s.set_defaults(fn=cmd_exec)
    s = sub.add_parser("kill")
    s.add_argument("id")
    s.add_argument("signal", nargs="?", default="SIGTERM")
    s.add_argument("-a", "--all", action="store_true")
    s.set_defaults(fn=cmd_kill)
    s = sub.add_parser("delete")
    s.add_argument("-f", "--force", action="store_true")
    s.add_argument("id")
    s.set_defaults(fn=cmd_delete)
    s = sub.add_parser("list")
    s.set_defaults(fn=cmd_list)
    a = p.parse_args(args)
    os.makedirs(a.root, mode=0o700, exist_ok=True)
    sys.exit(a.fn(a))


if __name__ == "__main__":
    main()
