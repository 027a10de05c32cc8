"""`berth build` (and the classic /build API through the docker CLI), the layer cache and why it
misses, multi-stage builds, .dockerignore, RUN mounts, bad Dockerfiles; `commit` and `diff`."""

from __future__ import annotations

import gzip
import io
import json
import os
import shutil
import subprocess
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from .conftest import Daemon

pytestmark = pytest.mark.root


@pytest.fixture(autouse=True)
def no_dangling_images_left(daemon: Daemon) -> Iterator[None]:
    """Builds without -t leave untagged images; the daemon is shared with other modules."""
    yield
    daemon.ok("image", "prune", "-f")


def write(root: Path, files: dict[str, str | bytes]) -> Path:
    for name, data in files.items():
        p = root / name
        p.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(data, bytes):
            p.write_bytes(data)
        else:
            p.write_text(data)
    return root


def build(
    d: Daemon, ctx: Path, *args: str, input: bytes | None = None
) -> subprocess.CompletedProcess[str]:  # noqa: A002
    r = d.berth("build", *args, str(ctx) if input is None else "-", input=input, timeout=120)
    if isinstance(r.stdout, bytes):
        r = subprocess.CompletedProcess(r.args, r.returncode, r.stdout.decode(), r.stderr.decode())
    return r


def steps(out: str) -> list[str]:
    """The cache verdict of each step after FROM: "cache" or the reason of the miss."""
    verdicts = []
    for line in out.splitlines():
        if line == " ---> Using cache":
            verdicts.append("cache")
        elif line.startswith(" ---> Not in the cache: "):
            verdicts.append(line[len(" ---> Not in the cache: ") :])
    return verdicts


DOCKERFILE = """\
FROM busybox
ARG VER=1
ENV APP=/app NAME="my app"
WORKDIR $APP
COPY a.txt ./
COPY sub /app/sub/
RUN echo "built $VER" > built.txt
LABEL version=$VER
USER app
EXPOSE 8080 53/udp
VOLUME /data
STOPSIGNAL SIGINT
HEALTHCHECK --interval=5s --retries=2 CMD echo ok
SHELL ["/bin/sh", "-ec"]
ONBUILD RUN echo child
CMD ["cat", "/app/built.txt"]
"""


def test_build_config_files_and_cache(daemon: Daemon, tmp_path: Path) -> None:
    ctx = write(
        tmp_path,
        {"Dockerfile": DOCKERFILE, "a.txt": "hello\n", "sub/b.txt": "b\n", "sub/deep/c.txt": "c\n"},
    )
    r = build(daemon, ctx, "-t", "built:1")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "Successfully tagged built:1" in r.stdout
    cfg = daemon.inspect("built:1")["Config"]
    assert cfg["Env"][-2:] == ["APP=/app", "NAME=my app"]
    assert cfg["WorkingDir"] == "/app" and cfg["User"] == "app"
    assert cfg["Labels"] == {"version": "1"}
    assert cfg["ExposedPorts"] == {"8080/tcp": {}, "53/udp": {}}
    assert cfg["Volumes"] == {"/data": {}} and cfg["StopSignal"] == "SIGINT"
    assert cfg["Healthcheck"] == {
        "Test": ["CMD-SHELL", "echo ok"],
        "Interval": 5_000_000_000,
        "Retries": 2,
    }
    assert cfg["Shell"] == ["/bin/sh", "-ec"] and cfg["OnBuild"] == ["RUN echo child"]
    assert cfg["Cmd"] == ["cat", "/app/built.txt"]
    assert daemon.ok("run", "--rm", "built:1") == "built 1\n"
    assert (
        daemon.ok("run", "--rm", "built:1", "cat", "/app/a.txt", "/app/sub/deep/c.txt")
        == "hello\nc\n"
    )
    # the runtime's mount points are not part of a RUN's layer
    diff = daemon.ok(
        "run",
        "--rm",
        "--entrypoint",
        "",
        "built:1",
        "sh",
        "-c",
        "ls -la /etc/hosts /etc/resolv.conf | wc -l",
    )
    assert diff.strip() == "2"
    # the same again: every step from the cache, the same image
    r2 = build(daemon, ctx, "-t", "built:2")
    assert steps(r2.stdout) == ["cache"] * 15, r2.stdout
    assert daemon.inspect("built:2")["Id"] == daemon.inspect("built:1")["Id"]
    # a new mtime alone changes nothing
    os.utime(ctx / "a.txt", (time.time() + 100, time.time() + 100))
    assert steps(build(daemon, ctx).stdout) == ["cache"] * 15
    # one copied file changes: that step says which, and everything after it runs again
    (ctx / "sub" / "deep" / "c.txt").write_text("changed\n")
    v = steps(build(daemon, ctx, "-t", "built:3").stdout)
    assert v[:4] == ["cache"] * 4
    assert v[4] == "copied files changed: sub/deep/c.txt", v
    assert all(x.startswith("the parent changed") for x in v[5:])
    # a build arg: the first step that uses it misses, and says so
    v = steps(build(daemon, ctx, "--build-arg", "VER=2").stdout)
    assert v[:5] == ["cache"] * 5
    assert v[5] == "build arg VER changed (1 -> 2)", v
    # --no-cache runs everything
    v = steps(build(daemon, ctx, "--no-cache").stdout)
    assert v == ["--no-cache"] * 15
    # the instruction changed
    (ctx / "Dockerfile").write_text(
        DOCKERFILE.replace("LABEL version=$VER", "LABEL version=$VER other=x")
    )
    v = steps(build(daemon, ctx).stdout)
    assert v[6] == "the instruction changed (was: LABEL version=1)", v
    # intermediate images only show with -a
    shown = daemon.ok("images", "-q")
    every = daemon.ok("images", "-aq")
    assert len(every.split()) > len(shown.split())
    daemon.ok("rmi", "built:1", "built:2", "built:3")


def test_onbuild_entrypoint_and_scratch(daemon: Daemon, tmp_path: Path) -> None:
    parent = write(
        tmp_path / "p",
        {
            "Dockerfile": "FROM busybox\nONBUILD COPY f /from-child\n"
            'ENTRYPOINT ["cat"]\nCMD ["/etc/hostname"]\n'
        },
    )
    assert build(daemon, parent, "-t", "onb:parent").returncode == 0
    child = write(
        tmp_path / "c", {"Dockerfile": 'FROM onb:parent\nENTRYPOINT ["cat"]\n', "f": "triggered\n"}
    )
    r = build(daemon, child, "-t", "onb:child")
    assert r.returncode == 0 and "# Executing 1 build trigger" in r.stdout, r.stdout
    cfg = daemon.inspect("onb:child")["Config"]
    assert cfg["OnBuild"] is None and cfg["Entrypoint"] == ["cat"]
    assert cfg["Cmd"] is None  # an ENTRYPOINT resets the CMD it inherited
    assert daemon.ok("run", "--rm", "onb:child", "/from-child") == "triggered\n"
    scratch = write(tmp_path / "s", {"Dockerfile": "FROM scratch\nCOPY f /f\n", "f": "x"})
    r = build(daemon, scratch, "-t", "onb:scratch")
    assert r.returncode == 0, r.stdout + r.stderr
    assert len(daemon.inspect("onb:scratch")["RootFS"]["Layers"]) == 1
    daemon.ok("rmi", "onb:child", "onb:parent", "onb:scratch")


def test_multistage_target_and_unused_stages(daemon: Daemon, tmp_path: Path) -> None:
    ctx = write(
        tmp_path,
        {
            "Dockerfile": """\
ARG BASE=busybox
FROM $BASE AS builder
RUN echo compiled > /out.bin
FROM busybox AS never
RUN echo "this stage is not needed" && exit 1
FROM builder AS tested
RUN test -f /out.bin
FROM busybox
COPY --from=builder /out.bin /app/
COPY --from=0 /out.bin /app/again.bin
COPY --from=busybox /etc/group /app/group
CMD ["cat", "/app/out.bin"]
"""
        },
    )
    r = build(daemon, ctx, "-t", "multi:1")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "this stage is not needed" not in r.stdout
    assert daemon.ok("run", "--rm", "multi:1") == "compiled\n"
    assert daemon.ok("run", "--rm", "multi:1", "cat", "/app/again.bin") == "compiled\n"
    r = build(daemon, ctx, "-t", "multi:tested", "--target", "tested")
    assert r.returncode == 0 and "Step" in r.stdout
    assert daemon.ok("run", "--rm", "multi:tested", "cat", "/out.bin") == "compiled\n"
    r = build(daemon, ctx, "--target", "nope")
    assert r.returncode != 0 and "failed to reach build target nope" in r.stderr
    daemon.ok("rmi", "multi:1", "multi:tested")


def test_dockerignore_other_dockerfiles_and_stdin(daemon: Daemon, tmp_path: Path) -> None:
    ctx = write(
        tmp_path / "ctx",
        {
            ".dockerignore": "*.log\n!keep.log\n**/tmp\nsecret/\n",
            "a.log": "x",
            "keep.log": "kept",
            "src/tmp/t": "x",
            "src/ok": "ok",
            "secret/key": "k",
            "other/Dockerfile": "FROM busybox\nCOPY . /ctx/\n",
            "other/Dockerfile.dockerignore": "src\n",
            "Dockerfile": "FROM busybox\nCOPY . /ctx/\n",
        },
    )
    assert build(daemon, ctx, "-t", "ign:1").returncode == 0
    listing = daemon.ok("run", "--rm", "ign:1", "find", "/ctx", "-type", "f").split()
    assert sorted(listing) == [
        "/ctx/.dockerignore",
        "/ctx/Dockerfile",
        "/ctx/keep.log",
        "/ctx/other/Dockerfile",
        "/ctx/other/Dockerfile.dockerignore",
        "/ctx/src/ok",
    ]
    # -f: another Dockerfile, and its own .dockerignore
    assert (
        build(daemon, ctx, "-t", "ign:2", "-f", str(ctx / "other" / "Dockerfile")).returncode == 0
    )
    listing = daemon.ok("run", "--rm", "ign:2", "find", "/ctx", "-type", "f").split()
    assert "/ctx/a.log" in listing and not any(p.startswith("/ctx/src") for p in listing)
    # -f -: the Dockerfile from stdin, the context from the directory
    r = daemon.berth(
        "build",
        "-t",
        "ign:3",
        "-f",
        "-",
        str(ctx),
        input=b'FROM busybox\nCOPY keep.log /k\nCMD ["cat", "/k"]\n',
    )
    assert r.returncode == 0, r.stderr
    assert daemon.ok("run", "--rm", "ign:3") == "kept"
    # - : a Dockerfile and no context
    r = build(daemon, ctx, "-t", "ign:4", input=b"FROM busybox\nRUN echo no context\n")
    assert r.returncode == 0 and "no context" in r.stdout
    # -q and --iidfile
    iid = tmp_path / "iid"
    r = build(daemon, ctx, "-q", "--iidfile", str(iid))
    assert r.stdout.strip() == iid.read_text() and iid.read_text().startswith("sha256:")
    daemon.ok("rmi", "ign:1", "ign:2", "ign:3", "ign:4")


def test_copy_add_forms(daemon: Daemon, tmp_path: Path) -> None:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        for name, data in (("pkg/one", b"1\n"), ("pkg/two", b"2\n")):
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            tf.addfile(ti, io.BytesIO(data))
    # the URL is served by a container on the daemon's bridge: the host's own addresses are
    # refused without network.host (tests/security/test_build_entitlements.py)
    web = daemon.ok(
        "run",
        "-d",
        "busybox",
        "sh",
        "-c",
        "mkdir /www && echo 'from a url' > /www/remote.txt && exec httpd -f -p 8080 -h /www",
    ).strip()
    try:
        ip = daemon.inspect(web)["NetworkSettings"]["IPAddress"]
        url = f"http://{ip}:8080/remote.txt"
        ctx = write(
            tmp_path / "ctx",
            {
                "pkg.tar.gz": gzip.compress(buf.getvalue()),
                "x1.txt": "x1",
                "x2.txt": "x2",
                "run.sh": "#!/bin/sh\necho ran\n",
                "Dockerfile": f"""\
FROM busybox
ADD pkg.tar.gz /opt/
ADD {url} /srv/
COPY x*.txt /many/
COPY --chown=app:staff x1.txt /owned/x1
COPY --chmod=0750 run.sh /usr/local/bin/run
COPY <<EOF /etc/motd
hello from a heredoc
EOF
RUN <<EOF
echo script line 1 > /script.out
echo script line 2 >> /script.out
EOF
""",
            },
        )
        r = build(daemon, ctx, "-t", "forms:1")
        assert r.returncode == 0, r.stdout + r.stderr
        sh = daemon.ok(
            "run",
            "--rm",
            "forms:1",
            "sh",
            "-c",
            "cat /opt/pkg/one /opt/pkg/two /srv/remote.txt /etc/motd /script.out; "
            "ls /many; stat -c '%u:%g %a' /owned/x1 /usr/local/bin/run /srv/remote.txt;"
            " run",
        )
        assert sh.split("\n") == [
            "1",
            "2",
            "from a url",
            "hello from a heredoc",
            "script line 1",
            "script line 2",
            "x1.txt",
            "x2.txt",
            "1000:50 644",
            "0:0 750",
            "0:0 600",
            "ran",
            "",
        ]
    finally:
        daemon.berth("rm", "-f", web)
    daemon.ok("rmi", "forms:1")


def test_run_mounts_and_network(daemon: Daemon, tmp_path: Path) -> None:
    secret = tmp_path / "token"
    secret.write_text("s3cr3t")
    ctx = write(
        tmp_path / "ctx",
        {
            "data/in.txt": "bound\n",
            "Dockerfile": """\
FROM busybox
RUN --mount=type=cache,target=/cache echo run >> /cache/log && wc -l < /cache/log > /count
RUN --mount=type=bind,source=data,target=/mnt cat /mnt/in.txt > /bound
RUN --mount=type=tmpfs,target=/scratch touch /scratch/x && ! test -e /scratch/y
RUN --mount=type=secret,id=tok,required=true cat /run/secrets/tok > /dev/null && test -s /run/secrets/tok
RUN --network=none sh -c '! ip link | grep -q eth0'
""",
        },
    )
    r = build(daemon, ctx, "-t", "mounts:1", "--secret", f"id=tok,src={secret}")
    assert r.returncode == 0, r.stdout + r.stderr
    out = daemon.ok(
        "run",
        "--rm",
        "mounts:1",
        "sh",
        "-c",
        "cat /count /bound; ls /cache /scratch /run/secrets 2>&1 | wc -l",
    )
    first, bound, _ = out.split("\n", 2)
    assert first == "1" and bound == "bound"
    assert "s3cr3t" not in daemon.ok("history", "--no-trunc", "mounts:1")
    # the cache mount outlives the build
    r = build(daemon, ctx, "-t", "mounts:2", "--no-cache", "--secret", f"id=tok,src={secret}")
    assert r.returncode == 0, r.stdout + r.stderr
    assert daemon.ok("run", "--rm", "mounts:2", "cat", "/count") == "2\n"
    r = build(daemon, ctx, "--no-cache")
    assert r.returncode != 0 and "secret tok not found" in r.stderr
    daemon.ok("rmi", "mounts:1", "mounts:2")


@pytest.mark.parametrize(
    "dockerfile,wanted",
    [
        (
            "FROM busybox\nFOO bar\n",
            "Dockerfile:2: dockerfile parse error on line 2: unknown instruction: FOO",
        ),
        ("RUN echo\nFROM busybox\n", "Dockerfile:1: no build stage in current context"),
        (
            "FROM busybox\nCOPY missing.txt /\n",
            "Dockerfile:2: COPY failed: file not found in build "
            "context or excluded by .dockerignore: stat "
            "missing.txt: file does not exist",
        ),
        ("FROM busybox\nCOPY ../outside /\n", "forbidden path outside the build context"),
        ("FROM busybox\nCOPY --from=nostage /x /\n", "invalid from flag value nostage"),
        ("FROM busybox\nENV\n", "Dockerfile:2: ENV requires at least one argument"),
        (
            "FROM busybox\nCOPY a b c\n",
            "When using COPY with more than one source file, the "
            "destination must be a directory and end with a /",
        ),
    ],
)
def test_bad_dockerfiles(daemon: Daemon, tmp_path: Path, dockerfile: str, wanted: str) -> None:
    ctx = write(tmp_path, {"Dockerfile": dockerfile, "a": "a", "b": "b"})
    r = build(daemon, ctx, "-t", "bad:1")
    assert r.returncode != 0
    assert wanted in r.stderr, r.stderr
    assert daemon.berth("image", "inspect", "bad:1").returncode == 1


def test_failing_run_keeps_tags_and_complete_cache(daemon: Daemon, tmp_path: Path) -> None:
    ctx = write(
        tmp_path,
        {"Dockerfile": "FROM busybox\nRUN echo first > /f\nRUN echo out; echo err >&2; exit 3\n"},
    )
    daemon.ok("tag", "busybox", "keep:1")
    before = daemon.inspect("keep:1")["Id"]
    r = build(daemon, ctx, "-t", "keep:1", "--force-rm")
    assert r.returncode == 3
    assert "out\n" in r.stdout and "err" in r.stdout
    assert (
        "The command '/bin/sh -c echo out; echo err >&2; exit 3' returned a non-zero "
        "code: 3" in r.stderr
    )
    assert daemon.inspect("keep:1")["Id"] == before
    assert daemon.ok("ps", "-aq", "--filter", "label=berth.build") == ""
    # the steps before the failure were complete: they are in the cache
    v = steps(build(daemon, ctx, "--force-rm").stdout)
    assert v[0] == "cache"
    daemon.ok("rmi", "keep:1")


def test_commit_and_diff(daemon: Daemon) -> None:
    cid = daemon.ok(
        "run",
        "-d",
        "busybox",
        "sh",
        "-c",
        "mkdir -p /new/dir && echo x > /new/dir/f && rm /bin/vi && "
        "echo changed >> /etc/group && sleep 60",
    ).strip()
    try:
        deadline = time.time() + 10
        while "A /new/dir/f" not in daemon.ok("diff", cid) and time.time() < deadline:
            time.sleep(0.1)
        diff = daemon.ok("diff", cid).splitlines()
        assert {
            "A /new",
            "A /new/dir",
            "A /new/dir/f",
            "C /bin",
            "D /bin/vi",
            "C /etc",
            "C /etc/group",
        } <= set(diff), diff
        assert not any("hosts" in x or "resolv" in x for x in diff)
        iid = daemon.ok(
            "commit",
            "-m",
            "a message",
            "-a",
            "me",
            "-c",
            "ENV COMMITTED=1",
            "-c",
            'CMD ["cat", "/new/dir/f"]',
            cid,
            "committed:1",
        ).strip()
        assert iid.startswith("sha256:")
    finally:
        daemon.ok("rm", "-f", cid)
    info = daemon.inspect("committed:1")
    assert info["Author"] == "me" and info["Comment"] == "a message"
    assert "COMMITTED=1" in info["Config"]["Env"]
    assert daemon.ok("run", "--rm", "committed:1") == "x\n"
    assert daemon.berth("run", "--rm", "committed:1", "test", "-e", "/bin/vi").returncode == 1
    daemon.ok("rmi", "committed:1")


def test_docker_cli_classic_build(daemon: Daemon, tmp_path: Path) -> None:
    if not shutil.which("docker"):
        pytest.skip("needs the docker CLI")
    ctx = write(
        tmp_path,
        {
            "Dockerfile": "FROM busybox\nARG MSG=dflt\nCOPY f /f\n"
            'RUN echo $MSG > /msg\nCMD ["cat", "/msg", "/f"]\n',
            "f": "file\n",
        },
    )
    env = {**daemon.env, "DOCKER_BUILDKIT": "0"}

    def docker(*a: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["docker", *a], env=env, capture_output=True, text=True, timeout=120)

    r = docker("build", "-t", "dkbuild:1", "--build-arg", "MSG=given", str(ctx))
    assert r.returncode == 0, r.stderr
    assert "Successfully tagged dkbuild:1" in r.stdout
    assert docker("run", "--rm", "dkbuild:1").stdout == "given\nfile\n"
    r = docker("build", "-q", "--build-arg", "MSG=given", str(ctx))
    assert r.stdout.strip() == json.loads(daemon.ok("image", "inspect", "dkbuild:1"))[0]["Id"]
    import docker as dockerpy

    client = dockerpy.DockerClient(base_url=daemon.host)
    try:
        img, logs = client.images.build(
            path=str(ctx), tag="dkbuild:2", buildargs={"MSG": "py"}, rm=True
        )
        assert "dkbuild:2" in img.tags
        assert any("Successfully built" in m.get("stream", "") for m in logs)
    finally:
        client.close()
    daemon.ok("rmi", "dkbuild:1", "dkbuild:2")


def test_labels_cache_from_and_proxy_args(daemon: Daemon, tmp_path: Path) -> None:
    ctx = write(
        tmp_path,
        {"Dockerfile": 'FROM busybox\nRUN echo "proxy=$http_proxy" > /p\nLABEL from=dockerfile\n'},
    )
    r = build(
        daemon,
        ctx,
        "-t",
        "lab:1",
        "--label",
        "extra=yes",
        "--build-arg",
        "http_proxy=http://127.0.0.1:9",
    )
    assert r.returncode == 0, r.stdout + r.stderr
    assert "were not consumed" not in r.stdout  # the proxy args need no ARG
    assert daemon.inspect("lab:1")["Config"]["Labels"] == {"from": "dockerfile", "extra": "yes"}
    assert daemon.ok("run", "--rm", "lab:1", "cat", "/p") == "proxy=http://127.0.0.1:9\n"
    # an unused build arg is named
    r = build(daemon, ctx, "--build-arg", "UNUSED=1")
    assert "[Warning] One or more build-args [UNUSED] were not consumed" in r.stdout
    # --cache-from: only steps in that image's history come from the cache
    r = build(daemon, ctx, "--cache-from", "busybox")
    assert steps(r.stdout)[0] == "not in the history of the --cache-from images"
    r = build(daemon, ctx, "--cache-from", "lab:1", "-t", "lab:2")
    assert steps(r.stdout) == ["cache", "cache"], r.stdout
    daemon.ok("rmi", "lab:1", "lab:2")


def test_bind_mount_sources_stay_in_their_tree(daemon: Daemon, tmp_path: Path) -> None:
    """A symlink to a host path, in the context or in a stage, is followed inside that tree:
    a RUN --mount never binds a host directory."""
    (tmp_path / "ctxlink").symlink_to("/etc")
    write(
        tmp_path,
        {
            "Dockerfile": """\
FROM busybox AS s
RUN ln -s /etc /evil
FROM busybox
RUN --mount=type=bind,from=s,source=evil,target=/m test -e /m/passwd && ! test -e /m/os-release
RUN --mount=type=bind,source=ctxlink,target=/c ! test -e /c/os-release
"""
        },
    )
    assert Path("/etc/os-release").exists()
    r = build(daemon, tmp_path, "--no-cache")
    # the stage's link leads to the stage's /etc; the context's to nothing in the context
    assert "Step 4/5" in r.stdout and "Step 5/5" in r.stdout, r.stdout + r.stderr
    assert r.returncode != 0 and "ctxlink: not found in the build context" in r.stderr


def _docker(
    daemon: Daemon,
    *a: str,
    input: bytes | None = None,  # noqa: A002
) -> subprocess.CompletedProcess[str]:
    """The real docker CLI's classic builder against berthd."""
    if not shutil.which("docker"):
        pytest.skip("needs the docker CLI")
    r = subprocess.run(
        ["docker", *a],
        env={**daemon.env, "DOCKER_BUILDKIT": "0"},
        capture_output=True,
        input=input,
        timeout=120,
    )
    return subprocess.CompletedProcess(r.args, r.returncode, r.stdout.decode(), r.stderr.decode())


def _files(daemon: Daemon, image: str) -> dict[str, str]:
    """What `COPY . /ctx/` copied: path -> content."""
    out = daemon.ok(
        "run",
        "--rm",
        image,
        "sh",
        "-c",
        'cd /ctx && find . -type f | sort | while read f; do echo "== $f"; cat "$f"; echo; done',
    )
    files: dict[str, str] = {}
    name = ""
    for line in out.splitlines():
        if line.startswith("== ./"):
            name = line[5:]
            files[name] = ""
        else:
            files[name] += line + "\n"
    return {k: v[:-1] for k, v in files.items()}


@pytest.mark.parametrize("client", ["berth", "docker"])
def test_build_files_are_not_copied(
    daemon: Daemon, tmp_path: Path, client: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As with dockerd: a Dockerfile from outside the context (or stdin) comes as
    `.dockerfile.<random>` and, like an ignored Dockerfile or .dockerignore, is read by the
    daemon but not copied by `COPY .`."""

    def run(*a: str, input: bytes | None = None) -> None:  # noqa: A002
        if client == "berth":
            r = daemon.berth("build", *a, input=input, timeout=120)
        else:
            r = _docker(daemon, "build", *a, input=input)
        assert r.returncode == 0, f"{r.stdout!r} {r.stderr!r}"

    df = "FROM busybox\nCOPY . /ctx/\n"
    outside = write(tmp_path / "outside", {"Dockerfile": df})
    ctx = write(tmp_path / "ctx", {"a": "a", "sub/b": "b"})
    # no .dockerignore: the one the client makes is not copied either
    run("-t", "bf:1", "-f", str(outside / "Dockerfile"), str(ctx))
    assert _files(daemon, "bf:1") == {"a": "a", "sub/b": "b"}
    monkeypatch.chdir(ctx)
    run("-t", "bf:1", "-f", "../outside/Dockerfile", ".")
    assert _files(daemon, "bf:1") == {"a": "a", "sub/b": "b"}
    run("-t", "bf:1", "-f", "-", str(ctx), input=df.encode())
    assert _files(daemon, "bf:1") == {"a": "a", "sub/b": "b"}
    # a .dockerignore that does not name itself is copied, with the random name added
    write(ctx, {".dockerignore": "*.log\n", "x.log": "x"})
    run("-t", "bf:1", "-f", str(outside / "Dockerfile"), str(ctx))
    files = _files(daemon, "bf:1")
    ignore = files.pop(".dockerignore")
    assert files == {"a": "a", "sub/b": "b"}
    assert ignore.startswith("*.log\n\n.dockerfile.") and len(ignore.splitlines()) == 3, ignore
    # the Dockerfile and .dockerignore named in .dockerignore: read, not copied
    write(ctx, {".dockerignore": "Dockerfile\n.dockerignore\n*.log\n", "Dockerfile": df})
    run("-t", "bf:1", str(ctx))
    assert _files(daemon, "bf:1") == {"a": "a", "sub/b": "b"}
    # a Dockerfile in an ignored directory
    write(ctx, {".dockerignore": "sub\n", "sub/Dockerfile": df})
    run("-t", "bf:1", "-f", str(ctx / "sub" / "Dockerfile"), str(ctx))
    assert _files(daemon, "bf:1") == {
        "Dockerfile": df,
        "a": "a",
        "x.log": "x",
        ".dockerignore": "sub\n",
    }
    # exceptions: a later ! brings back what an earlier pattern left out
    write(
        ctx,
        {
            ".dockerignore": "# the docs' example\n*.md\n!README*.md\nREADME-secret.md\n"
            "sub\n!sub/keep\n/Dockerfile\n.dockerignore\n",
            "README.md": "r",
            "README-secret.md": "s",
            "CHANGES.md": "c",
            "sub/keep": "k",
        },
    )
    run("-t", "bf:1", str(ctx))
    assert _files(daemon, "bf:1") == {"README.md": "r", "a": "a", "sub/keep": "k", "x.log": "x"}
    daemon.ok("rmi", "bf:1")


def test_build_extra_hosts(daemon: Daemon, tmp_path: Path) -> None:
    """--add-host (the API's `extrahosts`): every RUN step's /etc/hosts; host-gateway is the
    daemon's default bridge's gateway."""
    ctx = write(
        tmp_path,
        {"Dockerfile": "FROM busybox\nRUN cat /etc/hosts > /h1\nRUN cat /etc/hosts > /h2\n"},
    )
    gateway = daemon.bip.split("/")[0]
    r = build(
        daemon,
        ctx,
        "-t",
        "xh:1",
        "--add-host",
        "db.local:10.9.8.7",
        "--add-host",
        "gw:host-gateway",
        "--add-host",
        "six=::1",
    )
    assert r.returncode == 0, r.stdout + r.stderr
    for h in ("/h1", "/h2"):
        hosts = daemon.ok("run", "--rm", "xh:1", "cat", h)
        assert "10.9.8.7\tdb.local\n" in hosts and f"{gateway}\tgw\n" in hosts, hosts
        assert "::1\tsix\n" in hosts
    # the docker CLI sends the same (one extrahosts per --add-host); docker-py too
    r = _docker(
        daemon, "build", "--no-cache", "-t", "xh:2", "--add-host", "other:10.1.1.1", str(ctx)
    )
    assert r.returncode == 0, r.stderr
    assert "10.1.1.1\tother\n" in daemon.ok("run", "--rm", "xh:2", "cat", "/h2")
    import docker as dockerpy

    client = dockerpy.DockerClient(base_url=daemon.host)
    try:
        client.images.build(path=str(ctx), tag="xh:3", nocache=True, extra_hosts={"py": "10.2.2.2"})
    finally:
        client.close()
    assert "10.2.2.2\tpy\n" in daemon.ok("run", "--rm", "xh:3", "cat", "/h1")
    r = build(daemon, ctx, "--add-host", "bad")
    assert r.returncode != 0 and "bad format for add-host" in r.stderr
    daemon.ok("rmi", "xh:1", "xh:2", "xh:3")


def test_failing_step_error_detail(daemon: Daemon, tmp_path: Path) -> None:
    """A failing RUN step, as the classic builder reports it: its output in the stream, then
    errorDetail with the command and its code; the docker CLI exits with that code and
    docker-py raises BuildError with the log."""
    ctx = write(tmp_path, {"Dockerfile": "FROM busybox\nRUN echo to-stderr >&2; exit 7\n"})
    r = _docker(daemon, "build", str(ctx))
    assert r.returncode == 7, r.stdout + r.stderr
    assert "to-stderr" in r.stdout
    assert (
        "The command '/bin/sh -c echo to-stderr >&2; exit 7' returned a non-zero code: 7"
        in r.stderr
    )
    import docker as dockerpy

    client = dockerpy.DockerClient(base_url=daemon.host)
    try:
        with pytest.raises(dockerpy.errors.BuildError) as err:
            client.images.build(path=str(ctx), rm=True)
        raw = list(client.api.build(path=str(ctx), rm=True, decode=True))
    finally:
        client.close()
    assert "returned a non-zero code: 7" in err.value.msg
    assert any("to-stderr" in m.get("stream", "") for m in err.value.build_log)
    assert raw[-1] == {
        "errorDetail": {
            "code": 7,
            "message": "The command '/bin/sh -c echo "
            "to-stderr >&2; exit 7' returned a non-zero code: 7",
        },
        "error": "The command '/bin/sh -c echo to-stderr >&2; exit 7' returned a non-zero code: 7",
    }
    daemon.ok("container", "prune", "-f")
