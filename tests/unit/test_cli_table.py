"""The CLI's command table: every command loads, every flag says what it does, and `--help`
prints docker's usage line."""

from __future__ import annotations

import pytest

from berth.cli import main as m


def _paths() -> list[tuple[str, m.Command]]:
    return [(name, cmd) for name, cmd in m.COMMANDS.items()] + [
        (f"{g} {s}", cmd) for g, subs in m.GROUPS.items() for s, cmd in subs.items()
    ]


@pytest.mark.parametrize(("path", "cmd"), _paths(), ids=[p for p, _ in _paths()])
def test_every_flag_has_help(path: str, cmd: m.Command) -> None:
    spec, fn = m.load(cmd)
    assert callable(fn)
    assert [f.long for f in spec.FLAGS if not f.help] == [], path


def test_global_flags_have_help() -> None:
    assert [f.long for f in m.GLOBAL.FLAGS if not f.help] == []


def test_help_prints_docker_usage_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert m.run(["run", "--help"]) == 0
    text = capsys.readouterr().out
    assert text.startswith(
        "Usage:  berth run [OPTIONS] IMAGE [COMMAND] [ARG...]\n\n"
        "Create and run a new container from an image\n\nOptions:\n"
    )
    assert "  -d, --detach " in text and "Run container in background" in text
    assert m.run(["network", "connect", "--help"]) == 0
    assert capsys.readouterr().out.startswith(
        "Usage:  berth network connect [OPTIONS] NETWORK CONTAINER"
    )


def test_exit_codes_come_from_error_types(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """-H with --context is a ConflictingOptions (its message alone, exit 1); a CommandFailed
    exits with its own code and prints its message alone."""
    assert m.run(["-H", "unix:///nowhere.sock", "--context", "x", "ps"]) == 1
    assert capsys.readouterr().err == (
        "conflicting options: cannot specify both --host and --context\n"
    )

    def fails(c: object, opts: object, args: object) -> int:
        raise m.CommandFailed("step 2 failed", 3)

    monkeypatch.setitem(m.COMMANDS, "wait", ("main", "", "fails", "", "test"))
    monkeypatch.setattr(m, "fails", fails, raising=False)
    monkeypatch.setenv("DOCKER_HOST", "unix:///nowhere.sock")
    assert m.run(["wait", "x"]) == 3
    assert capsys.readouterr().err == "step 2 failed\n"


def test_a_failed_format_prints_what_it_had_and_exits_with_its_code(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """main catches cli.fmt's FormatFailed without importing fmt itself (--version's path)."""
    from berth.cli import fmt

    def fails(c: object, opts: object, args: object) -> int:
        raise fmt.FormatFailed("template: bad", 64, "partial\n")

    monkeypatch.setitem(m.COMMANDS, "wait", ("main", "", "fails", "", "test"))
    monkeypatch.setattr(m, "fails", fails, raising=False)
    monkeypatch.setenv("DOCKER_HOST", "unix:///nowhere.sock")
    assert m.run(["wait", "x"]) == 64
    captured = capsys.readouterr()
    assert (captured.out, captured.err) == ("partial\n", "template: bad\n")


def test_version_and_help_load_no_client() -> None:
    import subprocess
    import sys

    code = (
        "import sys, berth.cli.main as m\n"
        "m.run(['--version'])\n"
        "print(sorted(n for n in sys.modules if n.startswith('berth')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.splitlines()[-1] == str(
        ["berth", "berth.cli", "berth.cli.main", "berth.cmdline", "berth.errors"]
    )
