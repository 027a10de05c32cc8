"""Side by side with a real dockerd (Debian's docker.io), where one is installed: archives
from `docker save` load into berth, berth's `save` loads into Docker, and a container sees the
same things under both engines.

The private dockerd has its own data root, socket, containerd namespace and cgroup parent, no
bridge and no iptables changes; nothing is pulled (`--pull never`, images are imported)."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from berth import cgroups

from .conftest import Daemon, remove_cgroup_tree

pytestmark = pytest.mark.root


class Dockerd:
    def __init__(self, base: Path) -> None:
        self.base = base
        self.sock = base / "docker.sock"
        self.env = {
            **os.environ,
            "DOCKER_HOST": f"unix://{self.sock}",
            "DOCKER_CONFIG": str(base / "cfg"),
        }
        self.cgroup_parent = f"docker-compat-{os.getpid()}"
        self.proc: subprocess.Popen[bytes] | None = None

    def docker(self, *args: str) -> str:
        r = subprocess.run(
            ["docker", *args], env=self.env, capture_output=True, text=True, timeout=120
        )
        assert r.returncode == 0, f"docker {' '.join(args)}: {r.stderr}"
        return r.stdout

    def start(self) -> None:
        log = open(self.base / "dockerd.log", "wb")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [
                "dockerd",
                "--data-root",
                str(self.base / "data"),
                "--exec-root",
                str(self.base / "exec"),
                "-H",
                f"unix://{self.sock}",
                "--pidfile",
                str(self.base / "dockerd.pid"),
                "--bridge=none",
                "--iptables=false",
                "--ip-forward=false",
                "--ip-masq=false",
                "--dns",
                "127.0.0.1",
                "--containerd-namespace",
                f"berthcompat{os.getpid()}",
                "--cgroup-parent",
                self.cgroup_parent,
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        deadline = time.time() + 60
        while (
            subprocess.run(["docker", "version"], env=self.env, capture_output=True).returncode != 0
        ):
            if time.time() > deadline or self.proc.poll() is not None:
                raise RuntimeError((self.base / "dockerd.log").read_text()[-3000:])
            time.sleep(0.2)

    def stop(self) -> None:
        with contextlib.suppress(Exception):
            ids = self.docker("ps", "-aq").split()
            if ids:
                self.docker("rm", "-f", *ids)
        if self.proc is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        # every mount dockerd left below its directories (its netns files are nsfs mounts
        # under exec/, which is no mount point itself: `umount -R exec` would miss them)
        base = str(self.base) + "/"
        with open("/proc/self/mountinfo") as f:
            points = [line.split()[4] for line in f]
        for point in sorted((p for p in points if p.startswith(base)), key=len, reverse=True):
            subprocess.run(["umount", "-l", point], capture_output=True)
        for d in cgroups.dirs(self.cgroup_parent):  # v1's hierarchies, or v2's one
            remove_cgroup_tree(Path(d))
        shutil.rmtree(self.base, ignore_errors=True)


@pytest.fixture(scope="module")
def dockerd(tmp_path_factory: pytest.TempPathFactory, rootfs_tar: Path) -> Iterator[Dockerd]:
    if not shutil.which("dockerd") or not shutil.which("docker"):
        pytest.skip("no dockerd here to compare with (apt-get install docker.io)")
    d = Dockerd(tmp_path_factory.mktemp("dockerd"))
    try:
        d.start()
        d.docker("import", str(rootfs_tar), "busybox")
        yield d
    finally:
        d.stop()


def test_docker_save_loads_into_berth(
    dockerd: Dockerd, daemon: Daemon, tmp_path: Path, rootfs_tar: Path
) -> None:
    dockerd.docker(
        "import", "--change", 'CMD ["echo", "made-by-docker"]', str(rootfs_tar), "fromdocker:1"
    )
    out = tmp_path / "docker-saved.tar"
    dockerd.docker("save", "-o", str(out), "fromdocker:1")
    assert daemon.ok("load", "-i", str(out)).strip() == "Loaded image: fromdocker:1"
    assert daemon.ok("run", "--rm", "fromdocker:1").strip() == "made-by-docker"
    daemon.ok("rmi", "fromdocker:1")


def test_berth_save_loads_into_docker(
    dockerd: Dockerd, daemon: Daemon, tmp_path: Path, rootfs_tar: Path
) -> None:
    daemon.ok("import", "-c", 'CMD ["echo", "made-by-berth"]', str(rootfs_tar), "fromberth:1")
    out = tmp_path / "berth-saved.tar"
    daemon.ok("save", "-o", str(out), "fromberth:1")
    assert "Loaded image: fromberth:1" in dockerd.docker("load", "-i", str(out))
    assert (
        dockerd.docker("run", "--rm", "--network", "none", "--pull", "never", "fromberth:1").strip()
        == "made-by-berth"
    )
    daemon.ok("rmi", "fromberth:1")


@pytest.mark.parametrize(
    "script",
    [
        "id",
        "id -u app; id app",
        "grep -E '^(CapInh|CapPrm|CapEff|CapBnd|CapAmb|NoNewPrivs)' /proc/self/status",
        "ls /dev | sort",
        "hostname | wc -c",
        "cat /proc/self/cgroup | wc -l",
        "ls /sys/class/net",
        "echo $PATH; echo $HOME",
        # the mount table, less what names paths on the host (the rootfs and /etc files), and
        # /proc/interrupts, which Docker masks since 25 (Debian's docker.io is older)
        "mount | grep -v -e ' on / ' -e ' on /etc/' -e /proc/interrupts | sed 's/,size=[0-9]*k//'",
        "ls -l /sys/fs/cgroup | cut -c1-10,43- | sort",
        "ulimit -a",
        "umask",
        # the default seccomp filter: loaded, and what it refuses
        "grep ^Seccomp /proc/self/status",
        "unshare -U true 2>/dev/null; echo $?; unshare -n true 2>/dev/null; echo $?",
        'readlink /proc/self/ns/cgroup | grep -q "$(readlink /proc/1/ns/cgroup)"; echo $?',
    ],
)
def test_a_container_sees_the_same(dockerd: Dockerd, daemon: Daemon, script: str) -> None:
    args = ["run", "--rm", "--network", "none", "busybox", "sh", "-c", script]
    theirs = dockerd.docker(args[0], "--pull", "never", *args[1:])
    assert daemon.ok(*args) == theirs


@pytest.mark.parametrize(
    "env",
    [["Foo", "A=1"], ["PATH=/x:/bin", "HOME", "B="], ["HOSTNAME=mine", "TERM=dumb", "A=1", "A=2"]],
)
@pytest.mark.parametrize("tty", [False, True])
def test_the_environment_is_dockerd_s(
    dockerd: Dockerd, daemon: Daemon, env: list[str], tty: bool
) -> None:
    """Config.Env as given (an entry without `=` too); the process gets dockerd's PATH,
    HOSTNAME and TERM under it, and a name without `=` unset; an exec's the same way."""
    got = []
    berth = Dockerd(daemon.base)  # the same docker CLI, at berthd's socket
    berth.env = {**daemon.env, "DOCKER_CONFIG": str(daemon.base / "cfg")}
    for engine in (dockerd.docker, berth.docker):
        cid = engine(
            "create",
            "--pull",
            "never",
            "-h",
            "envhost",
            "--network",
            "none",
            *(["-t"] if tty else []),
            *[a for e in env for a in ("-e", e)],
            "busybox",
            "sh",
            "-c",
            "env | sort; sleep 30",
        ).strip()
        try:
            # sorted: docker CLI 28 sends -e entries in no fixed order
            record = sorted(json.loads(engine("inspect", "-f", "{{json .Config.Env}}", cid)))
            engine("start", cid)
            time.sleep(0.5)
            execd = engine("exec", "-e", "X=1", "-e", "A", cid, "sh", "-c", "env | sort")
            logs = engine("logs", cid)
        finally:
            engine("rm", "-f", cid)
        got.append((record, logs, execd))
    assert got[0] == got[1]


COMPARE_DOCKERFILE = """\
FROM busybox
ARG VER=1
ENV APP=/app NAME="my app" PATH=/app/bin:$PATH
WORKDIR $APP
COPY a.txt ./
COPY --chown=app:staff sub /app/sub/
ADD archive.tar.gz /opt/
COPY link.txt empty/ /app/more/
RUN mkdir -p /data/x && echo "built $VER" > built.txt && rm /bin/vi && ln -s /app/a.txt link \\
    && chmod 700 /data/x && chown 1000:50 /data
USER app
VOLUME ["/data"]
EXPOSE 8080 53/udp
LABEL version=$VER maintainer="someone"
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=5s --timeout=2s --retries=2 CMD echo ok
SHELL ["/bin/sh", "-ec"]
ONBUILD RUN echo child
ENTRYPOINT ["/bin/sh", "-c"]
CMD ["cat /app/built.txt"]
"""
CONFIG_KEYS = [
    "Env",
    "Cmd",
    "Entrypoint",
    "WorkingDir",
    "User",
    "ExposedPorts",
    "Volumes",
    "Labels",
    "Healthcheck",
    "StopSignal",
    "Shell",
    "OnBuild",
]
# what a container's own init layer holds (Docker) or the runtime makes (berth)
RUNTIME_PATHS = {
    ".dockerenv",
    "etc/hosts",
    "etc/hostname",
    "etc/resolv.conf",
    "etc/mtab",
    "dev",
    "proc",
    "sys",
}


def _tree(tar_bytes: bytes) -> dict[str, tuple[str, int, int, int, str]]:
    import io
    import tarfile

    out = {}
    with tarfile.open(fileobj=io.BytesIO(tar_bytes)) as tf:
        for m in tf:
            name = m.name.removeprefix("./").lstrip("/").rstrip("/")
            if not name or name.split("/")[0] in RUNTIME_PATHS or name in RUNTIME_PATHS:
                continue
            out[name] = (
                m.type.decode() if isinstance(m.type, bytes) else str(m.type),
                m.mode & 0o7777,
                m.uid,
                m.gid,
                m.linkname or str(m.size if m.isreg() else ""),
            )
    return out


def test_a_build_makes_the_image_docker_makes(
    dockerd: Dockerd, daemon: Daemon, tmp_path: Path
) -> None:
    import gzip
    import io
    import json
    import tarfile

    ctx = tmp_path / "ctx"
    (ctx / "sub" / "deep").mkdir(parents=True)
    (ctx / "empty").mkdir()
    (ctx / "Dockerfile").write_text(COMPARE_DOCKERFILE)
    (ctx / "a.txt").write_text("hello\n")
    (ctx / "sub" / "deep" / "c.txt").write_text("c\n")
    (ctx / "sub" / "run.sh").write_text("#!/bin/sh\n")
    (ctx / "sub" / "run.sh").chmod(0o755)
    (ctx / "link.txt").symlink_to("a.txt")
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        for name, data, mode in (("pkg/one", b"1\n", 0o600), ("pkg/bin/two", b"2\n", 0o755)):
            ti = tarfile.TarInfo(name)
            ti.size, ti.mode, ti.uid, ti.gid = len(data), mode, 7, 8
            tf.addfile(ti, io.BytesIO(data))
    (ctx / "archive.tar.gz").write_bytes(gzip.compress(buf.getvalue()))
    env = {**dockerd.env, "DOCKER_BUILDKIT": "0"}
    r = subprocess.run(
        ["docker", "build", "--network", "none", "-t", "cmp:1", str(ctx)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    daemon.ok("build", "--network", "none", "-t", "cmp:1", str(ctx))
    theirs = json.loads(dockerd.docker("image", "inspect", "cmp:1"))[0]["Config"]
    ours = json.loads(daemon.ok("image", "inspect", "cmp:1"))[0]["Config"]
    assert {k: ours.get(k) for k in CONFIG_KEYS} == {k: theirs.get(k) for k in CONFIG_KEYS}
    trees = []
    for cli, environ in (
        ("docker", dockerd.env),
        (str(Path(sys.executable).parent / "berth"), daemon.env),
    ):
        cid = subprocess.run(
            [cli, "create", "cmp:1"], env=environ, capture_output=True, text=True, check=True
        ).stdout.strip()
        exported = subprocess.run(
            [cli, "export", cid], env=environ, capture_output=True, check=True
        ).stdout
        subprocess.run([cli, "rm", "-v", cid], env=environ, capture_output=True, check=True)
        trees.append(_tree(exported))
    theirs_tree, ours_tree = trees
    only = {k: v for k, v in theirs_tree.items() if ours_tree.get(k) != v}
    extra = {k: v for k, v in ours_tree.items() if theirs_tree.get(k) != v}
    assert only == extra == {}, f"docker only: {only}\nberth only: {extra}"
    dockerd.docker("rmi", "cmp:1")
    daemon.ok("rmi", "cmp:1")


def test_a_network_inspects_as_dockerd_s(dockerd: Dockerd, daemon: Daemon) -> None:
    """A user network's Options hold what the user set, nothing more (docker-compose 1.29
    refuses to reuse a network whose options differ from its file), and IPAM's shape is
    dockerd's. Subnets, ids and times differ by nature and are left out."""
    berth = Dockerd(daemon.base)  # the same docker CLI, at berthd's socket
    berth.env = {**daemon.env, "DOCKER_CONFIG": str(daemon.base / "cfg")}
    fmt = (
        "{{json .Options}} {{json .IPAM.Options}} {{.IPAM.Driver}} {{.Driver}} {{.Scope}} "
        "{{.Internal}} {{.EnableIPv6}} {{json .Labels}} {{json .Containers}}"
    )
    for args in (
        [],
        ["-o", "com.docker.network.bridge.name=brcmp0", "--label", "a=b"],
        ["--internal", "-o", "com.docker.network.driver.mtu=1400"],
    ):
        got = []
        for engine in (dockerd.docker, berth.docker):
            engine("network", "create", *args, "cmpnet")
            try:
                got.append(engine("network", "inspect", "-f", fmt, "cmpnet"))
            finally:
                engine("network", "rm", "cmpnet")
        assert got[0] == got[1], args


def _copied(engine: Dockerd, image: str) -> str:
    """What `COPY . /ctx/` copied, each file with its content, the random name of a
    Dockerfile from outside the context masked."""
    import re

    out = engine.docker(
        "run",
        "--rm",
        "--pull",
        "never",
        "--network",
        "none",
        image,
        "sh",
        "-c",
        'cd /ctx && find . -type f | sort | while read f; do echo "== $f"; cat "$f"; echo; done',
    )
    return re.sub(r"\.dockerfile\.[0-9a-f]{20}", ".dockerfile.RANDOM", out)


@pytest.mark.parametrize("case", ["outside", "stdin", "ignored", "kept", "exceptions", "raw"])
def test_a_build_copies_the_context_docker_copies(
    dockerd: Dockerd, daemon: Daemon, tmp_path: Path, case: str
) -> None:
    """The same context built by both (the docker CLI's classic builder, or docker-py with a
    tar of its own): `COPY .` copies the same files. A Dockerfile from outside the context
    (or stdin), and a Dockerfile or .dockerignore that .dockerignore names, are read but not
    copied; the daemon takes the rest of the context as the client sent it."""
    import io
    import tarfile

    import docker as dockerpy

    df = "FROM busybox\nCOPY . /ctx/\n"
    ctx = tmp_path / "ctx"
    (ctx / "sub").mkdir(parents=True)
    for name, data in {
        "a": "a",
        "x.log": "x",
        "sub/b": "b",
        "README.md": "r",
        "README-secret.md": "s",
        "CHANGES.md": "c",
    }.items():
        (ctx / name).write_text(data)
    (tmp_path / "Dockerfile").write_text(df)
    ignore = {
        "outside": None,
        "stdin": "*.log\n",
        "ignored": "Dockerfile\n.dockerignore\n",
        "kept": "*.log\n",
        "exceptions": "# docs\n*.md\n!README*.md\nREADME-secret.md\nsub\n!sub/b\n/Dockerfile\n",
        "raw": "*.log\nDockerfile\n",
    }[case]
    if ignore is not None:
        (ctx / ".dockerignore").write_text(ignore)
    if case not in ("outside", "stdin"):
        (ctx / "Dockerfile").write_text(df)
    berth = Dockerd(daemon.base)  # the same docker CLI, at berthd's socket
    berth.env = {**daemon.env, "DOCKER_CONFIG": str(daemon.base / "cfg")}
    got = []
    for engine in (dockerd, berth):
        if case == "raw":
            # a client that sends the whole directory, .dockerignore and all
            buf = io.BytesIO()
            with tarfile.open(fileobj=buf, mode="w") as tf:
                tf.add(str(ctx), arcname=".")
            buf.seek(0)
            client = dockerpy.DockerClient(base_url=engine.env["DOCKER_HOST"])
            try:
                client.images.build(
                    fileobj=buf, custom_context=True, tag="ctxcmp:1", network_mode="none"
                )
            finally:
                client.close()
        else:
            args = ["build", "--network", "none", "-t", "ctxcmp:1"]
            if case == "outside":
                args += ["-f", str(tmp_path / "Dockerfile")]
            elif case == "stdin":
                args += ["-f", "-"]
            r = subprocess.run(
                ["docker", *args, str(ctx)],
                env={**engine.env, "DOCKER_BUILDKIT": "0"},
                capture_output=True,
                input=df.encode() if case == "stdin" else None,
                timeout=120,
            )
            assert r.returncode == 0, r.stdout + r.stderr
        got.append(_copied(engine, "ctxcmp:1"))
        engine.docker("rmi", "ctxcmp:1")
    assert got[1] == got[0]


@pytest.mark.parametrize("network", ["none", "host"])
def test_extra_hosts_as_docker(dockerd: Dockerd, daemon: Daemon, network: str) -> None:
    """--add-host lines in /etc/hosts, on no network and on the host's."""
    args = [
        "run",
        "--rm",
        "--network",
        network,
        "--add-host",
        "one.test:10.9.9.9",
        "--add-host",
        "six.test:fd00::9",
        "busybox",
        "grep",
        "-e",
        ".test",
        "/etc/hosts",
    ]
    assert daemon.ok(*args) == dockerd.docker(args[0], "--pull", "never", *args[1:])


def test_a_failing_step_reports_as_docker(dockerd: Dockerd, daemon: Daemon, tmp_path: Path) -> None:
    """A failing RUN: the stream's last message is dockerd's errorDetail, and the docker CLI
    exits with the step's code and dockerd's message."""
    import docker as dockerpy

    (tmp_path / "Dockerfile").write_text("FROM busybox\nRUN echo oops >&2; exit 4\n")
    berth_env = {**daemon.env, "DOCKER_CONFIG": str(daemon.base / "cfg")}
    results = []
    for env in (dockerd.env, berth_env):
        client = dockerpy.APIClient(base_url=env["DOCKER_HOST"])
        try:
            msgs = list(
                client.build(path=str(tmp_path), network_mode="none", decode=True, forcerm=True)
            )
        finally:
            client.close()
        r = subprocess.run(
            ["docker", "build", "--network", "none", "--force-rm", str(tmp_path)],
            env={**env, "DOCKER_BUILDKIT": "0"},
            capture_output=True,
            text=True,
            timeout=120,
        )
        results.append(
            (
                msgs[-1],
                any("oops" in m.get("stream", "") for m in msgs),
                r.returncode,
                r.stderr.strip().splitlines()[-1],
            )
        )
    assert results[1] == results[0]
