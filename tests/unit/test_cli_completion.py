"""`berth completion bash|zsh|fish`: each script parses in its shell (where that shell is
installed) and names every command, management command and subcommand of the table."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from berth.cli import completion
from berth.cli import main as m


@pytest.mark.parametrize("shell", completion.SHELLS)
def test_script_parses_and_names_every_command(shell: str, tmp_path: Path) -> None:
    text = completion.script(shell)
    for name in [*m.COMMANDS, *m.GROUPS, *(s for subs in m.GROUPS.values() for s in subs)]:
        assert f" {name}" in text, (shell, name)
    for flag in ("detach", "publish", "driver", "format"):
        assert (f"-l {flag} " if shell == "fish" else f"--{flag}") in text
    binary = shutil.which(shell)
    if binary is None:
        pytest.skip(f"{shell} is not installed: the script's syntax is not checked")
    script = tmp_path / f"berth.{shell}"
    script.write_text(text)
    res = subprocess.run([binary, "-n", str(script)], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr


def test_bash_completes_commands_subcommands_and_flags(tmp_path: Path) -> None:
    if shutil.which("bash") is None:
        pytest.skip("bash is not installed")
    script = tmp_path / "berth.bash"
    script.write_text(completion.script("bash"))
    probe = (
        'source "$1"; shift; COMP_WORDS=("$@"); COMP_CWORD=$((${#COMP_WORDS[@]} - 1)); '
        '_berth; echo "${COMPREPLY[*]}"'
    )

    def complete(*words: str) -> str:
        return subprocess.run(
            ["bash", "-c", probe, "-", str(script), *words],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()

    assert complete("berth", "ne") == "network"
    assert complete("berth", "network", "c") == "create connect"
    assert complete("berth", "network", "create", "--dr") == "--driver"
    assert complete("berth", "-H", "unix:///x", "ru") == "run"
    assert complete("berth", "run", "--rm", "--na") == "--name"
    assert complete("berth", "completion", "f") == "fish"


def test_completion_command(capsys: pytest.CaptureFixture[str]) -> None:
    assert m.run(["completion", "bash"]) == 0
    assert "complete -o default -F _berth berth" in capsys.readouterr().out
    assert m.run(["completion", "tcsh"]) == 1
    assert 'unsupported shell "tcsh"' in capsys.readouterr().err
