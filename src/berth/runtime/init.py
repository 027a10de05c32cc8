"""The container's init (PID 1 of its pid namespace), from fork to execve: mounts and
pivot_root, sysctls, hostname, rlimits, user, capabilities, seccomp, console, stdio; and the
privilege and stdio steps an exec shares with it.

Imports `fs`, `linux`, `runtime.*`. Runs in the forked child only: nothing here may raise past
`run_init`, which reports on the error pipe and exits.
"""

from __future__ import annotations

import _signal as signal
import _struct as struct  # struct's own module, without its Python wrapper
import fcntl
import os
import resource

from berth import fs, linux
from berth import jsonc as json
from berth.runtime import hooks, sysctl
from berth.runtime.devices import setup_dev
from berth.runtime.mounts import mask, mount_one, readonly
from berth.runtime.report import StartError, Stdio, exec_program, oci_message, report
from berth.runtime.users import home_of, resolve_user

_RLIMITS = {
    "RLIMIT_NOFILE": resource.RLIMIT_NOFILE,
    "RLIMIT_NPROC": resource.RLIMIT_NPROC,
    "RLIMIT_CORE": resource.RLIMIT_CORE,
    "RLIMIT_STACK": resource.RLIMIT_STACK,
    "RLIMIT_MEMLOCK": resource.RLIMIT_MEMLOCK,
    "RLIMIT_AS": resource.RLIMIT_AS,
    "RLIMIT_CPU": resource.RLIMIT_CPU,
    "RLIMIT_FSIZE": resource.RLIMIT_FSIZE,
    "RLIMIT_DATA": resource.RLIMIT_DATA,
    "RLIMIT_NICE": resource.RLIMIT_NICE,
    "RLIMIT_RTPRIO": resource.RLIMIT_RTPRIO,
    "RLIMIT_MSGQUEUE": resource.RLIMIT_MSGQUEUE,
    "RLIMIT_SIGPENDING": resource.RLIMIT_SIGPENDING,
}


def run_init(
    spec: dict,  # type: ignore[type-arg]
    bundle: str,
    stdio: Stdio,
    err_w: int,
    exec_fifo: str | int | None = None,
    trampoline: int | None = None,
    hook_sync: int | None = None,
) -> None:
    """PID 1 of the container: never returns. With `trampoline` (see sealed.trampoline; only
    with `exec_fifo`), the program is exec'd through it. With `hook_sync` (the read end of a
    pipe from the caller), it stops before pivot_root for the caller's createRuntime hooks
    (see `_hook_point`)."""
    try:
        # opened before pivot_root (O_PATH, close-on-exec), reopened through /proc after it
        # (or given as such a descriptor, by a caller whose path to it we may not reach)
        fifo = (
            exec_fifo
            if isinstance(exec_fifo, int)
            else os.open(exec_fifo, os.O_PATH | os.O_CLOEXEC)
            if exec_fifo
            else None
        )
        state = _setup(spec, bundle, stdio, err_w, hook_sync)  # may add HOME to the env
        proc = spec["process"]
        args = proc["args"]
        env = dict(e.split("=", 1) if "=" in e else (e, "") for e in proc.get("env", []))
        if fifo is not None:
            # as runc: a missing command fails `create`, not `start`
            path = _lookup(args[0], env)
            os.write(err_w, b'{"ready": true}\n')
            wfd = os.open(f"/proc/self/fd/{fifo}", os.O_WRONLY)
            os.close(fifo)
            # `start` reads the fifo to its end: "0", or why the container could not start
            if state is not None:
                try:
                    hooks.run_all(spec, "startContainer", {**state, "status": "created"})
                except hooks.HookError as e:
                    os.write(wfd, f"E{e}".encode())
                    os._exit(1)
            os.write(wfd, b"0")
            os.close(wfd)
            if trampoline is not None:
                # once ready nobody reads err_w: the trampoline's exit code tells a failure
                _exec_trampoline(trampoline, [path, *args], env)
        detail, code = exec_program(args, env)
        report(err_w, oci_message(detail), code)
    except StartError as e:
        report(err_w, oci_message(e.message), e.code)
        code = e.code
    except BaseException as e:  # noqa: BLE001
        report(err_w, oci_message(f"error during container init: {e}"), 1)
        code = 1
    os._exit(code)


def _hook_point(
    spec: dict,  # type: ignore[type-arg]
    err_w: int,
    hook_sync: int | None,
) -> dict | None:  # type: ignore[type-arg]
    """Where the namespaces exist and pivot_root is next: the caller runs the prestart and
    createRuntime hooks (told by a `{"hooks": true}` line on the error pipe) and answers with
    the container's state as one JSON line; then the createContainer hooks run here, in the
    container's namespaces. Returns that state (for startContainer), None without hooks."""
    if hook_sync is None:
        return None
    os.write(err_w, b'{"hooks": true}\n')
    line = b""
    while not line.endswith(b"\n"):
        chunk = os.read(hook_sync, 65536)
        if not chunk:
            os._exit(1)  # the caller gave up (a hook of its own failed): nothing to report
        line += chunk
    os.close(hook_sync)
    state: dict = json.loads(line.decode())  # type: ignore[type-arg]
    # runtime-spec "State": for a hook in the container's namespaces, the pid as the
    # container sees it (1 in a pid namespace of its own)
    state["pid"] = os.getpid()
    try:
        hooks.run_all(spec, "createContainer", state)
    except hooks.HookError as e:
        raise StartError(str(e), 1) from None
    return state


def _exec_trampoline(fd: int, argv: list[str], env: dict[str, str]) -> None:
    """execveat(fd) (glibc's fexecve); where a seccomp profile refuses execveat but not
    execve, through the container's /proc. Raises OSError if neither runs it."""
    try:
        os.execve(fd, argv, env)
    except OSError as e:
        if e.errno not in (1, 13, 38):  # EPERM, EACCES, ENOSYS: what a filter answers
            raise
    os.execve(f"/proc/self/fd/{fd}", argv, env)


def _lookup(cmd: str, env: dict[str, str]) -> str:
    """The path execvpe would run for `cmd`."""
    if "/" in cmd:
        if not os.path.exists(cmd):
            raise StartError(f'exec: "{cmd}": stat {cmd}: no such file or directory', 127)
        return cmd
    for d in env.get("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin").split(
        ":"
    ):
        p = os.path.join(d or ".", cmd)
        if os.path.isfile(p) and os.access(p, os.X_OK):
            return p
    raise StartError(f'exec: "{cmd}": executable file not found in $PATH', 127)


def _setup(
    spec: dict,  # type: ignore[type-arg]
    bundle: str,
    stdio: Stdio,
    err_w: int,
    hook_sync: int | None,
) -> dict | None:  # type: ignore[type-arg]
    """Everything before execve; returns the state of `_hook_point`."""
    lx = spec.get("linux", {})
    oom_score_adj(spec.get("process", {}), "error during container init", 1)
    ns_types = {ns["type"] for ns in lx.get("namespaces", [])}
    root = spec.get("root", {})
    rootfs = os.path.join(bundle, root.get("path", "rootfs"))
    prop = lx.get("rootfsPropagation")
    if prop and prop not in _ROOT_PROPAGATION:
        raise StartError(f"linux.rootfsPropagation: unknown value {prop!r}", 1)
    if "mount" in ns_types:
        # nothing we mount goes back to the host; slave where the spec wants mounts from it
        linux.mount(
            None,
            "/",
            None,
            linux.MS_REC
            | (
                linux.MS_SLAVE
                if prop and prop.lstrip("r") in ("slave", "shared")
                else linux.MS_PRIVATE
            ),
        )
        # pivot_root needs rootfs to be a mount point: bind it onto itself (no-op for overlay)
        linux.mount(rootfs, rootfs, None, linux.MS_BIND | linux.MS_REC)
        rootfs_fd = os.open(rootfs, fs.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            for m in spec.get("mounts", []):
                mount_one(rootfs_fd, m, cgroupns="cgroup" in ns_types)
        finally:
            os.close(rootfs_fd)
        setup_dev(rootfs, lx)
        os.chdir(rootfs)
        state = _hook_point(spec, err_w, hook_sync)
        linux.pivot_root(".", ".")
        linux.umount(".", linux.MNT_DETACH)
        os.chdir("/")
        if prop:  # the container's root, once it is one (as runc)
            linux.mount(None, "/", None, _ROOT_PROPAGATION[prop])
        # through the container's own /proc, in its namespaces, before /proc/sys is read-only
        _write_sysctls(lx)
        # runc's order: read-only paths, then masked ones
        for p in lx.get("readonlyPaths", []):
            readonly(p)
        for p in lx.get("maskedPaths", []):
            mask(p)
        if root.get("readonly"):
            linux.mount(None, "/", None, linux.MS_REMOUNT | linux.MS_BIND | linux.MS_RDONLY)
    else:
        state = _hook_point(spec, err_w, hook_sync)
        os.chroot(rootfs)
        os.chdir("/")
        _write_sysctls(lx)
    if "network" in ns_types and not any(
        ns.get("path") for ns in lx.get("namespaces", []) if ns["type"] == "network"
    ):
        linux.set_link_up("lo")
    if "uts" in ns_types and spec.get("hostname"):
        linux.sethostname(spec["hostname"])
    if "uts" in ns_types and spec.get("domainname"):
        linux.setdomainname(spec["domainname"])

    proc = spec["process"]
    for rl in proc.get("rlimits", []):
        resource.setrlimit(_RLIMITS[rl["type"]], (rl["soft"], rl["hard"]))
    user = proc.get("user", {})
    uid, gid = int(user.get("uid", 0)), int(user.get("gid", 0))
    groups = [int(g) for g in user.get("additionalGids", [])]
    named = (spec.get("annotations") or {}).get("berth.user")
    home = None
    if named:
        uid, gid, groups, home = resolve_user(named, groups)
    env = proc.setdefault("env", [])
    if not any(e.startswith("HOME=") for e in env):
        # as runc: HOME from the user's passwd entry, else /
        env.append("HOME=" + (home or home_of(uid) or "/"))
    cwd = proc.get("cwd", "/")
    if not os.path.isdir(cwd):
        os.makedirs(cwd, mode=0o755, exist_ok=True)
        os.chown(cwd, uid, gid)
    os.chdir(cwd)

    if lx.get("seccomp"):
        proc["_seccomp"] = lx["seccomp"]
        if lx.get("_seccompBPF"):
            proc["_seccomp_bpf"] = lx["_seccompBPF"]
    _process_attributes(spec)
    _become(proc, stdio, uid, gid, groups)
    return state


_MS_UNBINDABLE = 1 << 17
_ROOT_PROPAGATION = {
    "private": linux.MS_PRIVATE,
    "rprivate": linux.MS_PRIVATE | linux.MS_REC,
    "slave": linux.MS_SLAVE,
    "rslave": linux.MS_SLAVE | linux.MS_REC,
    "shared": linux.MS_SHARED,
    "rshared": linux.MS_SHARED | linux.MS_REC,
    "unbindable": _MS_UNBINDABLE,
    "runbindable": _MS_UNBINDABLE | linux.MS_REC,
}
_PERSONALITY = {"LINUX": 0x0000, "LINUX32": 0x0008}
_SCHED_POLICY = {
    "SCHED_OTHER": 0,
    "SCHED_FIFO": 1,
    "SCHED_RR": 2,
    "SCHED_BATCH": 3,
    "SCHED_IDLE": 5,
}
_IOPRIO_CLASS = {"IOPRIO_CLASS_RT": 1, "IOPRIO_CLASS_BE": 2, "IOPRIO_CLASS_IDLE": 3}


def _process_attributes(spec: dict) -> None:  # type: ignore[type-arg]
    """What the process inherits through execve and needs privileges to set, while the init
    still has them: linux.personality, process.scheduler, process.ioPriority, the AppArmor
    profile (validate refused it where AppArmor is off), and process.user.umask."""
    proc = spec["process"]
    sched = proc.get("scheduler")
    if sched:
        policy = _SCHED_POLICY.get(sched.get("policy", ""))
        if policy is None:
            raise StartError(f"process.scheduler: unknown policy {sched.get('policy')!r}", 1)
        try:
            os.sched_setscheduler(0, policy, os.sched_param(int(sched.get("priority", 0))))
            if "nice" in sched:
                os.setpriority(os.PRIO_PROCESS, 0, int(sched["nice"]))
        except OSError as e:
            raise StartError(f"process.scheduler: {e}", 1) from None
    io = proc.get("ioPriority")
    if io:
        cls = _IOPRIO_CLASS.get(io.get("class", ""))
        level = int(io.get("priority", 0))
        if cls is None or not 0 <= level <= 7:
            raise StartError(f"process.ioPriority: invalid {io!r}", 1)
        try:
            linux.ioprio_set(cls, level)
        except OSError as e:
            raise StartError(f"process.ioPriority: {e}", 1) from None
    profile = proc.get("apparmorProfile")
    if profile:
        # applied at execve (as runc): the container's /proc, after pivot_root
        path = (
            "/proc/self/attr/apparmor/exec"
            if os.path.exists("/proc/self/attr/apparmor")
            else "/proc/self/attr/exec"
        )
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
            try:
                os.write(fd, f"exec {profile}".encode())
            finally:
                os.close(fd)
        except OSError as e:
            raise StartError(f"apply the AppArmor profile {profile!r}: {e}", 1) from None
    umask = (proc.get("user") or {}).get("umask")
    if umask is not None:
        os.umask(int(umask))
    # last: it changes what uname says
    pers = (spec.get("linux") or {}).get("personality")
    if pers:
        if pers.get("domain") not in _PERSONALITY:
            raise StartError(f"linux.personality: unknown domain {pers.get('domain')!r}", 1)
        if pers.get("flags"):
            raise StartError("linux.personality: no flags are defined", 1)
        linux.personality(_PERSONALITY[pers["domain"]])


def oom_score_adj(proc: dict, what: str, code: int) -> None:  # type: ignore[type-arg]
    """process.oomScoreAdj, as runc: before exec, while still root with every capability
    (lowering it needs CAP_SYS_RESOURCE); an exec gets the container's, as dockerd's."""
    adj = proc.get("oomScoreAdj")
    if adj is None:
        return
    try:
        fd = os.open("/proc/self/oom_score_adj", os.O_WRONLY | os.O_CLOEXEC)
        try:
            os.write(fd, str(int(adj)).encode())
        finally:
            os.close(fd)
    except OSError as e:
        raise StartError(f"{what}: write oom_score_adj: {e}", code) from None


def _write_sysctls(lx: dict) -> None:  # type: ignore[type-arg]
    try:
        sysctl.write_all(lx.get("sysctl") or {})
    except (OSError, ValueError) as e:
        raise StartError(f"error during container init: write sysctl: {e}", 1) from None


def _become(
    proc: dict,  # type: ignore[type-arg]
    stdio: Stdio,
    uid: int,
    gid: int,
    groups: list[int],
) -> None:
    """The last steps before execve, for a container's init: `drop_privileges`, then
    `finish`. An exec runs the two in different processes (see `spawn_exec`)."""
    slave = drop_privileges(proc, stdio, uid, gid, groups)
    finish(proc, stdio, slave)


def drop_privileges(
    proc: dict,  # type: ignore[type-arg]
    stdio: Stdio,
    uid: int,
    gid: int,
    groups: list[int],
) -> int:
    """What needs privileges: seccomp without no_new_privs, the bounding set, no_new_privs,
    the console's pty (made and sent while root), the user and the capabilities. Returns the
    pty's slave descriptor (-1 without a console), for `finish`."""
    caps = proc.get("capabilities")
    keep = (
        {linux.CAPABILITIES[c] for c in (caps or {}).get("bounding", []) if c in linux.CAPABILITIES}
        if caps is not None
        else None
    )
    nnp = bool(proc.get("noNewPrivileges"))
    if proc.get("_seccomp") and not nnp:
        # as runc: without no_new_privs the filter needs CAP_SYS_ADMIN, so it goes in while
        # we still hold it (the filter must let setuid, capset and execve through)
        _load_seccomp(proc)
    if keep is not None:
        linux.drop_bounding_caps(keep)
    if nnp:
        linux.set_no_new_privs()
    slave = _open_console(stdio, uid, proc.get("consoleSize")) if stdio.console >= 0 else -1
    if keep is not None and uid != 0:
        linux.set_keepcaps(True)  # as runc: the capabilities outlive setuid to a user
    try:
        os.setgroups(groups)
    except PermissionError:
        # a user namespace joined by path whose setgroups is "deny": as runc, no
        # supplementary groups is fine then, and asking for some is an error
        if groups and groups != [gid]:
            raise
    os.setgid(gid)
    os.setuid(uid)
    if keep is not None:
        caps = caps or {}  # not None when `keep` is set

        def capset(kind: str) -> set[int]:
            return {
                linux.CAPABILITIES[c] for c in caps.get(kind) or [] if c in linux.CAPABILITIES
            } & keep

        if uid != 0:
            linux.set_keepcaps(False)
        linux.set_caps(capset("effective"), capset("permitted"), capset("inheritable"))
        # ambient ones need to be permitted and inheritable: the kernel refuses the others
        for cap in sorted(capset("ambient")):
            try:
                linux.prctl(_PR_CAP_AMBIENT, _PR_CAP_AMBIENT_RAISE, cap)
            except OSError:
                pass  # as runc: an ambient capability that cannot be raised is skipped
    return slave


_PR_CAP_AMBIENT, _PR_CAP_AMBIENT_RAISE = 47, 2


def finish(proc: dict, stdio: Stdio, slave: int) -> None:  # type: ignore[type-arg]
    """What needs no privileges, just before execve: stdio (and the console as controlling
    terminal), no inherited descriptor, default signals, seccomp with no_new_privs."""
    _set_stdio(stdio, slave)
    # no host descriptor may reach the container (CVE-2024-21626)
    _close_inheritable_fds()
    for sig in (signal.SIGPIPE, signal.SIGINT, signal.SIGTERM, signal.SIGCHLD, signal.SIGHUP):
        signal.signal(sig, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_SETMASK, [])
    if proc.get("_seccomp") and proc.get("noNewPrivileges"):
        _load_seccomp(proc)  # last, as runc: nothing after it but execve


def preload(seccomp: bool, execvpe: bool = True, console: bool = False) -> None:
    """Import now what the child will need after pivot_root, when the host's files are gone
    and berth-runtime has not imported it: the seccomp module (and libseccomp) for a filter,
    `warnings` for os.execvpe (not needed with a trampoline), `_socket` to send a console."""
    if seccomp:
        from berth.linux import seccomp as _  # noqa: F401
    if execvpe:
        import warnings  # noqa: F401
    if console:
        import _socket  # noqa: F401


def _load_seccomp(proc: dict) -> None:  # type: ignore[type-arg]
    """The filter compiled ahead (by the monitor, from its cache), else built now. Runs after
    pivot_root: `preload` imported the module (and opened libseccomp) before."""
    from berth.linux import seccomp

    if proc.get("_seccomp_bpf"):
        seccomp.load_bpf(proc["_seccomp_bpf"])
    else:
        seccomp.load(proc["_seccomp"])


def _open_console(stdio: Stdio, uid: int, size: dict | None) -> int:  # type: ignore[type-arg]
    """A pty in the container's /dev/pts: its master goes over the console socket, its slave
    (owned by the user, group tty, as runc does) is returned. Sized here (the spec's
    `consoleSize`): the process may ask before the receiver has the master."""
    master = os.open("/dev/ptmx", os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC)
    try:
        fcntl.ioctl(master, linux.TIOCSPTLCK, struct.pack("i", 0))  # unlockpt
        if size and size.get("height") and size.get("width"):
            fcntl.ioctl(
                master,
                linux.TIOCSWINSZ,
                struct.pack("HHHH", int(size["height"]), int(size["width"]), 0, 0),
            )
        n = struct.unpack("I", fcntl.ioctl(master, linux.TIOCGPTN, b"\0" * 4))[0]
        slave = os.open(f"/dev/pts/{n}", os.O_RDWR | os.O_NOCTTY)
        os.fchown(slave, uid, 5)
        import _socket  # preloaded (`preload`): this runs after pivot_root

        sock = _socket.socket(fileno=os.dup(stdio.console))
        try:
            sock.sendmsg(
                [b"console"], [(_socket.SOL_SOCKET, _socket.SCM_RIGHTS, struct.pack("i", master))]
            )
        finally:
            sock.close()
    finally:
        os.close(master)
    return slave


def _set_stdio(stdio: Stdio, slave: int) -> None:
    """stdio from the caller's descriptors, or the console's slave as controlling terminal."""
    if slave < 0:
        os.dup2(stdio.stdin, 0)
        os.dup2(stdio.stdout, 1)
        os.dup2(stdio.stderr, 2)
        return
    os.setsid()
    for fd in (0, 1, 2):
        os.dup2(slave, fd)
    if slave > 2:
        os.close(slave)
    fcntl.ioctl(0, linux.TIOCSCTTY, 0)


def _close_inheritable_fds() -> None:
    """Close every fd >= 3 that would survive exec. Close-on-exec ones (err_w among them,
    which must stay open until the exec) go away by themselves."""
    for fd in open_fds():
        if fd < 3:
            continue
        try:
            if not fcntl.fcntl(fd, fcntl.F_GETFD) & fcntl.FD_CLOEXEC:
                os.close(fd)
        except OSError:
            pass


def open_fds() -> list[int]:
    try:
        return [int(x) for x in os.listdir("/proc/self/fd")]
    except OSError:
        return list(range(3, 1024))
