"""berthd over the network (issue 15): `-H tcp://127.0.0.1:PORT` with mutual TLS, driven by the
real docker CLI and by berth's own (--tlsverify, DOCKER_TLS_VERIFY/DOCKER_CERT_PATH, a
context); clients without a certificate, or with one of another CA, are refused; plain TCP
prints dockerd's warnings and waits. Contexts are checked against the docker CLI's reading of
the same files (a DOCKER_CONFIG of the test's own)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from .conftest import BIN, Daemon, running_daemon
from .registries import free_port

pytestmark = pytest.mark.root
DOCKER = shutil.which("docker")


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def make_pki(d: Path, name: str = "ca") -> Path:
    """A CA in `d`, with a server certificate for 127.0.0.1 and a client certificate:
    d/ca.pem, d/server-{cert,key}.pem, and d/client/{ca,cert,key}.pem (a DOCKER_CERT_PATH)."""
    if not shutil.which("openssl"):
        pytest.skip("needs openssl")
    d.mkdir(parents=True, exist_ok=True)
    _openssl(
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca-key.pem",
        "-out",
        "ca.pem",
        "-days",
        "2",
        "-subj",
        f"/CN=berth test {name}",
        cwd=d,
    )
    (d / "server.ext").write_text("subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n")
    (d / "client.ext").write_text("extendedKeyUsage=clientAuth\n")
    for who, cn in (("server", "127.0.0.1"), ("client", "berth test client")):
        _openssl(
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            f"{who}-key.pem",
            "-out",
            f"{who}.csr",
            "-subj",
            f"/CN={cn}",
            cwd=d,
        )
        _openssl(
            "x509",
            "-req",
            "-in",
            f"{who}.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca-key.pem",
            "-CAcreateserial",
            "-out",
            f"{who}-cert.pem",
            "-days",
            "2",
            "-extfile",
            f"{who}.ext",
            cwd=d,
        )
    client = d / "client"
    client.mkdir()
    shutil.copy(d / "ca.pem", client / "ca.pem")
    shutil.copy(d / "client-cert.pem", client / "cert.pem")
    shutil.copy(d / "client-key.pem", client / "key.pem")
    return d


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def other_pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_pki(tmp_path_factory.mktemp("otherpki"), "other ca")


@pytest.fixture(scope="module")
def tls_daemon(
    tmp_path_factory: pytest.TempPathFactory, rootfs_tar: Path, pki: Path
) -> Iterator[tuple[Daemon, str]]:
    port = free_port()
    with running_daemon(
        tmp_path_factory.mktemp("tlsd"),
        rootfs_tar,
        "-H",
        f"tcp://127.0.0.1:{port}",
        "--tlsverify",
        "--tlscacert",
        str(pki / "ca.pem"),
        "--tlscert",
        str(pki / "server-cert.pem"),
        "--tlskey",
        str(pki / "server-key.pem"),
    ) as d:
        yield d, f"tcp://127.0.0.1:{port}"


def _env(tmp: Path, **extra: str) -> dict[str, str]:
    """An environment with no daemon named in it, and a DOCKER_CONFIG of the test's own."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DOCKER_", "BERTH_"))}
    cfg = tmp / "dockercfg"
    cfg.mkdir(exist_ok=True)
    env["DOCKER_CONFIG"] = str(cfg)
    env.update(extra)
    return env


def _run(
    argv: list[str], env: dict[str, str], timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=timeout)


BERTH = str(BIN / "berth")


# --- the docker CLI over mutual TLS -----------------------------------------------------------
@pytest.mark.skipif(DOCKER is None, reason="needs the docker CLI")
def test_docker_cli_over_mutual_tls(
    tls_daemon: tuple[Daemon, str], pki: Path, tmp_path: Path
) -> None:
    _, host = tls_daemon
    env = _env(tmp_path, DOCKER_CERT_PATH=str(pki / "client"))
    docker = [str(DOCKER), "--tlsverify", "-H", host]
    v = _run([*docker, "version", "--format", "{{.Server.APIVersion}}"], env)
    assert v.returncode == 0, v.stderr
    r = _run([*docker, "run", "--rm", "busybox", "echo", "hi"], env)
    assert (r.returncode, r.stdout) == (0, "hi\n"), r.stderr
    ps = _run([*docker, "ps", "-a", "--format", "{{.Image}}"], env)
    assert ps.returncode == 0, ps.stderr
    # the same through DOCKER_HOST / DOCKER_TLS_VERIFY
    r = _run(
        [str(DOCKER), "run", "--rm", "busybox", "echo", "env"],
        env | {"DOCKER_HOST": host, "DOCKER_TLS_VERIFY": "1"},
    )
    assert (r.returncode, r.stdout) == (0, "env\n"), r.stderr


@pytest.mark.skipif(DOCKER is None, reason="needs the docker CLI")
def test_docker_cli_stdin_over_tls(
    tls_daemon: tuple[Daemon, str], pki: Path, tmp_path: Path
) -> None:
    """stdin reaches the container and its end (a TCP half-close under TLS) ends `cat`,
    whose output still comes back."""
    _, host = tls_daemon
    env = _env(tmp_path, DOCKER_CERT_PATH=str(pki / "client"))
    r = subprocess.run(
        [str(DOCKER), "--tlsverify", "-H", host, "run", "-i", "--rm", "busybox", "cat"],
        env=env,
        input=b"through tls\n",
        capture_output=True,
        timeout=60,
    )
    assert (r.returncode, r.stdout) == (0, b"through tls\n"), r.stderr


@pytest.mark.skipif(DOCKER is None, reason="needs the docker CLI")
def test_clients_without_a_good_certificate_are_refused(
    tls_daemon: tuple[Daemon, str], pki: Path, other_pki: Path, tmp_path: Path
) -> None:
    _, host = tls_daemon
    # no client certificate: the daemon's CA is trusted, but we present nothing
    nocert = tmp_path / "nocert"
    nocert.mkdir()
    shutil.copy(pki / "ca.pem", nocert / "ca.pem")
    for cert_path in (nocert, other_pki / "client"):
        env = _env(tmp_path)
        r = _run(
            [
                str(DOCKER),
                "--tlsverify",
                "--tlscacert",
                str(pki / "ca.pem"),
                "--tlscert",
                str(cert_path / "cert.pem") if (cert_path / "cert.pem").exists() else "",
                "--tlskey",
                str(cert_path / "key.pem") if (cert_path / "key.pem").exists() else "",
                "-H",
                host,
                "version",
            ],
            env,
        )
        assert r.returncode != 0 and "Server:" not in r.stdout, r.stdout
        assert "remote error: tls:" in r.stderr, r.stderr  # the daemon said why
        b = _run(
            [
                BERTH,
                "--tlsverify",
                "--tlscacert",
                str(pki / "ca.pem"),
                *(
                    [
                        "--tlscert",
                        str(cert_path / "cert.pem"),
                        "--tlskey",
                        str(cert_path / "key.pem"),
                    ]
                    if (cert_path / "cert.pem").exists()
                    else []
                ),
                "-H",
                host,
                "ps",
            ],
            env,
        )
        assert b.returncode != 0 and "error during connect" in b.stderr, b.stderr
    # a plain-HTTP client gets nothing either, and hears why, as from dockerd
    for cli in (BERTH, str(DOCKER)):
        r = _run([cli, "-H", host, "ps"], _env(tmp_path))
        assert r.returncode != 0, r.stdout
        assert "Client sent an HTTP request to an HTTPS server." in r.stderr, r.stderr
    # a daemon certificate berth does not trust (the other CA's) is refused by the client
    r = _run(
        [BERTH, "--tlsverify", "-H", host, "ps"],
        _env(tmp_path, DOCKER_CERT_PATH=str(other_pki / "client")),
    )
    assert r.returncode != 0 and "certificate verify failed" in r.stderr, r.stderr


# --- berth's own CLI --------------------------------------------------------------------------
def test_berth_cli_over_mutual_tls(
    tls_daemon: tuple[Daemon, str], pki: Path, tmp_path: Path
) -> None:
    _, host = tls_daemon
    client = pki / "client"
    flags = [
        "--tlsverify",
        "--tlscacert",
        str(client / "ca.pem"),
        "--tlscert",
        str(client / "cert.pem"),
        "--tlskey",
        str(client / "key.pem"),
        "-H",
        host,
    ]
    env = _env(tmp_path)
    r = _run([BERTH, *flags, "run", "--rm", "busybox", "echo", "flags"], env)
    assert (r.returncode, r.stdout) == (0, "flags\n"), r.stderr
    env2 = _env(tmp_path, DOCKER_HOST=host, DOCKER_TLS_VERIFY="1", DOCKER_CERT_PATH=str(client))
    r = _run([BERTH, "run", "--rm", "busybox", "echo", "env"], env2)
    assert (r.returncode, r.stdout) == (0, "env\n"), r.stderr
    r = subprocess.run(
        [BERTH, "run", "-i", "--rm", "busybox", "cat"],
        env=env2,
        input=b"stdin too\n",
        capture_output=True,
        timeout=60,
    )
    assert (r.returncode, r.stdout) == (0, b"stdin too\n"), r.stderr
    r = _run([BERTH, "ps", "-a"], env2)
    assert r.returncode == 0 and r.stdout.startswith("CONTAINER ID"), r.stderr
    cid = _run([BERTH, "run", "-d", "busybox", "sleep", "60"], env2).stdout.strip()
    try:
        # (under 64 kB: an exec -i with more stdin than a pipe holds can hang over the unix
        # socket too, with or without this branch)
        r = subprocess.run(
            [BERTH, "exec", "-i", cid, "sh", "-c", "cat; echo done"],
            env=env2,
            input=b"x" * 40_000,
            capture_output=True,
            timeout=60,
        )
        assert (r.returncode, len(r.stdout)) == (0, 40_005), r.stderr
        r = _run([BERTH, "logs", cid], env2)
        assert r.returncode == 0, r.stderr
    finally:
        _run([BERTH, "rm", "-f", cid], env2)
    # a context made by berth (with the TLS files copied into the store), used by both CLIs
    r = _run(
        [
            BERTH,
            "context",
            "create",
            "tlsd",
            "--description",
            "berth over tls",
            "--docker",
            f"host={host},ca={client / 'ca.pem'},cert={client / 'cert.pem'},"
            f"key={client / 'key.pem'}",
        ],
        env,
    )
    assert (r.returncode, r.stdout) == (0, "tlsd\n"), r.stderr
    r = _run([BERTH, "--context", "tlsd", "run", "--rm", "busybox", "echo", "ctx"], env)
    assert (r.returncode, r.stdout) == (0, "ctx\n"), r.stderr
    assert _run([BERTH, "context", "use", "tlsd"], env).returncode == 0
    r = _run([BERTH, "run", "--rm", "busybox", "echo", "current"], env)
    assert (r.returncode, r.stdout) == (0, "current\n"), r.stderr
    if DOCKER:
        r = _run([str(DOCKER), "run", "--rm", "busybox", "echo", "docker ctx"], env)
        assert (r.returncode, r.stdout) == (0, "docker ctx\n"), r.stderr
    # -H and --context together are an error, as for the docker CLI
    r = _run([BERTH, "-H", host, "--context", "tlsd", "ps"], env)
    assert r.returncode != 0
    assert "conflicting options: cannot specify both --host and --context" in r.stderr


def test_plain_tcp_warns_and_waits(tmp_path: Path, rootfs_tar: Path) -> None:
    port = free_port()
    d = Daemon(tmp_path / "plain")
    try:
        t0 = time.monotonic()
        d.start("-H", f"tcp://127.0.0.1:{port}")
        took = time.monotonic() - t0
        log = d.log.read_text()
        assert (
            "Binding to IP address without --tlsverify is insecure and gives root access "
            "on this machine to everyone who has access to your network." in log
        )
        assert f'host="tcp://127.0.0.1:{port}"' in log
        assert took >= 1.0  # dockerd's 1 s (loopback: not the 15 s more)
        env = _env(tmp_path)
        r = _run(
            [BERTH, "-H", f"tcp://127.0.0.1:{port}", "info", "--format", "{{json .Warnings}}"], env
        )
        assert r.returncode == 0, r.stderr
        assert f"API is accessible on http://127.0.0.1:{port} without encryption" in r.stdout
        r = _run([BERTH, "-H", f"127.0.0.1:{port}", "version"], env)
        assert r.returncode == 0, r.stderr
        r = _run([BERTH, "-H", f"tcp://127.0.0.1:{port}", "info"], env)
        assert r.stderr.startswith(
            "[DEPRECATION NOTICE]: API is accessible on "
            f"http://127.0.0.1:{port} without encryption."
        ), r.stderr
        if DOCKER:  # the docker CLI shows the same
            d_info = _run([str(DOCKER), "-H", f"tcp://127.0.0.1:{port}", "info"], env)
            assert r.stderr in d_info.stderr, d_info.stderr
    finally:
        d.cleanup()


# --- contexts against the docker CLI --------------------------------------------------------
def _inspect(cli: str, env: dict[str, str], *names: str) -> list[dict[str, object]]:
    r = _run([cli, "context", "inspect", *names], env)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)  # type: ignore[no-any-return]


@pytest.mark.skipif(DOCKER is None, reason="needs the docker CLI")
def test_contexts_read_alike(tmp_path: Path, pki: Path) -> None:
    env = _env(tmp_path, DOCKER_HOST="unix:///tmp/berth-ctx-test.sock")
    client = pki / "client"
    docker = str(DOCKER)
    # berth writes, docker reads
    r = _run(
        [
            BERTH,
            "context",
            "create",
            "bt",
            "--description",
            "made by berth",
            "--docker",
            f"host=tcp://127.0.0.1:2376,ca={client / 'ca.pem'},cert={client / 'cert.pem'},"
            f"key={client / 'key.pem'}",
        ],
        env,
    )
    assert r.returncode == 0 and r.stderr == 'Successfully created context "bt"\n', r.stderr
    # docker writes, berth reads
    r = _run(
        [
            docker,
            "context",
            "create",
            "dk",
            "--docker",
            "host=unix:///tmp/x.sock,skip-tls-verify=true",
        ],
        env,
    )
    assert r.returncode == 0, r.stderr
    for names in (("bt", "dk"), ("default",)):
        assert _inspect(BERTH, env, *names) == _inspect(docker, env, *names)
    # byte for byte, the table and json forms
    for args in (
        ["ls"],
        ["ls", "--format", "json"],
        ["ls", "-q"],
        ["inspect", "bt"],
        ["ls", "--format", "{{.Name}}: {{.DockerEndpoint}} {{.Current}}"],
    ):
        b, d = _run([BERTH, "context", *args], env), _run([docker, "context", *args], env)
        assert (b.returncode, b.stdout, b.stderr) == (d.returncode, d.stdout, d.stderr), args
    meta = next((tmp_path / "dockercfg" / "contexts" / "meta").glob("*/meta.json"))
    assert meta.stat().st_mode & 0o777 == 0o644
    tls = next((tmp_path / "dockercfg" / "contexts" / "tls").glob("*/docker/key.pem"))
    assert tls.stat().st_mode & 0o777 == 0o600
    # use: each sees the other's choice (config.json's currentContext)
    env_noh = {k: v for k, v in env.items() if k != "DOCKER_HOST"}
    assert _run([BERTH, "context", "use", "dk"], env_noh).returncode == 0
    assert _run([docker, "context", "show"], env_noh).stdout == "dk\n"
    b, d = _run([BERTH, "context", "ls"], env_noh), _run([docker, "context", "ls"], env_noh)
    assert "dk *" in d.stdout and "dk *" in b.stdout
    assert _run([docker, "context", "use", "bt"], env_noh).returncode == 0
    assert _run([BERTH, "context", "show"], env_noh).stdout == "bt\n"
    # DOCKER_CONTEXT and --context win over config.json; DOCKER_HOST over both of those
    assert _run([BERTH, "context", "show"], env_noh | {"DOCKER_CONTEXT": "dk"}).stdout == "dk\n"
    assert _run([BERTH, "-c", "dk", "context", "show"], env_noh).stdout == "dk\n"
    assert _run([BERTH, "context", "show"], env).stdout == "default\n"
    # rm: in use needs -f, a missing one is an error, the others go
    r = _run([BERTH, "context", "rm", "bt"], env_noh)
    assert r.returncode == 1 and 'context "bt" is in use, set -f flag to force remove' in r.stderr
    r = _run([BERTH, "context", "rm", "-f", "bt", "nope"], env_noh)
    assert (r.returncode, r.stdout) == (1, "bt\n")
    assert 'context "nope" does not exist' in r.stderr
    assert _run([docker, "context", "show"], env_noh).stdout == "default\n"
    assert _run([docker, "context", "ls", "-q"], env_noh).stdout == "default\ndk\n"
    # errors as docker words them
    for args in (
        ["create", "default"],
        ["create", "x"],
        ["create", "dk"],
        ["use", "nope"],
        ["create", "zz", "--docker", "foo=bar"],
    ):
        b, d = _run([BERTH, "context", *args], env), _run([docker, "context", *args], env)
        assert (b.returncode, b.stderr) == (d.returncode, d.stderr), args


def test_daemon_stops_with_tls_streams_open(tmp_path: Path, pki: Path) -> None:
    """A TLS client still reading (events) does not hold up the daemon's shutdown."""
    port = free_port()
    d = Daemon(tmp_path / "stopd")
    try:
        d.start(
            "-H",
            f"tcp://127.0.0.1:{port}",
            "--tlsverify",
            "--tlscacert",
            str(pki / "ca.pem"),
            "--tlscert",
            str(pki / "server-cert.pem"),
            "--tlskey",
            str(pki / "server-key.pem"),
        )
        env = _env(tmp_path, DOCKER_CERT_PATH=str(pki / "client"))
        events = subprocess.Popen(
            [BERTH, "--tlsverify", "-H", f"tcp://127.0.0.1:{port}", "events"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        try:
            time.sleep(0.5)
            assert events.poll() is None, events.communicate()
            t0 = time.monotonic()
            d.stop()  # fails if berthd takes more than 10 s
            assert time.monotonic() - t0 < 5
            events.wait(10)
        finally:
            if events.poll() is None:
                events.kill()
            events.communicate()
    finally:
        d.cleanup()


def test_docker_py_over_mutual_tls(
    tls_daemon: tuple[Daemon, str], pki: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dockerpy = pytest.importorskip("docker")
    # requests lets these override a session's own CA (psf/requests#3829)
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
    _, host = tls_daemon
    client = pki / "client"
    tls = dockerpy.tls.TLSConfig(
        client_cert=(str(client / "cert.pem"), str(client / "key.pem")),
        ca_cert=str(client / "ca.pem"),
        verify=True,
    )
    api = dockerpy.DockerClient(base_url=host.replace("tcp://", "https://"), tls=tls)
    try:
        assert api.version()["ApiVersion"]
        assert api.containers.run("busybox", ["echo", "py"], remove=True) == b"py\n"
    finally:
        api.close()
    no_cert = dockerpy.tls.TLSConfig(ca_cert=str(client / "ca.pem"), verify=True)
    refused = dockerpy.DockerClient(
        base_url=host.replace("tcp://", "https://"), tls=no_cert, version="1.50"
    )
    try:
        with pytest.raises(Exception):  # noqa: B017 - requests' SSLError or ConnectionError
            refused.ping()
    finally:
        refused.close()
