from __future__ import annotations

import pytest

from berth import reference
from berth.errors import InvalidArgument


@pytest.mark.parametrize(
    "name,full,familiar",
    [
        ("busybox", "docker.io/library/busybox:latest", "busybox:latest"),
        ("busybox:1.36", "docker.io/library/busybox:1.36", "busybox:1.36"),
        ("user/app", "docker.io/user/app:latest", "user/app:latest"),
        ("index.docker.io/library/alpine:3", "docker.io/library/alpine:3", "alpine:3"),
        ("localhost:5000/app:v1", "localhost:5000/app:v1", "localhost:5000/app:v1"),
        ("localhost/app", "localhost/app:latest", "localhost/app:latest"),
        (
            "registry.example.com/a/b/c",
            "registry.example.com/a/b/c:latest",
            "registry.example.com/a/b/c:latest",
        ),
        (
            "127.0.0.1:5000/x@sha256:" + "a" * 64,
            "127.0.0.1:5000/x@sha256:" + "a" * 64,
            "127.0.0.1:5000/x@sha256:" + "a" * 64,
        ),
    ],
)
def test_normalises_as_docker(name: str, full: str, familiar: str) -> None:
    ref = reference.parse(name)
    assert str(ref) == full
    assert ref.familiar == familiar


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "UPPER",
        "a b",
        "busybox:",
        ":tag",
        "a//b",
        "x@sha256:12",
        "busybox:" + "x" * 129,
        "-lead",
    ],
)
def test_refuses_bad_references(bad: str) -> None:
    with pytest.raises(InvalidArgument, match="invalid reference format"):
        reference.parse(bad)
