"""What `berth build` sends as the context: the docker CLI's classic-builder tar."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

from berth import dockerignore
from berth.cli.build import _tar_context


def _sent(
    root: Path, keep: set[str], replace: dict[str, bytes] | None = None
) -> dict[str, tuple[int, bytes]]:
    buf = io.BytesIO()
    _tar_context(
        str(root), dockerignore.load(str(root), str(root / "Dockerfile")), keep, [], buf, replace
    )
    buf.seek(0)
    with tarfile.open(fileobj=buf) as tf:
        return {
            m.name: (m.mode, tf.extractfile(m).read() if m.isreg() else b"")  # type: ignore[union-attr]
            for m in tf
            if not m.isdir()
        }


def test_ignored_build_files_are_sent_and_exceptions_come_back(tmp_path: Path) -> None:
    for name, data in {
        ".dockerignore": "*.log\nsub\n!sub/keep\nDockerfile\n.dockerignore\n",
        "Dockerfile": "FROM x\n",
        "a": "a",
        "x.log": "x",
        "sub/keep": "k",
        "sub/drop": "d",
        "sub/deep/Dockerfile.dev": "FROM y\n",
    }.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(data)
    # as the docker CLI: the Dockerfile and .dockerignore go even where they are ignored
    assert sorted(_sent(tmp_path, {".dockerignore", "Dockerfile"})) == [
        ".dockerignore",
        "Dockerfile",
        "a",
        "sub/keep",
    ]
    # a Dockerfile inside an ignored directory is sent too
    assert sorted(_sent(tmp_path, {".dockerignore", "sub/deep/Dockerfile.dev"})) == [
        ".dockerignore",
        "a",
        "sub/deep/Dockerfile.dev",
        "sub/keep",
    ]


def test_a_dockerfile_from_outside_is_added_and_listed(tmp_path: Path) -> None:
    (tmp_path / "a").write_text("a")
    sent = _sent(
        tmp_path,
        {".dockerignore"},
        {
            ".dockerfile.0123456789abcdef0123": b"FROM x\n",
            ".dockerignore": b".dockerignore\n\n.dockerfile.0123456789abcdef0123\n",
        },
    )
    assert sent[".dockerfile.0123456789abcdef0123"] == (0o600, b"FROM x\n")
    assert sent[".dockerignore"][0] == 0o600
    # an existing .dockerignore keeps its mode and gets the name added
    (tmp_path / ".dockerignore").write_text("*.log\n")
    (tmp_path / ".dockerignore").chmod(0o640)
    sent = _sent(tmp_path, {".dockerignore"}, {".dockerignore": b"*.log\n\n.dockerfile.x\n"})
    assert sent[".dockerignore"] == (0o640, b"*.log\n\n.dockerfile.x\n")
