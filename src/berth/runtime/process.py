"""Create a container's first process from an OCI runtime-spec `config.json`, or an exec'd one.

Imports `linux`, `oci.sysctl`, the runtime's own modules (and `cgroups` for types). The caller
must be single-threaded (a monitor or `berth-runtime`, never the asyncio daemon): this forks. It
is also what berth-runtime imports on every command, so it and the modules it imports stay off
heavy modules (`_signal`, `_struct` and `jsonc`, not `signal`, `socket`, `json`, `dataclasses`,
`contextlib` or `typing`, which cost ~25 ms of its start-up).

This module forks and joins: the init's own steps are in `runtime.init` (with `mounts`,
`devices`, `users`), the error pipe's protocol and wording in `runtime.report`.

The protocol, in process order (youki's main → intermediate → init). Where the spec joins no
namespace by path and maps no user namespace, the caller clones the init straight into its new
namespaces instead (`_clone_init`: one process fewer).

  caller ── fork ──► intermediate (born in the cgroup's v2 directory, linux.fork_into_cgroup):
                     joins the v1 cgroups, setns() into any namespace given by path, unshare()s
                     the rest, forks ──► init, writes init's host pid on `pid_w`, exits.
  init (PID 1 of its pid namespace): mounts, pivot_root, hostname, rlimits, user, capabilities,
                     then execve(). Before execve it writes nothing on `err_w`; `err_w` is
                     close-on-exec, so EOF there means the exec succeeded. On failure it writes one
                     JSON line {"message", "code"} with Docker's wording and exits with `code`.

The caller sets PR_SET_CHILD_SUBREAPER first so init is re-parented to it and it can reap it.
"""

from __future__ import annotations

import os

from berth import linux
from berth.oci import sysctl as sysctl_rules
from berth.runtime.devices import cgroup_resources
from berth.runtime.init import drop_privileges, finish, oom_score_adj, open_fds, preload, run_init
from berth.runtime.mounts import parse_mount_options
from berth.runtime.report import (
    StartError,
    Stdio,
    decode_error,
    exec_message,
    exec_program,
    oci_message,
    report,
)
from berth.runtime.users import home_of, resolve_user
from berth.runtime.validate import CLONE_NEWTIME

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

    from berth.cgroups import CgroupManager


def spawn(
    spec: dict,  # type: ignore[type-arg]
    bundle: str,
    stdio: Stdio,
    *,
    cgroup: CgroupManager | None = None,
    exec_fifo: str | int | None = None,
    trampoline: int | None = None,
    go: tuple[int, int] | None = None,
    hook_sync: tuple[int, int] | None = None,
) -> tuple[int, int]:
    """Fork the intermediate and the init. Returns (init host pid, read end of the error pipe).

    The caller must read the error pipe to EOF (see `wait_exec`) and reap the init. With
    `exec_fifo` (runc's create/start split) the init, once set up, writes {"ready": true} on
    the error pipe and blocks opening the fifo for writing until `start` opens it to read, then
    execs its program through `trampoline` if given. With `hook_sync` (a pipe: read end, write
    end) the init stops before pivot_root for the hooks (`wait_exec`'s `on_hooks`); the caller
    closes the read end once this returns, and answers on the write end."""
    lx = spec.get("linux", {})
    why = sysctl_rules.check_spec(lx)  # as runc: only namespaced sysctls, in the container's own
    if why:
        raise StartError(oci_message(why), 1)
    preload(bool(lx.get("seccomp")), execvpe=trampoline is None, console=stdio.console >= 0)
    err_r, err_w = os.pipe()  # both close-on-exec (PEP 446)
    pid_r, pid_w = os.pipe()
    userns = any(ns["type"] == "user" and not ns.get("path") for ns in lx.get("namespaces", []))
    if userns:
        uns_r, uns_w = os.pipe()  # intermediate -> us: "my user namespace exists"
        map_r, map_w = os.pipe()  # us -> intermediate: "its maps are written"
    unified = cgroup.unified_dir() if cgroup else None
    # a new time namespace takes its offsets before its first process: made by the
    # intermediate, which writes them, for the init it forks
    timens = any(ns["type"] == "time" and not ns.get("path") for ns in lx.get("namespaces", []))
    if not userns and not timens and not any(ns.get("path") for ns in lx.get("namespaces", [])):
        init = _clone_init(
            spec, bundle, stdio, err_r, err_w, exec_fifo, trampoline, cgroup, unified, go, hook_sync
        )
        if init is not None:
            os.close(pid_r)
            os.close(pid_w)
            os.close(err_w)
            return init, err_r
    inter = linux.fork_into_cgroup(unified) if unified else os.fork()
    if inter == 0:  # intermediate
        code = 1
        try:
            os.close(err_r)
            os.close(pid_r)
            linux.set_dumpable(False)  # as for exec: no /proc/PID/exe for the container
            if go is not None:
                os.close(go[1])  # only the caller may write: EOF then means "give up"
            if cgroup:
                cgroup.join_self()
            if userns:
                # first the user namespace, mapped from outside by our parent; then root in
                # it, so that every other namespace belongs to it
                os.close(uns_r)
                os.close(map_w)
                linux.unshare(linux.CLONE_NEWUSER)
                os.write(uns_w, b"1")
                os.close(uns_w)
                if os.read(map_r, 1) != b"1":
                    raise OSError("the user namespace was not mapped")
                os.close(map_r)
                os.setresgid(0, 0, 0)
                os.setresuid(0, 0, 0)
                os.setgroups([])
            flags = 0
            # every path opened first (joining one, a mount namespace above all, changes
            # what the next path names), then joined as runc's nsexec does: the user
            # namespace first (it owns the others), the mount namespace last
            joins = [
                (ns["type"], os.open(ns["path"], os.O_RDONLY | os.O_CLOEXEC))
                for ns in lx.get("namespaces", [])
                if ns.get("path")
            ]
            joins.sort(key=lambda j: (j[0] != "user", j[0] == "mount"))
            for typ, fd in joins:
                linux.setns(fd, _ns_flag(typ))
                os.close(fd)
            for ns in lx.get("namespaces", []):
                if not ns.get("path") and ns["type"] != "user":
                    flags |= _ns_flag(ns["type"])
            linux.unshare(flags)
            if timens:
                _write_time_offsets(lx.get("timeOffsets") or {})
            init = os.fork()
            if init == 0:
                os.close(pid_w)
                if go is not None and os.read(go[0], 1) != b"1":
                    os._exit(1)  # the caller gave up on us
                run_init(
                    spec, bundle, stdio, err_w, exec_fifo, trampoline, _hook_end(hook_sync)
                )  # never returns
            os.write(pid_w, str(init).encode())
            code = 0
        except BaseException as e:  # noqa: BLE001 - report anything to the caller, then die
            report(err_w, f"container init: {e}", 1)
        finally:
            os._exit(code)
    if userns:
        os.close(uns_w)
        os.close(map_r)
        try:
            if os.read(uns_r, 1) == b"1":
                _write_id_maps(inter, lx)
                os.write(map_w, b"1")
        finally:
            os.close(uns_r)
            os.close(map_w)
    return _child_pid(inter, pid_r, pid_w, err_r, err_w, "container init failed", 1)


def _write_id_maps(pid: int, lx: dict) -> None:  # type: ignore[type-arg]
    """uid_map and gid_map of a process's new user namespace, from the spec's mappings."""
    for key, name in (("uidMappings", "uid_map"), ("gidMappings", "gid_map")):
        lines = "".join(
            f"{m['containerID']} {m['hostID']} {m['size']}\n" for m in lx.get(key) or []
        )
        if not lines:
            raise StartError(f"a user namespace needs linux.{key}", 1)
        with open(f"/proc/{pid}/{name}", "w") as f:
            f.write(lines)


def _clone_init(
    spec: dict,  # type: ignore[type-arg]
    bundle: str,
    stdio: Stdio,
    err_r: int,
    err_w: int,
    exec_fifo: str | int | None,
    trampoline: int | None,
    cgroup: CgroupManager | None,
    unified: str | None,
    go: tuple[int, int] | None,
    hook_sync: tuple[int, int] | None = None,
) -> int | None:
    """The init cloned straight into its new namespaces (and v2 cgroup): no intermediate, for a
    spec that joins no namespace by path and maps no user namespace. Its cgroup namespace, if
    any, it makes itself once in its v1 cgroups (clone3 would root it in ours). None where the
    kernel has no clone3."""
    flags = 0
    for ns in spec.get("linux", {}).get("namespaces", []):
        flags |= linux.NAMESPACE_FLAGS[ns["type"]]
    init = linux.clone3(flags & ~linux.CLONE_NEWCGROUP, unified)
    if init != 0:
        return init
    try:
        os.close(err_r)
        linux.set_dumpable(False)  # as for exec: no /proc/PID/exe for the container
        if go is not None:
            os.close(go[1])
        if cgroup:
            cgroup.join_self()
        if flags & linux.CLONE_NEWCGROUP:
            linux.unshare(linux.CLONE_NEWCGROUP)
        if go is not None and os.read(go[0], 1) != b"1":
            os._exit(1)  # the caller gave up on us
    except BaseException as e:  # noqa: BLE001 - report anything to the caller, then die
        report(err_w, f"container init: {e}", 1)
        os._exit(1)
    run_init(
        spec, bundle, stdio, err_w, exec_fifo, trampoline, _hook_end(hook_sync)
    )  # never returns
    return None


def _ns_flag(typ: str) -> int:
    return CLONE_NEWTIME if typ == "time" else linux.NAMESPACE_FLAGS[typ]


def _write_time_offsets(offsets: dict) -> None:  # type: ignore[type-arg]
    """linux.timeOffsets of a new time namespace, before any process is in it
    (time_namespaces(7)): `monotonic` and `boottime`, each {secs, nanosecs}."""
    lines = []
    for clock in ("monotonic", "boottime"):
        o = offsets.get(clock)
        if o:
            lines.append(f"{clock} {int(o.get('secs', 0))} {int(o.get('nanosecs', 0))}\n")
    unknown = set(offsets) - {"monotonic", "boottime"}
    if unknown:
        raise OSError(22, f"linux.timeOffsets: unknown clock {sorted(unknown)[0]!r}")
    if lines:
        fd = os.open("/proc/self/timens_offsets", os.O_WRONLY | os.O_CLOEXEC)
        try:
            for line in lines:  # one clock per write: the kernel reads one line each
                os.write(fd, line.encode())
        finally:
            os.close(fd)


def _hook_end(hook_sync: tuple[int, int] | None) -> int | None:
    """The init's end of the hooks' pipe: it reads; the caller alone writes, so that EOF
    means the caller gave up."""
    if hook_sync is None:
        return None
    os.close(hook_sync[1])
    return hook_sync[0]


def _child_pid(
    inter: int, pid_r: int, pid_w: int, err_r: int, err_w: int, what: str, code: int
) -> tuple[int, int]:
    """The parent's side: the pid the intermediate reports, once it has gone; or its error."""
    os.close(err_w)
    os.close(pid_w)
    data = b""
    while chunk := os.read(pid_r, 64):
        data += chunk
    os.close(pid_r)
    os.waitpid(inter, 0)
    if not data:
        msg = os.read(err_r, 65536)
        os.close(err_r)
        raise StartError(decode_error(msg)[0] or what, code)
    return int(data), err_r


def wait_exec(
    err_r: int,
    *,
    until_ready: bool = False,
    close: bool = True,
    on_hooks: Callable[[], None] | None = None,
) -> None:
    """Block until the init has exec'd (EOF) or failed (a JSON error line): raise StartError.
    With `until_ready`, return as soon as the init reports it waits on its exec fifo (and,
    with `close` false, leave the pipe open to wait for its exec later). `on_hooks` is called
    when the init stops for the hooks (spawn's `hook_sync`); what it raises is raised."""
    buf = b""
    while chunk := os.read(err_r, 65536):
        buf += chunk
        if on_hooks is not None and buf.startswith(b'{"hooks"') and b"\n" in buf:
            buf = buf.split(b"\n", 1)[1]
            call, on_hooks = on_hooks, None
            call()
        if until_ready and buf.endswith(b"\n"):
            break
    if close or not until_ready:
        os.close(err_r)
    if buf and not (until_ready and buf.startswith(b'{"ready"')):
        msg, code = decode_error(buf)
        raise StartError(msg, code)


# the namespaces an exec joins, in order: the user namespace first (it owns the others), the
# mount namespace late (then /proc is the container's), the pid namespace last (for children
# only: setns never moves the caller itself)
_EXEC_NAMESPACES = ("user", "cgroup", "ipc", "uts", "net", "time", "mnt", "pid")


def spawn_exec(target: int, proc: dict, stdio: Stdio) -> tuple[int, int]:  # type: ignore[type-arg]
    """`exec`: a new process inside the running container whose init is `target` (a host pid):
    it joins the container's cgroups and namespaces, then runs `proc` (a runtime-spec
    `process`, with `user` as the `user[:group]` string to resolve). Returns (pid, error pipe)
    as `spawn` does. The caller must be a child subreaper (the process is its grandchild).

    As runc's nsexec, in two processes, so that nothing of the host is ever visible in the
    container's pid namespace: the first, born in the container's v2 cgroup, joins its v1
    cgroups and every namespace (the pid namespace for its children only), takes the
    container's root, the exec's user and capabilities, and keeps no descriptor but stdio;
    only then does it fork the second, born into the pid namespace, which sets up stdio, loads
    a no_new_privs seccomp filter and execs. A process of the container with CAP_SYS_PTRACE
    that reads /proc/PID/root of a new pid finds the container's own root."""
    preload(bool(proc.get("_seccomp")), console=stdio.console >= 0)
    v1, unified = _cgroups_of(target)
    err_r, err_w = os.pipe()
    pid_r, pid_w = os.pipe()
    try:
        inter = linux.fork_into_cgroup(unified) if unified and os.path.isdir(unified) else os.fork()
    except OSError as e:
        for fd in (err_r, err_w, pid_r, pid_w):
            os.close(fd)
        raise StartError(exec_message(f"exec: {e}"), 126) from e
    if inter == 0:
        try:
            os.close(err_r)
            os.close(pid_r)
            _exec_join(target, v1, proc, stdio, err_w, pid_w)  # never returns
        except StartError as e:
            report(err_w, exec_message(e.message), 126)
        except BaseException as e:  # noqa: BLE001
            report(err_w, exec_message(f"exec: {e}"), 126)
        os._exit(126)
    return _child_pid(inter, pid_r, pid_w, err_r, err_w, exec_message("exec failed"), 126)


def _exec_join(
    target: int,
    v1: list[str],
    proc: dict,  # type: ignore[type-arg]
    stdio: Stdio,
    err_w: int,
    pid_w: int,
) -> None:
    """The first process of an exec, outside the container's pid namespace: never returns."""
    # not dumpable until execve: a process of the container must not reach our
    # /proc/PID/exe (the host's interpreter) (CVE-2019-5736); execve makes the new program
    # dumpable again. The second process inherits it.
    linux.set_dumpable(False)
    oom_score_adj(proc, "exec", 126)
    inherited = open_fds()  # while /proc/self is still ours (see below)
    for d in v1:  # a single thread moving itself: see cgroups.V1.join_self
        try:
            fd = os.open(os.path.join(d, "tasks"), os.O_WRONLY | os.O_CLOEXEC)
            try:
                os.write(fd, b"0")
            finally:
                os.close(fd)
        except OSError:
            pass
    # every descriptor opened through the host's /proc, before the mount namespace changes
    fds = []
    for ns in _EXEC_NAMESPACES:
        path = f"/proc/{target}/ns/{ns}"
        try:
            if os.stat(path).st_ino == os.stat(f"/proc/self/ns/{ns}").st_ino:
                continue
        except FileNotFoundError:  # a kernel without this namespace type
            continue
        fds.append((ns, os.open(path, os.O_RDONLY | os.O_CLOEXEC)))
    root = None
    if "mnt" not in {ns for ns, _ in fds}:  # no mount namespace of its own: its chroot
        root = os.open(f"/proc/{target}/root", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    for ns, fd in fds:
        try:
            linux.setns(fd, linux.CLONE_NEWPID if ns == "pid" else 0)
        except OSError as e:
            raise StartError(f"exec: joining the {ns} namespace: {e}", 126) from e
        os.close(fd)
    if root is not None:
        os.fchdir(root)
        os.chroot(".")
        os.close(root)
    # (/proc/self does not resolve from here: we have no pid in the container's /proc)
    user = proc.get("user") or "0"
    if isinstance(user, dict):  # a runtime-spec user (berth-runtime exec --process)
        uid, gid = int(user.get("uid", 0)), int(user.get("gid", 0))
        groups = [int(g) for g in user.get("additionalGids") or []]
        home = home_of(uid)
    else:  # a `user[:group]` string (docker exec -u)
        uid, gid, groups, home = resolve_user(user, [])
    env = dict(e.split("=", 1) if "=" in e else (e, "") for e in proc.get("env", []))
    env.setdefault("HOME", home or "/")
    os.chdir(proc.get("cwd") or "/")
    slave = drop_privileges(proc, stdio, uid, gid, groups)
    # nothing of the caller's but stdio and our two pipes goes into the pid namespace (closed
    # one by one: a seccomp filter loaded above may refuse close_range)
    keep = {stdio.stdin, stdio.stdout, stdio.stderr, slave, err_w, pid_w}
    for fd in inherited:
        if fd not in keep:
            try:
                os.close(fd)
            except OSError:
                pass
    child = os.fork()
    if child == 0:
        # visible in the container from here: nothing of ours it does not need (a process
        # of the container with CAP_SYS_PTRACE could write to the pid pipe through /proc)
        os.close(pid_w)
        _exec_init(proc, stdio, slave, env, err_w)  # never returns
    os.write(pid_w, str(child).encode())
    os._exit(0)


def _exec_init(
    proc: dict,  # type: ignore[type-arg]
    stdio: Stdio,
    slave: int,
    env: dict[str, str],
    err_w: int,
) -> None:
    """The exec'd process, in the container's pid namespace: never returns."""
    try:
        finish(proc, stdio, slave)
        detail, _ = exec_program(proc["args"], env)
        report(err_w, exec_message(detail), 126)  # dockerd: 126 for any exec start failure
    except StartError as e:
        report(err_w, exec_message(e.message), 126)
    except BaseException as e:  # noqa: BLE001
        report(err_w, exec_message(f"exec: {e}"), 126)
    os._exit(126)


def _cgroups_of(pid: int) -> tuple[list[str], str | None]:
    """The cgroup directories of process `pid`: those of the v1 hierarchies, and the one of
    the unified (v2) hierarchy if it is mounted."""
    lines = [line.split(":", 2) for line in linux.read_text(f"/proc/{pid}/cgroup").splitlines()]
    mounts = [line.split(" - ") for line in linux.read_text("/proc/self/mountinfo").splitlines()]
    v1: list[str] = []
    unified = None
    for _, ctrls, path in lines:
        for left, right in mounts:
            fields = right.split()
            point = left.split()[4]
            if ctrls == "" and fields[0] == "cgroup2":
                unified = point + path
            elif (
                fields[0] == "cgroup"
                and ctrls
                and set(ctrls.split(",")) <= set(fields[2].split(","))
            ):
                v1.append(point + path)
            else:
                continue
            break
    return v1, unified


__all__ = [
    "spawn",
    "spawn_exec",
    "wait_exec",
    "StartError",
    "Stdio",
    "resolve_user",
    "parse_mount_options",
    "cgroup_resources",
]
