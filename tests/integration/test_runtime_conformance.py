"""berth-runtime against runc on the same bundle (runc's own default `config.json`): what the
process inside sees must be the same; every difference is fixed or written down here with its
reason."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from .conftest import console_socket, remove_cgroups_named

pytestmark = pytest.mark.root
RT = str(Path(sys.executable).parent / "berth-runtime")

# what the process prints; host-specific values (dates, sizes, the rootfs source) are cut
SCRIPT = r"""
grep -E '^(CapInh|CapPrm|CapEff|CapBnd|CapAmb|NoNewPrivs|Seccomp):' /proc/self/status
echo --- mounts; grep -v ' / ' /proc/self/mounts | sed 's/,size=[0-9]*k//' | sort
echo --- dev; ls -l /dev | cut -c1-10,35- | sed 's/  */ /g' | sed 's/ [A-Z][a-z][a-z] [0-9 ]*[0-9][0-9]:[0-9][0-9]//'
echo --- ids; hostname; id
echo --- limits; ulimit -a
echo --- cgroup; cat /proc/self/cgroup; ls /sys/fs/cgroup
echo --- namespaces
for ns in cgroup ipc mnt net pid uts; do
  eval host=\$HOST_$ns
  [ "$(readlink /proc/self/ns/$ns)" = "$host" ] && echo "$ns: host's" || echo "$ns: own"
done
echo --- devices; for d in null zero full random urandom tty; do [ -c /dev/$d ] && echo $d; done
cat /dev/kmsg 2>&1 | head -1 | cut -c1-40
echo --- writes
(touch /x) 2>&1 | cut -d: -f3-
(echo 1 > /proc/sys/kernel/domainname) 2>&1 | cut -d: -f3-
echo --- syscalls; unshare -U true 2>&1; echo "unshare user: $?"
"""

# differences kept on purpose, with their reasons
DELIBERATE: dict[str, str] = {}


@pytest.fixture(params=["no seccomp", "seccomp"])
def bundle(request: pytest.FixtureRequest, tmp_path: Path, rootfs_tar: Path) -> Path:
    if not shutil.which("runc"):
        pytest.skip("runc is not installed (apt-get install runc)")
    b = tmp_path / "bundle"
    (b / "rootfs").mkdir(parents=True)
    with tarfile.open(rootfs_tar) as tf:
        tf.extractall(b / "rootfs", filter="fully_trusted")
    subprocess.run(["runc", "spec"], cwd=b, check=True)
    cfg = json.loads((b / "config.json").read_text())
    cfg["process"]["terminal"] = False
    cfg["process"]["args"] = ["sh", "-c", SCRIPT]
    cfg["process"]["env"].extend(
        f"HOST_{ns}={os.readlink(f'/proc/self/ns/{ns}')}"
        for ns in ("cgroup", "ipc", "mnt", "net", "pid", "uts")
    )
    cfg["linux"]["cgroupsPath"] = f"berth-conf-{secrets.token_hex(3)}/c"
    if request.param == "seccomp":
        # berth's default filter for these capabilities, loaded by each runtime
        from berth.containers.seccomp import default_profile

        cfg["linux"]["seccomp"] = default_profile(set(cfg["process"]["capabilities"]["bounding"]))
    (b / "config.json").write_text(json.dumps(cfg))
    return b


def _run(argv: list[str], tmp: Path) -> str:
    with open(tmp / "out", "w+") as out:
        r = subprocess.run(
            argv, stdout=out, stderr=subprocess.STDOUT, timeout=60, stdin=subprocess.DEVNULL
        )
        out.seek(0)
        text = out.read()
    assert r.returncode == 0, text
    return text


def test_same_bundle_same_view(bundle: Path, tmp_path: Path) -> None:
    cg = json.loads((bundle / "config.json").read_text())["linux"]["cgroupsPath"]
    try:
        theirs = _run(
            ["runc", "--root", str(tmp_path / "runc"), "run", "-b", str(bundle), "c-runc"], tmp_path
        )
        ours = _run(
            [RT, "--root", str(tmp_path / "berth"), "run", "-b", str(bundle), "c-berth"], tmp_path
        )
    finally:
        remove_cgroups_named(cg.split("/")[0])
    assert ours.splitlines() == theirs.splitlines()
    filtered = "seccomp" in json.loads((bundle / "config.json").read_text())["linux"]
    assert ("Seccomp:\t2" in ours) is filtered
    assert ("unshare user: 0" in ours) is not filtered


EXEC_SCRIPT = (
    "id; pwd; grep -E '^(CapEff|CapBnd|NoNewPrivs|Seccomp):' /proc/self/status; "
    "ps -o pid,comm | grep -c sleep; echo $FROM_EXEC"
)


@pytest.mark.parametrize("bundle", ["seccomp"], indirect=True)
def test_exec_sees_what_runc_exec_sees(bundle: Path, tmp_path: Path) -> None:
    cfg = json.loads((bundle / "config.json").read_text())
    cfg["process"]["args"] = ["sleep", "60"]
    (bundle / "config.json").write_text(json.dumps(cfg))
    outs = []
    try:
        for rt in ("runc", RT):
            root = str(tmp_path / f"root-{Path(rt).name}")
            subprocess.run(
                [rt, "--root", root, "create", "-b", str(bundle), "c"],
                check=True,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                timeout=30,
            )
            try:
                subprocess.run([rt, "--root", root, "start", "c"], check=True, timeout=30)
                outs.append(
                    _run(
                        [
                            rt,
                            "--root",
                            root,
                            "exec",
                            "--cwd",
                            "/tmp",
                            "-e",
                            "FROM_EXEC=yes",
                            "c",
                            "sh",
                            "-c",
                            EXEC_SCRIPT,
                        ],
                        tmp_path,
                    )
                )
                r = subprocess.run(
                    [rt, "--root", root, "exec", "c", "sh", "-c", "exit 7"], timeout=30
                )
                assert r.returncode == 7
            finally:
                subprocess.run([rt, "--root", root, "delete", "-f", "c"], timeout=30)
    finally:
        remove_cgroups_named(cfg["linux"]["cgroupsPath"].split("/")[0])
    theirs, ours = outs
    assert ours == theirs
    assert "Seccomp:\t2" in ours and "/tmp" in ours and "yes" in ours


@pytest.mark.parametrize("bundle", ["no seccomp"], indirect=True)
def test_console_socket(bundle: Path, tmp_path: Path) -> None:
    cfg = json.loads((bundle / "config.json").read_text())
    cfg["process"]["terminal"] = True
    cfg["process"]["args"] = ["sh", "-c", "tty; echo on-the-pty"]
    (bundle / "config.json").write_text(json.dumps(cfg))
    outs = []
    try:
        for rt in ("runc", RT):
            path = str(tmp_path / f"console-{Path(rt).name}.sock")
            root = str(tmp_path / f"croot-{Path(rt).name}")
            with console_socket(path) as got:
                # as containerd does: create with the socket, start, wait, delete
                r = subprocess.run(
                    [
                        rt,
                        "--root",
                        root,
                        "create",
                        "--console-socket",
                        path,
                        "-b",
                        str(bundle),
                        "c",
                    ],
                    timeout=30,
                    capture_output=True,
                )
                assert r.returncode == 0, r.stderr
                subprocess.run([rt, "--root", root, "start", "c"], check=True, timeout=30)
            subprocess.run([rt, "--root", root, "delete", "-f", "c"], timeout=30)
            outs.append(got[0].decode().replace("\r", ""))
    finally:
        remove_cgroups_named(cfg["linux"]["cgroupsPath"].split("/")[0])
    theirs, ours = outs
    assert ours == theirs and "on-the-pty" in ours and "/dev/pts/" in ours
