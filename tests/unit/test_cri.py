"""berth.cri's parts that need no root: the CNI calling convention against fake plug-ins, the
CRI log format, the create body a CRI container becomes, the generated messages."""

from __future__ import annotations

import ast
import json
import stat
import sys
from pathlib import Path

import pytest

from berth.cri import cni
from berth.cri.containers import Spec, create_body, time_ns
from berth.cri.logs import format_lines
from berth.cri.sandboxes import DnsConfig, Sandbox
from berth.errors import InvalidArgument, NotFound

# a plug-in that records what it was given and answers with a result naming itself
FAKE = """#!{python}
import json, os, sys
conf = json.load(sys.stdin)
with open({log!r}, "a") as f:
    f.write(json.dumps({{"env": {{k: v for k, v in os.environ.items() if k.startswith("CNI_")}},
                        "conf": conf}}) + "\\n")
if conf.get("fail") and os.environ["CNI_COMMAND"] == "ADD":
    print(json.dumps({{"cniVersion": "1.0.0", "code": 7, "msg": "no way", "details": "x"}}))
    sys.exit(1)
if os.environ["CNI_COMMAND"] == "ADD":
    prev = conf.get("prevResult") or {{"cniVersion": "1.0.0", "interfaces": [], "ips": []}}
    prev["interfaces"].append({{"name": conf["type"], "sandbox": os.environ["CNI_NETNS"]}})
    prev["ips"].append({{"address": conf["addr"], "interface": len(prev["interfaces"]) - 1}})
    print(json.dumps(prev))
"""


@pytest.fixture
def plugins(tmp_path: Path) -> tuple[Path, Path]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "calls.jsonl"
    for name in ("one", "two"):
        p = bin_dir / name
        p.write_text(FAKE.format(python=sys.executable, log=str(log)))
        p.chmod(p.stat().st_mode | stat.S_IXUSR)
    return bin_dir, log


def _calls(log: Path) -> list[dict]:  # type: ignore[type-arg]
    return [json.loads(line) for line in log.read_text().splitlines()]


def _conf(tmp_path: Path, plugins: list[dict]) -> Path:  # type: ignore[type-arg]
    d = tmp_path / "net.d"
    d.mkdir(exist_ok=True)
    (d / "20-b.conflist").write_text(
        json.dumps({"cniVersion": "1.0.0", "name": "late", "plugins": [{"type": "one"}]})
    )
    (d / "10-a.conflist").write_text(
        json.dumps({"cniVersion": "1.0.0", "name": "net", "plugins": plugins})
    )
    (d / "05-bad.conflist").write_text("{not json")
    return d


def test_chain_add_check_del(tmp_path: Path, plugins: tuple[Path, Path]) -> None:
    bin_dir, log = plugins
    conf = _conf(
        tmp_path,
        [
            {"type": "one", "addr": "10.0.0.2/24"},
            {"type": "two", "addr": "10.0.0.3/24", "capabilities": {"portMappings": True}},
        ],
    )
    c = cni.Cni(str(conf), [str(tmp_path / "nowhere"), str(bin_dir)], str(tmp_path / "cache"))
    assert c.network().name == "net"  # the first valid file in name order
    att = cni.Attachment(
        container_id="abc",
        netns="/proc/1/ns/net",
        args=(("K8S_POD_NAME", "p"),),
        runtime_config={"portMappings": [{"hostPort": 80}], "other": 1},
    )
    res = c.add(att)
    assert res.sandbox_ips() == ["10.0.0.2", "10.0.0.3"]
    calls = _calls(log)
    assert [x["env"]["CNI_COMMAND"] for x in calls] == ["ADD", "ADD"]
    assert calls[0]["env"]["CNI_ARGS"] == "K8S_POD_NAME=p"
    assert calls[0]["env"]["CNI_IFNAME"] == "eth0"
    assert "prevResult" not in calls[0]["conf"] and "runtimeConfig" not in calls[0]["conf"]
    # the second is handed the first's result, and only the capabilities it declares
    assert calls[1]["conf"]["prevResult"]["interfaces"] == [
        {"name": "one", "sandbox": "/proc/1/ns/net"}
    ]
    assert calls[1]["conf"]["runtimeConfig"] == {"portMappings": [{"hostPort": 80}]}
    assert calls[1]["conf"]["name"] == "net" and calls[1]["conf"]["cniVersion"] == "1.0.0"
    log.unlink()
    c.check(att)
    # DEL uses the list as it was at ADD, even with the conf dir emptied since
    for f in conf.iterdir():
        f.unlink()
    c.delete(att)
    calls = _calls(log)
    assert [(x["env"]["CNI_COMMAND"], x["conf"]["type"]) for x in calls] == [
        ("CHECK", "one"),
        ("CHECK", "two"),
        ("DEL", "two"),
        ("DEL", "one"),
    ]
    # DEL and CHECK get the cached ADD result
    assert all(len(x["conf"]["prevResult"]["ips"]) == 2 for x in calls)
    assert not list((tmp_path / "cache").iterdir())
    with pytest.raises(NotFound):
        c.check(att)


def test_failed_add_is_undone(tmp_path: Path, plugins: tuple[Path, Path]) -> None:
    bin_dir, log = plugins
    conf = _conf(
        tmp_path,
        [{"type": "one", "addr": "10.0.0.2/24"}, {"type": "two", "addr": "x", "fail": True}],
    )
    c = cni.Cni(str(conf), [str(bin_dir)], str(tmp_path / "cache"))
    with pytest.raises(cni.CniError, match="code 7.*no way"):
        c.add(cni.Attachment(container_id="abc", netns="/x"))
    assert [(x["env"]["CNI_COMMAND"], x["conf"]["type"]) for x in _calls(log)] == [
        ("ADD", "one"),
        ("ADD", "two"),
        ("DEL", "two"),
        ("DEL", "one"),
    ]


def test_config_parsing(tmp_path: Path) -> None:
    single = cni.parse_config(
        b'{"cniVersion": "0.4.0", "name": "n", "type": "bridge", "bridge": "b0"}'
    )
    assert single.plugins == ({"type": "bridge", "bridge": "b0"},)
    for bad in (
        b'{"name": "n", "plugins": []}',
        b'{"name": "../x", "type": "b"}',
        b'{"name": "n", "plugins": [{"type": "../../bin/sh"}]}',
        b"[]",
    ):
        with pytest.raises(InvalidArgument):
            cni.parse_config(bad)
    with pytest.raises(NotFound):
        cni.load_conf_dir(str(tmp_path))
    r = cni.parse_result(
        {
            "cniVersion": "1.0.0",
            "interfaces": [{"name": "br"}, {"name": "eth0", "sandbox": "/n"}],
            "ips": [
                {"address": "10.1.0.5/16", "interface": 1},
                {"address": "10.9.0.1/16", "interface": 0},
            ],
        }
    )
    assert r.sandbox_ips() == ["10.1.0.5"]


def test_cri_log_lines() -> None:
    buf = bytearray()
    out = format_lines("stdout", buf, b"one\ntw")
    assert out.endswith(b" stdout F one\n") and buf == b"tw"
    out = format_lines("stdout", buf, b"o\n")
    assert out.endswith(b" stdout F two\n") and not buf
    out = format_lines("stderr", buf, b"x" * 20000)
    assert out.count(b" stderr P ") == 1 and len(buf) == 20000 - 16384
    out = format_lines("stderr", buf, b"", final=True)
    assert out.endswith(b" stderr F " + b"x" * (20000 - 16384) + b"\n")


def test_create_body() -> None:
    sb = Sandbox(
        id="s" * 64,
        name="web",
        uid="u-1",
        namespace="ns",
        hostname="web",
        pid=42,
        dns=DnsConfig(servers=["10.0.0.10"], searches=["ns.svc"]),
    )
    req = create_body(
        Spec(
            name="app",
            image="busybox",
            command=["sh"],
            args=["-c", "x"],
            env=[("A", "1")],
            run_as_user=1000,
            run_as_group=5,
            mounts=[("/h", "/c", True, 1)],
            labels={"k": "v"},
            annotations={"a": "b"},
            cap_add=["NET_ADMIN"],
        ),
        sb,
    )
    config, hc = req.config, req.host_config
    assert config.entrypoint == ("sh",) and config.cmd == ("-c", "x")
    assert config.user == "1000:5" and config.hostname == "web"
    assert config.labels["k"] == "v" and config.labels["io.berth.cri.sandbox-id"] == sb.id
    assert hc.network_mode == "none" and hc.ipc_mode == "private"
    assert hc.annotations == {
        "io.berth.cri.netns": "/proc/42/ns/net",
        "io.berth.cri.ipcns": "/proc/42/ns/ipc",
    }
    assert hc.binds == ("/h:/c:ro,rslave",) and hc.dns == ("10.0.0.10",)
    sb.host_network = True
    assert create_body(Spec(name="app", image="busybox"), sb).host_config.network_mode == "host"


def test_times() -> None:
    assert time_ns("0001-01-01T00:00:00Z") == 0
    assert time_ns("2024-01-02T03:04:05.123456789Z") == 1704164645123456789
    assert time_ns("2024-01-02T03:04:05Z") == 1704164645_000_000_000


def test_messages_generated() -> None:
    from berth.cri.gen import api

    m = api().VersionResponse(runtime_name="berth")
    assert api().VersionResponse.FromString(m.SerializeToString()).runtime_name == "berth"
    assert set(api().DESCRIPTOR.services_by_name) == {"RuntimeService", "ImageService"}


def test_pod_sysctls_checked() -> None:
    from berth.cri.pods import pod_sysctls

    ok = {"net.ipv4.ip_unprivileged_port_start": "0", "kernel.shmmax": "1", "fs.mqueue.x": "2"}
    assert pod_sysctls(ok, False, False) == ok
    for bad, host_net, host_ipc in (
        (("kernel.hostname", "x"), False, False),
        (("vm.swappiness", "1"), False, False),
        (("net/../../x", "1"), False, False),
        (("net.ipv4.ip_forward", "1"), True, False),
        (("kernel.shmmax", "1"), False, True),
    ):
        with pytest.raises(InvalidArgument):
            pod_sysctls(dict([bad]), host_net, host_ipc)


def test_exit_status() -> None:
    from berth.cri.streaming import exit_status

    assert json.loads(exit_status(0)) == {"metadata": {}, "status": "Success"}
    failed = json.loads(exit_status(3))
    assert failed["reason"] == "NonZeroExitCode"
    assert failed["details"]["causes"] == [{"reason": "ExitCode", "message": "3"}]


def test_pause_stays_lean(tmp_path: Path) -> None:
    """The holder imports berth.linux alone (no grpc, no daemon), from its own command line,
    and a spare whose stdin closes with no pod exits at once."""
    import subprocess

    from berth.cri.pause import argv

    cmd = argv(str(tmp_path))
    assert cmd[1:3] == ["-I", "-S"] and cmd[-1] == f"--root={tmp_path}"
    probe = cmd[:4] + [
        cmd[4].replace(
            "sys.exit(main(sys.argv[1:]))",
            "print(sorted(m for m in sys.modules if 'berth' in m "
            "or 'grpc' in m or 'aiohttp' in m))",
        )
    ]
    out = subprocess.run(probe, capture_output=True, text=True, timeout=30, check=True).stdout
    mods = ast.literal_eval(out)
    assert "berth.linux" in mods
    assert not [
        m
        for m in mods
        if m.startswith(("grpc", "aiohttp", "berth.containers", "berth.cri.server", "berth.daemon"))
    ]
    r = subprocess.run(cmd, input="", capture_output=True, text=True, timeout=30)
    assert (r.returncode, r.stdout) == (0, "")
