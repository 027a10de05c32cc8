"""Builds reading the host: COPY --from=STAGE, RUN --mount=from= and the build context follow a
stage's (or the context's) symlinks inside that tree only, never onto the host's filesystem
(issue 13, item 3). Each test plants a secret in a host directory that a symlink aims at, and
checks that no built image holds it."""

from __future__ import annotations

import secrets
import shutil
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from .conftest import Daemon

pytestmark = pytest.mark.root


@pytest.fixture
def host_secret() -> Iterator[tuple[Path, bytes]]:
    d = Path("/tmp") / f"berth-sec-stages-{secrets.token_hex(6)}"
    d.mkdir(mode=0o700)
    secret = f"SECRET-{secrets.token_hex(16)}".encode()
    (d / "secret").write_bytes(secret)
    try:
        yield d, secret
    finally:
        shutil.rmtree(d, ignore_errors=True)


def _build(daemon: Daemon, ctx: Path, tag: str, dockerfile: str) -> str:
    ctx.mkdir(exist_ok=True)
    (ctx / "Dockerfile").write_text(dockerfile)
    r = daemon.berth("build", "--no-cache", "-t", tag, str(ctx), timeout=180)
    return r.stdout + r.stderr if r.returncode == 0 else ""


def _image_holds(daemon: Daemon, tmp_path: Path, tag: str, secret: bytes) -> bool:
    """Whether any file of the image `tag` holds `secret` (False if no image was built)."""
    if daemon.berth("image", "inspect", tag).returncode != 0:
        return False
    out = tmp_path / "image.tar"
    daemon.ok("save", "-o", str(out), tag)
    with tarfile.open(out) as outer:
        for m in outer:
            f = outer.extractfile(m)
            if f is None:
                continue
            data = f.read()
            if secret in data:
                return True
            if m.name.endswith((".tar", "/layer.tar")) or m.name.startswith("blobs/"):
                try:
                    import io

                    with tarfile.open(fileobj=io.BytesIO(data)) as inner:
                        for im in inner:
                            g = inner.extractfile(im)
                            if g is not None and secret in g.read():
                                return True
                except tarfile.TarError:
                    pass
    return False


# A stage whose /a is, from the top: a directory that a COPY made (no opaque marker), a symlink
# to the host's directory, a directory holding `secret`. The kernel shows only the top /a: the
# symlink ends the merge, so /a/secret does not exist in the stage.
STAGE = """\
FROM busybox AS src
RUN mkdir -p /a && echo decoy > /a/secret
RUN rm -rf /a && ln -s {host} /a
COPY Dockerfile /a/
"""


def test_copy_from_a_stage_through_its_symlink(
    daemon: Daemon, tmp_path: Path, tag: str, host_secret: tuple[Path, bytes]
) -> None:
    """/a/secret of the stage (see STAGE): it does not exist there; the host's must not be
    read through the middle layer's symlink."""
    host, secret = host_secret
    _build(
        daemon,
        tmp_path / "ctx",
        tag,
        STAGE.format(host=host)
        + """\
FROM busybox
COPY --from=src /a/secret /got
""",
    )
    assert not _image_holds(daemon, tmp_path, tag, secret)


def test_copy_from_a_stage_whose_path_is_a_symlink(
    daemon: Daemon, tmp_path: Path, tag: str, host_secret: tuple[Path, bytes]
) -> None:
    host, secret = host_secret
    _build(
        daemon,
        tmp_path / "ctx",
        tag,
        f"""\
FROM busybox AS src
RUN ln -s {host} /dir && ln -s {host}/secret /file
FROM busybox
COPY --from=src /dir/ /got/
COPY --from=src /file /got2
""",
    )
    assert not _image_holds(daemon, tmp_path, tag, secret)


def test_run_mount_from_a_stage_through_its_symlink(
    daemon: Daemon, tmp_path: Path, tag: str, host_secret: tuple[Path, bytes]
) -> None:
    host, secret = host_secret
    _build(
        daemon,
        tmp_path / "ctx",
        tag,
        STAGE.format(host=host)
        + """\
FROM busybox
RUN --mount=type=bind,from=src,source=/a/secret,target=/m cat /m > /got
""",
    )
    assert not _image_holds(daemon, tmp_path, tag, secret)


def test_context_symlink_to_a_host_file(
    daemon: Daemon, tmp_path: Path, tag: str, host_secret: tuple[Path, bytes]
) -> None:
    host, secret = host_secret
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "leak").symlink_to(host / "secret")
    (ctx / "leakdir").symlink_to(host)
    _build(
        daemon,
        ctx,
        tag,
        """\
FROM busybox
COPY leak /got
""",
    )
    assert not _image_holds(daemon, tmp_path, tag, secret)
    _build(
        daemon,
        ctx,
        tag,
        """\
FROM busybox
RUN --mount=type=bind,source=leakdir,target=/m cat /m/secret > /got || true
""",
    )
    assert not _image_holds(daemon, tmp_path, tag, secret)
