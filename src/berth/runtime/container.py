"""berth-runtime's containers: state in ROOT/<id>/state.json, and the lifecycle verbs runc's
command line drives (create, start, delete), with the runtime-spec hooks at their moments.

Imports `runtime.process`, `runtime.hooks`, `runtime.validate`, `cgroups`, `fs`. `create`
leaves the container's init blocked on ROOT/<id>/exec.fifo (as runc does) until `start` opens
it. The init is re-parented to the caller's subreaper, or to init, when `create` returns.
"""

from __future__ import annotations

import _signal as signal
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


def die(msg: str, code: int = 1) -> NoReturn:
    sys.stderr.write(f"berth-runtime: {msg}\n")
    sys.exit(code)


def _state_dir(root: str, cid: str) -> str:
    if not cid or "/" in cid or cid in (".", ".."):
        die(f"invalid container id: {cid!r}")
    return os.path.join(root, cid)


def load(root: str, cid: str) -> dict[str, Any]:
    try:
        with open(os.path.join(_state_dir(root, cid), "state.json")) as f:
            data: dict[str, Any] = json.load(f)
            return data
    except FileNotFoundError:
        die(f"container does not exist: {cid}")
        raise


def status_of(st: dict[str, Any], root: str) -> str:
    pid = st.get("pid", 0)
    try:
        os.kill(pid, 0)
        with open(f"/proc/{pid}/stat") as f:
            if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                return "stopped"
    except (ProcessLookupError, FileNotFoundError, ValueError):
        return "stopped"
    cg = _cgroup(st)
    if cg and cg.frozen():  # as runc: a created container can be paused too
        return "paused"
    fifo = os.path.join(root, st["id"], "exec.fifo")
    return "created" if os.path.exists(fifo) else "running"


def _cgroup(st: dict[str, Any]) -> cgroups.CgroupManager | None:
    if not st.get("cgroupsPath"):
        return None
    return cgroups.for_spec(st["cgroupsPath"], st.get("cgroupBases"))


def pause(root: str, cid: str, frozen: bool) -> None:
    """`pause` (frozen) and `resume`: the container's cgroup frozen or thawed, as runc, and
    back only once the kernel says every process is (so that `state` says paused at once).
    As runc, a created container can be paused; resumed, it is created again."""
    st = load(root, cid)
    status = status_of(st, root)
    if frozen and status not in ("running", "created"):
        die("container not running")
    if not frozen and status != "paused":
        die("container not paused")
    cg = _cgroup(st)
    if cg is None:
        die(f"container {cid} has no cgroup to freeze")
    cg.freeze(frozen)
    deadline = time.monotonic() + 10
    while cg.frozen() is not frozen:
        if time.monotonic() > deadline:
            if frozen:
                cg.freeze(False)
            die(f"the cgroup of container {cid} did not {'freeze' if frozen else 'thaw'}")
        time.sleep(0.005)


def _save(root: str, st: dict[str, Any]) -> None:
    # as before: no fsync (a runtime's state lives in a run directory, gone at boot)
    atomic_write(os.path.join(root, st["id"], "state.json"), json.dumps(st).encode(), sync=False)


def stdio_for(terminal: bool, console_socket: str | None) -> process.Stdio:
    if not terminal:
        if console_socket:
            die("--console-socket is for a process with a terminal (process.terminal)")
        return process.Stdio(0, 1, 2)
    if not console_socket:
        die("cannot allocate tty if runc will detach without setting console socket")
    import socket

    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(console_socket)
    except OSError as e:
        die(f"cannot connect to the console socket {console_socket}: {e.strerror}")
    return process.Stdio(console=sock.detach())


def create(
    root: str, cid: str, bundle: str, pid_file: str | None, console_socket: str | None = None
) -> dict[str, Any]:
    return create_container(root, cid, bundle, pid_file, console_socket)[0]


def create_container(
    root: str,
    cid: str,
    bundle: str,
    pid_file: str | None,
    console_socket: str | None,
    spec: dict[str, Any] | None = None,
    trampoline: int | None = None,
    keep_err: bool = False,
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
            die(f"cannot read {bundle}/config.json: {e}")
    try:
        hooks.check(spec)
        for warning in validate.check(spec):
            warn(warning)
    except (hooks.HookError, validate.SpecError) as e:
        die(str(e))
    try:
        os.makedirs(sdir)
    except FileExistsError:
        die(f"container with id exists: {cid}")
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
    st = {
        "ociVersion": spec.get("ociVersion", "1.0.2"),
        "id": cid,
        "pid": 0,
        "bundle": bundle,
        "rootfs": os.path.join(bundle, spec.get("root", {}).get("path", "rootfs")),
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "annotations": spec.get("annotations") or {},
        # as runc: without a cgroupsPath, a cgroup named after the container, under ours
        "cgroupsPath": lx.get("cgroupsPath") or cid,
        "cgroupBases": cgroups.own_cgroups(),
    }
    if spec.get("hooks"):
        st["hooks"] = spec["hooks"]
    st["ownPidNamespace"] = any(
        ns.get("type") == "pid" and not ns.get("path") for ns in lx.get("namespaces") or []
    )
    cg = None
    sync = None
    if any(
        hooks.of(spec, k)
        for k in ("prestart", "createRuntime", "createContainer", "startContainer")
    ):
        sync = os.pipe()
    unclosed = list(sync or ())  # each closed once, whichever way create ends

    def close(fd: int) -> None:
        if fd in unclosed:
            unclosed.remove(fd)
            os.close(fd)

    def on_hooks() -> None:
        """The init waits before pivot_root: prestart and createRuntime hooks here, then
        the state to the init, for its createContainer and startContainer hooks."""
        assert sync is not None
        state = hook_state(st, "creating")
        try:
            hooks.run_all(spec, "prestart", state)
            hooks.run_all(spec, "createRuntime", state)
        except hooks.HookError as e:
            raise process.StartError(str(e), 1) from None
        os.write(sync[1], json.dumps(state).encode() + b"\n")
        close(sync[1])

    mem = (lx.get("resources") or {}).get("memory") or {}
    if mem.get("kernel") and not cgroups.kernel_memory_enforced():
        warn(
            "linux.resources.memory.kernel is ignored: Linux 5.16 and later no longer "
            "limit kernel memory"
        )
    try:
        if st["cgroupsPath"]:
            cg = cgroups.for_spec(st["cgroupsPath"])
            cg.create(cgroups.Resources.from_spec(process.cgroup_resources(lx, runc_allowed=True)))
        stdio = stdio_for(bool(spec.get("process", {}).get("terminal")), console_socket)
        pid, err_r = process.spawn(
            spec, bundle, stdio, cgroup=cg, exec_fifo=fifo_fd, trampoline=trampoline, hook_sync=sync
        )
        st["pid"] = pid
        if sync is not None:
            close(sync[0])  # the init's end
        if stdio.console >= 0:
            os.close(stdio.console)
        process.wait_exec(
            err_r,
            until_ready=True,
            close=not keep_err,
            on_hooks=on_hooks if sync is not None else None,
        )
    except (process.StartError, OSError, Exception) as e:
        if st["pid"]:
            kill_reap(st["pid"])
        if cg:
            cg.remove()
        # runtime-spec lifecycle: a create that fails continues at "destroy", then poststop
        hooks.run_warn(spec, "poststop", hook_state(st, "stopped"), warn)
        rmtree(sdir)
        die(str(getattr(e, "message", e)), getattr(e, "code", 1))
        raise
    finally:
        os.close(fifo_fd)
        for fd in list(unclosed):
            close(fd)
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


def hook_state(st: dict[str, Any], status: str) -> dict[str, Any]:
    """The container's state as a hook reads it on its stdin (runtime-spec "State"): no pid
    once stopped, no annotations where there are none (both optional there, as runc)."""
    out = {"ociVersion": st["ociVersion"], "id": st["id"], "status": status}
    if status != "stopped":
        out["pid"] = st["pid"]
    out["bundle"] = st["bundle"]
    if st["annotations"]:
        out["annotations"] = st["annotations"]
    return out


def warn(message: str) -> None:
    sys.stderr.write(f"berth-runtime: warning: {message}\n")


def kill_reap(pid: int) -> None:
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
    st = load(root, cid)
    if status_of(st, root) != "created":
        die(f"cannot start a container that is not created: {cid}")
    release(root, st)
    hooks.run_warn(st, "poststart", hook_state(st, "running"), warn)


def release(root: str, st: dict[str, Any], err_r: int | None = None) -> None:
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
        kill_reap(st["pid"])
        die(got[1:].decode(errors="replace"))
    if err_r is not None:
        try:
            process.wait_exec(err_r)
        except process.StartError as e:
            sys.stderr.write(f"berth-runtime: {e.message}\n")
    os.unlink(fifo)


def rmtree(path: str) -> None:
    """shutil.rmtree(ignore_errors=True) for a state directory (flat, or one level deep)."""
    try:
        entries = os.listdir(path)
    except OSError:
        return
    for e in entries:
        p = os.path.join(path, e)
        try:
            if os.path.isdir(p) and not os.path.islink(p):
                rmtree(p)
            else:
                os.unlink(p)
        except OSError:
            pass
    try:
        os.rmdir(path)
    except OSError:
        pass


def delete(root: str, cid: str, force: bool) -> None:
    st = load(root, cid)
    status = status_of(st, root)
    if status in ("running", "paused") and not force:
        die(f"cannot delete container {cid} that is not stopped: {status}")
    if status != "stopped":
        try:
            os.kill(st["pid"], signal.SIGKILL)
        except ProcessLookupError:
            pass
        if status == "paused":  # on v1, a frozen process dies only once thawed
            cg = _cgroup(st)
            if cg:
                cg.freeze(False)
        for _ in range(200):
            if status_of(st, root) == "stopped":
                break
            time.sleep(0.01)
    # as runc: a container without a pid namespace of its own outlives its init; what is
    # left in its cgroup is killed, so that the cgroup can go
    for _ in range(50 if not st.get("ownPidNamespace", True) else 0):
        if not signal_all(st, signal.SIGKILL):
            break
        time.sleep(0.01)
    if st.get("cgroupsPath"):
        cgroups.for_spec(st["cgroupsPath"], st.get("cgroupBases")).remove()
    hooks.run_warn(st, "poststop", hook_state(st, "stopped"), warn)
    rmtree(os.path.join(root, cid))


def signal_all(st: dict[str, Any], sig: int) -> int:
    """Send `sig` to every process in the container's cgroup (`kill --all`); how many."""
    if not st.get("cgroupsPath"):
        return 0
    cg = cgroups.for_spec(st["cgroupsPath"], st.get("cgroupBases"))
    pids: set[int] = set()
    for f in cg.procs_files():
        try:
            pids.update(int(p) for p in linux.read_text(f).split())
        except (OSError, ValueError):
            continue
        break  # one hierarchy holds them all
    sent = 0
    for pid in sorted(pids):
        try:
            os.kill(pid, sig)
            sent += 1
        except ProcessLookupError:
            pass
    return sent
