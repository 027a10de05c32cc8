"""Legacy links and name resolution of containers connected to user networks later, as dockerd:
`--link NAME:ALIAS` on the default bridge (environment, /etc/hosts, HostConfig.Links, `rm
--link`) and on user networks (an alias of the embedded DNS for the linking container only);
a container started on the default bridge and connected to a user network later resolves the
names on it. All traffic stays on bridges this test's daemon made."""

from __future__ import annotations

import pytest

from .conftest import Daemon

pytestmark = pytest.mark.root


def test_a_container_connected_later_resolves_the_names_on_the_network(daemon: Daemon) -> None:
    daemon.ok("network", "create", "lk-late")
    try:
        daemon.ok("run", "-d", "--name", "lk-peer", "--network", "lk-late", "busybox",
                  "sleep", "60")
        daemon.ok("run", "-d", "--name", "lk-late1", "busybox", "sleep", "60")
        assert "127.0.0.11" not in daemon.ok("exec", "lk-late1", "cat", "/etc/resolv.conf")
        daemon.ok("network", "connect", "lk-late", "lk-late1")
        assert "nameserver 127.0.0.11" in daemon.ok("exec", "lk-late1", "cat",
                                                     "/etc/resolv.conf")
        ip = daemon.inspect("lk-peer")["NetworkSettings"]["Networks"]["lk-late"]["IPAddress"]
        out = daemon.ok("exec", "lk-late1", "nslookup", "lk-peer", "127.0.0.11")
        assert ip in out
        assert daemon.berth("exec", "lk-late1", "ping", "-c1", "-W2", "lk-peer").returncode == 0
        # as dockerd: the embedded DNS stays after a disconnect (it forwards other names)
        daemon.ok("network", "disconnect", "lk-late", "lk-late1")
        assert "nameserver 127.0.0.11" in daemon.ok("exec", "lk-late1", "cat",
                                                     "/etc/resolv.conf")
        assert ip not in daemon.berth("exec", "lk-late1", "nslookup", "lk-peer",
                                      "127.0.0.11").stdout
    finally:
        daemon.berth("rm", "-f", "lk-peer", "lk-late1")
        daemon.berth("network", "rm", "lk-late")
