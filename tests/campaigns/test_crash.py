"""Campaign 1: berthd killed with SIGKILL at any instant, and a container's shim host too.

One private daemon and one local CNCF registry for the campaign. Each instant starts a workload
(a pull from the registry, a build and push, a build of several steps, a run/rm loop with
published ports and a user network, volume copy-ups, network create/connect, a load) on a
thread, kills berthd at a random moment of it, starts berthd again and checks:

- the daemon answers, and `PRAGMA integrity_check` of its database says ok;
- every blob hashes to its name, no half-made layer or ingest is visible, every image's layers
  are all there and make its chain, every listed image runs;
- every container the workload was told about is as it was put (what `run -d` answered for
  runs, what `rm` answered for is gone, what was in flight is absent or in a state of its own:
  created, running with a live process, or exited) and no name is listed twice;
- nothing is orphaned once the daemon is back: 0 cgroups, processes, veths, DNAT rules and
  mounts that no running container accounts for; and, once everything was removed, 0 of each
  at all.

The shim form kills the shim host of running containers (the daemon stays up): their
containers must end as exited, their processes, cgroups, veths and rules gone.

Short form: 10 instants (CI); BERTH_CAMPAIGN_LONG=1: 100. BERTH_CAMPAIGN_SEED replays a run.
BERTH_CAMPAIGN_REPORT=FILE appends the figures (a JSON line) for bench/campaign.py."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.campaigns import inventory as inv
from tests.campaigns.conftest import long_form
from tests.integration.conftest import Daemon, running_daemon
from tests.integration.registries import Registry, running

pytestmark = [pytest.mark.root, pytest.mark.registry]

INSTANTS = 100 if long_form() else 10
SHIM_KILLS = 20 if long_form() else 3
SEED = int(os.environ.get("BERTH_CAMPAIGN_SEED") or time.time())
ZERO = {"cgroups": 0, "processes": 0, "veths": 0, "iptables": 0, "mounts": 0}


@dataclass
class Ledger:
    """What each call the workload made was answered: a name's expected state after a restart
    ("running", "exited", "absent", "exists" for networks and volumes, or "any" while its call
    was in flight when the daemon died)."""

    containers: dict[str, str] = field(default_factory=dict)
    networks: dict[str, str] = field(default_factory=dict)
    volumes: dict[str, str] = field(default_factory=dict)
    connected: dict[str, set[str]] = field(default_factory=dict)  # container -> networks
    calls: int = 0


class Gone(Exception):
    """The daemon did not answer (killed): the workload ends."""


@dataclass
class Ctx:
    d: Daemon
    reg: Registry
    big: str  # an image on the registry whose layer is not local
    big_tar: Path  # a `save` of it, for load
    ctxdir: Path  # a build context
    stop: threading.Event
    ledger: Ledger
    n: int  # the instant's number, for unique names

    def call(self, *args: str) -> str:
        if self.stop.is_set():
            raise Gone
        self.ledger.calls += 1
        r = self.d.berth(*args, timeout=120)
        if r.returncode != 0:
            # killed under the call: the main thread says so within moments
            if self.stop.wait(2):
                raise Gone
            raise AssertionError(f"berth {' '.join(args)}: {r.stderr}")
        return r.stdout

    def container(self, name: str, *args: str, expect: str) -> None:
        self.ledger.containers[name] = "any"
        self.call(*args)
        self.ledger.containers[name] = expect


def w_pull(c: Ctx) -> None:
    while True:
        c.call("pull", "-q", c.big)
        c.call("rmi", c.big)


def w_push(c: Ctx) -> None:
    for k in range(1000):
        tag = f"{c.reg.addr}/crash/push{c.n}-{k}:1"
        c.call("build", "-q", "--no-cache", "-t", tag, str(c.ctxdir))
        c.call("push", tag)
        c.call("rmi", tag)


def w_build(c: Ctx) -> None:
    for k in range(1000):
        c.call("build", "-q", "--no-cache", "-t", f"crash/build{c.n}-{k}", str(c.ctxdir))


def w_runrm(c: Ctx) -> None:
    c.ledger.networks[f"rr{c.n}"] = "any"
    c.call("network", "create", f"rr{c.n}")
    c.ledger.networks[f"rr{c.n}"] = "exists"
    for k in range(1000):
        name = f"rr{c.n}-{k}"
        extra = ["--network", f"rr{c.n}"] if k % 2 else ["-p", "127.0.0.1::80"]
        c.container(
            name, "run", "-d", "--name", name, *extra, "busybox", "sleep", "600", expect="running"
        )
        if k % 3 != 2:  # one in three is left running
            c.container(name, "rm", "-f", name, expect="absent")


def w_volume(c: Ctx) -> None:
    for k in range(1000):
        name, vol = f"vc{c.n}-{k}", f"vol{c.n}-{k}"
        c.ledger.volumes[vol] = "any"
        c.container(
            name, "run", "--name", name, "-v", f"{vol}:/etc", "busybox", "true", expect="exited"
        )
        c.ledger.volumes[vol] = "exists"


def w_network(c: Ctx) -> None:
    for k in range(1000):
        net, name = f"nc{c.n}-{k}", f"nc{c.n}-{k}"
        c.ledger.networks[net] = "any"
        c.call("network", "create", net)
        c.ledger.networks[net] = "exists"
        c.container(name, "run", "-d", "--name", name, "busybox", "sleep", "600", expect="running")
        c.call("network", "connect", net, name)
        c.ledger.connected.setdefault(name, set()).add(net)


def w_load(c: Ctx) -> None:
    while True:
        c.call("load", "-q", "-i", str(c.big_tar))
        c.call("rmi", c.big)


WORKLOADS: dict[str, Callable[[Ctx], None]] = {
    "pull": w_pull,
    "push": w_push,
    "build": w_build,
    "runrm": w_runrm,
    "volume": w_volume,
    "network": w_network,
    "load": w_load,
}


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    with running(Registry(tmp_path_factory.mktemp("crash-registry"))) as r:
        yield r


@pytest.fixture(scope="module")
def setup(
    tmp_path_factory: pytest.TempPathFactory, rootfs_tar: Path, registry: Registry
) -> Iterator[tuple[Daemon, Path, Path, str, Path]]:
    base = tmp_path_factory.mktemp("crash")
    ctxdir = base / "context"
    ctxdir.mkdir()
    (ctxdir / "Dockerfile").write_text(
        "FROM busybox\nCOPY files /files\nRUN dd if=/dev/urandom of=/r1 bs=64k count=32\n"
        "RUN echo step > /step && cp -r /files /files2\n"
    )
    (ctxdir / "files").mkdir()
    for i in range(50):
        (ctxdir / "files" / f"f{i}").write_bytes(os.urandom(2048))
    bigctx = base / "big"
    bigctx.mkdir()
    (bigctx / "Dockerfile").write_text(
        "FROM busybox\nRUN dd if=/dev/urandom of=/big bs=1M count=16\n"
    )
    with running_daemon(base / "d", rootfs_tar) as d:
        big = f"{registry.addr}/crash/big:1"
        d.ok("build", "-q", "-t", big, str(bigctx))
        d.ok("push", big)
        d.ok("save", "-o", str(base / "big.tar"), big)
        d.ok("rmi", big)
        d.ok("builder", "prune", "-af")
        yield d, base / "big.tar", ctxdir, big, base


def shim_of(pid: int, d: Daemon) -> int:
    """The shim process (a forkserver-launched host) above a container's process."""
    shims = set(inv.shim_pids(d))
    p = pid
    while p > 1:
        if p in shims:
            return p
        stat = Path(f"/proc/{p}/stat").read_text()
        p = int(stat.rsplit(")", 1)[1].split()[1])
    raise AssertionError(f"no shim process above {pid}")


def check_after(d: Daemon, ledger: Ledger) -> None:
    """Everything campaign 1 promises of a daemon started after a crash (see the module doc)."""
    assert inv.integrity(d) == "ok"
    problems = inv.store_problems(d)
    assert not problems, problems
    for image_id in set(d.ok("images", "-q", "--no-trunc").split()):
        r = d.berth("run", "--rm", image_id, "true")
        assert r.returncode == 0, f"image {image_id[:19]} does not run: {r.stderr}"
    cs = inv.containers(d)
    assert len(cs.names_listed) == len(set(cs.names_listed)), cs.names_listed
    for name, want in ledger.containers.items():
        got = cs.by_name.get(name)
        status = got[1] if got else "absent"
        if want == "any":
            assert status in ("absent", "created", "running", "exited"), (name, status)
        else:
            assert status == want, f"{name}: {status}, was put {want}"
        if got and status == "running":
            assert got[2] and Path(f"/proc/{got[2]}").exists(), f"{name} runs no process"
    nets = set(d.ok("network", "ls", "--format", "{{.Name}}").split())
    for net, want in ledger.networks.items():
        assert want == "any" or net in nets, f"network {net} lost"
    vols = set(d.ok("volume", "ls", "-q").split())
    for vol, want in ledger.volumes.items():
        assert want == "any" or vol in vols, f"volume {vol} lost"
    etc = d.ok("run", "--rm", "busybox", "ls", "/etc")
    for vol in vols:
        # a copy-up cut short is not left half-made: a volume holds all of /etc, or it is
        # empty and filled on its next mount
        got = d.ok("run", "--rm", "-v", f"{vol}:/etc", "busybox", "ls", "/etc")
        assert got == etc, f"volume {vol} holds {got.split()} of {etc.split()}"
    for name, want_nets in ledger.connected.items():
        got = cs.by_name.get(name)
        if got and got[1] == "running":
            on = set(json.loads(d.ok("inspect", name))[0]["NetworkSettings"]["Networks"])
            assert want_nets <= on, f"{name} is on {on}, was connected to {want_nets}"
    wait_zero(d, "after the restart")


def wait_zero(d: Daemon, when: str, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while (left := inv.orphans(d)) != ZERO and time.monotonic() < deadline:
        time.sleep(0.5)
    assert left == ZERO, f"orphans {when}: {left}"


def clear(d: Daemon, keep: set[str]) -> None:
    """Everything the instant made goes, through the API (which must work after the crash);
    then nothing at all is held on the host."""
    ids = d.ok("ps", "-aq").split()
    if ids:
        d.ok("rm", "-f", *ids)
    for net in d.ok("network", "ls", "--format", "{{.Name}}").split():
        if net not in ("bridge", "host", "none"):
            d.ok("network", "rm", net)
    vols = d.ok("volume", "ls", "-q").split()
    if vols:
        d.ok("volume", "rm", *vols)
    for ref in d.ok("images", "--format", "{{.Repository}}:{{.Tag}}").split():
        if ref not in keep and not ref.endswith(":<none>"):
            d.ok("rmi", ref)
    d.berth("image", "prune", "-f")
    d.berth("builder", "prune", "-af")
    assert inv.orphans(d) == ZERO
    assert not inv.cgroups(d) and not inv.veths(d) and not inv.port_rules(d)


def test_daemon_killed_at_any_instant(
    setup: tuple[Daemon, Path, Path, str, Path], registry: Registry
) -> None:
    d, big_tar, ctxdir, big, _ = setup
    rng = random.Random(SEED)
    print(f"crash campaign: seed {SEED}, {INSTANTS} instants")
    names = list(WORKLOADS)
    done: dict[str, int] = {n: 0 for n in names}
    calls = 0
    for n in range(INSTANTS):
        what = names[n % len(names)] if n < len(names) else rng.choice(names)
        ledger = Ledger()
        c = Ctx(d, registry, big, big_tar, ctxdir, threading.Event(), ledger, n)
        failure: list[BaseException] = []

        def work(c: Ctx = c, what: str = what, failure: list[BaseException] = failure) -> None:
            try:
                WORKLOADS[what](c)
            except Gone:
                pass
            except BaseException as e:  # noqa: BLE001 - reported by the main thread
                failure.append(e)

        t = threading.Thread(target=work, daemon=True)
        t.start()
        delay = rng.uniform(0.1, 3.0)
        time.sleep(delay)
        assert d.proc is not None
        d.proc.send_signal(signal.SIGKILL)
        d.proc.wait()
        c.stop.set()
        t.join(130)
        assert not t.is_alive(), f"{what}: a call hung on a dead daemon"
        assert not failure, f"{what} (instant {n}, {delay:.2f} s): {failure[0]}"
        d.start()
        try:
            check_after(d, ledger)
            clear(d, {"busybox:latest"})
        except AssertionError as e:
            raise AssertionError(
                f"after a kill during {what} (instant {n}, at {delay:.2f} s, seed {SEED}): {e}"
            ) from e
        done[what] += 1
        calls += ledger.calls
    inv.report(
        "crash",
        {
            "instants": INSTANTS,
            "survived": sum(done.values()),
            "by_workload": done,
            "calls": calls,
            "seed": SEED,
            "orphans_left": 0,
        },
    )


def test_published_ports_over_a_crash(private_daemon: Daemon) -> None:
    """Found by the campaign: after a kill -9, a running container's published port was
    opened again on a new host port (Docker's live restore keeps it), and the old port's DNAT
    rule stayed for good, as did the rules of a container that ended while the daemon was
    down."""
    d = private_daemon
    keep = d.ok("run", "-d", "-p", "127.0.0.1::80", "busybox", "sleep", "600").strip()
    gone = d.ok("run", "-d", "-p", "127.0.0.1::81", "busybox", "sleep", "600").strip()
    port = d.inspect(keep)["NetworkSettings"]["Ports"]["80/tcp"][0]["HostPort"]
    gone_pid = int(d.inspect(gone)["State"]["Pid"])
    assert len(inv.port_rules(d)) == 2
    d.stop(signal.SIGKILL)
    os.kill(gone_pid, signal.SIGKILL)  # it ends while no daemon watches
    d.start()
    assert d.inspect(keep)["NetworkSettings"]["Ports"]["80/tcp"][0]["HostPort"] == port
    assert not d.inspect(gone)["State"]["Running"]
    rules = inv.port_rules(d)
    assert len(rules) == 1 and f"--dport {port} " in rules[0], rules
    d.ok("rm", "-f", keep, gone)
    assert inv.port_rules(d) == []
    assert not [r for r in inv.rules(d) if "--dport" in r]


def test_a_veth_no_record_names_is_reclaimed_at_start(private_daemon: Daemon) -> None:
    """Found by the campaign: berthd killed during `network connect`, after the monitor
    plugged the interface but before the record was saved, left a veth on the bridge that no
    container's record names (and an address in use that IPAM would hand out again). At start
    it goes; the running containers' own stay."""
    d = private_daemon
    d.ok("network", "create", "reclaim-net")
    cid = d.ok("run", "-d", "--network", "reclaim-net", "busybox", "sleep", "600").strip()
    bridge = next(b for b in inv.bridges(d) if b != d.bridge)
    own = inv.veths(d)
    assert len(own) == 1
    stray = "vb" + cid[:11]
    subprocess.run(
        ["ip", "link", "add", stray, "type", "veth", "peer", "name", stray + "p"], check=True
    )
    try:
        subprocess.run(["ip", "link", "set", stray, "master", bridge], check=True)
        d.stop(signal.SIGKILL)
        d.start()
        assert inv.veths(d) == own
        assert d.inspect(cid)["State"]["Running"]
        out = d.ok("exec", cid, "ip", "-o", "link", "show", "eth0")
        assert "eth0" in out
    finally:
        subprocess.run(["ip", "link", "del", stray], capture_output=True)
        d.ok("rm", "-f", cid)
        d.ok("network", "rm", "reclaim-net")


def test_a_process_under_a_created_record_is_reclaimed_at_start(private_daemon: Daemon) -> None:
    """Found by the campaign: berthd killed during a start, after the container's process
    was made but before its record said running, left the process running (and its cgroups)
    under a record that says created, for good. At start they go; the record stays created."""
    d = private_daemon
    cid = d.ok("create", "busybox", "sleep", "600").strip()
    sleeper = subprocess.Popen(["sleep", "600"])
    try:
        made = []
        for hier in inv.hierarchies():
            cg = hier / d.cgroup_parent / cid
            cg.mkdir(parents=True, exist_ok=True)
            made.append(cg)
            for f in ("cpuset.cpus", "cpuset.mems"):  # v1's cpuset takes no process without
                for level in (cg.parent, cg):
                    if (level / f).exists() and not (level / f).read_text().strip():
                        (level / f).write_text((level.parent / f).read_text())
            (cg / "cgroup.procs").write_text(str(sleeper.pid))
        assert made and inv.cgroup_pids(d, cid) == {sleeper.pid}
        d.stop(signal.SIGKILL)
        d.start()
        assert sleeper.wait(10) == -signal.SIGKILL
        assert not [cg for cg in made if cg.exists()]
        assert d.inspect(cid)["State"]["Status"] == "created"
    finally:
        sleeper.kill()
        sleeper.wait()
        d.ok("rm", "-f", cid)


def test_shim_host_killed(setup: tuple[Daemon, Path, Path, str, Path]) -> None:
    """A shim host killed with SIGKILL: the daemon stays up, its containers end as exited (not
    lost, not left running without a monitor), and their cgroups, processes, veths and rules
    go."""
    d = setup[0]
    rng = random.Random(SEED)
    killed = 0
    for n in range(SHIM_KILLS):
        names = [f"sk{n}-{k}" for k in range(3)]
        for k, name in enumerate(names):
            extra = ["-p", "127.0.0.1::80"] if k == 0 else []
            d.ok("run", "-d", "--name", name, *extra, "busybox", "sleep", "600")
        victim = names[rng.randrange(len(names))]
        pid = int(d.inspect(victim)["State"]["Pid"])
        shim = shim_of(pid, d)
        os.kill(shim, signal.SIGKILL)
        killed += 1
        deadline = time.monotonic() + 20
        while d.inspect(victim)["State"]["Running"] and time.monotonic() < deadline:
            time.sleep(0.2)
        cs = inv.containers(d)
        assert sorted(cs.names_listed) == sorted(names), cs.names_listed
        for name in names:
            cid, status, cpid = cs.by_name[name]
            assert status in ("running", "exited"), (name, status)
            if status == "running":
                assert Path(f"/proc/{cpid}").exists(), f"{name} runs no process"
            else:
                assert not inv.cgroup_pids(d, cid), f"{name} exited, its processes live on"
        assert cs.by_name[victim][1] == "exited", f"{victim}: its shim was killed, it runs on"
        wait_zero(d, "after a shim host was killed")
        d.ok("rm", "-f", *names)
        wait_zero(d, "after the rm")
        assert not inv.cgroups(d) and not inv.veths(d) and not inv.port_rules(d)
    inv.report("shim", {"kills": killed, "orphans_left": 0})
