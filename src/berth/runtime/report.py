"""How a container's processes report to the runtime that started them: `StartError`, the
stdio they get (`Stdio`), the error pipe's one JSON line, and the wording Docker users see.

Imports `jsonc` only: berth-runtime loads it on every command.
"""

from __future__ import annotations

import os

from berth import jsonc as json


class StartError(Exception):
    """The container's process could not be started; `code` is Docker's exit code for it."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


class Stdio:
    __slots__ = ("stdin", "stdout", "stderr", "console")

    def __init__(
        self, stdin: int = -1, stdout: int = -1, stderr: int = -1, console: int = -1
    ) -> None:
        self.stdin, self.stdout, self.stderr = stdin, stdout, stderr
        # a Tty: a unix socket to the caller. The init makes the pty from the container's own
        # devpts (so `tty` inside names /dev/pts/N), hands the master over it with SCM_RIGHTS
        # (as runc's --console-socket), and uses the slave as stdin, stdout, stderr and
        # controlling tty
        self.console = console


def exec_program(args: list[str], env: dict[str, str]) -> tuple[str, int]:
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


def decode_error(buf: bytes) -> tuple[str, int]:
    try:
        d = json.loads(buf.decode(errors="replace").splitlines()[0])
        return str(d["message"]), int(d["code"])
    except (ValueError, KeyError, IndexError):
        return buf.decode(errors="replace").strip(), 1


def report(err_w: int, message: str, code: int) -> None:
    try:
        os.write(err_w, (json.dumps({"message": message, "code": code}) + "\n").encode())
    except OSError:
        pass


def oci_message(detail: str) -> str:
    # the prefix Docker users see; scripts match on the tail ("executable file not found")
    return (
        "failed to create task for container: OCI runtime create failed: "
        f"unable to start container process: {detail}: unknown"
    )


def exec_message(detail: str) -> str:
    return (
        "OCI runtime exec failed: exec failed: unable to start container process: "
        f"{detail}: unknown"
    )
