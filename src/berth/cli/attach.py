"""Hijacked streams: attach, exec, and the TTY (raw mode, resize, detach keys, signal proxying) that run and start share."""

from __future__ import annotations

import _signal as signal  # `signal` and `threading` import enum: ~4 ms of start-up
import _thread
import os
import sys

from berth.cli.main import ENGINE_ERROR, err, out
from berth.client import Client, ConnectionFailed, Response, Waiting
from berth.cmdline import Options, UsageError, boolean, string, strings
from berth.detachkeys import DEFAULT as DEFAULT_DETACH_KEYS
from berth.detachkeys import DetachScanner, parse_detach_keys
from berth.errors import BerthError

TYPE_CHECKING = False  # not typing's: importing typing costs ~3 ms of CLI start-up
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any


def _term_size() -> tuple[int, int] | None:
    try:
        sz = os.get_terminal_size(sys.stdout.fileno())
        return sz.lines, sz.columns
    except OSError:
        return None


def _env_list(env_files: list[str], items: list[str]) -> list[str]:
    """`--env-file` and `-e`, in that order, as `K=V` (or a bare `K`)."""
    env: list[str] = []
    for path in env_files:
        try:
            with open(path) as f:
                lines = f.read().splitlines()
        except OSError as e:
            raise UsageError(f"open {path}: {(e.strerror or str(e)).lower()}") from None
        for line in lines:
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            env.append(_env_item(line))
    for item in items:
        env.append(_env_item(item))
    return [x for x in env if x]


def _env_item(e: str) -> str:
    if "=" in e:
        if e.startswith("="):
            raise UsageError(f"invalid environment variable: {e}")
        return e
    # as the docker CLI: the value from the client's environment, or the bare name, which the
    # daemon keeps in Config.Env and which unsets the name in the process
    v = os.environ.get(e)
    return f"{e}={v}" if v is not None else e


def _start_error_code(message: str) -> int:
    """The exit code of a start that failed: 127 (command not found), 126 (cannot be invoked)
    or 125. The Engine API carries only a status and a message, so this reads the message, as
    the docker CLI's runStartContainerErr does."""
    if "executable file not found" in message or "no such file or directory" in message:
        return 127
    if "permission denied" in message or "is a directory" in message:
        return 126
    return ENGINE_ERROR


def _attach_and_start(
    c: Client, cid: str, *, stdin: bool, keys: str, condition: str, prefix: str
) -> tuple[Response, Waiting] | int:
    """The docker CLI's order: attach (hijacked) and register the wait before the start, so no
    output and no exit is missed. Returns both streams, or the exit code of a failed start."""
    attach = c.attach_container(cid, stdin=stdin, detach_keys=keys)
    wait = c.begin_wait(cid, condition)
    try:
        c.start_container(cid)
    except BerthError as e:
        attach.close()
        wait.close()
        err(f"{prefix}Error response from daemon: {e}")
        return _start_error_code(str(e))
    return attach, wait


def _check_detach_keys(keys: str) -> None:
    """A `--detach-keys` the daemon would refuse, refused here first (docker's wording)."""
    try:
        parse_detach_keys(keys)
    except ValueError:
        raise UsageError(f"Invalid detach keys ({keys}) provided") from None


def _resize(resize: Callable[[str, int, int], None], target: str, h: int, w: int) -> None:
    """A terminal's new size to a container or an exec; a failure only loses the resize."""
    try:
        resize(target, h, w)
    except (BerthError, OSError):
        pass


def _session(
    r: Any, *, tty: bool, stdin: bool, keys: str, resize: Callable[[int, int], None] | None = None
) -> bool:
    """A hijacked stream: stdin to it, it to stdout/stderr; the terminal in raw mode for a Tty
    and restored on every way out. True if the user typed the detach keys."""
    detached: list[bool] = []  # set by the stdin thread
    in_fd = sys.stdin.fileno() if stdin else -1
    raw = tty and stdin and os.isatty(in_fd)
    saved = None
    if raw:
        import termios
        import tty as ttymod

        saved = termios.tcgetattr(in_fd)
        ttymod.setraw(in_fd)
    if tty and resize is not None:
        size = _term_size()
        if size:
            resize(*size)

        def on_winch(_s: int, _f: Any) -> None:
            sz = _term_size()
            if sz:
                _thread.start_new_thread(resize, sz)

        signal.signal(signal.SIGWINCH, on_winch)

    def pump_stdin() -> None:
        scan = DetachScanner(parse_detach_keys(keys or DEFAULT_DETACH_KEYS) if raw else b"")
        try:
            while True:
                data = os.read(in_fd, 4096)
                if not data:
                    break
                data, typed = scan.feed(data)
                if typed:
                    # the daemon sees the keys too, and ends the stream without closing the
                    # container's stdin (closing ours would end a StdinOnce shell). Flag
                    # first: the stream may end before sendall returns
                    detached.append(True)
                    r.sock.sendall(data + scan.keys)
                    return
                if data:
                    r.sock.sendall(data)
            Client.close_write(r.sock)
        except OSError:
            pass

    if stdin:
        _thread.start_new_thread(pump_stdin, ())
    else:
        try:
            Client.close_write(r.sock)  # as the docker CLI: no input coming
        except OSError:
            pass
    try:
        _pump_output(r, tty)
    finally:
        if saved is not None:
            import termios

            termios.tcsetattr(in_fd, termios.TCSADRAIN, saved)
    if detached:
        err("\r\nread escape sequence" if raw else "read escape sequence")
    return bool(detached)


def _proxy_signals(c: Client, cid: str) -> None:
    def handler(signo: int, _frame: Any) -> None:
        def send() -> None:
            try:
                c.kill_container(cid, str(signo))
            except BerthError:
                pass

        _thread.start_new_thread(send, ())

    for s in (
        signal.SIGINT,
        signal.SIGTERM,
        signal.SIGHUP,
        signal.SIGQUIT,
        signal.SIGUSR1,
        signal.SIGUSR2,
    ):
        signal.signal(s, handler)


def _pump_output(r: Any, tty: bool) -> None:
    stdout, stderr = sys.stdout.buffer, sys.stderr.buffer
    try:
        if tty:
            for piece in r.iter_raw():
                stdout.write(piece)
                stdout.flush()
        else:
            for stream, data in r.iter_frames():
                dest = stderr if stream == 2 else stdout
                dest.write(data)
                dest.flush()
    except (ConnectionFailed, OSError):
        pass
    finally:
        r.close()


class AttachOptions(Options):
    no_stdin = boolean("no-stdin", help="Do not attach STDIN")
    sig_proxy = boolean("sig-proxy", default=True, help="Proxy all received signals to the process")
    detach_keys = string("detach-keys", help="Override the key sequence for detaching a container")


def cmd_attach(c: Client, opts: AttachOptions, args: list[str]) -> int:
    if len(args) != 1:
        raise UsageError('"attach" requires exactly 1 argument.')
    if opts.detach_keys:
        _check_detach_keys(opts.detach_keys)
    info = c.inspect_container(args[0])
    cid = info["Id"]
    if not info["State"]["Running"]:
        raise BerthError("You cannot attach to a stopped container, start it first")
    tty = bool(info["Config"]["Tty"])
    stdin = bool(info["Config"]["OpenStdin"]) and not opts.no_stdin
    if tty and stdin and not sys.stdin.isatty():
        err("the input device is not a TTY")
        return 1
    r = c.attach_container(cid, stdin=stdin, detach_keys=opts.detach_keys)
    if opts.sig_proxy and not tty:
        _proxy_signals(c, cid)
    if _session(
        r,
        tty=tty,
        stdin=stdin,
        keys=opts.detach_keys,
        resize=lambda h, w: _resize(c.resize_container, cid, h, w),
    ):
        return 0
    return c.wait_container(cid).get("StatusCode", 0)


class ExecOptions(Options):
    INTERSPERSED = False
    detach = boolean("detach", "d", help="Detached mode: run command in the background")
    interactive = boolean("interactive", "i", help="Keep STDIN open even if not attached")
    tty = boolean("tty", "t", help="Allocate a pseudo-TTY")
    env = strings("env", "e", help="Set environment variables")
    env_file = strings("env-file", help="Read in a file of environment variables")
    workdir = string("workdir", "w", help="Working directory inside the container")
    user = string("user", "u", help='Username or UID (format: "<name|uid>[:<group|gid>]")')
    privileged = boolean("privileged", help="Give extended privileges to the command")
    detach_keys = string("detach-keys", help="Override the key sequence for detaching a container")


def cmd_exec(c: Client, opts: ExecOptions, args: list[str]) -> int:
    if len(args) < 2:
        raise UsageError('"exec" requires at least 2 arguments.')
    # as the docker CLI: only a command that attaches its input needs a terminal
    if opts.tty and opts.interactive and not opts.detach and not sys.stdin.isatty():
        err("the input device is not a TTY")
        return 1
    if opts.detach_keys:
        _check_detach_keys(opts.detach_keys)
    detach = opts.detach
    body: dict[str, Any] = {
        "Cmd": args[1:],
        "Tty": opts.tty,
        "Env": _env_list(opts.env_file, opts.env),
        "AttachStdin": opts.interactive and not detach,
        "AttachStdout": not detach,
        "AttachStderr": not detach,
        "Privileged": opts.privileged,
        "User": opts.user,
        "WorkingDir": opts.workdir,
        "DetachKeys": opts.detach_keys,
    }
    size = _term_size() if opts.tty else None
    if size:
        body["ConsoleSize"] = list(size)
    eid = c.create_exec(args[0], body)["Id"]
    r = c.start_exec(eid, tty=opts.tty, detach=detach, console_size=list(size) if size else None)
    if r is None:
        return 0
    if _session(
        r,
        tty=opts.tty,
        stdin=opts.interactive,
        keys=opts.detach_keys,
        resize=lambda h, w: _resize(c.resize_exec, eid, h, w),
    ):
        return 0
    code = c.inspect_exec(eid).get("ExitCode")
    return code if code is not None else 0


class StartOptions(Options):
    attach = boolean("attach", "a", help="Attach STDOUT/STDERR and forward signals")
    interactive = boolean("interactive", "i", help="Attach container's STDIN")
    detach_keys = string("detach-keys", help="Override the key sequence for detaching a container")


def cmd_start(c: Client, opts: StartOptions, args: list[str]) -> int:
    if not args:
        raise UsageError('"start" requires at least 1 argument.')
    if opts.attach or opts.interactive:
        if len(args) > 1:
            raise UsageError("you cannot start and attach multiple containers at once")
        if opts.detach_keys:
            _check_detach_keys(opts.detach_keys)
        info = c.inspect_container(args[0])
        cid = info["Id"]
        tty = bool(info["Config"]["Tty"])
        stdin = opts.interactive and bool(info["Config"]["OpenStdin"])
        started = _attach_and_start(
            c, cid, stdin=stdin, keys=opts.detach_keys, condition="next-exit", prefix=""
        )
        if isinstance(started, int):
            return started
        attach, wait = started
        if _session(
            attach,
            tty=tty,
            stdin=stdin,
            keys=opts.detach_keys,
            resize=lambda h, w: _resize(c.resize_container, cid, h, w),
        ):
            return 0
        return wait.result().get("StatusCode", 0)
    rc = 0
    for name in args:
        try:
            c.start_container(name)
            out(name)
        except BerthError as e:
            err(f"Error response from daemon: {e}")
            rc = 1
    if rc:
        err("Error: failed to start containers: " + ", ".join(args))
    return rc
