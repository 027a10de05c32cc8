"""runtime-spec POSIX-platform hooks: one hook run with the container's state on its stdin, its
own `args` and `env`, and its `timeout`.

Imports `jsonc` only. It runs in berth-runtime (createRuntime, prestart, poststart, poststop, in
the runtime's namespaces) and in the container's init (createContainer before pivot_root,
startContainer after it), where the host's files are gone: so only built-in modules (`os`,
`time`, `_signal`), no `subprocess` or `select`.

When each kind runs, and what a failure does (runtime-spec runtime.md, "Lifecycle"):

  prestart, createRuntime   `create`, once the namespaces exist, before pivot_root; runtime
                            namespace. A failure fails `create` and destroys the container.
  createContainer           `create`, after those, before pivot_root; the container's
                            namespaces (the path resolves in the runtime's mount tree). Same.
  startContainer            `start`, before the program is exec'd; the container's namespaces
                            and root. A failure fails `start` and stops the container.
  poststart                 `start`, once the program runs; runtime namespace. A failure is
                            a warning (the spec's rule; runc kills the container instead).
  poststop                  `delete`, once the container is gone; runtime namespace. A failure
                            is a warning (the spec's rule; runc fails `delete`).
"""

from __future__ import annotations

import _signal as signal
import os
import time

from berth import jsonc as json

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

KINDS = ("prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop")
# what a hook's stdout and stderr may add to an error message
_OUTPUT_LIMIT = 4096


class HookError(Exception):
    """A hook could not run, exited non-zero, or ran past its timeout."""


def of(spec: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    """The spec's hooks of one kind, checked: each needs an absolute `path`; `args` and `env`
    are lists of strings; `timeout`, if set, is a positive integer (seconds)."""
    hooks = (spec.get("hooks") or {}).get(kind) or []
    if not isinstance(hooks, list):
        raise HookError(f"hooks.{kind} must be a list")
    for i, h in enumerate(hooks):
        where = f"hooks.{kind}[{i}]"
        if (
            not isinstance(h, dict)
            or not isinstance(h.get("path"), str)
            or not h["path"].startswith("/")
        ):
            raise HookError(f"{where}: path must be an absolute path")
        for key in ("args", "env"):
            v = h.get(key)
            if v is not None and not (isinstance(v, list) and all(isinstance(s, str) for s in v)):
                raise HookError(f"{where}: {key} must be a list of strings")
        t = h.get("timeout")
        if t is not None and (isinstance(t, bool) or not isinstance(t, int) or t <= 0):
            raise HookError(f"{where}: timeout must be a positive integer")
    return hooks


def check(spec: dict[str, Any]) -> None:
    """Refuse a malformed `hooks` object at create, before anything is made."""
    hooks = spec.get("hooks")
    if hooks is None:
        return
    if not isinstance(hooks, dict):
        raise HookError("hooks must be an object")
    unknown = sorted(set(hooks) - set(KINDS))
    if unknown:
        raise HookError(f"unknown hook kind: {', '.join(unknown)}")
    for kind in KINDS:
        of(spec, kind)


def run_all(spec: dict[str, Any], kind: str, state: dict[str, Any]) -> None:
    """Run the hooks of `kind` in order; the first that fails raises HookError."""
    payload = json.dumps(state).encode()
    for i, h in enumerate(of(spec, kind)):
        try:
            run(h, payload)
        except HookError as e:
            raise HookError(f"error running {kind} hook #{i}: {e}") from None


def run_warn(spec: dict[str, Any], kind: str, state: dict[str, Any], warn: Any) -> None:
    """Run every hook of `kind`, each failure a warning (`warn(message)`) and not an error: the
    spec's rule for poststart and poststop."""
    try:
        hooks = of(spec, kind)
    except HookError as e:
        warn(str(e))
        return
    payload = json.dumps(state).encode()
    for i, h in enumerate(hooks):
        try:
            run(h, payload)
        except HookError as e:
            warn(f"error running {kind} hook #{i}: {e}")


def run(hook: dict[str, Any], stdin: bytes) -> None:
    """One hook: `path` exec'd with `args` (argv[0] included; [path] without) and exactly
    `env`, `stdin` on its standard input; its stdout and stderr kept (memfds: no pipe to drain
    while waiting) for the error message. Killed past `timeout` seconds."""
    path = hook["path"]
    argv = list(hook.get("args") or [path])
    env = list(hook.get("env") or [])
    inp = os.memfd_create("hook-stdin", os.MFD_CLOEXEC)
    out = os.memfd_create("hook-stdout", os.MFD_CLOEXEC)
    err = os.memfd_create("hook-stderr", os.MFD_CLOEXEC)
    try:
        os.write(inp, stdin)
        os.lseek(inp, 0, os.SEEK_SET)
        pid = os.fork()
        if pid == 0:
            try:
                os.dup2(inp, 0)
                os.dup2(out, 1)
                os.dup2(err, 2)
                for sig in (signal.SIGPIPE, signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
                    signal.signal(sig, signal.SIG_DFL)
                signal.pthread_sigmask(signal.SIG_SETMASK, [])
                os.execve(path, argv, dict(e.split("=", 1) if "=" in e else (e, "") for e in env))
            except BaseException as e:  # noqa: BLE001 - reported as the hook's stderr
                os.write(2, f"exec {path}: {e}".encode())
            os._exit(127)
        status = _wait(pid, hook.get("timeout"))
        if status is None:
            raise HookError(f"hook ran past specified timeout of {float(hook['timeout']):.1f}s")
        code = os.waitstatus_to_exitcode(status)
        if code != 0:
            what = f"exit status {code}" if code > 0 else f"signal: {-code}"
            raise HookError(f"{what}, stdout: {_tail(out)}, stderr: {_tail(err)}")
    finally:
        for fd in (inp, out, err):
            os.close(fd)


def _wait(pid: int, timeout: int | None) -> int | None:
    """The hook's wait status; None (and the hook killed) past `timeout`."""
    if timeout is None:
        while True:
            try:
                return os.waitpid(pid, 0)[1]
            except InterruptedError:
                continue
    deadline = time.monotonic() + timeout
    delay = 0.001
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return status
        if time.monotonic() >= deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            return None
        time.sleep(delay)
        delay = min(delay * 2, 0.05)


def _tail(fd: int) -> str:
    size = os.fstat(fd).st_size
    os.lseek(fd, max(0, size - _OUTPUT_LIMIT), os.SEEK_SET)
    return os.read(fd, _OUTPUT_LIMIT).decode(errors="replace").strip()


__all__ = ["KINDS", "HookError", "check", "of", "run", "run_all", "run_warn"]
