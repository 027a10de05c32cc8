"""cgroup files read and written as the managers of both versions need them, and the checks
on words written into them."""

from __future__ import annotations

import errno
import os
import time

from berth import linux
from berth.errors import InvalidArgument, System


def check_word(value: str, what: str) -> None:
    """A name written into a cgroup file as one word of a line: nothing that would add a
    field or a line."""
    if not value or any(c.isspace() for c in value) or "/" in value:
        raise InvalidArgument(f"invalid {what}: {value!r}")


def rdma_line(dev: str, handles: int | None, objects: int | None) -> str:
    return (
        f"{dev} hca_handle={'max' if handles is None else handles} "
        f"hca_object={'max' if objects is None else objects}"
    )


def first_present(d: str, names: tuple[str, ...]) -> str | None:
    for n in names:
        if os.path.exists(os.path.join(d, n)):
            return os.path.join(d, n)
    return None


# cgroup files through os.open/os.read/os.write (writes as open() would: created, truncated): a
# Python file object costs ~15 us to set up, and a container's start reads or writes some forty
def write(path: str, value: str | int) -> None:
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o666)
        try:
            os.write(fd, str(value).encode())
        finally:
            os.close(fd)
    except OSError as e:
        raise System(f"write {value} to {path}: {e.strerror}") from e


def read(path: str) -> str:
    try:
        return linux.read_text(path)
    except OSError:
        return ""


def attach_devices(cgroup_dir: str, rules: tuple[dict, ...]) -> None:  # type: ignore[type-arg]
    """Enforce the device rules on a cgroup v2 directory, which has no devices controller: a
    BPF device program built from them (`devices`), attached before any process joins. A
    failure raises: a container must not start with its device rules dropped."""
    from berth.cgroups import devices  # only where there is a v2 cgroup with rules
    from berth.linux import bpf

    prog = devices.compile_rules(rules)
    try:
        bpf.attach_cgroup_device(cgroup_dir, prog)
    except OSError as e:
        raise System(
            f"cannot apply the device rules to cgroup {cgroup_dir}: loading or "
            f"attaching its BPF device program failed: {e.strerror or e}"
        ) from e


def rmdir_retry(path: str) -> None:
    for _ in range(50):
        try:
            os.rmdir(path)
            return
        except FileNotFoundError:
            return
        except OSError as e:
            if e.errno != errno.EBUSY:
                return
            time.sleep(0.01)


def flat_kv(text: str) -> dict[str, int]:
    out: dict[str, int] = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].lstrip("-").isdigit():
            out[parts[0]] = int(parts[1])
    return out
