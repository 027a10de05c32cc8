"""The real docker CLI driving berthd, as it drives dockerd (DOCKER_HOST at berthd's socket)."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from .conftest import Daemon

pytestmark = [pytest.mark.root, pytest.mark.docker_cli]


def docker(
    d: Daemon,
    *args: str,
    input: bytes | None = None,  # noqa: A002
    timeout: float = 60,
) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("docker")
    if exe is None:
        pytest.skip("the docker CLI is not installed")
    env = {**d.env, "DOCKER_CONFIG": str(d.base / "docker-config")}
    return subprocess.run(
        [exe, *args], env=env, capture_output=True, timeout=timeout, text=input is None, input=input
    )


def ok(d: Daemon, *args: str) -> str:
    r = docker(d, *args)
    assert r.returncode == 0, f"docker {' '.join(args)}: {r.returncode} {r.stderr}"
    return r.stdout


def test_version_and_info(daemon: Daemon) -> None:
    out = ok(daemon, "version")
    assert "Server: berth" in out and "API version:      1.50" in out
    info = json.loads(ok(daemon, "info", "--format", "{{json .}}"))
    assert info["Driver"] in ("overlay2", "vfs") and info["DockerRootDir"] == str(daemon.data_root)


def test_import_images_run_ps_logs_stop_rm(daemon: Daemon, rootfs_tar: Path) -> None:
    iid = ok(
        daemon, "import", "--change", 'CMD ["echo", "dflt"]', str(rootfs_tar), "dk/busy:1"
    ).strip()
    assert iid.startswith("sha256:")
    assert "dk/busy" in ok(daemon, "images")
    r = docker(
        daemon,
        "run",
        "--rm",
        "--pull",
        "never",
        "dk/busy:1",
        "sh",
        "-c",
        "echo to-out; echo to-err >&2; exit 5",
    )
    assert (r.returncode, r.stdout, r.stderr) == (5, "to-out\n", "to-err\n")
    assert ok(daemon, "run", "--rm", "--pull", "never", "dk/busy:1").strip() == "dflt"
    r = docker(daemon, "run", "--rm", "--pull", "never", "dk/busy:1", "nope")
    assert r.returncode == 127 and "executable file not found" in r.stderr
    cid = ok(
        daemon,
        "run",
        "-d",
        "--name",
        "dk-bg",
        "--pull",
        "never",
        "dk/busy:1",
        "sh",
        "-c",
        "for i in 1 2 3; do echo n$i; sleep 0.2; done; sleep 30",
    ).strip()
    assert len(cid) == 64
    assert "dk-bg" in ok(daemon, "ps")
    deadline = time.time() + 5
    while "n3" not in ok(daemon, "logs", "dk-bg") and time.time() < deadline:
        time.sleep(0.1)
    assert ok(daemon, "logs", "dk-bg") == "n1\nn2\nn3\n"
    state = json.loads(ok(daemon, "inspect", "dk-bg"))[0]["State"]
    assert state["Running"] is True
    assert ok(daemon, "stop", "-t", "1", "dk-bg").strip() == "dk-bg"
    assert json.loads(ok(daemon, "inspect", "dk-bg"))[0]["State"]["ExitCode"] == 137
    assert "Exited (137)" in ok(daemon, "ps", "-a")
    ok(daemon, "rm", "dk-bg")
    r = docker(daemon, "rm", "dk-bg")
    assert r.returncode == 1 and "No such container: dk-bg" in r.stderr


def test_logs_follow(daemon: Daemon) -> None:
    ok(
        daemon,
        "run",
        "-d",
        "--name",
        "dk-follow",
        "busybox",
        "sh",
        "-c",
        "for i in 1 2 3; do echo f$i; sleep 0.2; done",
    )
    assert ok(daemon, "logs", "-f", "dk-follow") == "f1\nf2\nf3\n"
    ok(daemon, "rm", "dk-follow")


def test_errors_match_docker(daemon: Daemon) -> None:
    r = docker(daemon, "run", "--rm", "--pull", "never", "missing-image:7", "true")
    assert r.returncode == 125 and "No such image: missing-image:7" in r.stderr
    ok(daemon, "create", "--name", "dk-dup", "busybox", "true")
    r = docker(daemon, "create", "--name", "dk-dup", "busybox", "true")
    assert r.returncode == 1 and "is already in use" in r.stderr
    ok(daemon, "rm", "dk-dup")


def test_save_load_rmi(daemon: Daemon, rootfs_tar: Path, tmp_path: Path) -> None:
    ok(daemon, "import", str(rootfs_tar), "dk/save:1")
    out = tmp_path / "s.tar"
    ok(daemon, "save", "-o", str(out), "dk/save:1")
    assert "Untagged: dk/save:1" in ok(daemon, "rmi", "dk/save:1")
    assert "Loaded image: dk/save:1" in ok(daemon, "load", "-i", str(out))
    assert ok(daemon, "run", "--rm", "dk/save:1", "echo", "back").strip() == "back"
    ok(daemon, "rmi", "dk/save:1")


def test_networks_ports_and_volumes(daemon: Daemon) -> None:
    import urllib.request

    ok(daemon, "network", "create", "dk-net")
    ok(daemon, "volume", "create", "dk-vol")
    try:
        ok(
            daemon,
            "run",
            "--rm",
            "-v",
            "dk-vol:/data",
            "busybox",
            "sh",
            "-c",
            "echo from-volume > /data/hostname",
        )
        ok(
            daemon,
            "run",
            "-d",
            "--name",
            "dk-web",
            "--network",
            "dk-net",
            "-p",
            "127.0.0.1::80",
            "-v",
            "dk-vol:/www",
            "busybox",
            "httpd",
            "-f",
            "-p",
            "80",
            "-h",
            "/www",
        )
        port = ok(daemon, "port", "dk-web", "80").strip().rsplit(":", 1)[1]
        body = urllib.request.urlopen(f"http://127.0.0.1:{port}/hostname", timeout=5).read()
        assert body == b"from-volume\n"
        assert (
            ok(
                daemon,
                "run",
                "--rm",
                "--network",
                "dk-net",
                "busybox",
                "wget",
                "-qO-",
                "http://dk-web/hostname",
            )
            == "from-volume\n"
        )
        r = docker(
            daemon, "run", "--rm", "busybox", "wget", "-T", "2", "-qO-", "http://dk-web/hostname"
        )
        assert r.returncode != 0  # the default bridge does not resolve names
        assert "dk-net" in ok(daemon, "network", "ls")
        assert "dk-vol" in ok(daemon, "volume", "ls")
    finally:
        docker(daemon, "rm", "-f", "dk-web")
        docker(daemon, "network", "rm", "dk-net")
        docker(daemon, "volume", "rm", "dk-vol")


def test_swarm_routes_answer_as_a_daemon_outside_a_swarm(daemon: Daemon) -> None:
    """Clients call `swarm leave --force` in their set-up and tolerate dockerd's 503, not a 404."""
    r = docker(daemon, "swarm", "leave", "--force")
    assert r.returncode == 1 and "This node is not part of a swarm" in r.stderr, r.stderr
    for args in (("node", "ls"), ("service", "ls"), ("secret", "ls"), ("config", "ls")):
        r = docker(daemon, *args)
        assert r.returncode == 1 and "This node is not a swarm manager" in r.stderr, (args, r)
    import docker as dockerpy

    client = dockerpy.DockerClient(base_url=daemon.host)
    try:
        assert client.swarm.leave(force=True) is True  # docker-py tolerates the 503
    finally:
        client.close()


@pytest.mark.parametrize("tz", ["UTC", "Asia/Kolkata"])
def test_events_print_as_docker_prints_them(daemon: Daemon, tz: str) -> None:
    """Scripts parse `events`: berth's lines are docker's to the letter (Go's RFC3339Nano with
    nine digits: "Z" in UTC, else +hh:mm)."""
    since = f"{time.time():.3f}"
    daemon.ok("run", "--rm", "--name", f"ev-{tz[:3].lower()}", "busybox", "true")
    until = f"{time.time() + 0.5:.3f}"
    time.sleep(0.6)
    daemon.env["TZ"] = tz
    try:
        mine = daemon.ok("events", "--since", since, "--until", until)
        theirs = subprocess.run(
            ["docker", "events", "--since", since, "--until", until],
            env={**daemon.env, "DOCKER_CONFIG": str(daemon.base / "dcfg")},
            capture_output=True,
            text=True,
            timeout=30,
        ).stdout
    finally:
        del daemon.env["TZ"]
    assert mine and mine == theirs
    assert mine.split()[0].endswith("Z" if tz == "UTC" else "+05:30")


@pytest.mark.parametrize("paused", [False, True])
def test_kill_returns_once_the_container_is_dead(daemon: Daemon, paused: bool) -> None:
    """docker-py's kill() with the default signal, then at once the state: exited, 137."""
    import docker as dockerpy

    client = dockerpy.DockerClient(base_url=daemon.host)
    c = client.containers.run("busybox", ["sleep", "60"], detach=True)
    try:
        if paused:
            c.pause()
        c.kill()
        c.reload()
        assert (c.status, c.attrs["State"]["ExitCode"]) == ("exited", 137)
        assert c.attrs["State"]["Paused"] is False
        ok(daemon, "start", c.id)
        r = docker(daemon, "kill", c.id)
        assert r.returncode == 0 and r.stdout.strip() == c.id
        assert (
            ok(daemon, "inspect", "-f", "{{.State.Status}} {{.State.ExitCode}}", c.id)
            == "exited 137\n"
        )
    finally:
        c.remove(force=True)
        client.close()


def test_log_drivers(daemon: Daemon) -> None:
    """json-file when none is named; local and none accepted; an unknown one refused at
    create; `logs` of a container with `none` says it cannot read."""
    r = docker(daemon, "run", "--rm", "--log-driver", "bogus", "busybox", "true")
    assert r.returncode == 125 and "no log driver named 'bogus' is registered" in r.stderr
    cid = ok(daemon, "create", "busybox", "true").strip()
    assert ok(daemon, "inspect", "-f", "{{.HostConfig.LogConfig.Type}}", cid) == "json-file\n"
    ok(daemon, "rm", cid)
    for driver in ("local", "none"):
        cid = ok(daemon, "run", "-d", "--log-driver", driver, "busybox", "echo", "hi").strip()
        try:
            ok(daemon, "wait", cid)
            assert (
                ok(daemon, "inspect", "-f", "{{.HostConfig.LogConfig.Type}}", cid) == f"{driver}\n"
            )
            r = docker(daemon, "logs", cid)
            if driver == "local":
                assert r.returncode == 0 and r.stdout == "hi\n", r
            else:
                assert (
                    r.returncode == 1
                    and "configured logging driver does not support reading" in r.stderr
                ), r
        finally:
            ok(daemon, "rm", "-f", cid)


def _timeless(text: str) -> str:
    """Output with its ages ("3 seconds ago", "Up 2 seconds") made one word and the columns
    one space apart: two runs a second apart may age differently."""
    import re

    text = re.sub(
        r"(About an? (minute|hour)|Less than a second|"
        r"\d+ (second|minute|hour|day|week|month|year)s?)( ago)?",
        "T",
        text,
    )
    return "\n".join(" ".join(line.split()) for line in text.splitlines())


def test_system_df_and_prune(daemon: Daemon) -> None:
    """`system df` (plain, -v, --format) prints what the docker CLI prints from the same
    /system/df; `system prune -f --volumes` removes what docker's would."""
    cid = daemon.ok(
        "run",
        "-d",
        "-v",
        "dfvol:/v",
        "busybox",
        "sh",
        "-c",
        "echo x > /v/a; head -c 100000 /dev/zero > /big; sleep 60",
    ).strip()
    daemon.ok("run", "--name", "df-stopped", "-v", "/anon", "busybox", "true")
    try:
        time.sleep(0.3)
        for args in (
            ["system", "df"],
            ["system", "df", "-v"],
            ["system", "df", "--format", "{{.Type}}: {{.Size}} {{.Reclaimable}}"],
            ["system", "df", "--format", "table {{.Type}}\t{{.Active}}"],
        ):
            assert _timeless(daemon.ok(*args)) == _timeless(ok(daemon, *args)), args
        r = daemon.berth("system", "df", "-v", "--format", "x")
        assert r.returncode != 0
        out = daemon.ok("system", "prune", "-f", "--volumes")
        assert "Deleted Containers:\n" in out and "Total reclaimed space:" in out
        assert daemon.berth("inspect", "df-stopped").returncode != 0
        assert daemon.inspect(cid)["State"]["Running"]  # in use: kept
        assert "dfvol" in daemon.ok("volume", "ls", "-q")
        assert daemon.ok("system", "info", "--format", "{{.ID}}").strip()
    finally:
        daemon.berth("rm", "-f", cid, "df-stopped")
        daemon.berth("volume", "rm", "dfvol")


@pytest.mark.parametrize("content", [b"\x8f garbage " * 300, b"not a tar\n", b""])
def test_load_of_a_bad_archive(daemon: Daemon, tmp_path: Path, content: bytes) -> None:
    """As dockerd: a 200 whose JSON stream carries the error, so the docker CLI prints the
    message as it is and exits 1, docker-py raises ImageLoadError; nothing is kept."""
    import tarfile

    bad = tmp_path / "bad.tar"
    if content:
        bad.write_bytes(content)
    else:
        with tarfile.open(bad, "w"):
            pass
    before = daemon.ok("images", "-aq")
    r = docker(daemon, "load", "-i", str(bad))
    assert r.returncode == 1 and "Error response from daemon" not in r.stderr, r
    if content:
        assert r.stderr.startswith("Error processing tar file(exit status 1): "), r.stderr
    else:
        assert "no manifest.json" in r.stderr
    mine = daemon.berth("load", "-i", str(bad))
    assert (mine.returncode, mine.stderr) == (1, r.stderr)
    import docker as dockerpy

    client = dockerpy.DockerClient(base_url=daemon.host)
    try:
        with pytest.raises(dockerpy.errors.ImageLoadError):
            client.images.load(bad.read_bytes())
    finally:
        client.close()
    assert daemon.ok("images", "-aq") == before


def test_network_prune_filters(daemon: Daemon) -> None:
    """`network prune --filter label=/label!=/until=` selects as dockerd does (it once removed
    every unused network, whatever the filter); the docker CLI's output from berthd."""
    for name, labels in (("np-a", ["tier=web"]), ("np-b", ["tier=db", "keep"]), ("np-c", [])):
        ok(daemon, "network", "create", *[a for lab in labels for a in ("--label", lab)], name)
    try:
        assert ok(daemon, "network", "prune", "-f", "--filter", "until=1h") == ""
        assert (
            ok(
                daemon,
                "network",
                "prune",
                "-f",
                "--filter",
                "label=tier",
                "--filter",
                "label!=keep",
            )
            == "Deleted Networks:\nnp-a\n\n"
        )
        assert (
            daemon.ok("network", "prune", "--filter", "label=tier=db")
            == "Deleted Networks:\nnp-b\n"
        )
        r = docker(daemon, "network", "prune", "-f", "--filter", "dangling=true")
        assert r.returncode == 1 and "invalid filter 'dangling'" in r.stderr
        names = ok(daemon, "network", "ls", "--format", "{{.Name}}").split()
        assert "np-c" in names and "np-a" not in names and "np-b" not in names
    finally:
        for name in ("np-a", "np-b", "np-c"):
            daemon.berth("network", "rm", name)


# the same --format through berth and through the docker CLI, against the same berthd: the same
# stdout, stderr and exit code (ages like "5 seconds ago" left out: they tick between the two)
_FORMATS = [
    ("ps", "--format", "{{.Names}}\\t{{.ID}}|{{.Image}}|{{.Command}}|{{.State}}|{{.CreatedAt}}"),
    ("ps", "--format", 'table {{.ID}}\\t{{.Image}}\\t{{.Label "com.example.foo"}}\\t{{.Labels}}'),
    (
        "ps",
        "--format",
        '{{.Label "a"}}|{{.Label "nope"}}|{{if eq .State "running"}}up'
        '{{else}}down{{end}}|{{printf "%-10s|" .Names}}|{{upper .Names}}',
    ),
    (
        "ps",
        "--format",
        "{{truncate .ID 5}} {{pad .Names 1 2}}| {{json .Names}} {{.Mounts}} "
        '{{.Networks}} {{.LocalVolumes}} {{split .Names "-"}}',
    ),
    ("ps", "--format", "table {{.ID}}\\t{{.Mounts}}\\t{{.Networks}}\\t{{.State}}\\t{{.Ports}}"),
    ("ps", "--format", "table"),
    ("ps", "--format", "{{.Nope}}"),
    ("ps", "--format", "{{.ID"),
    ("images", "--format", "{{.Repository}}:{{.Tag}} {{.ID}} {{.Size}} {{.Digest}} {{.CreatedAt}}"),
    ("images", "--format", "table {{.ID}}\\t{{.Repository}}\\t{{.Tag}}\\t{{.Containers}}"),
    (
        "images",
        "--format",
        "table {{.Repository}}:{{.Tag}}\\t{{json .Size}}\\t{{pad .Tag 1 1}}\\t"
        '{{truncate .ID 4}}\\t{{split .Tag ":"}}',
    ),
    ("images", "--format", "{{.Nope}}"),
    ("inspect", "-f", "{{range .Mounts}}{{.Destination}} {{end}}", "tf-web"),
    ("inspect", "-f", '{{json .Config.Env}} {{join .Config.Env ","}} {{.Config.Env}}', "tf-web"),
    (
        "inspect",
        "-f",
        '{{index .Config.Labels "a"}}|{{index .Config.Labels "nope"}}|'
        "{{.Config.Labels}}|{{json .Config.Labels}}|{{.Config.Labels.nope}}",
        "tf-web",
    ),
    (
        "inspect",
        "-f",
        '{{join .Args ","}} {{.Path}} {{upper .Name}} {{len .Args}} '
        "{{.Config.Entrypoint}} {{json .Config.Entrypoint}} {{.State.Pid | "
        'printf "%T"}} {{.HostConfig.LogConfig.Type}}',
        "tf-web",
    ),
    (
        "inspect",
        "-f",
        "{{range $k, $v := .Config.Labels}}{{$k}}={{$v}};{{end}}"
        "{{with .State}}{{.Status}}{{end}}{{if .State.Running}} yes{{end}}",
        "tf-web",
    ),
    ("inspect", "-f", "{{.Name}}\\t{{.Config.Image}}\\n", "tf-web", "busybox"),
    (
        "inspect",
        "-f",
        "{{.State.Health}} {{.SizeRw}} {{.Config.Volumes}} {{.HostConfig.CapAdd}} "
        "{{range $n, $c := .NetworkSettings.Networks}}{{$n}} {{$c.IPAMConfig}}"
        "{{end}} {{json .GraphDriver.Data}}",
        "tf-web",
    ),
    ("inspect", "-f", "{{.Nope}}", "tf-web"),
    ("inspect", "-f", "{{.ID}} {{.HostConfig.NanoCPUs}}", "tf-web"),
    ("inspect", "-f", "{{.Id}} {{.HostConfig.NanoCpus}}", "tf-web"),
    ("inspect", "-f", "{{.Name}} {{.Nope}}", "tf-web", "tf-web"),
    ("inspect", "-f", "{{.Name}} {{.Config.Image}}", "tf-web", "busybox"),
    ("inspect", "-f", "{{index .Config.Env 9}}", "tf-web"),
    ("inspect", "-f", "{{.ID", "tf-web"),
    ("inspect", "-f", "{{nope 3}}", "tf-web"),
    ("inspect", "-f", "json", "tf-web"),
    (
        "version",
        "--format",
        "{{.Server.Version}} {{.Server.APIVersion}} {{.Server.Os}}/"
        "{{.Server.Arch}} {{json .Server.Platform}} {{lower .Client.Os}}",
    ),
    ("version", "--format", "{{.Server.Version}} {{.Nope}}"),
    ("version", "--format", "{{.Server.ApiVersion}}"),
    ("version", "--format", "{{.ID"),
    (
        "info",
        "--format",
        "{{.Name}} {{.Driver}} {{.NCPU}} {{.Images}} {{json .Plugins.Volume}} "
        "{{.Swarm.LocalNodeState}}",
    ),
    ("info", "--format", "{{.Name}} {{.Nope}}"),
    (
        "network",
        "ls",
        "--format",
        '{{.Name}}|{{.Driver}}|{{.Labels}}|{{.Label "nl"}}|{{.IPv6}}|{{.Internal}}|{{.Scope}}',
    ),
    ("network", "ls", "--format", "table {{.ID}}\\t{{.Name}}\\t{{.Labels}}"),
    ("network", "ls", "--format", "{{.Nope}}"),
    (
        "network",
        "inspect",
        "-f",
        "{{.Name}} {{.Driver}} {{json .Labels}} {{json .IPAM}} "
        "{{.Created}} {{.Peers}} {{with .Peers}}p{{else}}none{{end}}",
        "tf-net",
    ),
    (
        "version",
        "--format",
        '{{printf "%06s|%.2f|%x|%v|%q" "ab" 1 1.5 1e6 "é\\n"}} '
        '{{upper "straße"}} {{slice "abcdef" 1 3}} {{html "<a&b>"}}',
    ),
    (
        "volume",
        "ls",
        "--format",
        '{{.Name}}|{{.Driver}}|{{.Labels}}|{{.Label "k"}}|{{.Scope}}|'
        "{{.Mountpoint}}|{{.Links}}|{{.Size}}",
    ),
    ("volume", "ls", "--format", 'table {{.Name}}\\t{{.Labels}}\\t{{.Label "k"}}'),
    ("volume", "inspect", "-f", "{{.Name}} {{.Labels}} {{.Nope}}", "tf-vol"),
]


def test_format_as_the_docker_cli(daemon: Daemon) -> None:
    ok(daemon, "volume", "create", "--label", "k=v", "tf-vol")
    ok(daemon, "network", "create", "--label", "nl=1", "tf-net")
    ok(
        daemon,
        "run",
        "-d",
        "--name",
        "tf-web",
        "-l",
        "a=x<&>y",
        "-l",
        "com.example.foo=bar",
        "-e",
        "A=1",
        "-e",
        "B",
        "-v",
        "tf-vol:/data",
        "busybox",
        "sleep",
        "60",
    )
    try:
        for args in _FORMATS:
            mine = daemon.berth(*args)
            theirs = docker(daemon, *args)
            assert (mine.returncode, mine.stdout, mine.stderr) == (
                theirs.returncode,
                theirs.stdout,
                theirs.stderr,
            ), args
    finally:
        docker(daemon, "rm", "-f", "tf-web")
        docker(daemon, "network", "rm", "tf-net")
        docker(daemon, "volume", "rm", "tf-vol")
