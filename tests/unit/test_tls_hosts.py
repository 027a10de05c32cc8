"""Hosts, TLS options and contexts as dockerd and the docker CLI read them: berthd's -H and
--tls* (daemon/listeners.py, daemon/main.py), the CLI's host resolution (client/contexts.py),
and that a unix-socket command pays for none of it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from berth.client import DEFAULT_HOST, InvalidHost, contexts, parse_host
from berth.daemon import listeners
from berth.daemon.listeners import TLSSettings
from berth.daemon.main import DaemonConfig


def test_daemon_hosts_as_dockerd_reads_them() -> None:
    n = listeners.normalize_host
    assert n("", "/run/x.sock", False) == "unix:///run/x.sock"
    assert n("", "/run/x.sock", True) == "tcp://localhost:2376"  # dockerd's DefaultTLSHost
    assert n("unix://", "/run/x.sock", False) == "unix:///run/x.sock"
    assert n("unix:///a/b.sock", "/run/x.sock", True) == "unix:///a/b.sock"
    assert n("tcp://127.0.0.1", "", True) == "tcp://127.0.0.1:2375"  # 2375, TLS or not
    assert n("tcp://:2376", "", False) == "tcp://localhost:2376"
    assert n("127.0.0.1:9", "", False) == "tcp://127.0.0.1:9"
    assert n("tcp://[::1]:2376", "", False) == "tcp://[::1]:2376"
    for bad in ("fd://", "ssh://x", "tcp://1.2.3.4:x", "tcp://1.2.3.4:1/path"):
        with pytest.raises(Exception, match="invalid bind address"):
            n(bad, "", False)


def test_insecure_tcp_warnings_and_wait() -> None:
    verify = TLSSettings(verify=True, ca="c", cert="c", key="k")
    noverify = TLSSettings(verify=False, ca="c", cert="c", key="k")
    assert listeners.insecure_tcp("unix:///x", None, False) == ([], 0.0)
    assert listeners.insecure_tcp("tcp://0.0.0.0:2376", verify, True) == ([], 0.0)
    w, wait = listeners.insecure_tcp("tcp://127.0.0.1:2375", None, False)
    assert wait == 1.0 and len(w) == 3
    assert w[0].startswith("Binding to IP address without --tlsverify is insecure")
    # not loopback and TLS set neither way: dockerd's four more warnings and 15 s more
    w, wait = listeners.insecure_tcp("tcp://0.0.0.0:2375", None, False)
    assert wait == 16.0 and len(w) == 7
    assert (
        "You can override this by explicitly specifying '--tls=false' or '--tlsverify=false'" in w
    )
    assert listeners.insecure_tcp("tcp://0.0.0.0:2375", None, True)[1] == 1.0  # --tls=false
    assert listeners.insecure_tcp("tcp://0.0.0.0:2376", noverify, True)[1] == 1.0


def test_api_warnings_in_info() -> None:
    w = listeners.api_warnings(["unix:///x", "tcp://127.0.0.1:2375"], None)
    assert len(w) == 1 and w[0].startswith(
        "[DEPRECATION NOTICE]: API is accessible on http://127.0.0.1:2375 without encryption."
    )
    w = listeners.api_warnings(
        ["tcp://127.0.0.1:2376"], TLSSettings(verify=False, ca="", cert="", key="")
    )
    assert "https://127.0.0.1:2376 without TLS client verification." in w[0]
    assert (
        listeners.api_warnings(
            ["tcp://127.0.0.1:2376"], TLSSettings(verify=True, ca="", cert="", key="")
        )
        == []
    )


def _daemon_args(
    tmp_path: Path, *args: str, config: dict[str, object] | None = None
) -> DaemonConfig:
    from berth.daemon.main import parse_args

    cfg = tmp_path / "daemon.json"
    cfg.write_text(json.dumps(config or {}))
    return parse_args(
        [
            "--config-file",
            str(cfg),
            "--exec-root",
            str(tmp_path / "run"),
            "--data-root",
            str(tmp_path / "data"),
            *args,
        ]
    )


def test_daemon_tls_options(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKER_CERT_PATH", "/certs")
    c = _daemon_args(tmp_path, "-H", "unix://", "-H", "tcp://127.0.0.1:2376", "--tlsverify")
    assert c.hosts == [f"unix://{tmp_path}/run/berth.sock", "tcp://127.0.0.1:2376"]
    assert c.tls == TLSSettings(
        verify=True, ca="/certs/ca.pem", cert="/certs/cert.pem", key="/certs/key.pem"
    )
    # --tls alone verifies clients too (dockerd: TLSVerify takes TLS's value)
    c = _daemon_args(tmp_path, "-H", "tcp://127.0.0.1:1", "--tls", "--tlscacert", "/ca")
    assert c.tls.verify and c.tls.ca == "/ca"
    c = _daemon_args(tmp_path, "-H", "tcp://127.0.0.1:1", "--tlsverify=false")
    assert c.tls is not None and not c.tls.verify
    c = _daemon_args(tmp_path, "-H", "tcp://127.0.0.1:1", "--tls=false")
    assert c.tls is None and c.tls_explicit
    c = _daemon_args(tmp_path, "-H", "tcp://127.0.0.1:1")
    assert c.tls is None and not c.tls_explicit
    c = _daemon_args(tmp_path, "--tlsverify")
    assert c.hosts == ["tcp://localhost:2376"]
    # daemon.json's keys, and a key given twice is an error
    c = _daemon_args(
        tmp_path,
        config={
            "hosts": ["tcp://127.0.0.1:2376", "unix:///x.sock"],
            "tlsverify": True,
            "tlscacert": "/a",
            "tlscert": "/b",
            "tlskey": "/c",
        },
    )
    assert c.hosts == ["tcp://127.0.0.1:2376", "unix:///x.sock"]
    assert c.tls == TLSSettings(verify=True, ca="/a", cert="/b", key="/c")
    with pytest.raises(SystemExit):
        _daemon_args(tmp_path, "-H", "unix:///y", config={"hosts": ["unix:///x"]})
    with pytest.raises(SystemExit):
        _daemon_args(tmp_path, config={"tls": "yes"})


def test_cli_hosts_as_the_docker_cli_reads_them() -> None:
    assert parse_host("") == DEFAULT_HOST
    assert parse_host("", True) == "tcp://localhost:2376"
    assert parse_host("tcp://127.0.0.1", True) == "tcp://127.0.0.1:2375"
    assert parse_host("tcp://:2376") == "tcp://localhost:2376"
    assert parse_host("127.0.0.1") == "tcp://127.0.0.1:2375"
    assert parse_host("/x") == "tcp://localhost:2375/x"  # as docker, oddly
    assert parse_host("tcp://127.0.0.1:2376/foo") == "tcp://127.0.0.1:2376/foo"
    for bad in ("http://127.0.0.1:1", "tcp://[::1]"):
        with pytest.raises(InvalidHost, match="invalid bind address format"):
            parse_host(bad)


@pytest.fixture
def dcfg(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for k in list(os.environ):
        if k.startswith(("DOCKER_", "BERTH_")):
            monkeypatch.delenv(k)
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path))
    return tmp_path


def _store(cfg: Path, name: str, host: str, files: tuple[str, ...] = ()) -> None:
    d = cfg / "contexts" / "meta" / contexts.store_id(name)
    d.mkdir(parents=True)
    (d / "meta.json").write_text(
        json.dumps(
            {
                "Name": name,
                "Metadata": {},
                "Endpoints": {"docker": {"Host": host, "SkipTLSVerify": False}},
            }
        )
    )
    for f in files:
        t = cfg / "contexts" / "tls" / contexts.store_id(name) / "docker"
        t.mkdir(parents=True, exist_ok=True)
        (t / f).write_text("pem")


def test_resolution_order(dcfg: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _store(dcfg, "one", "tcp://127.0.0.1:1", ("ca.pem", "cert.pem", "key.pem"))
    _store(dcfg, "two", "unix:///two.sock")
    assert contexts.resolve().name == "default" and contexts.resolve().host == DEFAULT_HOST
    (dcfg / "config.json").write_text(json.dumps({"currentContext": "one"}))
    c = contexts.resolve()
    assert (c.name, c.host) == ("one", "tcp://127.0.0.1:1")
    t = c.tls()
    assert t is not None and t.ca.endswith("/docker/ca.pem") and not t.skip_verify
    monkeypatch.setenv("DOCKER_CONTEXT", "two")
    assert contexts.resolve().name == "two" and contexts.resolve().tls() is None
    assert contexts.resolve(context="one").name == "one"
    monkeypatch.setenv("DOCKER_HOST", "unix:///env.sock")
    assert contexts.resolve().host == "unix:///env.sock"
    assert contexts.resolve(context="one").name == "one"  # --context beats DOCKER_HOST
    assert contexts.resolve(host="unix:///h.sock").host == "unix:///h.sock"
    with pytest.raises(InvalidHost, match="conflicting options"):
        contexts.resolve(host="unix:///h.sock", context="one")
    with pytest.raises(Exception, match='context "nope": context not found'):
        contexts.resolve(context="nope")


def test_default_context_tls(dcfg: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(InvalidHost, match="ca.pem: no such file"):
        contexts.resolve(tlsverify=True)
    (dcfg / "ca.pem").write_text("pem")
    c = contexts.resolve(tlsverify=True)
    t = c.tls()
    assert c.host == "tcp://localhost:2376" and t is not None
    assert (t.ca, t.cert, t.key, t.skip_verify) == (str(dcfg / "ca.pem"), "", "", False)
    # --tlsverify=false is TLS without verification; DOCKER_TLS_VERIFY: any value turns it on
    t = contexts.resolve(host="tcp://127.0.0.1:1", tlsverify=False).tls()
    assert t is not None and t.skip_verify
    monkeypatch.setenv("DOCKER_TLS_VERIFY", "0")
    monkeypatch.setenv("DOCKER_HOST", "tcp://127.0.0.1:5")
    c = contexts.resolve()
    assert c.host == "tcp://127.0.0.1:5" and c.tls() is not None
    t = c.tls()
    assert t is not None and not t.skip_verify


def test_unix_socket_commands_stay_lean(tmp_path: Path) -> None:
    """A unix-socket command does not import ssl or hashlib, with or without a host in the
    environment (then it reads config.json, which names no context)."""
    (tmp_path / "config.json").write_text('{"auths": {}}')
    code = (
        "import sys, berth.cli.main as m\n"
        "opts = m.GLOBAL.parse(sys.argv[1:])[0]\n"
        "c = m.make_client(opts)\n"
        "print(c.host, [n for n in ('ssl', 'hashlib', 'socket', 'json', 're') "
        "if n in sys.modules])"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DOCKER_", "BERTH_"))}
    env["DOCKER_CONFIG"] = str(tmp_path)
    for extra, args in (
        ({}, []),
        ({"BERTH_HOST": "unix:///x.sock"}, []),
        ({}, ["-H", "unix:///y.sock"]),
    ):
        out = subprocess.run(
            [sys.executable, "-c", code, *args],
            env=env | extra,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        assert out.strip().endswith("[]"), out
