"""A running container's /etc/hosts on `network connect`/`disconnect`, as dockerd 28 edits it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from berth.containers import etchosts
from berth.containers.etchosts import HostsRecord

BASE = "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"


def test_names_are_the_fqdn_then_the_bare_hostname() -> None:
    assert etchosts.host_names("abc123") == "abc123"
    assert etchosts.host_names("web", "example.test") == "web.example.test web"
    assert etchosts.host_names("web.example.test") == "web.example.test web"
    recs = etchosts.endpoint_records("h", "", ["10.205.0.2", "", "fd00::2"])
    assert [r.line() for r in recs] == ["10.205.0.2\th\n", "fd00::2\th\n"]


def test_connect_appends_and_disconnect_removes_only_that_network_s_lines(
    tmp_path: Path,
) -> None:
    hosts = tmp_path / "hosts"
    hosts.write_text(BASE + "10.205.1.2\th\nfd00:1::2\th\n")
    inode = hosts.stat().st_ino
    second = etchosts.endpoint_records("h", "", ["10.205.2.2", "fd00:2::2"])
    etchosts.add(str(hosts), second)
    assert hosts.read_text() == BASE + "10.205.1.2\th\nfd00:1::2\th\n10.205.2.2\th\nfd00:2::2\th\n"
    etchosts.delete(str(hosts), etchosts.endpoint_records("h", "", ["10.205.1.2", "fd00:1::2"]))
    assert hosts.read_text() == BASE + "10.205.2.2\th\nfd00:2::2\th\n"
    # in place: the file is bind-mounted into the container by its inode
    assert hosts.stat().st_ino == inode


def test_a_last_line_left_open_is_not_joined_to_the_new_one(tmp_path: Path) -> None:
    hosts = tmp_path / "hosts"
    hosts.write_text("10.9.9.9\tmine")  # the container's own edit, no newline at the end
    etchosts.add(str(hosts), [HostsRecord("10.205.2.2", "h")])
    assert hosts.read_text() == "10.9.9.9\tmine\n10.205.2.2\th\n"
    empty = tmp_path / "empty"
    empty.write_text("")
    etchosts.add(str(empty), [HostsRecord("10.205.2.2", "h")])
    assert empty.read_text() == "10.205.2.2\th\n"


def test_delete_keeps_comments_and_lines_a_user_changed_and_drops_empty_lines() -> None:
    text = "# mine\n\n10.205.1.2\th\n10.205.1.2\th extra\n10.205.1.3\th\n010.205.1.2\th\n"
    recs = [HostsRecord("10.205.1.2", "h")]
    assert etchosts.without(text, recs) == (
        "# mine\n10.205.1.2\th extra\n10.205.1.3\th\n010.205.1.2\th\n"
    )
    # the address is compared parsed, as dockerd does
    assert etchosts.without("fd00:0:0::2\th\n", [HostsRecord("fd00::2", "h")]) == ""
    # a hostile line (no tab, junk address) is kept, never an error
    assert etchosts.without("junk\nx\th\n", recs) == "junk\nx\th\n"


def test_a_symlink_in_place_of_the_file_is_not_followed(tmp_path: Path) -> None:
    """The hosts file's path must not lead berthd to a host file: a symlink there is refused."""
    target = tmp_path / "host-file"
    target.write_text("10.205.1.2\th\n")
    link = tmp_path / "hosts"
    link.symlink_to(target)
    recs = [HostsRecord("10.205.1.2", "h")]
    etchosts.delete(str(link), recs)
    etchosts.add(str(link), [HostsRecord("10.205.9.9", "h")])
    assert target.read_text() == "10.205.1.2\th\n"


def test_an_oversized_or_odd_file_is_left_alone(tmp_path: Path) -> None:
    """A container may grow its /etc/hosts: berthd does not read (or append to) a huge one."""
    big = tmp_path / "hosts"
    body = "10.205.1.2\th\n" + "#" * (etchosts.MAX_HOSTS_FILE + 1)
    big.write_text(body)
    etchosts.delete(str(big), [HostsRecord("10.205.1.2", "h")])
    etchosts.add(str(big), [HostsRecord("10.205.9.9", "h")])
    assert big.read_text() == body
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    etchosts.add(str(fifo), [HostsRecord("10.205.9.9", "h")])  # no hang, no error
    etchosts.delete(str(tmp_path / "missing"), [HostsRecord("10.205.9.9", "h")])


@pytest.mark.parametrize("recs", [[]])
def test_nothing_to_do_touches_nothing(tmp_path: Path, recs: list[HostsRecord]) -> None:
    hosts = tmp_path / "hosts"
    hosts.write_text("\n\n")
    etchosts.delete(str(hosts), recs)
    assert hosts.read_text() == "\n\n"
