"""The runtimes a shim drives: berth's own (`runtime.process`, in the shim's own process tree)
and an OCI command-line runtime (runc, crun: a runc-compatible binary), behind one `Runtime`
protocol, so the monitor's loop has no branch on which one it is.

Imports `runtime.process`, `cgroups`, `linux.seccomp`, `fs`, `shim.protocol`, `shim.stdio`.
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import dataclass
from typing import Any, Protocol

from berth import cgroups
from berth.fs import atomic_write
from berth.linux import seccomp
from berth.runtime import process
from berth.shim.protocol import StartRequest
from berth.shim.stdio import Stdio

StartError = process.StartError


@dataclass(slots=True)
class Handle:
    """A process a runtime made: its host pid, and what the runtime still needs of it."""

    pid: int
    exec_r: int = -1  # berth's: the init's error pipe, EOF once it has exec'd
    go_w: int = -1  # berth's: the init waits to read a byte here before it execs


class Runtime(Protocol):
    """How a shim starts, and ends, one container or exec process.

    Lifecycle of a container: `make_cgroup` → `create` (the process exists, held before its
    exec while `hold`, else free to run) → the shim plugs its network → `start` (it runs) →
    `wait_started` (it has exec'd, or StartError) → ... its exit, reaped by the shim (a child
    subreaper) → `delete`. On a failure after `create`, `abort` (then the shim reaps it).
    An exec: `exec` → `wait_started`. Errors are `StartError`, with Docker's exit code."""

    def console_dir(self) -> str:
        """Where the runtime's console socket is made (`Stdio`); "" for a socketpair."""
        ...

    def make_cgroup(self, cg: cgroups.CgroupManager, lx: dict[str, Any]) -> None: ...

    def create(
        self,
        spec: dict[str, Any],
        rootfs: str,
        stdio: Stdio,
        cgroup: cgroups.CgroupManager | None,
        *,
        hold: bool,
    ) -> Handle: ...

    def start(self, h: Handle) -> None: ...

    def abort(self, h: Handle) -> None: ...

    def wait_started(self, h: Handle) -> None: ...

    def exec(self, proc: dict[str, Any], stdio: Stdio) -> Handle: ...

    def kill(self, h: Handle, signo: int) -> None: ...

    def delete(self) -> None: ...


class BerthRuntime:
    """berth's own runtime, in the shim: the init is forked from here (no interpreter start)."""

    def __init__(self, req: StartRequest, seccomp_cache: str = "") -> None:
        self.req = req
        self.seccomp_cache = seccomp_cache

    def console_dir(self) -> str:
        return ""

    def make_cgroup(self, cg: cgroups.CgroupManager, lx: dict[str, Any]) -> None:
        cg.create(cgroups.Resources.from_spec(process.cgroup_resources(lx)))

    def create(
        self,
        spec: dict[str, Any],
        rootfs: str,
        stdio: Stdio,
        cgroup: cgroups.CgroupManager | None,
        *,
        hold: bool,
    ) -> Handle:
        lx = spec.get("linux", {})
        if lx.get("seccomp") and self.seccomp_cache:
            # not a runtime-spec field: only berth's own init reads it
            lx["_seccompBPF"] = seccomp.cached_bpf(lx["seccomp"], self.seccomp_cache)
        go_r, go_w = os.pipe() if hold else (-1, -1)
        try:
            pid, exec_r = process.spawn(
                spec, self.req.bundle, stdio.child, cgroup=cgroup, go=(go_r, go_w) if hold else None
            )
        except BaseException:
            if go_w >= 0:
                os.close(go_w)
            raise
        finally:
            if go_r >= 0:
                os.close(go_r)
        return Handle(pid, exec_r, go_w)

    def start(self, h: Handle) -> None:
        if h.go_w >= 0:
            os.write(h.go_w, b"1")
            os.close(h.go_w)
            h.go_w = -1

    def abort(self, h: Handle) -> None:
        if h.go_w >= 0:
            os.close(h.go_w)  # the init gives up on its own
            h.go_w = -1

    def wait_started(self, h: Handle) -> None:
        if h.exec_r >= 0:
            fd, h.exec_r = h.exec_r, -1
            process.wait_exec(fd)

    def exec(self, proc: dict[str, Any], stdio: Stdio) -> Handle:
        if proc.get("_seccomp") and self.seccomp_cache:
            proc["_seccomp_bpf"] = seccomp.cached_bpf(proc["_seccomp"], self.seccomp_cache)
        pid, exec_r = process.spawn_exec(self.req.exec_pid, proc, stdio.child)
        return Handle(pid, exec_r)

    def kill(self, h: Handle, signo: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(h.pid, signo)

    def delete(self) -> None:
        pass


class OciCliRuntime:
    """An OCI runtime binary with runc's command line (runc, crun): `create`, `start`,
    `exec --detach`, `delete --force`, with its state under the request's `runtime_root`."""

    def __init__(self, req: StartRequest) -> None:
        self.req = req

    def console_dir(self) -> str:
        # the runtime connects to a socket path and sends the master (--console-socket)
        return self.req.runtime_root

    def make_cgroup(self, cg: cgroups.CgroupManager, lx: dict[str, Any]) -> None:
        pass  # the runtime makes the cgroup itself

    def _argv(self) -> list[str]:
        req = self.req
        return [
            req.runtime,
            "--root",
            req.runtime_root,
            "--log",
            os.path.join(req.state_dir, "runtime.log"),
            "--log-format",
            "json",
        ]

    def _run(self, args: list[str], stdio: Stdio | None, what: str, code: int) -> None:
        """Run one runtime command; its failure becomes a StartError with its own message."""
        import subprocess

        req = self.req
        os.makedirs(req.runtime_root, exist_ok=True)
        child = stdio.child if stdio is not None else None
        r = subprocess.run(
            self._argv() + args,
            stdin=child.stdin if child else subprocess.DEVNULL,
            stdout=child.stdout if child else subprocess.DEVNULL,
            stderr=child.stderr if child else subprocess.DEVNULL,
            close_fds=True,
            timeout=120,
        )
        if r.returncode != 0:
            msg = ""
            with contextlib.suppress(OSError):
                with open(os.path.join(req.state_dir, "runtime.log")) as f:
                    for line in f:
                        with contextlib.suppress(ValueError):
                            entry = json.loads(line)
                            if entry.get("level") in ("error", "fatal"):
                                msg = entry.get("msg", msg)
            msg = msg or f"{os.path.basename(req.runtime)} {what} failed ({r.returncode})"
            if "executable file not found" in msg or "no such file or directory" in msg:
                code = 127 if code == 125 else code
            elif "permission denied" in msg:
                code = 126 if code == 125 else code
            raise StartError(f"OCI runtime {what} failed: {msg}: unknown", code)

    def _pid_file(self, name: str) -> int:
        with open(os.path.join(self.req.state_dir, name)) as f:
            return int(f.read().strip())

    @staticmethod
    def _user(proc: dict[str, Any], root: str, named: str | None) -> None:
        """A user name becomes the numbers the runtime wants, read from the container's files."""
        if not named:
            return
        extra = [int(g) for g in (proc.get("user") or {}).get("additionalGids") or []]
        uid, gid, groups, home = process.resolve_user(named, extra, root)
        proc["user"] = {"uid": uid, "gid": gid, "additionalGids": groups}
        env = proc.setdefault("env", [])
        if not any(e.startswith("HOME=") for e in env):
            env.append("HOME=" + (home or "/"))

    def create(
        self,
        spec: dict[str, Any],
        rootfs: str,
        stdio: Stdio,
        cgroup: cgroups.CgroupManager | None,
        *,
        hold: bool,
    ) -> Handle:
        """Always held: an OCI runtime's `create` leaves the init waiting for `start`."""
        req = self.req
        proc = spec["process"]
        self._user(proc, rootfs, (spec.get("annotations") or {}).get("berth.user"))
        proc["terminal"] = req.tty
        if req.tty and req.console_size:
            proc["consoleSize"] = {"height": req.console_size[0], "width": req.console_size[1]}
        # the container's environment is in it: 0600, as the daemon wrote it
        atomic_write(os.path.join(req.bundle, "config.json"), json.dumps(spec).encode(), sync=False)
        args = [
            "create",
            "--bundle",
            req.bundle,
            "--pid-file",
            os.path.join(req.state_dir, "init.pid"),
        ]
        if stdio.console_path:
            args += ["--console-socket", stdio.console_path]
        try:
            self._run(args + [req.id], stdio, "create", 125)
        except StartError:
            self.delete()
            raise
        stdio.receive_console()  # sized before the process starts
        return Handle(self._pid_file("init.pid"))

    def start(self, h: Handle) -> None:
        self._run(["start", self.req.id], None, "start", 125)

    def abort(self, h: Handle) -> None:
        self.delete()

    def wait_started(self, h: Handle) -> None:
        pass  # `start` returned: the process has exec'd

    def exec(self, proc: dict[str, Any], stdio: Stdio) -> Handle:
        """`RUNTIME exec -d`: the process runs detached and is re-parented to us (a
        subreaper)."""
        req = self.req
        user = proc.get("user") or "0"
        oci_proc: dict[str, Any] = {
            "terminal": req.tty,
            "args": proc["args"],
            "env": list(proc.get("env") or []),
            "cwd": proc.get("cwd") or "/",
            "noNewPrivileges": bool(proc.get("noNewPrivileges")),
        }
        if not any(e.startswith("PATH=") for e in oci_proc["env"]):
            oci_proc["env"].insert(
                0, "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
            )
        caps = (proc.get("capabilities") or {}).get("bounding")
        if caps is not None:
            oci_proc["capabilities"] = {"bounding": caps, "effective": caps, "permitted": caps}
        oci_proc["user"] = {"uid": 0, "gid": 0}
        self._user(oci_proc, f"/proc/{req.exec_pid}/root", user)
        if req.tty and req.console_size:
            oci_proc["consoleSize"] = {"height": req.console_size[0], "width": req.console_size[1]}
        path = os.path.join(req.state_dir, "process-oci.json")
        atomic_write(path, json.dumps(oci_proc).encode(), sync=False)
        args = [
            "exec",
            "--process",
            path,
            "--detach",
            "--pid-file",
            os.path.join(req.state_dir, "exec.pid"),
        ]
        if stdio.console_path:
            args += ["--console-socket", stdio.console_path]
        self._run(args + [req.container_id], stdio, "exec", 126)
        pid = self._pid_file("exec.pid")
        stdio.receive_console()
        return Handle(pid)

    def kill(self, h: Handle, signo: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(h.pid, signo)

    def delete(self) -> None:
        with contextlib.suppress(Exception):
            self._run(["delete", "--force", self.req.id], None, "delete", 125)


def for_request(req: StartRequest, seccomp_cache: str = "") -> Runtime:
    """The runtime a request names: an OCI runtime binary, or berth's own."""
    if req.runtime:
        return OciCliRuntime(req)
    return BerthRuntime(req, seccomp_cache)


__all__ = ["Runtime", "BerthRuntime", "OciCliRuntime", "Handle", "StartError", "for_request"]
