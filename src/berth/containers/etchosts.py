"""A running container's /etc/hosts as `network connect` and `disconnect` change it.

dockerd 28 (libnetwork's sandbox `addHostsEntries`/`deleteHostsEntries` over `etchosts.Add` and
`etchosts.Delete`): joining a network appends one line per address of the new endpoint (IPv4,
then IPv6), `ADDRESS<TAB>NAMES`, where NAMES is the container's FQDN (hostname, `.domainname`
if it has one) followed by the bare hostname when the FQDN has a dot. Leaving one deletes the
lines whose names are exactly those and whose address, parsed, is one of the endpoint's; the
other networks' lines for the same hostname stay. Empty lines go, comments stay, as dockerd's
rewrite does.

The file is bind-mounted into the container, which may write to it: it is edited in place
(the mount holds its inode), opened without following a symlink, and one larger than
`MAX_HOSTS_FILE` is left alone (logged) rather than read.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import stat
from dataclasses import dataclass

log = logging.getLogger(__name__)

MAX_HOSTS_FILE = 1 << 20  # a container may grow its own /etc/hosts: berthd reads no more


@dataclass(frozen=True, slots=True)
class HostsRecord:
    """One line of /etc/hosts: an address and the names it gives (space-separated)."""

    ip: str
    names: str

    def line(self) -> str:
        return f"{self.ip}\t{self.names}\n"


def host_names(hostname: str, domainname: str = "") -> str:
    """The names a container's own address gets: its FQDN, then the bare hostname if the FQDN
    has a dot (dockerd's `makeHostsRecs`)."""
    fqdn = f"{hostname}.{domainname}" if domainname else hostname
    bare, dot, _ = fqdn.partition(".")
    return f"{fqdn} {bare}" if dot else fqdn


def endpoint_records(hostname: str, domainname: str, addresses: list[str]) -> list[HostsRecord]:
    """The lines of one endpoint's addresses (empty ones, as an IPv6-only network's IPv4,
    left out)."""
    names = host_names(hostname, domainname)
    return [HostsRecord(ip, names) for ip in addresses if ip]


def _open(path: str, flags: int) -> int:
    # O_NONBLOCK: a FIFO put in its place must not hang berthd at the open
    fd = os.open(path, flags | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise OSError(f"{path}: not a regular file")
        if st.st_size > MAX_HOSTS_FILE:
            raise OSError(f"{path}: {st.st_size} bytes, more than {MAX_HOSTS_FILE}")
    except BaseException:
        os.close(fd)
        raise
    return fd


def add(path: str, recs: list[HostsRecord]) -> None:
    """Append `recs` to the hosts file at `path` (dockerd's `etchosts.Add`; unlike it, after
    a newline where the file's last line has none). A failure is logged, not raised: as
    dockerd, the connect has happened."""
    if not recs:
        return
    try:
        fd = _open(path, os.O_RDWR | os.O_APPEND)
        try:
            body = "".join(r.line() for r in recs).encode()
            size = os.fstat(fd).st_size
            if size and os.pread(fd, 1, size - 1) != b"\n":
                body = b"\n" + body  # a last line the container left open stays its own
            os.write(fd, body)
        finally:
            os.close(fd)
    except OSError as e:
        log.warning("adding %s to %s: %s", [r.ip for r in recs], path, e)


def _matches(line: str, recs: list[HostsRecord]) -> bool:
    for r in recs:
        before, tab, names = line.rpartition("\t")
        if not tab or names != r.names:
            continue
        try:
            if ipaddress.ip_address(before.strip()) == ipaddress.ip_address(r.ip):
                return True
        except ValueError:
            continue
    return False


def without(text: str, recs: list[HostsRecord]) -> str:
    """`text` without the lines of `recs`, and without empty lines (dockerd's
    `etchosts.Delete`)."""
    out = []
    for line in text.split("\n"):
        if not line:
            continue
        if line.startswith("#") or not _matches(line, recs):
            out.append(line + "\n")
    return "".join(out)


def delete(path: str, recs: list[HostsRecord]) -> None:
    """Remove `recs` from the hosts file at `path`, in place. A failure is logged, not
    raised: the disconnect has happened."""
    if not recs:
        return
    try:
        fd = _open(path, os.O_RDWR)
        try:
            data = os.pread(fd, MAX_HOSTS_FILE + 1, 0)
            if len(data) > MAX_HOSTS_FILE:
                raise OSError(f"{path}: more than {MAX_HOSTS_FILE} bytes")
            kept = without(data.decode("utf-8", "surrogateescape"), recs)
            body = kept.encode("utf-8", "surrogateescape")
            os.ftruncate(fd, 0)
            os.pwrite(fd, body, 0)
        finally:
            os.close(fd)
    except OSError as e:
        log.warning("deleting %s from %s: %s", [r.ip for r in recs], path, e)
