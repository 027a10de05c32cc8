"""`cp` against a hostile container: CVE-2018-15664's symlink-exchange race, symlinks that name
host paths, and tars that climb out or carry device nodes. Nothing of the host may be read
or written."""

from __future__ import annotations

import io
import secrets
import tarfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.integration.conftest import Daemon

pytestmark = pytest.mark.root


@pytest.fixture
def host_secret() -> Iterator[tuple[Path, str]]:
    """A file on the host's /tmp with a unique marker: a copy must never read it."""
    marker = f"HOST-SECRET-{secrets.token_hex(8)}"
    p = Path("/tmp") / f"berth-cp-{secrets.token_hex(4)}"
    p.write_text(marker)
    try:
        yield p, marker
    finally:
        p.unlink()


def _tar(*entries: tarfile.TarInfo, data: bytes = b"pwned") -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for ti in entries:
            if ti.isreg():
                ti.size = len(data)
                tf.addfile(ti, io.BytesIO(data))
            else:
                tf.addfile(ti)
    return buf.getvalue()


def _entry(name: str, kind: bytes = tarfile.REGTYPE, link: str = "") -> tarfile.TarInfo:
    ti = tarfile.TarInfo(name)
    ti.type, ti.linkname, ti.mode = kind, link, 0o644
    if kind == tarfile.CHRTYPE:
        ti.devmajor, ti.devminor = 1, 3
    return ti


def _client(daemon: Daemon):  # type: ignore[no-untyped-def]
    import docker as dockerpy

    return dockerpy.DockerClient(base_url=daemon.host)


def test_symlink_exchange_race(
    daemon: Daemon, host_dir: Path, host_secret: tuple[Path, str], tmp_path: Path
) -> None:
    """A container swaps /w/x between a directory and a symlink to / as fast as it can while
    copies in both directions go through /w/x: reads never see the host's file, writes never
    land in the host's directory (host_dir checks it is untouched)."""
    secret, marker = host_secret
    c = f"cp-race-{secrets.token_hex(3)}"
    # inside: the same paths as on the host, with the container's own content
    script = (
        f"mkdir -p {host_dir} $(dirname {secret}); echo inside > {secret}; "
        "mkdir -p /w; while :; do mkdir /w/x; rmdir /w/x; ln -s / /w/x; rm /w/x; done"
    )
    daemon.ok("run", "-d", "--name", c, "busybox", "sh", "-c", script)
    client = _client(daemon)
    stop = threading.Event()
    seen: list[bytes] = []
    import docker as dockerpy

    try:
        ctr = client.containers.get(c)

        def reader() -> None:
            while not stop.is_set():
                try:
                    bits, _ = ctr.get_archive(f"/w/x{secret}")
                    seen.append(b"".join(bits))
                except (dockerpy.errors.APIError, requests.RequestException):
                    pass  # not found, or the walk met the swap: nothing read

        t = threading.Thread(target=reader)
        t.start()
        payload = _tar(_entry("written"))
        wrote = 0
        try:
            for _ in range(300):
                try:
                    ctr.put_archive(f"/w/x{host_dir}", payload)
                    wrote += 1
                except dockerpy.errors.APIError:
                    pass
            for _ in range(20):  # and through the CLI both ways
                daemon.berth("cp", f"{c}:/w/x{secret}", str(tmp_path / "out"))
                daemon.berth("cp", str(tmp_path), f"{c}:/w/x{host_dir}/")
        finally:
            stop.set()
            t.join()
        for blob in seen:
            assert marker.encode() not in blob
        out = tmp_path / "out"
        if out.exists():
            assert marker not in out.read_text()
        # the race ran: some reads went through the symlink, into the container's own /
        assert any(b"inside" in blob for blob in seen), len(seen)
    finally:
        client.close()
        daemon.berth("rm", "-f", c)
    # host_dir's fixture checks that nothing was written there


@pytest.mark.parametrize("running", [True, False])
def test_symlink_to_a_host_path_resolves_inside(
    daemon: Daemon, host_dir: Path, tmp_path: Path, host_secret: tuple[Path, str], running: bool
) -> None:
    secret, marker = host_secret
    c = f"cp-link-{secrets.token_hex(3)}"
    setup = (
        f"ln -s {secret} /tmp/to-secret; ln -s {host_dir} /tmp/to-dir; "
        "ln -s ../../../../../../.. /tmp/up"
    )
    if running:
        daemon.ok("run", "-d", "--name", c, "busybox", "sh", "-c", setup + "; sleep 300")
    else:
        daemon.ok("run", "--name", c, "busybox", "sh", "-c", setup)
    try:
        # the targets do not exist in the container: nothing to copy, nothing read
        for src in ("/tmp/to-secret/", f"/tmp/up{secret}"):
            r = daemon.berth("cp", "-L", f"{c}:{src}", str(tmp_path / "got"))
            assert r.returncode != 0 and "Could not find the file" in r.stderr, r.stderr
        assert not (tmp_path / "got").exists()
        r = daemon.berth("cp", "-L", f"{c}:/tmp/to-secret", str(tmp_path / "got"))
        assert r.returncode != 0
        # without -L the link itself comes out
        daemon.ok("cp", f"{c}:/tmp/to-secret", str(tmp_path / "link"))
        assert (tmp_path / "link").is_symlink()
        # writes through a link to a host path land inside the container or nowhere
        (tmp_path / "f").write_text("x")
        daemon.berth("cp", str(tmp_path / "f"), f"{c}:/tmp/to-dir/")
        daemon.berth("cp", str(tmp_path / "f"), f"{c}:/tmp/up{host_dir}/")
        client = _client(daemon)
        try:
            import docker as dockerpy

            with pytest.raises(dockerpy.errors.NotFound):
                client.containers.get(c).put_archive(f"/tmp/up{host_dir}", _tar(_entry("g")))
        finally:
            client.close()
    finally:
        daemon.berth("rm", "-f", c)
    assert secret.read_text() == marker


@pytest.mark.parametrize("running", [True, False])
def test_hostile_tar_writes_nothing_outside(daemon: Daemon, host_dir: Path, running: bool) -> None:
    import docker as dockerpy

    c = f"cp-tar-{secrets.token_hex(3)}"
    if running:
        daemon.ok(
            "run", "-d", "--name", c, "busybox", "sh", "-c", f"mkdir -p /dest {host_dir}; sleep 300"
        )
    else:
        daemon.ok("run", "--name", c, "busybox", "sh", "-c", f"mkdir -p /dest {host_dir}")
    client = _client(daemon)
    up = "../" * 12
    try:
        ctr = client.containers.get(c)
        refused = [
            _tar(_entry(f"{up}{str(host_dir).lstrip('/')}/climbed")),
            _tar(_entry("dev-null", tarfile.CHRTYPE)),
            _tar(_entry("lnk", tarfile.SYMTYPE, str(host_dir)), _entry("lnk/through")),
            _tar(_entry("up", tarfile.SYMTYPE, up), _entry(f"up{host_dir}/through")),
            _tar(_entry("hard", tarfile.LNKTYPE, f"{up}etc/passwd")),
        ]
        for blob in refused:
            with pytest.raises(dockerpy.errors.APIError) as e:
                ctr.put_archive("/dest", blob)
            assert e.value.status_code == 400, e.value
        # an absolute name is taken inside the destination, as Docker does
        assert ctr.put_archive("/dest", _tar(_entry(f"{host_dir}/abs")))
        assert ctr.put_archive("/dest", _tar(_entry("plain")))
        bits, st = ctr.get_archive(f"/dest{host_dir}/abs")
        assert st["size"] == len(b"pwned")
    finally:
        client.close()
        daemon.berth("rm", "-f", c)
