"""berth-runtime's command line: runc's options and positionals, argparse's rules."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from berth.runtime import cli, sealed


def test_global_and_command_options() -> None:
    a = cli.parse(["--root", "/r", "--log=/l", "run", "-b", "/b", "--pid-file", "/p", "c1"])
    assert (a.fn, a.root, a.log, a.bundle, a.pid_file, a.id) == (
        cli.cmd_run,
        "/r",
        "/l",
        "/b",
        "/p",
        "c1",
    )
    assert cli.parse(["run", "c1", "--bundle=/b"]).bundle == "/b"  # options after positionals


def test_exec_takes_everything_after_the_id() -> None:
    a = cli.parse(["exec", "-t", "-e", "A=1", "--env", "B=2", "c1", "sh", "-c", "ls -t"])
    assert (a.tty, a.env, a.id, a.command) == (True, ["A=1", "B=2"], "c1", ["sh", "-c", "ls -t"])
    assert cli.parse(["exec", "c1"]).command == []


def test_optional_positional_and_defaults() -> None:
    assert cli.parse(["kill", "c1"]).signal == "SIGTERM"
    assert cli.parse(["kill", "c1", "KILL"]).signal == "KILL"
    assert cli.parse(["list"]).root == cli.DEFAULT_ROOT
    assert cli._signal("kill") == 9 and cli._signal("SIGHUP") == 1 and cli._signal("15") == 15


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["nope"],
        ["run"],
        ["run", "c1", "extra"],
        ["run", "--nope", "c1"],
        ["run", "-b"],
        ["state", "--bundle", "x", "c1"],
    ],
)
def test_bad_command_lines_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as e:
        cli.parse(argv)
    assert e.value.code == 2
    assert "berth-runtime: error:" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("namespaces", "fast"),
    [
        ([{"type": "pid"}, {"type": "mount"}], True),
        ([{"type": "pid", "path": "/proc/1/ns/pid"}, {"type": "mount"}], False),  # shared
        ([{"type": "mount"}], False),  # the host's
    ],
    ids=["new-pid-ns", "joined-pid-ns", "host-pid-ns"],
)
def test_run_skips_the_sealed_copy_only_in_a_new_pid_namespace(
    namespaces: list[dict[str, str]], fast: bool, tmp_path: Path
) -> None:
    """`run` sets up from the host's interpreter only where nothing of the container can see
    the init before it execs through the trampoline: PID 1 of a new pid namespace."""
    (tmp_path / "config.json").write_text(json.dumps({"linux": {"namespaces": namespaces}}))
    got = cli._fast_run(cli.parse(["run", "-b", str(tmp_path), "c"]))
    if got is not None:
        os.close(got[1])
    if sealed.trampoline_elf() is None:
        assert got is None
    else:
        assert (got is not None) == fast
    (tmp_path / "config.json").write_text("{not json")
    assert cli._fast_run(cli.parse(["run", "-b", str(tmp_path), "c"])) is None


@pytest.mark.parametrize(
    "argv",
    [
        ["--help"],
        ["-h"],
        ["help"],
        ["run", "--help"],
        ["exec", "-h"],
        ["help", "kill"],
        ["--root", "/r", "state", "-h"],
    ],
)
def test_help_prints_usage_and_exits_0(argv: list[str]) -> None:
    """As runc: `--help`, `help` and each command's `--help` print usage on stdout, exit 0."""
    import subprocess
    import sys

    r = subprocess.run(
        [sys.executable, "-m", "berth.runtime.cli", *argv], capture_output=True, text=True
    )
    assert r.returncode == 0 and r.stderr == "", r
    assert r.stdout.startswith("NAME:\n   berth-runtime") and "USAGE:" in r.stdout
    command = next((a for a in argv if a in cli._COMMANDS), None)
    if command:
        assert f"berth-runtime {command} -" in r.stdout and "OPTIONS:" in r.stdout
    else:
        assert all(f"   {c} " in r.stdout for c in cli._COMMANDS)
