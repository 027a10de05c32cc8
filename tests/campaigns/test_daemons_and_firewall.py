"""Campaign 5: several daemons on one host, and a firewall that changes under them.

- A second berthd started with the bridge a running one uses is refused, with an error naming
  the bridge; the first one's bridge and chains are untouched by the refused one's exit, and its
  `network create` and containers work on (before the claim, the second one's exit deleted both).
- A bridge named for a user network that another daemon holds is refused (409).
- A berthd whose rules were removed under it (what `iptables -F`/`-X` or a firewalld reload does
  to its chains) puts them back: periodically, and at once on a `network create`.

The flush is done to the daemon's own chains only (deleting its jumps, flushing and deleting
its chains): a real `iptables -F` would also flush the rules of every other daemon on the
machine, and the tests share it."""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import pytest

from tests.integration.conftest import Daemon

pytestmark = pytest.mark.root


def chain(d: Daemon) -> str:
    return f"BERTH-{d.bridge[:12]}"


def rules(d: Daemon) -> set[tuple[str, str]]:
    """The daemon's IPv4 rules (table, rule as `iptables -S` shows it), its jumps included."""
    out = set()
    for table in ("filter", "nat"):
        text = subprocess.run(
            ["iptables", "-w", "-t", table, "-S"], capture_output=True, text=True, check=True
        ).stdout
        out |= {(table, line) for line in text.splitlines() if chain(d) in line}
    return out


def fwd_rules(d: Daemon) -> list[str]:
    return subprocess.run(
        ["iptables", "-w", "-S", f"{chain(d)}-FWD"], capture_output=True, text=True
    ).stdout.splitlines()


def flush_own(d: Daemon) -> None:
    """What a flush of the tables does to this daemon's rules, and to no one else's: the jumps
    to its chains go, its chains are flushed and deleted."""
    ch = chain(d)
    for table, parents in (
        ("filter", (("FORWARD", [f"{ch}-FWD"]),)),
        (
            "nat",
            (
                ("POSTROUTING", [f"{ch}-POST"]),
                ("PREROUTING", ["-m", "addrtype", "--dst-type", "LOCAL", f"{ch}-DNAT"]),
                (
                    "OUTPUT",
                    [
                        "-m",
                        "addrtype",
                        "--dst-type",
                        "LOCAL",
                        "!",
                        "-d",
                        "127.0.0.0/8",
                        f"{ch}-DNAT",
                    ],
                ),
            ),
        ),
    ):
        for parent, rule in parents:
            subprocess.run(
                ["iptables", "-w", "-t", table, "-D", parent, *rule[:-1], "-j", rule[-1]],
                capture_output=True,
                check=True,
            )
    for table, names in (("filter", ("FWD", "ISO1", "ISO2")), ("nat", ("POST", "DNAT"))):
        for n in names:
            subprocess.run(["iptables", "-w", "-t", table, "-F", f"{ch}-{n}"], check=True)
        for n in names:
            subprocess.run(["iptables", "-w", "-t", table, "-X", f"{ch}-{n}"], check=True)
    assert not rules(d)


def link_exists(name: str) -> bool:
    return subprocess.run(["ip", "link", "show", name], capture_output=True).returncode == 0


def second_daemon(base: Path, bridge: str, bip: str) -> Daemon:
    d = Daemon(base)
    d.bridge, d.bip = bridge, bip
    return d


def discard(d: Daemon) -> None:
    """A second daemon's remains, without `Daemon.cleanup`'s sweep of its bridge and chains
    (which, when refused, are the first daemon's)."""
    if d.proc and d.proc.poll() is None:
        d.stop()
    for cg in d.cgroup_dirs():
        shutil.rmtree(cg, ignore_errors=True)
    shutil.rmtree(d.base, ignore_errors=True)


def test_second_daemon_on_the_same_bridge_is_refused(
    private_daemon: Daemon, tmp_path: Path
) -> None:
    first = private_daemon
    before = rules(first)
    assert before and link_exists(first.bridge)
    second = second_daemon(tmp_path / "second", first.bridge, first.bip)
    try:
        with pytest.raises(RuntimeError) as refused:
            second.start()
        log = str(refused.value)
        assert f"bridge {first.bridge} is in use by another berthd" in log, log
        assert second.proc is not None and second.proc.returncode == 1
    finally:
        discard(second)
    # the refused daemon's exit touched nothing of the first one's
    assert link_exists(first.bridge)
    assert rules(first) == before
    # and the first one works on: the symptom was "Chain 'BERTH-ISO2' does not exist"
    first.ok("network", "create", "after-second")
    try:
        out = first.ok(
            "run",
            "--rm",
            "--network",
            "after-second",
            "busybox",
            "ip",
            "-4",
            "-o",
            "addr",
            "show",
            "eth0",
        )
        assert "inet " in out
        out = first.ok("run", "--rm", "busybox", "ip", "-4", "-o", "addr", "show", "eth0")
        assert "inet " in out
    finally:
        first.ok("network", "rm", "after-second")


def test_a_second_daemon_with_its_own_bridge_starts_and_leaves_the_first_alone(
    private_daemon: Daemon, tmp_path: Path
) -> None:
    """Two daemons with their own bridges run side by side; a user network's bridge name held
    by one is refused to the other (409), and the other's exit leaves the first's as it was."""
    first = private_daemon
    first.ok(
        "network",
        "create",
        "-o",
        "com.docker.network.bridge.name=" + first.bridge[:9] + "u",
        "held",
    )
    try:
        before = rules(first)
        second = Daemon(tmp_path / "second")
        try:
            second.start()
            r = second.berth(
                "network",
                "create",
                "-o",
                "com.docker.network.bridge.name=" + first.bridge[:9] + "u",
                "grab",
            )
            assert r.returncode != 0
            assert "is in use by another berthd" in r.stderr, r.stderr
            assert "grab" not in second.ok("network", "ls", "--format", "{{.Name}}").split()
            # the default bridge of the first one is refused too, as a user network's bridge
            r = second.berth(
                "network", "create", "-o", f"com.docker.network.bridge.name={first.bridge}", "grab2"
            )
            assert r.returncode != 0 and "in use by another berthd" in r.stderr, r.stderr
        finally:
            second.cleanup()
        assert link_exists(first.bridge[:9] + "u") and link_exists(first.bridge)
        assert rules(first) == before
    finally:
        first.ok("network", "rm", "held")


def test_rules_removed_under_the_daemon_are_put_back(private_daemon: Daemon) -> None:
    d = private_daemon
    d.ok("network", "create", "fw-net")
    cid = d.ok(
        "run", "-d", "--network", "fw-net", "-p", "127.0.0.1::8080", "busybox", "sleep", "600"
    ).strip()
    try:
        before = rules(d)
        port_rule = [r for t, r in before if t == "filter" and "--dport 8080" in r]
        assert port_rule, before

        # 1. periodically (berthd looks every 5 s)
        flush_own(d)
        deadline = time.time() + 30
        while time.time() < deadline and rules(d) != before:
            time.sleep(0.5)
        assert rules(d) == before
        fwd = fwd_rules(d)
        # the published port's ACCEPT comes before the bridge's last DROP, as publish put it
        assert fwd.index(port_rule[0]) < max(i for i, r in enumerate(fwd) if r.endswith("-j DROP"))
        assert "rules of chain" in d.log.read_text()

        # 2. at once, on a network create (the "Chain 'BERTH-ISO2' does not exist")
        flush_own(d)
        d.ok("network", "create", "fw-net2")
        try:
            after = rules(d)
            # all of the old ones back, and the new bridge's in them
            assert before < after, before - after
        finally:
            d.ok("network", "rm", "fw-net2")
        assert rules(d) == before
    finally:
        d.ok("rm", "-f", cid)
        d.ok("network", "rm", "fw-net")


def test_claims_exclude_each_other_and_go_with_their_holder(tmp_path: Path) -> None:
    """The claims themselves (no daemon): held by one holder at a time; a daemon whose bridge
    differs but whose chain prefix is the same (bridge names cut at 12 characters) is refused
    too; a holder killed with SIGKILL leaves nothing behind."""
    import secrets
    import signal
    import sys

    from berth.errors import Conflict
    from berth.networks import NetConfig, NetworkService
    from berth.networks.locks import Claims

    name = "test-" + secrets.token_hex(4)
    a, b = Claims(), Claims()
    a.claim("chain", name)
    a.claim("chain", name)  # held here already: nothing to do
    with pytest.raises(Conflict, match="in use by another berthd"):
        b.claim("chain", name)
    a.release("chain", name)
    b.claim("chain", name)
    b.release_all()

    class Meta:
        def networks(self) -> list[object]:
            return []

        def put_network(self, *a: object) -> None:
            pass

    tag = secrets.token_hex(3)
    one, two = (
        NetworkService(
            Meta(), NetConfig(bridge=f"btlong{tag}{x}", iptables=False, run_dir=str(tmp_path / x))
        )
        for x in ("a", "b")
    )
    assert one.cfg.chain == two.cfg.chain
    one.load()
    two.load()
    one.claim()
    try:
        with pytest.raises(Conflict, match="iptables chain prefix"):
            two.claim()
        assert not two.claims.holds("bridge", two.cfg.bridge)  # nothing kept on refusal
    finally:
        one.claims.release_all()

    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from berth.networks.locks import Claims; "
            f"c = Claims(); c.claim('chain', {name!r}); print('held', flush=True); "
            "time.sleep(60)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        with pytest.raises(Conflict):
            b.claim("chain", name)
        holder.send_signal(signal.SIGKILL)
        holder.wait(10)
        b.claim("chain", name)
        b.release_all()
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()
        if holder.stdout is not None:
            holder.stdout.close()
