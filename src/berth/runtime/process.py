"""Create a container's first process from an OCI runtime-spec `config.json`, or an exec'd one.

Imports `linux`, `jsonc`, `oci.sysctl`, `errors` (and `cgroups` for types). The caller must be
single-threaded (a monitor or `berth-runtime`, never the asyncio daemon): this forks. It is
also what berth-runtime imports on every command, so it stays off heavy modules.

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

# berth-runtime imports this module: `_signal`, `_struct` and `jsonc`, not `signal`, `socket`,
# `json`, `dataclasses`, `contextlib` or `typing`, which cost ~25 ms of its start-up
import _signal as signal
import _struct as struct  # struct's own module, without its Python wrapper
import fcntl
import os
import resource
import stat

from berth import fs, linux
from berth import jsonc as json
from berth.oci import sysctl as sysctl_rules
from berth.runtime import sysctl

TYPE_CHECKING = False
if TYPE_CHECKING:
    from berth.cgroups import CgroupManager

_RLIMITS = {
    "RLIMIT_NOFILE": resource.RLIMIT_NOFILE, "RLIMIT_NPROC": resource.RLIMIT_NPROC,
    "RLIMIT_CORE": resource.RLIMIT_CORE, "RLIMIT_STACK": resource.RLIMIT_STACK,
    "RLIMIT_MEMLOCK": resource.RLIMIT_MEMLOCK, "RLIMIT_AS": resource.RLIMIT_AS,
    "RLIMIT_CPU": resource.RLIMIT_CPU, "RLIMIT_FSIZE": resource.RLIMIT_FSIZE,
    "RLIMIT_DATA": resource.RLIMIT_DATA, "RLIMIT_NICE": resource.RLIMIT_NICE,
    "RLIMIT_RTPRIO": resource.RLIMIT_RTPRIO, "RLIMIT_MSGQUEUE": resource.RLIMIT_MSGQUEUE,
    "RLIMIT_SIGPENDING": resource.RLIMIT_SIGPENDING,
}

_MOUNT_FLAGS = {
    "ro": (linux.MS_RDONLY, True), "rw": (linux.MS_RDONLY, False),
    "nosuid": (linux.MS_NOSUID, True), "suid": (linux.MS_NOSUID, False),
    "nodev": (linux.MS_NODEV, True), "dev": (linux.MS_NODEV, False),
    "noexec": (linux.MS_NOEXEC, True), "exec": (linux.MS_NOEXEC, False),
    "bind": (linux.MS_BIND, True), "rbind": (linux.MS_BIND | linux.MS_REC, True),
    "strictatime": (linux.MS_STRICTATIME, True),
}
_PROPAGATION = {"private": linux.MS_PRIVATE, "rprivate": linux.MS_PRIVATE | linux.MS_REC,
                "slave": linux.MS_SLAVE, "rslave": linux.MS_SLAVE | linux.MS_REC,
                "shared": linux.MS_SHARED, "rshared": linux.MS_SHARED | linux.MS_REC}

# the devices every container gets (runtime-spec "Default Devices")
_DEFAULT_DEVICES = [
    ("null", 1, 3), ("zero", 1, 5), ("full", 1, 7), ("random", 1, 8), ("urandom", 1, 9),
    ("tty", 5, 0),
]


def cgroup_resources(lx: dict) -> dict:  # type: ignore[type-arg]
    """The spec's resources, with the device rules runc adds: the default devices and those
    the spec's `linux.devices` creates stay usable whatever the rules before them deny."""
    res = dict(lx.get("resources") or {})
    if res.get("devices"):
        extra = [{"allow": True, "type": "c", "major": ma, "minor": mi, "access": "rwm"}
                 for _, ma, mi in _DEFAULT_DEVICES]
        extra += [{"allow": True, "type": "c", "major": 5, "minor": 2, "access": "rwm"},
                  {"allow": True, "type": "c", "major": 136, "minor": -1, "access": "rwm"}]
        # a device the spec creates is usable, unless a rule of its own says how
        ruled = {(r.get("type"), r.get("major"), r.get("minor")) for r in res["devices"]}
        extra += [{"allow": True, "type": d.get("type", "c"), "major": d["major"],
                   "minor": d["minor"], "access": "rwm"} for d in lx.get("devices") or []
                  if (d.get("type", "c"), d["major"], d["minor"]) not in ruled]
        res["devices"] = [*res["devices"], *extra]
    return res


class StartError(Exception):
    """The container's process could not be started; `code` is Docker's exit code for it."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


class Stdio:
    __slots__ = ("stdin", "stdout", "stderr", "console")

    def __init__(self, stdin: int = -1, stdout: int = -1, stderr: int = -1,
                 console: int = -1) -> None:
        self.stdin, self.stdout, self.stderr = stdin, stdout, stderr
        # a Tty: a unix socket to the caller. The init makes the pty from the container's own
        # devpts (so `tty` inside names /dev/pts/N), hands the master over it with SCM_RIGHTS
        # (as runc's --console-socket), and uses the slave as stdin, stdout, stderr and
        # controlling tty
        self.console = console


def parse_mount_options(options: list[str]) -> tuple[int, int, str]:
    """(flags, propagation flags, data) from runtime-spec mount options."""
    flags = 0
    prop = 0
    data: list[str] = []
    for opt in options:
        if opt in _MOUNT_FLAGS:
            bit, on = _MOUNT_FLAGS[opt]
            flags = (flags | bit) if on else (flags & ~bit)
        elif opt in _PROPAGATION:
            prop = _PROPAGATION[opt]
        else:
            data.append(opt)
    return flags, prop, ",".join(data)


def spawn(spec: dict, bundle: str, stdio: Stdio, *,  # type: ignore[type-arg]
          cgroup: CgroupManager | None = None,
          exec_fifo: str | None = None, trampoline: int | None = None,
          go: tuple[int, int] | None = None) -> tuple[int, int]:
    """Fork the intermediate and the init. Returns (init host pid, read end of the error pipe).

    The caller must read the error pipe to EOF (see `wait_exec`) and reap the init. With
    `exec_fifo` (runc's create/start split) the init, once set up, writes {"ready": true} on
    the error pipe and blocks opening the fifo for writing until `start` opens it to read, then
    execs its program through `trampoline` if given."""
    lx = spec.get("linux", {})
    why = sysctl_rules.check_spec(lx)   # as runc: only namespaced sysctls, in the container's own
    if why:
        raise StartError(_oci_message(why), 1)
    _preload(bool(lx.get("seccomp")), execvpe=trampoline is None, console=stdio.console >= 0)
    err_r, err_w = os.pipe()  # both close-on-exec (PEP 446)
    pid_r, pid_w = os.pipe()
    userns = any(ns["type"] == "user" and not ns.get("path") for ns in lx.get("namespaces", []))
    if userns:
        uns_r, uns_w = os.pipe()   # intermediate -> us: "my user namespace exists"
        map_r, map_w = os.pipe()   # us -> intermediate: "its maps are written"
    unified = cgroup.unified_dir() if cgroup else None
    if not userns and not any(ns.get("path") for ns in lx.get("namespaces", [])):
        init = _clone_init(spec, bundle, stdio, err_r, err_w, exec_fifo, trampoline, cgroup,
                           unified, go)
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
            for ns in lx.get("namespaces", []):
                if ns.get("path"):
                    fd = os.open(ns["path"], os.O_RDONLY)
                    linux.setns(fd, linux.NAMESPACE_FLAGS[ns["type"]])
                    os.close(fd)
                elif ns["type"] != "user":
                    flags |= linux.NAMESPACE_FLAGS[ns["type"]]
            linux.unshare(flags)
            init = os.fork()
            if init == 0:
                os.close(pid_w)
                if go is not None and os.read(go[0], 1) != b"1":
                    os._exit(1)  # the caller gave up on us
                _init(spec, bundle, stdio, err_w, exec_fifo, trampoline)  # never returns
            os.write(pid_w, str(init).encode())
            code = 0
        except BaseException as e:  # noqa: BLE001 - report anything to the caller, then die
            _report(err_w, f"container init: {e}", 1)
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
        lines = "".join(f"{m['containerID']} {m['hostID']} {m['size']}\n"
                        for m in lx.get(key) or [])
        if not lines:
            raise StartError(f"a user namespace needs linux.{key}", 1)
        with open(f"/proc/{pid}/{name}", "w") as f:
            f.write(lines)


def _clone_init(spec: dict, bundle: str, stdio: Stdio,  # type: ignore[type-arg]
                err_r: int, err_w: int, exec_fifo: str | None, trampoline: int | None,
                cgroup: CgroupManager | None, unified: str | None,
                go: tuple[int, int] | None) -> int | None:
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
        _report(err_w, f"container init: {e}", 1)
        os._exit(1)
    _init(spec, bundle, stdio, err_w, exec_fifo, trampoline)  # never returns
    return None


def _child_pid(inter: int, pid_r: int, pid_w: int, err_r: int, err_w: int, what: str,
               code: int) -> tuple[int, int]:
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
        raise StartError(_decode_error(msg)[0] or what, code)
    return int(data), err_r


def wait_exec(err_r: int, *, until_ready: bool = False, close: bool = True) -> None:
    """Block until the init has exec'd (EOF) or failed (a JSON error line): raise StartError.
    With `until_ready`, return as soon as the init reports it waits on its exec fifo (and,
    with `close` false, leave the pipe open to wait for its exec later)."""
    buf = b""
    while chunk := os.read(err_r, 65536):
        buf += chunk
        if until_ready and buf.endswith(b"\n"):
            break
    if close or not until_ready:
        os.close(err_r)
    if buf and not (until_ready and buf.startswith(b'{"ready"')):
        msg, code = _decode_error(buf)
        raise StartError(msg, code)


def _exec(args: list[str], env: dict[str, str]) -> tuple[str, int]:
    """execve, or the reason it failed in runc's words and Docker's exit code for it."""
    try:
        os.execvpe(args[0], args, env)
    except FileNotFoundError:
        if "/" in args[0]:
            return f'exec: "{args[0]}": stat {args[0]}: no such file or directory', 127
        return f'exec: "{args[0]}": executable file not found in $PATH', 127
    except OSError as e:
        return f'exec: "{args[0]}": {(e.strerror or str(e)).lower()}', 126
    raise AssertionError("unreachable: execve returned")


def _decode_error(buf: bytes) -> tuple[str, int]:
    try:
        d = json.loads(buf.decode(errors="replace").splitlines()[0])
        return str(d["message"]), int(d["code"])
    except (ValueError, KeyError, IndexError):
        return buf.decode(errors="replace").strip(), 1


def _report(err_w: int, message: str, code: int) -> None:
    try:
        os.write(err_w, (json.dumps({"message": message, "code": code}) + "\n").encode())
    except OSError:
        pass


def _init(spec: dict, bundle: str, stdio: Stdio, err_w: int,  # type: ignore[type-arg]
          exec_fifo: str | None = None, trampoline: int | None = None) -> None:
    """PID 1 of the container: never returns. With `trampoline` (see sealed.trampoline; only
    with `exec_fifo`), the program is exec'd through it."""
    try:
        # opened before pivot_root (O_PATH, close-on-exec), reopened through /proc after it
        fifo = os.open(exec_fifo, os.O_PATH | os.O_CLOEXEC) if exec_fifo else None
        _setup(spec, bundle, stdio)  # may add HOME to the spec's env
        proc = spec["process"]
        args = proc["args"]
        env = dict(e.split("=", 1) if "=" in e else (e, "") for e in proc.get("env", []))
        if fifo is not None:
            # as runc: a missing command fails `create`, not `start`
            path = _lookup(args[0], env)
            os.write(err_w, b'{"ready": true}\n')
            wfd = os.open(f"/proc/self/fd/{fifo}", os.O_WRONLY)
            os.write(wfd, b"0")
            os.close(wfd)
            os.close(fifo)
            if trampoline is not None:
                # once ready nobody reads err_w: the trampoline's exit code tells a failure
                _exec_trampoline(trampoline, [path, *args], env)
        detail, code = _exec(args, env)
        _report(err_w, _oci_message(detail), code)
    except StartError as e:
        _report(err_w, _oci_message(e.message), e.code)
        code = e.code
    except BaseException as e:  # noqa: BLE001
        _report(err_w, _oci_message(f"error during container init: {e}"), 1)
        code = 1
    os._exit(code)


def _exec_trampoline(fd: int, argv: list[str], env: dict[str, str]) -> None:
    """execveat(fd) (glibc's fexecve); where a seccomp profile refuses execveat but not
    execve, through the container's /proc. Raises OSError if neither runs it."""
    try:
        os.execve(fd, argv, env)
    except OSError as e:
        if e.errno not in (1, 13, 38):   # EPERM, EACCES, ENOSYS: what a filter answers
            raise
    os.execve(f"/proc/self/fd/{fd}", argv, env)


def _lookup(cmd: str, env: dict[str, str]) -> str:
    """The path execvpe would run for `cmd`."""
    if "/" in cmd:
        if not os.path.exists(cmd):
            raise StartError(f'exec: "{cmd}": stat {cmd}: no such file or directory', 127)
        return cmd
    for d in env.get("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
                     ).split(":"):
        p = os.path.join(d or ".", cmd)
        if os.path.isfile(p) and os.access(p, os.X_OK):
            return p
    raise StartError(f'exec: "{cmd}": executable file not found in $PATH', 127)


def _oci_message(detail: str) -> str:
    # the prefix Docker users see; scripts match on the tail ("executable file not found")
    return ("failed to create task for container: OCI runtime create failed: "
            f"unable to start container process: {detail}: unknown")


def _setup(spec: dict, bundle: str, stdio: Stdio) -> None:  # type: ignore[type-arg]
    lx = spec.get("linux", {})
    _oom_score_adj(spec.get("process", {}), "error during container init", 1)
    ns_types = {ns["type"] for ns in lx.get("namespaces", [])}
    root = spec.get("root", {})
    rootfs = os.path.join(bundle, root.get("path", "rootfs"))
    if "mount" in ns_types:
        linux.mount(None, "/", None, linux.MS_REC | linux.MS_PRIVATE)
        # pivot_root needs rootfs to be a mount point: bind it onto itself (no-op for overlay)
        linux.mount(rootfs, rootfs, None, linux.MS_BIND | linux.MS_REC)
        rootfs_fd = os.open(rootfs, fs.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            for m in spec.get("mounts", []):
                _mount_one(rootfs_fd, m, cgroupns="cgroup" in ns_types)
        finally:
            os.close(rootfs_fd)
        _setup_dev(rootfs, lx)
        os.chdir(rootfs)
        linux.pivot_root(".", ".")
        linux.umount(".", linux.MNT_DETACH)
        os.chdir("/")
        # through the container's own /proc, in its namespaces, before /proc/sys is read-only
        _write_sysctls(lx)
        # runc's order: read-only paths, then masked ones
        for p in lx.get("readonlyPaths", []):
            _readonly(p)
        for p in lx.get("maskedPaths", []):
            _mask(p)
        if root.get("readonly"):
            linux.mount(None, "/", None, linux.MS_REMOUNT | linux.MS_BIND | linux.MS_RDONLY)
    else:
        os.chroot(rootfs)
        os.chdir("/")
        _write_sysctls(lx)
    if "network" in ns_types and not any(
            ns.get("path") for ns in lx.get("namespaces", []) if ns["type"] == "network"):
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
        env.append("HOME=" + (home or _home_of(uid) or "/"))
    cwd = proc.get("cwd", "/")
    if not os.path.isdir(cwd):
        os.makedirs(cwd, mode=0o755, exist_ok=True)
        os.chown(cwd, uid, gid)
    os.chdir(cwd)

    if lx.get("seccomp"):
        proc["_seccomp"] = lx["seccomp"]
        if lx.get("_seccompBPF"):
            proc["_seccomp_bpf"] = lx["_seccompBPF"]
    _become(proc, stdio, uid, gid, groups)


def _oom_score_adj(proc: dict, what: str, code: int) -> None:  # type: ignore[type-arg]
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


def _become(proc: dict, stdio: Stdio, uid: int, gid: int,  # type: ignore[type-arg]
            groups: list[int]) -> None:
    """The last steps before execve, for a container's init: `_drop_privileges`, then
    `_finish`. An exec runs the two in different processes (see `spawn_exec`)."""
    slave = _drop_privileges(proc, stdio, uid, gid, groups)
    _finish(proc, stdio, slave)


def _drop_privileges(proc: dict, stdio: Stdio, uid: int, gid: int,  # type: ignore[type-arg]
                     groups: list[int]) -> int:
    """What needs privileges: seccomp without no_new_privs, the bounding set, no_new_privs,
    the console's pty (made and sent while root), the user and the capabilities. Returns the
    pty's slave descriptor (-1 without a console), for `_finish`."""
    caps = proc.get("capabilities")
    keep = {linux.CAPABILITIES[c] for c in (caps or {}).get("bounding", [])
            if c in linux.CAPABILITIES} if caps is not None else None
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
    os.setgroups(groups)
    os.setgid(gid)
    os.setuid(uid)
    if keep is not None and uid == 0:
        caps = caps or {}  # not None when `keep` is set
        eff = {linux.CAPABILITIES[c] for c in caps.get("effective", []) if c in linux.CAPABILITIES}
        perm = {linux.CAPABILITIES[c] for c in caps.get("permitted", []) if c in linux.CAPABILITIES}
        linux.set_caps(eff & keep, perm & keep, set())
    return slave


def _finish(proc: dict, stdio: Stdio, slave: int) -> None:  # type: ignore[type-arg]
    """What needs no privileges, just before execve: stdio (and the console as controlling
    terminal), no inherited descriptor, default signals, seccomp with no_new_privs."""
    _set_stdio(stdio, slave)
    # no host descriptor may reach the container (CVE-2024-21626)
    _close_inheritable_fds()
    for sig in (signal.SIGPIPE, signal.SIGINT, signal.SIGTERM, signal.SIGCHLD, signal.SIGHUP):
        signal.signal(sig, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_SETMASK, [])
    if proc.get("_seccomp") and proc.get("noNewPrivileges"):
        _load_seccomp(proc)   # last, as runc: nothing after it but execve


def _preload(seccomp: bool, execvpe: bool = True, console: bool = False) -> None:
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
    pivot_root: `_preload` imported the module (and opened libseccomp) before."""
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
            fcntl.ioctl(master, linux.TIOCSWINSZ, struct.pack(
                "HHHH", int(size["height"]), int(size["width"]), 0, 0))
        n = struct.unpack("I", fcntl.ioctl(master, linux.TIOCGPTN, b"\0" * 4))[0]
        slave = os.open(f"/dev/pts/{n}", os.O_RDWR | os.O_NOCTTY)
        os.fchown(slave, uid, 5)
        import _socket  # preloaded (`_preload`): this runs after pivot_root
        sock = _socket.socket(fileno=os.dup(stdio.console))
        try:
            sock.sendmsg([b"console"], [(_socket.SOL_SOCKET, _socket.SCM_RIGHTS,
                                         struct.pack("i", master))])
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


# the namespaces an exec joins, in order: the user namespace first (it owns the others), the
# mount namespace late (then /proc is the container's), the pid namespace last (for children
# only: setns never moves the caller itself)
_EXEC_NAMESPACES = ("user", "cgroup", "ipc", "uts", "net", "mnt", "pid")


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
    _preload(bool(proc.get("_seccomp")), console=stdio.console >= 0)
    v1, unified = _cgroups_of(target)
    err_r, err_w = os.pipe()
    pid_r, pid_w = os.pipe()
    try:
        inter = (linux.fork_into_cgroup(unified) if unified and os.path.isdir(unified)
                 else os.fork())
    except OSError as e:
        for fd in (err_r, err_w, pid_r, pid_w):
            os.close(fd)
        raise StartError(_exec_message(f"exec: {e}"), 126) from e
    if inter == 0:
        try:
            os.close(err_r)
            os.close(pid_r)
            _exec_join(target, v1, proc, stdio, err_w, pid_w)  # never returns
        except StartError as e:
            _report(err_w, _exec_message(e.message), 126)
        except BaseException as e:  # noqa: BLE001
            _report(err_w, _exec_message(f"exec: {e}"), 126)
        os._exit(126)
    return _child_pid(inter, pid_r, pid_w, err_r, err_w, _exec_message("exec failed"), 126)


def _exec_join(target: int, v1: list[str], proc: dict, stdio: Stdio,  # type: ignore[type-arg]
               err_w: int, pid_w: int) -> None:
    """The first process of an exec, outside the container's pid namespace: never returns."""
    # not dumpable until execve: a process of the container must not reach our
    # /proc/PID/exe (the host's interpreter) (CVE-2019-5736); execve makes the new program
    # dumpable again. The second process inherits it.
    linux.set_dumpable(False)
    _oom_score_adj(proc, "exec", 126)
    inherited = _open_fds()  # while /proc/self is still ours (see below)
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
    if isinstance(user, dict):   # a runtime-spec user (berth-runtime exec --process)
        uid, gid = int(user.get("uid", 0)), int(user.get("gid", 0))
        groups = [int(g) for g in user.get("additionalGids") or []]
        home = _home_of(uid)
    else:                        # a `user[:group]` string (docker exec -u)
        uid, gid, groups, home = resolve_user(user, [])
    env = dict(e.split("=", 1) if "=" in e else (e, "") for e in proc.get("env", []))
    env.setdefault("HOME", home or "/")
    os.chdir(proc.get("cwd") or "/")
    slave = _drop_privileges(proc, stdio, uid, gid, groups)
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


def _exec_init(proc: dict, stdio: Stdio, slave: int,  # type: ignore[type-arg]
               env: dict[str, str], err_w: int) -> None:
    """The exec'd process, in the container's pid namespace: never returns."""
    try:
        _finish(proc, stdio, slave)
        detail, _ = _exec(proc["args"], env)
        _report(err_w, _exec_message(detail), 126)  # dockerd: 126 for any exec start failure
    except StartError as e:
        _report(err_w, _exec_message(e.message), 126)
    except BaseException as e:  # noqa: BLE001
        _report(err_w, _exec_message(f"exec: {e}"), 126)
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
            elif fields[0] == "cgroup" and ctrls and set(ctrls.split(",")) <= set(
                    fields[2].split(",")):
                v1.append(point + path)
            else:
                continue
            break
    return v1, unified


def _exec_message(detail: str) -> str:
    return ("OCI runtime exec failed: exec failed: unable to start container process: "
            f"{detail}: unknown")


def _close_inheritable_fds() -> None:
    """Close every fd >= 3 that would survive exec. Close-on-exec ones (err_w among them,
    which must stay open until the exec) go away by themselves."""
    for fd in _open_fds():
        if fd < 3:
            continue
        try:
            if not fcntl.fcntl(fd, fcntl.F_GETFD) & fcntl.FD_CLOEXEC:
                os.close(fd)
        except OSError:
            pass


def _open_fds() -> list[int]:
    try:
        return [int(x) for x in os.listdir("/proc/self/fd")]
    except OSError:
        return list(range(3, 1024))


def _mount_cgroups(parent: int, name: str, target: int, flags: int,
                   cgroupns: bool = False) -> None:
    """/sys/fs/cgroup as runc sets it up, on the mount point `target` (`name` in `parent`).
    Without a cgroup namespace: on v1 a tmpfs with, for each hierarchy, the container's own
    cgroup directory bound read-only; on v2 the container's directory of the unified
    hierarchy. In a cgroup namespace: fresh cgroup mounts, which show the namespace's root only
    (a bind of "/" there would show the host's whole tree)."""
    own: dict[str, str] = {}
    for line in linux.read_text("/proc/self/cgroup").splitlines():
        _, ctrls, path = line.split(":", 2)
        own[ctrls] = path
    dest = _fd_path(target)
    if "" in own and len(own) == 1:  # cgroup v2
        if cgroupns:
            linux.mount("cgroup2", dest, "cgroup2", linux.MS_NOSUID | linux.MS_NODEV |
                        linux.MS_NOEXEC | linux.MS_RDONLY)
            return
        linux.mount("/sys/fs/cgroup" + own[""], dest, None, linux.MS_BIND | linux.MS_REC)
        new = _mounted(parent, name, target)
        try:
            linux.mount(None, _fd_path(new), None,
                        linux.MS_REMOUNT | linux.MS_BIND | linux.MS_RDONLY | flags)
        finally:
            os.close(new)
        return
    linux.mount("tmpfs", dest, "tmpfs", linux.MS_NOSUID | linux.MS_NODEV | linux.MS_NOEXEC,
                "mode=755")
    # a fresh tmpfs of this process's own: paths below it are safe to use
    new = _mounted(parent, name, target)
    try:
        _cgroup_hierarchies(_fd_path(new), own, cgroupns)
    finally:
        os.close(new)


def _cgroup_hierarchies(dest: str, own: dict[str, str], cgroupns: bool) -> None:
    mounts = [line.split(" - ") for line in linux.read_text("/proc/self/mountinfo").splitlines()]
    for left, right in mounts:
        fields = right.split()
        if fields[0] != "cgroup":
            continue
        point = left.split()[4]
        opts = fields[2].split(",")
        key = next((k for k in own if k and set(k.split(",")) <= set(opts)), None)
        if key is None:
            continue
        name = os.path.basename(point)
        target = os.path.join(dest, name)
        os.makedirs(target, exist_ok=True)
        if cgroupns:
            linux.mount("cgroup", target, "cgroup", linux.MS_NOSUID | linux.MS_NODEV |
                        linux.MS_NOEXEC | linux.MS_RDONLY, key)
        else:
            linux.mount(point + own[key], target, None, linux.MS_BIND | linux.MS_REC)
            linux.mount(None, target, None, linux.MS_REMOUNT | linux.MS_BIND |
                        linux.MS_RDONLY | linux.MS_NOSUID | linux.MS_NODEV | linux.MS_NOEXEC)
        if "," in name:  # cpu,cpuacct: the links runc makes for each controller
            for ctrl in name.split(","):
                link = os.path.join(dest, ctrl)
                if not os.path.lexists(link):
                    os.symlink(name, link)


def _fd_path(fd: int) -> str:
    return f"/proc/self/fd/{fd}"


def _mnt_id(fd: int) -> int:
    for line in linux.read_text(f"/proc/self/fdinfo/{fd}").splitlines():
        if line.startswith("mnt_id:"):
            return int(line.split()[1])
    return -1


def _mounted(parent: int, name: str, under: int) -> int:
    """The mount just made on `name` of `parent`, opened again so that its path leads into it
    (a path through the fd of the mount point leads to what the mount covers). It must be a
    new mount: a name swapped meanwhile is refused, not remounted."""
    fd = os.open(name, fs.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=parent)
    if _mnt_id(fd) == _mnt_id(under):
        os.close(fd)
        raise OSError(16, f"the mount point {name!r} changed while it was mounted on")  # EBUSY
    return fd


def _mount_one(rootfs_fd: int, m: dict, cgroupns: bool = False) -> None:  # type: ignore[type-arg]
    """One mount of the spec, onto its destination resolved inside the rootfs by fd (made where
    missing): never onto a path string, which a container sharing a volume with this one could
    turn into a symlink out of the rootfs between the check and the mount."""
    mtype = m.get("type", "none")
    source = m.get("source", "")
    flags, prop, data = parse_mount_options(m.get("options", []))
    is_bind = bool(flags & linux.MS_BIND)
    src_fd = -1
    if is_bind:
        src_fd = os.open(source, fs.O_PATH | os.O_CLOEXEC)   # the source as it is now
    try:
        directory = not is_bind or stat.S_ISDIR(os.fstat(src_fd).st_mode)
        parent, name, target = fs.make_beneath(rootfs_fd, m["destination"], directory=directory)
        try:
            _mount_at(parent, name, target, mtype, source, src_fd, flags, prop, data, cgroupns)
        finally:
            os.close(parent)
            os.close(target)
    finally:
        if src_fd >= 0:
            os.close(src_fd)


def _mount_at(parent: int, name: str, target: int, mtype: str, source: str, src_fd: int,
              flags: int, prop: int, data: str, cgroupns: bool) -> None:
    if mtype in ("cgroup", "cgroup2"):
        _mount_cgroups(parent, name, target, flags & linux.MS_NOSUID, cgroupns)
        return
    dest = _fd_path(target)
    if src_fd >= 0:
        linux.mount(_fd_path(src_fd), dest, None, flags & (linux.MS_BIND | linux.MS_REC))
    else:
        try:
            linux.mount(source or mtype, dest, mtype, flags, data or None)
        except OSError:
            if mtype == "sysfs":
                # no sysfs of our own without a network namespace: bind the host's read-only
                linux.mount("/sys", dest, None, linux.MS_BIND | linux.MS_REC)
                flags = linux.MS_BIND | linux.MS_RDONLY
                src_fd = -2   # remount it below
            elif mtype == "mqueue":
                return  # not fatal: an mqueue mount needs an ipc namespace of our own
            else:
                raise
    remount = src_fd != -1 and bool(flags & ~(linux.MS_BIND | linux.MS_REC))
    if not remount and not prop:
        return
    new = _mounted(parent, name, target)
    try:
        if src_fd >= 0:
            got, want = os.fstat(new), os.fstat(src_fd)
            if (got.st_dev, got.st_ino) != (want.st_dev, want.st_ino):
                raise OSError(16, f"the mount point {name!r} changed while it was mounted on")
        if remount:
            linux.mount(None, _fd_path(new), None, linux.MS_REMOUNT | linux.MS_BIND | flags)
        if prop:
            linux.mount(None, _fd_path(new), None, prop)
    finally:
        os.close(new)


def _setup_dev(rootfs: str, lx: dict) -> None:  # type: ignore[type-arg]
    dev = os.path.join(rootfs, "dev")
    if not os.path.ismount(dev):
        return  # the spec gave no /dev of its own: leave the image's
    devices = [(d["path"].removeprefix("/dev/"), d["major"], d["minor"], d.get("type", "c"),
                d.get("fileMode", 0o666), d.get("uid", 0), d.get("gid", 0))
               for d in lx.get("devices", [])]
    names = {d[0] for d in devices}
    devices += [(n, ma, mi, "c", 0o666, 0, 0) for n, ma, mi in _DEFAULT_DEVICES if n not in names]
    old = os.umask(0)
    try:
        for name, major, minor, typ, mode, uid, gid in devices:
            path = linux.secure_join(rootfs, "/dev/" + name)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            kind = stat.S_IFBLK if typ == "b" else stat.S_IFCHR
            try:
                os.mknod(path, (mode & 0o7777) | kind, os.makedev(major, minor))
            except FileExistsError:
                continue
            except PermissionError:
                # in a user namespace no device node can be made: bind the host's, as runc
                host = "/dev/" + name
                if not os.path.exists(host):
                    continue
                with open(path, "a"):
                    pass
                linux.mount(host, path, None, linux.MS_BIND)
                continue
            os.chown(path, uid, gid)
    finally:
        os.umask(old)
    links = [("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"),
             ("stdout", "/proc/self/fd/1"), ("stderr", "/proc/self/fd/2")]
    if os.path.exists("/proc/kcore"):  # runc links it only where the kernel has one
        links.append(("core", "/proc/kcore"))
    for name, target in links:
        try:
            os.symlink(target, os.path.join(dev, name))
        except FileExistsError:
            pass
    if os.path.isdir(os.path.join(dev, "pts")):
        try:
            os.symlink("pts/ptmx", os.path.join(dev, "ptmx"))
        except FileExistsError:
            pass


def _mask(path: str) -> None:
    try:
        st = os.lstat(path)
    except OSError:
        return
    if stat.S_ISDIR(st.st_mode):
        linux.mount("tmpfs", path, "tmpfs", linux.MS_RDONLY)
    else:
        linux.mount("/dev/null", path, None, linux.MS_BIND)


def _readonly(path: str) -> None:
    if not os.path.exists(path):
        return
    linux.mount(path, path, None, linux.MS_BIND | linux.MS_REC)
    # keep nosuid/nodev/noexec of the mount it came from (statvfs's ST_* bits are MS_*'s)
    keep = os.statvfs(path).f_flag & (linux.MS_NOSUID | linux.MS_NODEV | linux.MS_NOEXEC)
    linux.mount(None, path, None,
                linux.MS_REMOUNT | linux.MS_BIND | linux.MS_RDONLY | linux.MS_REC | keep)


def _home_of(uid: int) -> str | None:
    for e in _read_db("/etc/passwd"):
        if len(e) > 5 and e[2] == str(uid):
            return e[5]
    return None


def resolve_user(spec_user: str, extra_groups: list[int], root: str = "/"
                 ) -> tuple[int, int, list[int], str | None]:
    """`user[:group]` by name or number, through the container's /etc/passwd and /etc/group
    (we are already inside the rootfs). Returns uid, gid, supplementary gids and the home
    directory. Raises StartError with Docker's wording."""
    user, _, group = spec_user.partition(":")
    passwd = _read_db(os.path.join(root, "etc/passwd"))
    groups_db = _read_db(os.path.join(root, "etc/group"))
    uid = gid = None
    name = home = None
    if user.isdigit():
        uid = int(user)
        for e in passwd:
            if len(e) > 3 and e[2] == user:
                name, gid = e[0], int(e[3])
                home = e[5] if len(e) > 5 else None
                break
        if gid is None:
            gid = 0
    else:
        for e in passwd:
            if len(e) > 3 and e[0] == user:
                name, uid, gid = e[0], int(e[2]), int(e[3])
                home = e[5] if len(e) > 5 else None
                break
        if uid is None:
            raise StartError(f"unable to find user {user}: no matching entries in passwd file", 125)
    if group:
        if group.isdigit():
            gid = int(group)
        else:
            for e in groups_db:
                if len(e) > 2 and e[0] == group:
                    gid = int(e[2])
                    break
            else:
                raise StartError(
                    f"unable to find group {group}: no matching entries in group file", 125)
    assert uid is not None and gid is not None  # found, or StartError above
    # as runc: the primary group is among the supplementary ones
    supplementary = list(extra_groups)
    if gid not in supplementary:
        supplementary.append(gid)
    if name and not group:
        for e in groups_db:
            if len(e) > 3 and name in e[3].split(",") and int(e[2]) not in supplementary:
                supplementary.append(int(e[2]))
    return uid, gid, supplementary, home


def _read_db(path: str) -> list[list[str]]:
    try:
        text = linux.read_text(path)
    except OSError:
        return []
    return [line.split(":") for line in text.splitlines()
            if line.strip() and not line.startswith("#")]


__all__ = ["spawn", "spawn_exec", "wait_exec", "StartError", "Stdio", "resolve_user",
           "parse_mount_options"]
