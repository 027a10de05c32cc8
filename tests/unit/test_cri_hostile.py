"""The CRI against hostile input that needs no daemon: an image's config values that reach
kubelets' messages, a CNI plug-in's output, a log directory a pod can write in, ExecSync's
output. Each test aims at what would break (a node-wide RPC, the daemon's memory, a host
path)."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from berth.cri import cni
from berth.cri.containers import PROFILE_LOCALHOST, SECCOMP_PROFILE_MAX, Spec, create_body
from berth.cri.images import ImageHandlers, _user
from berth.cri.logs import CriLog
from berth.cri.sandboxes import Sandbox
from berth.errors import InvalidArgument, System
from tests.unit.test_volfiles_hostile import OpenWatch


class _Images:
    def __init__(self, user: Any) -> None:
        self.user = user

    def get(self, _id: str) -> Any:
        return SimpleNamespace(container_config={"User": self.user})


@pytest.mark.parametrize(
    ("user", "uid", "name"),
    [
        ("1000", 1000, ""),
        ("0:0", 0, ""),
        ("4294967295", 4294967295, ""),
        ("4294967296", None, "4294967296"),  # past a uid: a name, which kubelets do not trust
        ("99999999999999999999999", None, "99999999999999999999999"),
        ("²", None, "²"),  # str.isdigit() says yes, int() says no
        ("١٠٠٠", None, "١٠٠٠"),  # Arabic-Indic digits: int() takes them, a kernel does not
        ("-1", None, "-1"),
        ("\ud800", None, "?"),  # not UTF-8: protobuf refuses the string
        ("x" * 100_000, None, "x" * 256),
    ],
)
def test_an_image_user_never_breaks_the_image_messages(user: str, uid: Any, name: str) -> None:
    assert _user({"User": user}) == (uid, name)
    h = ImageHandlers(_Images(user), None, "")  # type: ignore[arg-type]
    msg = h._message("sha256:" + "a" * 64, [], [], 1)
    msg.SerializeToString()
    assert (msg.uid.value if msg.HasField("uid") else None) == uid
    assert msg.username == name


# --- a CNI plug-in's output ---------------------------------------------------------------------
def _plugin(tmp_path: Path, body: str, name: str = "evil") -> cni.Cni:
    """A network of one plug-in whose program is `body` (Python, after `import ...`)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    p = bin_dir / name
    p.write_text(f"#!{sys.executable}\nimport json, os, subprocess, sys, time\n{body}\n")
    p.chmod(0o755)
    conf = tmp_path / "net.d"
    conf.mkdir(exist_ok=True)
    (conf / "10.conflist").write_text(
        json.dumps({"cniVersion": "1.0.0", "name": "net", "plugins": [{"type": name}]})
    )
    return cni.Cni(str(conf), [str(bin_dir)], str(tmp_path / "cache"))


def _gone(pid: int) -> bool:
    """The process has ended (a zombie of an init that reaps it later counts)."""
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{pid}/stat") as f:
                if f.read().rsplit(")", 1)[1].split()[0] in ("Z", "X"):
                    return True
        except FileNotFoundError:
            return True
        time.sleep(0.02)
    return False


ATT = cni.Attachment(container_id="a" * 64, netns="/proc/1/ns/net")
PIDS = 'open(os.environ.get("PIDS", "/dev/null"), "a").write(f"{os.getpid()}\\n")'


def test_a_plugin_that_floods_stdout_is_cut_off(tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    c = _plugin(
        tmp_path,
        f'os.environ["PIDS"] = {str(pids)!r}\n{PIDS}\n'
        'while True:\n    sys.stdout.buffer.write(b"[" * 65536)',
    )
    start = time.monotonic()
    with pytest.raises(System, match="printed more than"):
        c.add(ATT)
    assert time.monotonic() - start < 10
    assert all(_gone(int(p)) for p in pids.read_text().split())
    assert not (tmp_path / "cache").exists()


def test_a_plugin_that_hangs_is_killed_with_what_it_started(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A plug-in that leaves a child holding its stdout: both go at the timeout."""
    monkeypatch.setattr(cni, "PLUGIN_TIMEOUT", 1.0)
    pids = tmp_path / "pids"
    c = _plugin(
        tmp_path,
        f'p = subprocess.Popen(["sleep", "1000"])\n'
        f'open({str(pids)!r}, "a").write(f"{{os.getpid()}}\\n{{p.pid}}\\n")\n'
        "time.sleep(1000)",
    )
    start = time.monotonic()
    with pytest.raises(subprocess.TimeoutExpired):
        c.add(ATT)
    assert time.monotonic() - start < 10  # ADD's timeout, and DEL's after it
    got = [int(p) for p in pids.read_text().split()]
    assert len(got) == 4 and all(_gone(p) for p in got)  # ADD's two, DEL's two


def test_a_failing_plugin_s_message_is_bounded(tmp_path: Path) -> None:
    c = _plugin(
        tmp_path,
        'sys.stderr.write("e" * (8 << 20))\n'
        'print(json.dumps({"code": "not a number", "msg": 12345678901234567890 * 10**20}))\n'
        "sys.exit(3)",
    )
    with pytest.raises(cni.CniError) as e:
        c.add(ATT)
    assert e.value.code == 3 and len(str(e.value)) < 2 * cni.MESSAGE_MAX
    c = _plugin(tmp_path, 'sys.stderr.write("e" * (8 << 20))\nsys.exit(1)', "noisy")
    with pytest.raises(cni.CniError) as e:
        c.add(ATT)
    assert len(str(e.value)) < 2 * cni.MESSAGE_MAX


def test_a_deeply_nested_result_is_an_error(tmp_path: Path) -> None:
    c = _plugin(tmp_path, 'print("[" * 200000)')
    with pytest.raises(System, match="no JSON result"):
        c.add(ATT)


GOOD_IP = {"address": "10.201.0.5/24", "interface": 0}
IFACE = {"name": "eth0", "sandbox": "/proc/1/ns/net"}


@pytest.mark.parametrize(
    "result",
    [
        {"ips": [{"address": "127.0.0.1/8"}]},  # port forwarding would reach the host's lo
        {"ips": [{"address": "::1/128"}]},
        {"ips": [{"address": "0.0.0.0/0"}]},
        {"ips": [{"address": "224.0.0.1/4"}]},
        {"ips": [{"address": "10.0.0.300/24"}]},
        {"ips": [{"address": "10.0.0.3"}]},  # no prefix
        {"ips": [{"address": "10.0.0.3/24; rm -rf /"}]},
        {"ips": [{"address": "10.0.0.3/24", "gateway": "not an address"}]},
        {"ips": [GOOD_IP] * (cni.RESULT_ITEMS_MAX + 1)},
        {"interfaces": [IFACE] * (cni.RESULT_ITEMS_MAX + 1), "ips": [GOOD_IP]},
        {"ips": {"address": "10.0.0.3/24"}},
        {"interfaces": "eth0", "ips": [GOOD_IP]},
    ],
)
def test_a_bogus_result_is_refused_and_undone(tmp_path: Path, result: dict[str, Any]) -> None:
    calls = tmp_path / "calls"
    c = _plugin(
        tmp_path,
        f'open({str(calls)!r}, "a").write(os.environ["CNI_COMMAND"] + "\\n")\n'
        'if os.environ["CNI_COMMAND"] == "ADD":\n'
        f"    print(json.dumps({{'cniVersion': '1.0.0', **{result!r}}}))",
    )
    with pytest.raises(System, match="CNI result"):
        c.add(ATT)
    assert calls.read_text().split() == ["ADD", "DEL"]  # what the plug-in did is undone
    assert not (tmp_path / "cache").exists()


def test_a_result_s_strings_and_indexes_are_bounded() -> None:
    r = cni.parse_result(
        {
            "cniVersion": "1.0.0" + "x" * 1000,
            "interfaces": [{"name": "n" * 1000, "mac": "m" * 1000, "sandbox": 7}, "junk"],
            "ips": [
                {"address": "10.201.0.5/24", "interface": True},
                {"address": "fd00::5/64", "interface": 99, "gateway": "fd00::1"},
                {"address": 17},
            ],
        }
    )
    assert len(r.cni_version) == 32 and r.interfaces[0].name == "n" * 15
    assert len(r.interfaces) == 1 and r.interfaces[0].mac == "m" * 64
    assert [(i.address, i.interface) for i in r.ips] == [
        ("10.201.0.5/24", None),
        ("fd00::5/64", None),
    ]
    assert r.sandbox_ips() == ["10.201.0.5", "fd00::5"]


# --- the CRI log file, in a directory a pod may write in ---------------------------------------
@pytest.fixture
def logdir(tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    """A pod's log directory, and a host directory the pod aims at (untouched at the end)."""
    root = tmp_path / "pods" / "ns_pod_uid"
    root.mkdir(parents=True)
    host = tmp_path / "host"
    host.mkdir()
    (host / "passwd").write_text("root:x:0:0\n")
    yield root, host
    assert sorted(p.name for p in host.iterdir()) == ["passwd"]
    assert (host / "passwd").read_text() == "root:x:0:0\n"


def _write(root: Path, rel: str) -> None:
    log = CriLog(str(root / rel), str(root))
    try:
        log.write(b"line\n")
    finally:
        log.close()


def test_the_log_is_made_and_appended(logdir: tuple[Path, Path]) -> None:
    root, _ = logdir
    _write(root, "c/0.log")
    _write(root, "c/0.log")
    assert (root / "c" / "0.log").read_bytes() == b"line\nline\n"
    assert stat.S_IMODE((root / "c" / "0.log").stat().st_mode) == 0o640


def test_symlinks_in_the_log_directory_stay_inside(logdir: tuple[Path, Path]) -> None:
    root, host = logdir
    (root / "c").symlink_to(host)  # the container's directory: the host's
    (root / "d").mkdir()
    (root / "d" / "0.log").symlink_to(host / "passwd")  # the file: a host file
    (root / "e").symlink_to("../../host")
    _write(root, "c/0.log")  # made inside the pod's directory, where the link leads there
    assert (root / str(host).lstrip("/") / "0.log").read_bytes() == b"line\n"
    _write(root, "e/0.log")
    with pytest.raises(InvalidArgument):
        _write(root, "d/0.log")
    for bad in ("../host/x.log", "/etc/x.log", ""):
        with pytest.raises(InvalidArgument):
            CriLog(bad if bad.startswith("/") else str(root / bad), str(root))


def test_a_fifo_or_hard_link_is_no_log(logdir: tuple[Path, Path]) -> None:
    root, host = logdir
    os.mkfifo(root / "fifo.log")  # a writer's open would wait for a reader for ever
    os.link(host / "passwd", root / "linked.log")
    for name in ("fifo.log", "linked.log"):
        with pytest.raises(InvalidArgument, match="regular file"):
            _write(root, name)


@pytest.mark.skipif(os.geteuid() != 0, reason="mknod needs root")
def test_a_device_in_the_log_directory_is_never_opened(logdir: tuple[Path, Path]) -> None:
    root, _ = logdir
    dev = root / "0.log"
    os.mknod(dev, stat.S_IFCHR | 0o600, os.makedev(1, 3))
    watch = OpenWatch(dev)
    try:
        with pytest.raises(InvalidArgument, match="regular file"):
            _write(root, "0.log")
        assert not watch.opened()
    finally:
        watch.close()


# --- mounts -------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("host", "target"),
    [
        ("vol", "/c"),  # would be a named volume, shared by every pod naming it
        ("", "/c"),  # an anonymous volume
        ("/h", "c"),
        ("/a:/etc", "/c"),  # a ':' read as the bind string's next field
        ("/a", "/c:ro"),
        ("/a\x00b", "/c"),
    ],
)
def test_a_mount_is_an_absolute_host_path(host: str, target: str) -> None:
    sb = Sandbox(id="s" * 64, name="w", uid="u", namespace="n", pid=42)
    with pytest.raises(InvalidArgument):
        create_body(Spec(name="a", image="b", mounts=[(host, target, False, 0)]), sb)
    assert create_body(Spec(name="a", image="b", mounts=[("/h", "/c", False, 0)]), sb)


def test_a_seccomp_profile_is_a_regular_file(tmp_path: Path) -> None:
    """A FIFO in its place would block the daemon's event loop: refused at once."""
    sb = Sandbox(id="s" * 64, name="w", uid="u", namespace="n", pid=42)
    fifo = tmp_path / "profile.json"
    os.mkfifo(fifo)
    spec = Spec(name="a", image="b", seccomp=(PROFILE_LOCALHOST, str(fifo)))
    start = time.monotonic()
    with pytest.raises(InvalidArgument, match="regular file"):
        create_body(spec, sb)
    assert time.monotonic() - start < 5
    big = tmp_path / "big.json"
    big.write_bytes(b" " * (SECCOMP_PROFILE_MAX + 1))
    with pytest.raises(InvalidArgument, match="larger"):
        create_body(Spec(name="a", image="b", seccomp=(PROFILE_LOCALHOST, str(big))), sb)


def test_an_image_s_volumes_are_bounded() -> None:
    """A config of megabytes could name half a million VOLUMEs: each a volume made and filled
    at every create (and at every attempt of a crash-looping pod)."""
    from berth.containers.hostconfig import HostConfig
    from berth.containers.mounts import MAX_IMAGE_VOLUMES, Mounts

    m = Mounts(None, None)  # type: ignore[arg-type]
    many = [f"/v{i}" for i in range(MAX_IMAGE_VOLUMES + 1)]
    with pytest.raises(InvalidArgument, match="volumes"):
        m.specs(None, HostConfig(), many)
    assert len(m.specs(None, HostConfig(), many[:-1])) == MAX_IMAGE_VOLUMES
