"""berth-runtime's hooks runner and config checks, without a container (no root needed)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from berth.runtime import hooks, validate


def _script(tmp: Path, body: str) -> str:
    p = tmp / "hook.sh"
    p.write_text("#!/bin/sh\n" + body)
    p.chmod(0o755)
    return str(p)


def test_a_hook_gets_the_state_args_and_only_its_env(tmp_path: Path) -> None:
    out = tmp_path / "out"
    path = _script(tmp_path, f'cat > {out}; echo "$0 $1 $FOO ${{HOME:-none}}" >> {out}\n')
    hooks.run_all(
        {"hooks": {"poststart": [{"path": path, "args": ["name", "one"], "env": ["FOO=bar"]}]}},
        "poststart",
        {"id": "c", "status": "running"},
    )
    state, line = out.read_text().split("}", 1)
    # a script's $0 is its path (the kernel hands that to /bin/sh), argv[1] on is the args'
    assert state == '{"id": "c", "status": "running"' and line == f"{path} one bar none\n"


def test_a_failing_hook_says_how(tmp_path: Path) -> None:
    path = _script(tmp_path, "echo to-out; echo to-err >&2; exit 4\n")
    spec = {"hooks": {"createRuntime": [{"path": path}]}}
    with pytest.raises(
        hooks.HookError,
        match=r"createRuntime hook #0: exit status 4, "
        r"stdout: to-out, stderr: to-err",
    ):
        hooks.run_all(spec, "createRuntime", {})
    warned: list[str] = []
    hooks.run_warn(spec, "createRuntime", {}, warned.append)
    assert warned and "exit status 4" in warned[0]


def test_a_hook_past_its_timeout_is_killed(tmp_path: Path) -> None:
    with pytest.raises(hooks.HookError, match="timeout of 1.0s"):
        hooks.run({"path": "/bin/sleep", "args": ["sleep", "30"], "timeout": 1}, b"")


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"hooks": {"prestart": [{"path": "relative"}]}}, "absolute path"),
        ({"hooks": {"prestart": [{"path": "/x", "timeout": 0}]}}, "positive integer"),
        ({"hooks": {"prestart": [{"path": "/x", "env": "A=1"}]}}, "list of strings"),
        ({"hooks": {"preStart": []}}, "unknown hook kind: preStart"),
    ],
)
def test_malformed_hooks_are_refused(spec: dict[str, Any], message: str) -> None:
    with pytest.raises(hooks.HookError, match=message):
        hooks.check(spec)


@pytest.mark.parametrize(
    ("version", "ok"),
    [
        ("1.0.2", True),
        ("1.0.2-dev", True),
        ("1.2.0+build.5", True),
        (None, True),
        ("2.0.0", False),
        ("1.0", False),
        ("01.0.0", False),
        ("garbage", False),
        (1, False),
    ],
)
def test_oci_version(version: object, ok: bool) -> None:
    if ok:
        validate.check_version(version)
    else:
        with pytest.raises(validate.SpecError, match="ociVersion"):
            validate.check_version(version)


def test_selinux_labels_warn_where_selinux_is_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(validate, "selinux_enabled", lambda: False)
    spec = {"ociVersion": "1.0.2", "linux": {"mountLabel": "x"}, "process": {"selinuxLabel": "y"}}
    assert validate.check(spec) == [
        "linux.mountLabel, process.selinuxLabel ignored: SELinux is not enabled on this host"
    ]
    monkeypatch.setattr(validate, "selinux_enabled", lambda: True)
    with pytest.raises(validate.SpecError, match="not supported"):
        validate.check(spec)
