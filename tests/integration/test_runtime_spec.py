"""berth-runtime against runc, field by field of the runtime-spec (issue 20): a bundle per
case, driven as the OCI's validation programs drive a runtime (create, state, start, wait,
delete); what the container printed and what its cgroup held while created are compared.
Where the two differ on purpose, the README's "Where berth-runtime differs from runc" says why."""

from __future__ import annotations

import contextlib
import json
import os
import pickle
import secrets
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from .conftest import remove_cgroup_tree, remove_cgroups_named

pytestmark = pytest.mark.root
RT = str(Path(sys.executable).parent / "berth-runtime")


@dataclass
class Life:
    """One runtime's run of a bundle: what each step returned and what was seen."""

    create: subprocess.CompletedProcess[str]
    state: dict[str, Any] = field(default_factory=dict)
    cgroup: dict[str, str] = field(default_factory=dict)
    start: subprocess.CompletedProcess[str] | None = None
    delete: subprocess.CompletedProcess[str] | None = None
    output: str = ""


@pytest.fixture
def spec_bundle(tmp_path: Path, rootfs_tar: Path) -> Iterator[Path]:
    """runc's default bundle, the program `sh -c true`, a cgroup path of its own (relative)
    that is removed afterwards, also on failure."""
    if not shutil.which("runc"):
        pytest.skip("runc is not installed (apt-get install runc)")
    b = tmp_path / "bundle"
    (b / "rootfs").mkdir(parents=True)
    with tarfile.open(rootfs_tar) as tf:
        tf.extractall(b / "rootfs", filter="fully_trusted")
    subprocess.run(["runc", "spec"], cwd=b, check=True)
    top = f"berth-conf-{secrets.token_hex(3)}"
    _edit(
        b,
        lambda c: (
            c["process"].update(terminal=False, args=["sh", "-c", "true"]),
            c["linux"].update(cgroupsPath=f"{top}/c"),
        ),
    )
    try:
        yield b
    finally:
        remove_cgroups_named(top)


def _cgroup_dirs(rel: str, under: str = "/sys/fs/cgroup") -> list[Path]:
    """The cgroup directories whose path ends in `rel`, anywhere below `under`: os.walk,
    which skips what other tests remove meanwhile (Path.rglob raises on it)."""
    return [Path(d) for d, _, _ in os.walk(under) if d.endswith("/" + rel.strip("/"))]


def _edit(bundle: Path, change: Callable[[dict[str, Any]], object]) -> None:
    cfg = json.loads((bundle / "config.json").read_text())
    change(cfg)
    (bundle / "config.json").write_text(json.dumps(cfg))


def _rt(
    rt: str, root: Path, *args: str, cwd: Path | None = None, out: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """One command of a runtime; the container inherits stdout (to `out`) and stderr."""
    err = root.parent / f"{root.name}.err"
    with open(out or os.devnull, "a") as o, open(err, "w+") as e:
        r = subprocess.run(
            [rt, "--root", str(root), *args],
            stdout=o,
            stderr=e,
            stdin=subprocess.DEVNULL,
            cwd=cwd,
            timeout=60,
        )
        e.seek(0)
        return subprocess.CompletedProcess(r.args, r.returncode, "", e.read())


def _cgroup_files(pid: int, files: list[str]) -> dict[str, str]:
    """The files of process `pid`'s v1 cgroups, each `controller/file` (the controller's
    hierarchy found by its name among the process's)."""
    own = {}
    for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        _, ctrls, path = line.split(":", 2)
        for c in ctrls.split(","):
            own[c] = path
    mounts = {}
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        left, right = line.split(" - ")
        if right.split()[0] == "cgroup":
            for opt in right.split()[2].split(","):
                mounts[opt] = left.split()[4]
    got = {}
    for f in files:
        ctrl, name = f.split("/")
        try:
            got[f] = (Path(mounts[ctrl] + own[ctrl]) / name).read_text().strip()
        except (KeyError, OSError) as e:
            got[f] = f"unreadable: {e!r}"
    return got


def _life(
    rt: str,
    bundle: Path,
    tmp: Path,
    *,
    files: list[str] = (),  # type: ignore[assignment]
    start: bool = True,
    cid: str = "c",
) -> Life:
    """create, state (and the cgroup's `files`), start, wait until stopped, delete -f."""
    root = tmp / f"root-{Path(rt).name}"
    out = tmp / f"out-{Path(rt).name}"
    life = Life(create=_rt(rt, root, "create", "-b", str(bundle), cid, cwd=bundle, out=out))
    if life.create.returncode != 0:
        return life
    try:
        life.state = json.loads(
            subprocess.run(
                [rt, "--root", str(root), "state", cid], capture_output=True, text=True, check=True
            ).stdout
        )
        life.cgroup = _cgroup_files(life.state["pid"], list(files))
        if start:
            life.start = _rt(rt, root, "start", cid, cwd=bundle)
            deadline = time.monotonic() + 20
            while (
                json.loads(
                    subprocess.run(
                        [rt, "--root", str(root), "state", cid], capture_output=True, text=True
                    ).stdout
                    or '{"status": "stopped"}'
                )["status"]
                != "stopped"
            ):
                assert time.monotonic() < deadline, f"{rt}: the container did not stop"
                time.sleep(0.05)
    finally:
        life.delete = _rt(rt, root, "delete", "-f", cid, cwd=bundle)
    life.output = out.read_text() if out.exists() else ""
    return life


def _both(bundle: Path, tmp: Path, **kw: Any) -> tuple[Life, Life]:
    """(runc's, berth-runtime's)"""
    return _life("runc", bundle, tmp, **kw), _life(RT, bundle, tmp, **kw)


HOOK = r"""#!/bin/sh
# $1: the hook's kind, $2: where to write (on the host; /hooks in the container)
d=$2; [ -d "$d" ] || d=/hooks
cat > "$d/$1.json"
env=$(env | grep -v -e ^PWD= -e ^SHLVL= -e ^PATH= | sort | tr '\n' ' ')
echo "$1 argv0=$0 argc=$# env=$env cwd=$(pwd) uid=$(id -u)" >> "$d/order"
exit ${HOOK_EXIT:-0}
"""
HOOK_KINDS = (
    "prestart",
    "createRuntime",
    "createContainer",
    "startContainer",
    "poststart",
    "poststop",
)


def _hooks(bundle: Path, tmp: Path, fail: str = "", sleep: str = "") -> Path:
    """Every kind of hook, each writing its stdin and a line (argv, env, cwd) to a directory
    of its own; `fail` exits 3, `sleep` runs past its timeout."""
    out = tmp / "hooks"
    out.mkdir(exist_ok=True)
    for f in out.iterdir():
        f.unlink()
    host = tmp / "hook.sh"
    host.write_text(HOOK)
    host.chmod(0o755)
    inside = bundle / "rootfs" / "bin" / "hook.sh"
    inside.write_text(HOOK)
    inside.chmod(0o755)

    def change(c: dict[str, Any]) -> None:
        c["process"]["args"] = ["sh", "-c", "echo ran"]
        c["mounts"] = [m for m in c["mounts"] if m["destination"] != "/hooks"]
        c["mounts"].append(
            {
                "destination": "/hooks",
                "type": "bind",
                "source": str(out),
                "options": ["rbind", "rw"],
            }
        )
        c["hooks"] = {}
        for kind in HOOK_KINDS:
            # startContainer's path resolves in the container, the others' on the host
            path = "/bin/hook.sh" if kind == "startContainer" else str(host)
            hook = {
                "path": path,
                "args": ["hookname", kind, str(out)],
                "env": ["FOO=bar"] + (["HOOK_EXIT=3"] if kind == fail else []),
                "timeout": 5,
            }
            if kind == sleep:
                hook.update(path="/bin/sleep", args=["sleep", "10"], timeout=1)
            c["hooks"][kind] = [hook]

    _edit(bundle, change)
    return out


def _hook_view(out: Path, init_pid: int) -> tuple[list[str], dict[str, Any]]:
    """What the hooks saw: their lines, and each one's state with the init's pid as "init"."""
    lines = out.joinpath("order").read_text().splitlines() if out.joinpath("order").exists() else []
    states = {}
    for kind in HOOK_KINDS:
        f = out / f"{kind}.json"
        if f.exists():
            st = json.loads(f.read_text())
            if st.get("pid") == init_pid:
                st["pid"] = "init"
            states[kind] = st
    return lines, states


def test_hooks_run_as_runc_runs_them(spec_bundle: Path, tmp_path: Path) -> None:
    """All six kinds: the state on stdin (the init's host pid in the runtime's namespaces,
    its own pid in the container's), their args and env only, the cwd they run in."""
    views = []
    for rt in ("runc", RT):
        out = _hooks(spec_bundle, tmp_path)
        life = _life(rt, spec_bundle, tmp_path)
        assert life.create.returncode == 0, life.create.stderr
        assert life.start is not None and life.start.returncode == 0, life.start
        assert life.output == "ran\n"
        views.append(_hook_view(out, life.state["pid"]))
    (runc_lines, runc_states), (lines, states) = views
    # runc 1.1 runs poststart at `create`, racing with startContainer, and gives it the
    # state `created`: the spec's place is `start`, once the program runs
    assert runc_states.pop("poststart")["status"] == "created"
    assert states.pop("poststart") == {**runc_states["prestart"], "status": "running"}
    assert states == runc_states
    assert sorted(lines) == sorted(runc_lines)
    assert [line.split()[0] for line in lines] == list(HOOK_KINDS)  # the spec's order
    assert states["createContainer"]["pid"] == states["startContainer"]["pid"] == 1
    assert "env=FOO=bar  cwd=" in lines[0] and "argv0=" + str(tmp_path / "hook.sh") in lines[0]


@pytest.mark.parametrize("kind", ["prestart", "createRuntime", "createContainer", "timeout"])
def test_a_failing_create_hook_fails_create(kind: str, spec_bundle: Path, tmp_path: Path) -> None:
    """As runc and the spec: `create` fails, nothing is left of the container, and the
    poststop hooks still run."""
    outs = []
    for rt in ("runc", RT):
        out = _hooks(
            spec_bundle,
            tmp_path,
            fail="" if kind == "timeout" else kind,
            sleep="createRuntime" if kind == "timeout" else "",
        )
        life = _life(rt, spec_bundle, tmp_path)
        assert life.create.returncode != 0
        assert (
            "timeout of 1.0s" if kind == "timeout" else "exit status 3"
        ) in life.create.stderr, life.create.stderr
        assert not (tmp_path / f"root-{Path(rt).name}" / "c").exists()
        outs.append([line.split()[0] for line in _hook_view(out, 0)[0]])
    assert outs[0] == outs[1] and outs[1][-1] == "poststop"


def test_a_failing_start_container_hook_fails_start(spec_bundle: Path, tmp_path: Path) -> None:
    """runc 1.1 says nothing (its init just exits); the spec and berth-runtime: `start` fails
    with the hook's error, and the container is stopped, its program never run."""
    out = _hooks(spec_bundle, tmp_path, fail="startContainer")
    theirs, ours = _both(spec_bundle, tmp_path)
    assert theirs.start is not None and theirs.start.returncode == 0
    assert ours.start is not None and ours.start.returncode == 1
    assert "startContainer hook #0: exit status 3" in ours.start.stderr
    assert theirs.output == ours.output == ""
    assert [line.split()[0] for line in _hook_view(out, 0)[0]][-2:] == [
        "startContainer",
        "poststop",
    ]


@pytest.mark.parametrize("kind", ["poststart", "poststop"])
def test_a_failing_post_hook_is_a_warning(kind: str, spec_bundle: Path, tmp_path: Path) -> None:
    """The spec: a failing poststart or poststop hook is a warning, and the lifecycle goes
    on (runc 1.1 fails `create` or `delete` instead: see the README)."""
    _hooks(spec_bundle, tmp_path, fail=kind)
    life = _life(RT, spec_bundle, tmp_path)
    step = life.start if kind == "poststart" else life.delete
    assert life.create.returncode == 0 and step is not None and step.returncode == 0
    assert f"warning: error running {kind} hook #0: exit status 3" in step.stderr
    assert life.output == "ran\n"


NS_FILES = {
    "pid": "pid",
    "network": "net",
    "ipc": "ipc",
    "uts": "uts",
    "mount": "mnt",
    "cgroup": "cgroup",
    "user": "user",
}


def _unshared(pid: int) -> bool:
    """Whether `pid` has made its namespaces (its children's pid namespace last)."""
    try:
        return os.readlink(f"/proc/{pid}/ns/pid_for_children") != os.readlink("/proc/self/ns/pid")
    except OSError:  # while it changes namespaces
        return False


@contextlib.contextmanager
def _ns_holder() -> Iterator[int]:
    """A process in a new namespace of each type (its children's pid namespace), to join
    by path. One per runtime: a container that joins a mount namespace pivots its root."""
    holder = subprocess.Popen(
        [
            "unshare",
            "--user",
            "--map-root-user",
            "--mount",
            "--uts",
            "--ipc",
            "--net",
            "--cgroup",
            "--pid",
            "--fork",
            "--kill-child",
            "sleep",
            "60",
        ]
    )
    try:
        deadline = time.monotonic() + 5
        while not _unshared(holder.pid):
            assert time.monotonic() < deadline
            time.sleep(0.01)
        yield holder.pid
    finally:
        holder.kill()
        holder.wait()


def _ns_path(holder: int, typ: str) -> str:
    return f"/proc/{holder}/ns/" + ("pid_for_children" if typ == "pid" else NS_FILES[typ])


def _join_all(holder: int) -> Callable[[dict[str, Any]], None]:
    def change(c: dict[str, Any]) -> None:
        c["linux"]["namespaces"] = [{"type": t, "path": _ns_path(holder, t)} for t in NS_FILES]
        # runc wants the mappings of a user namespace it joins: the holder's
        c["linux"]["uidMappings"] = [{"containerID": 0, "hostID": 0, "size": 1}]
        c["linux"]["gidMappings"] = [{"containerID": 0, "hostID": 0, "size": 1}]
        for m in c["mounts"]:  # gid 5 (tty) is not mapped there
            m["options"] = [o for o in m.get("options", []) if o != "gid=5"]

    return change


@pytest.mark.parametrize("how", ["new", "path"])
def test_state_pid_of_a_created_container(how: str, spec_bundle: Path, tmp_path: Path) -> None:
    """`state` of a created container gives its init's host pid, whose /proc/PID/ns/* are
    the container's: new ones, or those joined by path (each type, the user namespace too)."""
    _edit(
        spec_bundle,
        lambda c: (
            c["process"].update(args=["sleep", "30"]),
            c["linux"]["namespaces"].extend(
                [{"type": "cgroup"}]
                if not any(n["type"] == "cgroup" for n in c["linux"]["namespaces"])
                else []
            ),
        ),
    )
    seen = []
    for rt in ("runc", RT):
        with contextlib.ExitStack() as stack:
            holder = stack.enter_context(_ns_holder()) if how == "path" else None
            if holder is not None:
                _edit(spec_bundle, _join_all(holder))
            root = tmp_path / f"root-{Path(rt).name}"
            r = _rt(rt, root, "create", "-b", str(spec_bundle), "c", cwd=spec_bundle)
            assert r.returncode == 0, r.stderr
            stack.callback(_rt, rt, root, "delete", "-f", "c")
            st = json.loads(
                subprocess.run(
                    [rt, "--root", str(root), "state", "c"],
                    capture_output=True,
                    text=True,
                    check=True,
                ).stdout
            )
            assert st["status"] == "created" and st["pid"] > 0
            view = {}
            for t, f in NS_FILES.items():
                mine = os.readlink(f"/proc/{st['pid']}/ns/{f}")
                if holder is not None:
                    view[t] = "joined" if mine == os.readlink(_ns_path(holder, t)) else mine
                else:
                    view[t] = "host's" if mine == os.readlink(f"/proc/self/ns/{f}") else "own"
            seen.append(view)
    theirs, ours = seen
    assert ours == theirs
    if how == "path":
        assert set(ours.values()) == {"joined"}
    else:
        assert ours == {**{t: "own" for t in NS_FILES}, "user": "host's"}


def test_user_namespace_without_a_path(spec_bundle: Path, tmp_path: Path) -> None:
    """A new user namespace mapped to an unprivileged range: its root opens the exec fifo
    (handed over as a descriptor, owned by that root) and sees what it sees under runc."""
    # the mapped root must reach the rootfs: one outside pytest's private temp directory
    outside = Path(tempfile.mkdtemp(prefix="berth-conf-userns-"))
    try:
        outside.chmod(0o755)
        shutil.move(spec_bundle / "rootfs", outside / "rootfs")

        def change(c: dict[str, Any]) -> None:
            c["root"]["path"] = str(outside / "rootfs")
            c["linux"]["namespaces"].append({"type": "user"})
            c["linux"]["uidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
            c["linux"]["gidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
            c["process"]["args"] = [
                "sh",
                "-c",
                "id; cat /proc/self/uid_map /proc/self/gid_map;"
                " ls -ln / | grep -c ' 65534 '; ls -l /proc/1/exe 2>&1 |"
                " cut -d: -f2-; echo done",
            ]

        _edit(spec_bundle, change)
        theirs, ours = _both(spec_bundle, tmp_path)
        assert ours.create.returncode == 0, ours.create.stderr
        assert ours.output == theirs.output
        assert "uid=0(root)" in ours.output and "100000" in ours.output
        assert ours.output.endswith("done\n")
    finally:
        shutil.rmtree(outside, ignore_errors=True)


MEMORY_FILES = [
    "memory/memory.limit_in_bytes",
    "memory/memory.soft_limit_in_bytes",
    "memory/memory.swappiness",
    "memory/memory.oom_control",
    "memory/memory.kmem.limit_in_bytes",
    "memory/memory.kmem.tcp.limit_in_bytes",
]


def _v1_only() -> None:
    if Path("/sys/fs/cgroup/cgroup.controllers").exists():
        pytest.skip("a cgroup v1 test: this host's cgroups are v2")


@pytest.mark.parametrize("path", ["relative", "absolute"])
def test_memory(path: str, spec_bundle: Path, tmp_path: Path) -> None:
    """linux.resources.memory: limit, reservation, swappiness, disableOOMKiller, kernel and
    kernelTCP, as the cgroup holds them and as the container reads them back."""
    _v1_only()

    def change(c: dict[str, Any]) -> None:
        if path == "absolute":
            c["linux"]["cgroupsPath"] = "/" + c["linux"]["cgroupsPath"]
        c["linux"]["resources"] = {
            "memory": {
                "limit": 256 << 20,
                "reservation": 128 << 20,
                "swappiness": 33,
                "disableOOMKiller": True,
                "kernel": 64 << 20,
                "kernelTCP": 32 << 20,
            }
        }
        c["process"]["args"] = [
            "sh",
            "-c",
            "cd /sys/fs/cgroup/memory && cat "
            "memory.limit_in_bytes memory.soft_limit_in_bytes "
            "memory.swappiness memory.oom_control",
        ]

    _edit(spec_bundle, change)
    theirs, ours = _both(spec_bundle, tmp_path, files=MEMORY_FILES)
    assert ours.create.returncode == 0, ours.create.stderr
    # runc 1.1 ignores kernelTCP as well as kernel; this kernel (5.16+) ignores only the
    # kernel limit, and berth-runtime applies kernelTCP (see the README)
    tcp = "memory/memory.kmem.tcp.limit_in_bytes"
    assert ours.cgroup.pop(tcp) == str(32 << 20)
    theirs.cgroup.pop(tcp)
    assert ours.cgroup == theirs.cgroup
    assert ours.output == theirs.output
    assert ours.cgroup["memory/memory.soft_limit_in_bytes"] == str(128 << 20)
    assert "oom_kill_disable 1" in ours.output and "\n33\n" in ours.output
    from berth.cgroups import kernel_memory_enforced

    if not kernel_memory_enforced():
        assert "memory.kernel is ignored" in ours.create.stderr


@pytest.mark.parametrize("use", [True, False])
def test_memory_use_hierarchy(use: bool, spec_bundle: Path, tmp_path: Path) -> None:
    """linux.resources.memory.useHierarchy on v1 (memory.use_hierarchy) against runc, which
    drops the field: true, the same cgroup; false, which Linux 5.11 and later refuse (every
    memory cgroup is hierarchical there), an error that names the field (README)."""
    _v1_only()
    _edit(spec_bundle, lambda c: c["linux"].update(resources={"memory": {"useHierarchy": use}}))
    theirs, ours = _both(spec_bundle, tmp_path, files=["memory/memory.use_hierarchy"])
    assert theirs.create.returncode == 0, theirs.create.stderr
    if use or Path("/sys/fs/cgroup/memory/memory.use_hierarchy").read_text().strip() == "0":
        assert ours.create.returncode == 0, ours.create.stderr
        assert ours.cgroup == theirs.cgroup == {"memory/memory.use_hierarchy": str(int(use))}
    else:
        assert ours.create.returncode != 0
        assert "memory.useHierarchy: the kernel refused false" in ours.create.stderr
        assert theirs.cgroup == {"memory/memory.use_hierarchy": "1"}


def test_pause_and_resume(spec_bundle: Path, tmp_path: Path) -> None:
    """`pause` and `resume` (the freezer) as runc's: state says paused, then running."""
    _edit(spec_bundle, lambda c: c["process"].update(args=["sleep", "60"]))
    seen = {}
    for rt in ("runc", RT):
        root = tmp_path / f"pause-{Path(rt).name}"
        assert _rt(rt, root, "create", "-b", str(spec_bundle), "c", cwd=spec_bundle).returncode == 0
        try:
            steps = []
            for verb in ("pause", "start", "pause", "pause", "resume", "resume"):
                r = _rt(rt, root, verb, "c", cwd=spec_bundle)
                status = json.loads(
                    subprocess.run(
                        [rt, "--root", str(root), "state", "c"], capture_output=True, text=True
                    ).stdout
                )
                steps.append((verb, r.returncode == 0, status["status"]))
                if verb == "pause" and r.returncode == 0:
                    steps.append(_cgroup_files(status["pid"], ["freezer/freezer.state"]))
            steps.append(
                (
                    "delete paused",
                    _rt(rt, root, "pause", "c").returncode,
                    _rt(rt, root, "delete", "c").returncode != 0,
                )
            )
        finally:
            _rt(rt, root, "delete", "-f", "c")
        seen[rt] = steps
    assert seen[RT] == seen["runc"], seen
    assert ("pause", True, "paused") in seen[RT]
    assert {"freezer/freezer.state": "FROZEN"} in seen[RT]


def _root_device() -> tuple[int, int]:
    """The block device of the filesystem that holds /, as blkio names it."""
    dev = os.stat("/").st_dev
    major, minor = os.major(dev), os.minor(dev)
    if not Path(f"/sys/dev/block/{major}:{minor}").exists():
        pytest.skip(f"/ is not on a block device ({major}:{minor})")
    part = Path(f"/sys/dev/block/{major}:{minor}/partition")
    if part.exists():  # throttling is per disk, not per partition
        disk = Path(f"/sys/dev/block/{major}:{minor}").resolve().parent / "dev"
        major, minor = (int(x) for x in disk.read_text().split(":"))
    return major, minor


BLKIO_FILES = [
    "blkio/blkio.throttle.read_bps_device",
    "blkio/blkio.throttle.write_bps_device",
    "blkio/blkio.throttle.read_iops_device",
    "blkio/blkio.throttle.write_iops_device",
    "blkio/blkio.bfq.weight",
    "blkio/blkio.weight",
    "blkio/blkio.leaf_weight",
]


@pytest.mark.parametrize("what", ["throttle", "weight", "leafWeight", "weightDevice"])
def test_block_io(what: str, spec_bundle: Path, tmp_path: Path) -> None:
    """linux.resources.blockIO on v1 (blkio): where the kernel has the file, the same value
    as runc's; where it has not (leafWeight needs CFQ, weightDevice a device under BFQ), an
    error from both."""
    _v1_only()
    major, minor = _root_device()
    dev = {"major": major, "minor": minor}
    blkio = {
        "throttle": {
            "throttleReadBpsDevice": [{**dev, "rate": 1 << 20}],
            "throttleWriteBpsDevice": [{**dev, "rate": 2 << 20}],
            "throttleReadIOPSDevice": [{**dev, "rate": 100}],
            "throttleWriteIOPSDevice": [{**dev, "rate": 200}],
        },
        "weight": {"weight": 300},
        "leafWeight": {"leafWeight": 300},
        "weightDevice": {"weightDevice": [{**dev, "weight": 500}]},
    }[what]

    def change(c: dict[str, Any]) -> None:
        c["linux"]["resources"] = {"blockIO": blkio}
        c["process"]["args"] = ["sh", "-c", "cat /sys/fs/cgroup/blkio/blkio.throttle.*_device"]

    _edit(spec_bundle, change)
    theirs, ours = _both(spec_bundle, tmp_path, files=BLKIO_FILES)
    assert (ours.create.returncode == 0) is (theirs.create.returncode == 0), (
        ours.create.stderr,
        theirs.create.stderr,
    )
    assert ours.cgroup == theirs.cgroup
    assert ours.output == theirs.output
    if what == "throttle":
        assert f"{major}:{minor} {2 << 20}" in ours.output
    if ours.create.returncode != 0:
        assert "blkio" in ours.create.stderr


def _with_hierarchy(tmp: Path, controllers: str, fn: Callable[[], Any]) -> Any:
    """`fn()` in a child process with a private mount namespace where the v1 hierarchy of
    `controllers` (none of this host's own) is mounted: both runtimes find it there, as
    they find any cgroup mount. The cgroups made in it are removed before the child ends,
    so that the hierarchy goes with its mount."""
    from berth import linux

    point = tmp / controllers
    point.mkdir()
    result = tmp / "result.pickle"
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        out: tuple[str, Any] = ("error", "the child failed")
        try:
            linux.unshare(linux.CLONE_NEWNS)
            linux.mount(None, "/", None, linux.MS_REC | linux.MS_PRIVATE)
            deadline = time.monotonic() + 10
            while True:
                try:  # EBUSY while the kernel still ends the hierarchy of a test before
                    linux.mount("cgroup", str(point), "cgroup", 0, controllers)
                    break
                except OSError as e:
                    if time.monotonic() > deadline:
                        # e.g. enabled in the unified hierarchy's cgroup.subtree_control
                        out = ("skip", f"cannot mount a v1 {controllers} hierarchy: {e}")
                        raise
                    time.sleep(0.2)
            try:
                out = ("ok", fn())
            finally:
                _empty_hierarchy(point)
        except BaseException:  # noqa: BLE001 - reported to the parent
            if out[0] != "skip":
                out = ("error", traceback.format_exc())
        finally:
            with contextlib.suppress(BaseException):
                result.write_bytes(pickle.dumps(out))
            os._exit(0)
    os.waitpid(pid, 0)
    _unmounted_hierarchy_gone(controllers, point)
    if not result.exists():
        pytest.fail(f"the child with a {controllers} hierarchy reported nothing")
    status, value = pickle.loads(result.read_bytes())
    if status == "skip":
        pytest.skip(value)
    if status != "ok":
        pytest.fail(value)
    return value


def _hierarchy_of(controller: str) -> tuple[int, int]:
    """(hierarchy id, number of cgroups) of a v1 controller, from /proc/cgroups."""
    for line in Path("/proc/cgroups").read_text().splitlines()[1:]:
        name, hier, num, _ = line.split()
        if name == controller:
            return int(hier), int(num)
    return 0, 0


def _unmounted_hierarchy_gone(controllers: str, point: Path) -> None:
    """The kernel ends an unmounted v1 hierarchy only if no cgroup (dying ones included) was
    left at its last unmount, and then a while later: wait for that; mount and unmount it
    once more where it stays, so that the host's /proc/*/cgroup end as they began."""
    first = controllers.split(",")[0]
    for remount, wait in ((True, 3), (False, 20)):
        deadline = time.monotonic() + wait
        while _hierarchy_of(first)[0] != 0:
            if time.monotonic() > deadline:
                break
            time.sleep(0.1)
        else:
            return
        if remount:
            subprocess.run(
                [
                    "unshare",
                    "--mount",
                    "--propagation",
                    "private",
                    "sh",
                    "-c",
                    'mount -t cgroup -o "$1" cgroup "$2" && umount "$2"',
                    "sh",
                    controllers,
                    str(point),
                ],
                check=False,
                timeout=10,
            )
    pytest.fail(f"the {controllers} hierarchy stays after the test")


def _empty_hierarchy(point: Path) -> None:
    """Kill what runs in the cgroups below `point`, then remove them, deepest first."""
    for procs in point.rglob("*/cgroup.procs"):
        with contextlib.suppress(OSError):
            for pid in procs.read_text().split():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(int(pid), 9)
    time.sleep(0.05)
    for sub in [p for p in point.iterdir() if p.is_dir()]:
        remove_cgroup_tree(sub)


def test_network_class_id_and_priorities(spec_bundle: Path, tmp_path: Path) -> None:
    """linux.resources.network on v1: net_cls.classid and net_prio.ifpriomap, under a
    net_cls,net_prio hierarchy mounted for the test."""
    _v1_only()
    if any(
        ",net_cls" in line or ":net_cls" in line
        for line in Path("/proc/self/cgroup").read_text().splitlines()
    ):
        pytest.skip("this host mounts net_cls itself")

    def change(c: dict[str, Any]) -> None:
        c["linux"]["resources"] = {
            "network": {"classID": 0x100010, "priorities": [{"name": "lo", "priority": 7}]}
        }
        c["process"]["args"] = [
            "sh",
            "-c",
            "cat /sys/fs/cgroup/net_cls,net_prio/"
            "net_cls.classid; grep lo /sys/fs/cgroup/net_cls/"
            "net_prio.ifpriomap; ls /sys/fs/cgroup",
        ]

    _edit(spec_bundle, change)
    files = ["net_cls/net_cls.classid", "net_prio/net_prio.ifpriomap"]
    theirs, ours = _with_hierarchy(
        tmp_path, "net_cls,net_prio", lambda: _both(spec_bundle, tmp_path, files=files)
    )
    assert ours.create.returncode == 0, ours.create.stderr
    for life in (theirs, ours):  # the host's other interfaces come and go meanwhile
        life.cgroup["net_prio/net_prio.ifpriomap"] = [
            line
            for line in life.cgroup["net_prio/net_prio.ifpriomap"].splitlines()
            if line.startswith("lo ")
        ]
    assert ours.cgroup == theirs.cgroup
    assert ours.output == theirs.output
    assert ours.cgroup["net_cls/net_cls.classid"] == str(0x100010)
    assert ours.cgroup["net_prio/net_prio.ifpriomap"] == ["lo 7"]


def test_network_without_the_controllers(spec_bundle: Path, tmp_path: Path) -> None:
    """Where no net_cls hierarchy is mounted both refuse the container."""
    _v1_only()
    if "net_cls" in Path("/proc/self/mountinfo").read_text():
        pytest.skip("this host mounts net_cls")
    _edit(spec_bundle, lambda c: c["linux"].update(resources={"network": {"classID": 1}}))
    theirs, ours = _both(spec_bundle, tmp_path)
    assert theirs.create.returncode == ours.create.returncode == 1
    assert "net_cls" in theirs.create.stderr
    assert "network.classID: no net_cls cgroup controller" in ours.create.stderr


def test_hugepage_limits(spec_bundle: Path, tmp_path: Path) -> None:
    """linux.resources.hugepageLimits on v1, under a hugetlb hierarchy mounted for the
    test: each size's limit_in_bytes."""
    _v1_only()
    if not Path("/sys/kernel/mm/hugepages/hugepages-2048kB").exists():
        pytest.skip("no 2 MB huge pages on this host")
    if "hugetlb" in Path("/proc/self/mountinfo").read_text():
        pytest.skip("this host mounts hugetlb itself")

    def change(c: dict[str, Any]) -> None:
        c["linux"]["resources"] = {"hugepageLimits": [{"pageSize": "2MB", "limit": 8 << 20}]}
        c["process"]["args"] = ["sh", "-c", "cat /sys/fs/cgroup/hugetlb/hugetlb.2MB.limit_in_bytes"]

    _edit(spec_bundle, change)
    files = ["hugetlb/hugetlb.2MB.limit_in_bytes", "hugetlb/hugetlb.1GB.limit_in_bytes"]
    theirs, ours = _with_hierarchy(
        tmp_path, "hugetlb", lambda: _both(spec_bundle, tmp_path, files=files)
    )
    assert ours.create.returncode == 0, ours.create.stderr
    assert ours.cgroup == theirs.cgroup
    assert ours.output == theirs.output == f"{8 << 20}\n"


# (berth-runtime's message, and whether runc 1.1 refuses it too)
REFUSED: dict[str, tuple[Callable[[dict[str, Any]], object], str, bool]] = {
    "ociVersion 2": (lambda c: c.update(ociVersion="2.0.0"), "unsupported ociVersion 2.0.0", False),
    "ociVersion not SemVer": (lambda c: c.update(ociVersion="1.0"), "invalid ociVersion", False),
    "duplicated namespace": (
        lambda c: c["linux"]["namespaces"].append({"type": "ipc"}),
        "duplicated namespace type 'ipc'",
        True,
    ),
    "unknown namespace": (
        lambda c: c["linux"]["namespaces"].append({"type": "nosuch"}),
        "unknown namespace type 'nosuch'",
        True,
    ),
    "intelRdt": (
        lambda c: c["linux"].update(intelRdt={"closID": "x", "l3CacheSchema": "L3:0=f"}),
        "linux.intelRdt: Intel RDT (resctrl) is not supported",
        True,
    ),
    "rdma": (
        lambda c: c["linux"].update(resources={"rdma": {"mlx5_1": {"hcaHandles": 3}}}),
        "linux.resources.rdma: no rdma cgroup controller",
        True,
    ),
    "unified on v1": (
        lambda c: c["linux"].update(resources={"unified": {"memory.high": "1"}}),
        "linux.resources.unified needs cgroup v2",
        True,
    ),
    "timeOffsets without a time namespace": (
        lambda c: c["linux"].update(timeOffsets={"boottime": {"secs": 1}}),
        "linux.timeOffsets needs a new time namespace",
        False,
    ),
    "apparmorProfile": (
        lambda c: c["process"].update(apparmorProfile="berth-test"),
        "AppArmor is not enabled on this host",
        True,
    ),
    "idmapped mount": (
        lambda c: c["mounts"].append(
            {
                "destination": "/mnt",
                "type": "bind",
                "source": "/tmp",
                "options": ["rbind"],
                "uidMappings": [{"containerID": 0, "hostID": 1000, "size": 1}],
            }
        ),
        "idmapped mounts (/mnt) are not supported",
        False,
    ),
    "SCHED_DEADLINE": (
        lambda c: c["process"].update(
            scheduler={
                "policy": "SCHED_DEADLINE",
                "runtime": 1000,
                "deadline": 2000,
                "period": 3000,
            }
        ),
        "SCHED_DEADLINE and scheduler flags",
        False,
    ),
    "seccomp flags": (
        lambda c: c["linux"].update(
            seccomp={"defaultAction": "SCMP_ACT_ALLOW", "flags": ["SECCOMP_FILTER_FLAG_LOG"]}
        ),
        "linux.seccomp.flags: seccomp filter flags are not supported",
        True,
    ),
    "unknown rlimit": (
        lambda c: c["process"]["rlimits"].append({"type": "RLIMIT_NOSUCH", "soft": 1, "hard": 1}),
        "process.rlimits: unknown type 'RLIMIT_NOSUCH'",
        True,
    ),
    "personality domain": (
        lambda c: c["linux"].update(personality={"domain": "BAD"}),
        "linux.personality: unknown domain 'BAD'",
        False,
    ),
    "cpu realtime beyond the parent's": (
        lambda c: c["linux"].update(
            resources={"cpu": {"realtimeRuntime": 1000, "realtimePeriod": 1000000}}
        ),
        "cpu.rt_runtime_us",
        True,
    ),
}


@pytest.mark.parametrize("case", list(REFUSED))
def test_refused_with_a_clear_error(case: str, spec_bundle: Path, tmp_path: Path) -> None:
    """What berth-runtime does not implement, or this host lacks: `create` fails, says
    which field, and leaves nothing; runc refuses the same, or ignores a field it does not
    know (the README lists each)."""
    change, message, runc_refuses = REFUSED[case]
    if case == "apparmorProfile" and Path("/sys/module/apparmor/parameters/enabled").exists():
        pytest.skip("AppArmor is enabled on this host")
    if case in ("rdma", "unified on v1"):
        _v1_only()
    _edit(spec_bundle, change)
    theirs, ours = _both(spec_bundle, tmp_path)
    assert ours.create.returncode != 0
    assert message in ours.create.stderr, ours.create.stderr
    assert (theirs.create.returncode != 0) is runc_refuses, theirs.create.stderr
    assert not (tmp_path / "root-berth-runtime" / "c").exists()


def test_umask_and_rootfs_propagation(spec_bundle: Path, tmp_path: Path) -> None:
    """process.user.umask as runc applies it; linux.rootfsPropagation "rshared" makes the
    container's root a shared mount (runc 1.1 leaves it private: see the README)."""

    def change(c: dict[str, Any]) -> None:
        c["process"]["user"]["umask"] = 0o027
        c["linux"]["rootfsPropagation"] = "rshared"
        # the optional fields (shared:N, master:N) of the root's mountinfo line
        c["process"]["args"] = [
            "sh",
            "-c",
            'umask; awk \'$5 == "/" { for (i = 7; $i != '
            '"-"; i++) print $i }\' /proc/self/mountinfo | cut -d: -f1',
        ]

    _edit(spec_bundle, change)
    theirs, ours = _both(spec_bundle, tmp_path)
    assert ours.create.returncode == 0, ours.create.stderr
    assert theirs.output == "0027\n"
    assert ours.output == "0027\nshared\n"


NEWER = r"""
uname -m; cat /proc/sys/kernel/domainname
cut -d' ' -f19,41 /proc/self/stat   # nice, scheduling policy
ionice
cut -d. -f1 /proc/uptime
"""


def test_fields_runc_1_1_does_not_know(spec_bundle: Path, tmp_path: Path) -> None:
    """domainname, linux.personality, process.scheduler, process.ioPriority, cpu.idle and
    cpu.burst, a time namespace with its offsets (runtime-spec 1.1 and 1.2): runc 1.1
    ignores them (the time namespace it refuses); berth-runtime applies them, and the
    container sees them."""

    def change(c: dict[str, Any]) -> None:
        c["domainname"] = "berth.test"
        c["linux"]["personality"] = {"domain": "LINUX32"}
        c["process"]["scheduler"] = {"policy": "SCHED_BATCH", "nice": 7}
        c["process"]["ioPriority"] = {"class": "IOPRIO_CLASS_IDLE", "priority": 0}
        c["linux"]["resources"] = {"cpu": {"idle": 1, "burst": 20000}}
        c["process"]["args"] = ["sh", "-c", NEWER]

    _edit(spec_bundle, change)
    files = ["cpu/cpu.idle", "cpu/cpu.cfs_burst_us"]
    theirs, ours = _both(spec_bundle, tmp_path, files=files)
    for f, runc_value, value in zip(files, ("0", "0"), ("1", "20000"), strict=True):
        if not theirs.cgroup[f].startswith("unreadable"):  # a kernel with the file
            assert (theirs.cgroup[f], ours.cgroup[f]) == (runc_value, value)
    assert theirs.create.returncode == 0 and ours.create.returncode == 0, ours.create.stderr
    machine = os.uname().machine
    assert theirs.output.splitlines()[:4] == [machine, "(none)", "0 0", "none: prio 0"]
    want32 = {"x86_64": "i686", "aarch64": "armv8l"}.get(machine, machine)
    assert ours.output.splitlines()[:4] == [want32, "berth.test", "7 3", "idle"]

    days = 1000 * 86400
    _edit(
        spec_bundle,
        lambda c: (
            c["linux"]["namespaces"].append({"type": "time"}),
            c["linux"].update(
                timeOffsets={
                    "boottime": {"secs": days, "nanosecs": 0},
                    "monotonic": {"secs": days, "nanosecs": 0},
                }
            ),
        ),
    )
    theirs, ours = _both(spec_bundle, tmp_path)
    assert theirs.create.returncode != 0 and "time" in theirs.create.stderr
    assert ours.create.returncode == 0, ours.create.stderr
    host_uptime = float(Path("/proc/uptime").read_text().split()[0])
    assert int(ours.output.splitlines()[-1]) >= days + int(host_uptime) - 5


def test_selinux_labels_without_selinux(spec_bundle: Path, tmp_path: Path) -> None:
    """mountLabel and selinuxLabel where SELinux is off: runc fails (its mounts get a
    context= option the kernel refuses); berth-runtime warns and ignores them."""
    if Path("/sys/fs/selinux/enforce").exists():
        pytest.skip("SELinux is enabled on this host")
    _edit(
        spec_bundle,
        lambda c: (
            c["linux"].update(mountLabel="system_u:object_r:container_file_t:s0"),
            c["process"].update(
                selinuxLabel="system_u:system_r:container_t:s0", args=["echo", "ran"]
            ),
        ),
    )
    theirs, ours = _both(spec_bundle, tmp_path)
    assert theirs.create.returncode != 0
    assert ours.create.returncode == 0 and ours.output == "ran\n"
    assert (
        "linux.mountLabel, process.selinuxLabel ignored: SELinux is not enabled"
        in ours.create.stderr
    )


def test_no_cgroups_path(spec_bundle: Path, tmp_path: Path) -> None:
    """Without linux.cgroupsPath, as runc: a cgroup named after the container, under the
    caller's own in each hierarchy, with the resources applied, gone at delete."""
    cid = f"berth-conf-{secrets.token_hex(3)}"

    def change(c: dict[str, Any]) -> None:
        del c["linux"]["cgroupsPath"]
        c["linux"]["resources"] = {"pids": {"limit": 42}}
        c["process"]["args"] = [
            "sh",
            "-c",
            "cat /proc/self/cgroup; cat /sys/fs/cgroup/pids/pids.max",
        ]

    _edit(spec_bundle, change)
    try:
        theirs, ours = (
            _life(rt, spec_bundle, tmp_path, cid=cid, files=["pids/pids.max"])
            for rt in ("runc", RT)
        )
    finally:
        remove_cgroups_named(cid)
    assert ours.create.returncode == 0, ours.create.stderr
    assert ours.output == theirs.output and ours.cgroup == theirs.cgroup
    assert ours.cgroup == {"pids/pids.max": "42"} and ours.output.endswith("42\n")
    assert not _cgroup_dirs(cid)


@pytest.mark.parametrize("uid", [0, 1000])
def test_capabilities_of_a_user(uid: int, spec_bundle: Path, tmp_path: Path) -> None:
    """process.capabilities, all five sets, for root and for another user (the capabilities
    kept across setuid, the ambient ones raised), as runc applies them."""

    def change(c: dict[str, Any]) -> None:
        c["process"]["user"] = {"uid": uid, "gid": uid}
        caps = c["process"]["capabilities"]
        caps["inheritable"] = ["CAP_NET_BIND_SERVICE", "CAP_KILL"]
        caps["ambient"] = ["CAP_NET_BIND_SERVICE", "CAP_SYS_ADMIN"]  # the second: skipped
        c["process"]["args"] = ["sh", "-c", "grep ^Cap /proc/self/status; id"]

    _edit(spec_bundle, change)
    theirs, ours = _both(spec_bundle, tmp_path)
    assert ours.create.returncode == 0, ours.create.stderr
    assert ours.output == theirs.output
    assert "CapAmb:\t0000000000000400" in ours.output  # CAP_NET_BIND_SERVICE (10)


def test_hooks_under_run(spec_bundle: Path, tmp_path: Path) -> None:
    """`run` is create, start, wait and delete in one: every hook runs, in the spec's order
    (runc 1.1's poststart again at create), with the container's output as under runc."""
    lines = []
    for rt in ("runc", RT):
        out = _hooks(spec_bundle, tmp_path)
        r = _rt(
            rt,
            tmp_path / f"run-{Path(rt).name}",
            "run",
            "-b",
            str(spec_bundle),
            f"r{secrets.token_hex(3)}",
            cwd=spec_bundle,
            out=tmp_path / f"o-{rt[-4:]}",
        )
        assert r.returncode == 0, r.stderr
        assert (tmp_path / f"o-{rt[-4:]}").read_text() == "ran\n"
        lines.append([line.split()[0] for line in _hook_view(out, 0)[0]])
    theirs, ours = lines
    assert sorted(ours) == sorted(theirs)
    assert ours == list(HOOK_KINDS)


def test_exec_joins_the_time_namespace(spec_bundle: Path, tmp_path: Path) -> None:
    """An exec in a container with a time namespace of its own sees its offsets too."""
    days = 500 * 86400
    _edit(
        spec_bundle,
        lambda c: (
            c["linux"]["namespaces"].append({"type": "time"}),
            c["linux"].update(timeOffsets={"boottime": {"secs": days, "nanosecs": 0}}),
            c["process"].update(args=["sleep", "30"]),
        ),
    )
    root = tmp_path / "root"
    try:
        assert _rt(RT, root, "create", "-b", str(spec_bundle), "t").returncode == 0
        assert _rt(RT, root, "start", "t").returncode == 0
        out = tmp_path / "exec.out"
        r = _rt(RT, root, "exec", "t", "cut", "-d.", "-f1", "/proc/uptime", out=out)
        assert r.returncode == 0, r.stderr
        assert int(out.read_text()) >= days
    finally:
        _rt(RT, root, "delete", "-f", "t")


def test_a_failing_start_container_hook_under_run(spec_bundle: Path, tmp_path: Path) -> None:
    """`run` whose startContainer hook fails: it fails, and leaves no state and no cgroup."""
    _hooks(spec_bundle, tmp_path, fail="startContainer")
    root = tmp_path / "run-root"
    r = _rt(RT, root, "run", "-b", str(spec_bundle), "rf", cwd=spec_bundle)
    assert r.returncode == 1 and "startContainer hook #0: exit status 3" in r.stderr
    assert not (root / "rf").exists()
    top = json.loads((spec_bundle / "config.json").read_text())["linux"]["cgroupsPath"]
    assert not _cgroup_dirs(top)


def test_devices_and_their_rules(spec_bundle: Path, tmp_path: Path) -> None:
    """linux.devices of each type (a FIFO, an unbuffered character device) under a deny-all
    device cgroup: the nodes the container sees, and the rules the cgroup holds (runc's
    allowed list: the default devices, mknod of any, /dev/net/tun, the spec's devices)."""
    _v1_only()

    def change(c: dict[str, Any]) -> None:
        c["linux"]["devices"] = [
            {"path": "/dev/myfifo", "type": "p", "major": 0, "minor": 0, "fileMode": 0o640},
            {"path": "/dev/mynull", "type": "u", "major": 1, "minor": 3, "fileMode": 0o666},
        ]
        c["linux"]["resources"] = {"devices": [{"allow": False, "access": "rwm"}]}
        c["process"]["args"] = [
            "sh",
            "-c",
            "ls -l /dev/myfifo /dev/mynull | cut -c1-10; "
            "echo x > /dev/mynull && echo wrote; cat /dev/kmsg 2>&1 | "
            "head -1 | cut -d: -f2-",
        ]

    _edit(spec_bundle, change)
    theirs, ours = _both(spec_bundle, tmp_path, files=["devices/devices.list"])
    assert ours.create.returncode == 0, ours.create.stderr
    assert ours.output == theirs.output
    assert ours.output.startswith("prw-r-----\ncrw-rw-rw-\nwrote\n")
    rules = [sorted(life.cgroup["devices/devices.list"].splitlines()) for life in (theirs, ours)]
    assert rules[0] == rules[1] and "c 10:200 rwm" in rules[1]


def test_seccomp_fields(spec_bundle: Path, tmp_path: Path) -> None:
    """linux.seccomp: defaultAction with defaultErrnoRet, architectures, a rule's errnoRet,
    and a rule on an argument's value, as runc loads them."""

    def change(c: dict[str, Any]) -> None:
        c["linux"]["seccomp"] = {
            "defaultAction": "SCMP_ACT_ALLOW",
            "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_AARCH64"],
            "syscalls": [
                {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 28},
                # umask(0o077) refused, any other umask allowed
                {
                    "names": ["umask"],
                    "action": "SCMP_ACT_ERRNO",
                    "errnoRet": 1,
                    "args": [{"index": 0, "value": 0o077, "op": "SCMP_CMP_EQ"}],
                },
                {"names": ["rmdir"], "action": "SCMP_ACT_KILL"},
            ],
        }
        c["process"]["args"] = [
            "sh",
            "-c",
            "mkdir /tmp/x 2>&1 | cut -d: -f3-; umask 077; "
            "umask; umask 027; umask; (rmdir /tmp); echo rmdir $?",
        ]

    _edit(spec_bundle, change)
    theirs, ours = _both(spec_bundle, tmp_path)
    assert ours.create.returncode == 0, ours.create.stderr
    assert ours.output == theirs.output
    assert "No space left on device" in ours.output and "rmdir 159" in ours.output


@pytest.mark.parametrize("how", ["kill --all", "delete -f"])
def test_a_container_without_its_own_pid_namespace(
    how: str, spec_bundle: Path, tmp_path: Path
) -> None:
    """Its processes outlive its init: `kill --all` signals every one in its cgroup, and
    `delete -f` kills what is left before it removes the cgroup, as runc does."""
    _edit(
        spec_bundle,
        lambda c: (
            c["linux"].update(
                namespaces=[n for n in c["linux"]["namespaces"] if n["type"] != "pid"]
            ),
            c["process"].update(args=["sh", "-c", "sleep 61 & sleep 62 & exec sleep 63"]),
        ),
    )
    cg = json.loads((spec_bundle / "config.json").read_text())["linux"]["cgroupsPath"]
    left = []
    for rt in ("runc", RT):
        root = tmp_path / f"root-{Path(rt).name}"
        assert _rt(rt, root, "create", "-b", str(spec_bundle), "p").returncode == 0
        assert _rt(rt, root, "start", "p").returncode == 0
        time.sleep(0.3)
        procs = [d / "cgroup.procs" for d in _cgroup_dirs(cg, "/sys/fs/cgroup/pids")]
        assert procs and len(procs[0].read_text().split()) == 3
        if how == "kill --all":
            assert _rt(rt, root, "kill", "--all", "p", "KILL").returncode == 0
            deadline = time.monotonic() + 5
            while procs[0].read_text().split() and time.monotonic() < deadline:
                time.sleep(0.05)
            left.append(procs[0].read_text().split())
            assert _rt(rt, root, "delete", "p").returncode == 0
        else:
            assert _rt(rt, root, "delete", "-f", "p").returncode == 0
            left.append([str(p) for p in _cgroup_dirs(cg, "/sys/fs/cgroup/pids")])
    assert left == [[], []]


def test_run_without_its_own_pid_namespace(spec_bundle: Path, tmp_path: Path) -> None:
    """`run` of such a container leaves none of its processes, and no cgroup, when the init
    exits."""
    _edit(
        spec_bundle,
        lambda c: (
            c["linux"].update(
                namespaces=[n for n in c["linux"]["namespaces"] if n["type"] != "pid"]
            ),
            c["process"].update(args=["sh", "-c", "sleep 64 & echo started"]),
        ),
    )
    cg = json.loads((spec_bundle / "config.json").read_text())["linux"]["cgroupsPath"]
    r = _rt(RT, tmp_path / "root", "run", "-b", str(spec_bundle), "rp")
    assert r.returncode == 0, r.stderr
    assert not _cgroup_dirs(cg, "/sys/fs/cgroup/pids")
