"""`berth-runtime`, the runc-compatible command, on a bundle of its own."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest

from .conftest import console_socket, remove_cgroups_named

pytestmark = pytest.mark.root
RT = str(Path(sys.executable).parent / "berth-runtime")


def _rt(root: Path, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    # stdio through files: the container inherits it (as with runc), and a pipe would stay
    # open as long as the container runs
    with open(root.parent / "rt.out", "w+") as out, open(root.parent / "rt.err", "w+") as err:
        r = subprocess.run(
            [RT, "--root", str(root), *args], stdout=out, stderr=err, text=True, cwd=cwd, timeout=30
        )
        out.seek(0)
        err.seek(0)
        return subprocess.CompletedProcess(r.args, r.returncode, out.read(), err.read())


@pytest.fixture
def bundle(tmp_path: Path, rootfs_tar: Path) -> Path:
    b = tmp_path / "bundle"
    (b / "rootfs").mkdir(parents=True)
    with tarfile.open(rootfs_tar) as tf:
        tf.extractall(b / "rootfs", filter="fully_trusted")
    return b


def _set_args(bundle: Path, args: list[str], cgroup: str = "") -> None:
    cfg = json.loads((bundle / "config.json").read_text())
    cfg["process"]["args"] = args
    if cgroup:
        cfg["linux"]["cgroupsPath"] = cgroup
        cfg["linux"]["resources"] = {"pids": {"limit": 10}}
    (bundle / "config.json").write_text(json.dumps(cfg))


def test_spec_and_run(bundle: Path, tmp_path: Path) -> None:
    root = tmp_path / "state"
    assert _rt(root, "spec", cwd=bundle).returncode == 0
    assert _rt(root, "spec", cwd=bundle).returncode == 1  # refuses to overwrite
    _set_args(bundle, ["sh", "-c", "echo $$ $(hostname); exit 7"])
    r = _rt(root, "run", "-b", str(bundle), "c1")
    assert r.returncode == 7 and r.stdout == "1 berth\n"
    assert _rt(root, "list").stdout.count("\n") == 1  # the header only: deleted after run


def test_create_start_state_kill_delete(bundle: Path, tmp_path: Path) -> None:
    root = tmp_path / "state"
    _rt(root, "spec", "-b", str(bundle))
    top = f"berth-rt-test-{os.getpid()}-{time.time_ns() % 10**6}"
    cg = f"{top}/c2"
    try:
        _set_args(bundle, ["sleep", "30"], cg)
        assert _rt(root, "create", "-b", str(bundle), "c2").returncode == 0
        assert json.loads(_rt(root, "state", "c2").stdout)["status"] == "created"
        assert _rt(root, "create", "-b", str(bundle), "c2").returncode == 1
        assert _rt(root, "start", "c2").returncode == 0
        st = json.loads(_rt(root, "state", "c2").stdout)
        assert st["status"] == "running" and st["pid"] > 0
        assert _rt(root, "delete", "c2").returncode == 1  # running: needs --force
        assert _rt(root, "kill", "c2", "KILL").returncode == 0
        # the init was re-parented to init(1) here: reaped at once, so `stopped` soon
        deadline = time.time() + 5
        while json.loads(_rt(root, "state", "c2").stdout)["status"] != "stopped":
            assert time.time() < deadline
            time.sleep(0.05)
        assert _rt(root, "delete", "c2").returncode == 0
        assert _rt(root, "state", "c2").returncode == 1
        # relative: under this process's own cgroup in each hierarchy, wherever that is
        # (os.walk: other tests' cgroups come and go meanwhile, which Path.rglob raises on)
        left = [Path(d) for d, _, _ in os.walk("/sys/fs/cgroup") if d.endswith("/" + top)]
        assert left and not any((p / "c2").exists() for p in left)
    finally:
        remove_cgroups_named(top)  # also when an assertion failed


@pytest.mark.parametrize("command", ["create", "run"])
def test_missing_command_fails_create(command: str, bundle: Path, tmp_path: Path) -> None:
    """As runc: `create` fails (and `run` with it, whose init runs unsealed) before `start`."""
    root = tmp_path / "state"
    _rt(root, "spec", "-b", str(bundle))
    _set_args(bundle, ["no-such-command"])
    r = _rt(root, command, "-b", str(bundle), "c3")
    assert r.returncode == 127 and "executable file not found in $PATH" in r.stderr
    assert not (root / "c3").exists()


def test_run_never_hands_the_host_interpreter_to_the_image(bundle: Path, tmp_path: Path) -> None:
    """CVE-2019-5736 under `run`, which sets the container up from the host's interpreter (no
    sealed copy): the image's program is a script whose interpreter is /proc/self/exe. Exec'd
    from the init, that would be the host's Python: in an image with its libraries it would
    run the script, create /marker and open its own executable for writing; in this busybox
    one it fails to load (127). Exec'd through the sealed trampoline, it finds the
    trampoline, which runs out of arguments and exits 126."""
    root = tmp_path / "state"
    _rt(root, "spec", "-b", str(bundle))
    evil = bundle / "rootfs" / "evil"
    evil.write_text(
        "#!/proc/self/exe\nopen('/marker', 'w').write('x')\nopen('/proc/self/exe', 'r+b')\n"
    )
    evil.chmod(0o755)
    _set_args(bundle, ["/evil", "one", "two"])
    r = _rt(root, "run", "-b", str(bundle), "c5")
    assert r.returncode == 126, (r.stdout, r.stderr)
    assert not (bundle / "rootfs" / "marker").exists()
    assert not (root / "c5").exists()


def test_run_under_a_filter_that_refuses_execveat(bundle: Path, tmp_path: Path) -> None:
    """The trampoline is exec'd by descriptor (execveat); a seccomp profile that refuses
    execveat but allows execve still runs the program, through the container's /proc."""
    root = tmp_path / "state"
    _rt(root, "spec", "-b", str(bundle))
    _set_args(bundle, ["sh", "-c", "echo ran"])
    cfg = json.loads((bundle / "config.json").read_text())
    cfg["linux"]["seccomp"] = {
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["execveat"], "action": "SCMP_ACT_ERRNO"}],
    }
    (bundle / "config.json").write_text(json.dumps(cfg))
    r = _rt(root, "run", "-b", str(bundle), "c6")
    assert r.returncode == 0 and r.stdout == "ran\n", (r.stdout, r.stderr)


def test_run_with_a_console_socket(bundle: Path, tmp_path: Path) -> None:
    """`run` (set up from the host's interpreter) sends the pty's master over the socket, as
    `create` does: what the init needs for it after pivot_root was imported before."""
    root = tmp_path / "state"
    _rt(root, "spec", "-b", str(bundle))
    cfg = json.loads((bundle / "config.json").read_text())
    cfg["process"]["terminal"] = True
    cfg["process"]["args"] = ["sh", "-c", "tty; echo on-the-pty; exit 3"]
    (bundle / "config.json").write_text(json.dumps(cfg))
    path = str(tmp_path / "console.sock")
    with console_socket(path) as got:
        r = _rt(root, "run", "--console-socket", path, "-b", str(bundle), "c7")
    assert r.returncode == 3, r.stderr
    assert got and got[0].split() == [b"/dev/pts/0", b"on-the-pty"]


@pytest.mark.parametrize("pid_ns", ["new", "host"])
def test_run_of_a_program_that_cannot_exec(pid_ns: str, bundle: Path, tmp_path: Path) -> None:
    """A program found at create but refused by execve (ENOEXEC) exits 126. From a sealed copy
    (the host's pid namespace), where the init execs it itself, `run` also says why."""
    root = tmp_path / "state"
    _rt(root, "spec", "-b", str(bundle))
    bad = bundle / "rootfs" / "bad"
    bad.write_bytes(b"\x00\x01 not a program\n")
    bad.chmod(0o755)
    _set_args(bundle, ["/bad"])
    if pid_ns == "host":
        cfg = json.loads((bundle / "config.json").read_text())
        cfg["linux"]["namespaces"] = [n for n in cfg["linux"]["namespaces"] if n["type"] != "pid"]
        (bundle / "config.json").write_text(json.dumps(cfg))
    r = _rt(root, "run", "-b", str(bundle), "c8")
    assert r.returncode == 126, (r.stdout, r.stderr)
    if pid_ns == "host":
        assert "exec format error" in r.stderr
    assert not (root / "c8").exists()
