"""`berth completion bash|zsh|fish`: shell completion scripts generated from the command table
(commands, management commands and their subcommands, each one's flags and help).

Imports `cli.main`'s table, and through it every command module: only this command pays that.
"""

from __future__ import annotations

from berth.cli.main import out
from berth.cmdline import UsageError

TYPE_CHECKING = False  # not typing's: importing typing costs ~3 ms of CLI start-up
if TYPE_CHECKING:
    from typing import Any

    from berth.cli.main import FlagTable
    from berth.client import Client

SHELLS = ("bash", "zsh", "fish")


def _table() -> tuple[
    dict[str, tuple[str, FlagTable]], dict[str, dict[str, tuple[str, FlagTable]]], FlagTable
]:
    """(command -> (help, flags), group -> subcommand -> (help, flags), the global flags)."""
    from berth.cli import main

    commands = {
        name: (cmd[4], main.load(cmd)[0])
        for name, cmd in main.COMMANDS.items()
        if name != "completion"
    }  # its argument is a shell: each script says so
    groups = {
        g: {s: (cmd[4], main.load(cmd)[0]) for s, cmd in subs.items()}
        for g, subs in main.GROUPS.items()
    }
    return commands, groups, main.GLOBAL


def _names(spec: FlagTable) -> list[str]:
    return [n for f in spec.FLAGS for n in ([f"--{f.long}"] + ([f"-{f.short}"] if f.short else []))]


def bash() -> str:
    commands, groups, gspec = _table()
    value_flags = [
        n
        for f in gspec.FLAGS
        if f.kind != "bool"
        for n in [f"--{f.long}"] + ([f"-{f.short}"] if f.short else [])
    ]
    lines = [
        "# bash completion for berth (berth completion bash)",
        "_berth() {",
        '    local cur="${COMP_WORDS[COMP_CWORD]}" cmd="" sub="" words="" i w',
        "    for ((i = 1; i < COMP_CWORD; i++)); do",
        '        w="${COMP_WORDS[i]}"',
        '        case "$w" in',
        f'            {"|".join(value_flags)}) [[ -z "$cmd" ]] && ((i++)); continue ;;',
        "            -*) continue ;;",
        "        esac",
        '        if [[ -z "$cmd" ]]; then cmd="$w"',
        '        elif [[ -z "$sub" ]]; then sub="$w"; break',
        "        fi",
        "    done",
        '    case "$cmd" in',
        f'        "") if [[ "$cur" == -* ]]; then words="{" ".join(_names(gspec))}"; '
        f'else words="{" ".join(list(commands) + list(groups) + ["completion"])}"; fi ;;',
    ]
    for g, subs in groups.items():
        lines.append(f"        {g})")
        lines.append('            case "$sub" in')
        lines.append(f'                "") words="{" ".join(subs)}" ;;')
        for s, (_, spec) in subs.items():
            lines.append(f'                {s}) words="{" ".join(_names(spec))}" ;;')
        lines.append("            esac ;;")
    for name, (_, spec) in commands.items():
        lines.append(f'        {name}) words="{" ".join(_names(spec))}" ;;')
    lines.append(f'        completion) words="{" ".join(SHELLS)}" ;;')
    lines += [
        "    esac",
        '    if [[ "$cur" != -* ]]; then',  # a command's arguments: files, as bash does
        f'        case "$cmd" in ""|completion) ;; {"|".join(groups)}) [[ -z "$sub" ]] '
        "|| return 0 ;; *) return 0 ;; esac",
        "    fi",
        '    COMPREPLY=($(compgen -W "$words" -- "$cur"))',
        "}",
        "complete -o default -F _berth berth",
        "",
    ]
    return "\n".join(lines)


def _zq(s: str) -> str:
    """A zsh single-quoted word; `:` escaped for _describe."""
    return "'" + s.replace("'", "'\\''") + "'"


def _zsh_items(pairs: list[tuple[str, str]]) -> str:
    return " ".join(_zq(n.replace(":", "\\:") + ":" + h.replace(":", "\\:")) for n, h in pairs)


def _zsh_flags(spec: FlagTable) -> str:
    return _zsh_items(
        [
            (n, f.help)
            for f in spec.FLAGS
            for n in [f"--{f.long}"] + ([f"-{f.short}"] if f.short else [])
        ]
    )


def zsh() -> str:
    commands, groups, gspec = _table()
    top = (
        [(n, h) for n, (h, _) in commands.items()]
        + [(g, f"Manage {g}s" if g != "system" else "Manage berth") for g in groups]
        + [("completion", "Generate the autocompletion script for the specified shell")]
    )
    lines = [
        "#compdef berth",
        "# zsh completion for berth (berth completion zsh)",
        "_berth() {",
        "    local -a items",
        "    if (( CURRENT == 2 )); then",
        '        if [[ "$PREFIX" == -* ]]; then',
        f"            items=({_zsh_flags(gspec)})",
        "        else",
        f"            items=({_zsh_items(top)})",
        "        fi",
        "        _describe 'command' items",
        "        return",
        "    fi",
        '    case "${words[2]}" in',
    ]
    for g, subs in groups.items():
        lines += [
            f"        {g})",
            "            if (( CURRENT == 3 )); then",
            f"                items=({_zsh_items([(s, h) for s, (h, _) in subs.items()])})",
            "                _describe 'subcommand' items",
            "                return",
            "            fi",
            '            case "${words[3]}" in',
        ]
        for s, (_, spec) in subs.items():
            lines.append(f"                {s}) items=({_zsh_flags(spec)}) ;;")
        lines += ["            esac ;;"]
    for name, (_, spec) in commands.items():
        lines.append(f"        {name}) items=({_zsh_flags(spec)}) ;;")
    lines += [
        f"        completion) items=({' '.join(SHELLS)}) ;;",
        "    esac",
        '    if [[ "$PREFIX" == -* || "${words[2]}" == completion ]]; then',
        "        _describe 'option' items",
        "    else",
        "        _files",
        "    fi",
        "}",
        '_berth "$@"',
        "",
    ]
    return "\n".join(lines)


def _fq(s: str) -> str:
    return "'" + s.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _fish_flags(cond: str, spec: FlagTable) -> list[str]:
    lines = []
    for f in spec.FLAGS:
        short = f" -s {f.short}" if f.short else ""
        req = " -r" if f.kind != "bool" else ""
        lines.append(f"complete -c berth -n {_fq(cond)}{short} -l {f.long}{req} -d {_fq(f.help)}")
    return lines


def fish() -> str:
    commands, groups, gspec = _table()
    lines = ["# fish completion for berth (berth completion fish)"]
    lines += _fish_flags("__fish_use_subcommand", gspec)
    for name, (h, _) in commands.items():
        lines.append(f"complete -c berth -f -n __fish_use_subcommand -a {name} -d {_fq(h)}")
    for g in groups:
        desc = f"Manage {g}s" if g != "system" else "Manage berth"
        lines.append(f"complete -c berth -f -n __fish_use_subcommand -a {g} -d {_fq(desc)}")
    lines.append(
        "complete -c berth -f -n __fish_use_subcommand -a completion "
        "-d 'Generate the autocompletion script for the specified shell'"
    )
    lines.append(
        f"complete -c berth -f -n '__fish_seen_subcommand_from completion' -a '{' '.join(SHELLS)}'"
    )
    not_group = f"not __fish_seen_subcommand_from {' '.join(groups)}"
    for name, (_, spec) in commands.items():
        lines += _fish_flags(f"__fish_seen_subcommand_from {name}; and {not_group}", spec)
    for g, subs in groups.items():
        names = " ".join(subs)
        for s, (h, _) in subs.items():
            lines.append(
                f"complete -c berth -f -n {_fq(f'__fish_seen_subcommand_from {g}; and not __fish_seen_subcommand_from {names}')} "  # noqa: E501
                f"-a {s} -d {_fq(h)}"
            )
        for s, (_, spec) in subs.items():
            lines += _fish_flags(
                f"__fish_seen_subcommand_from {g}; and __fish_seen_subcommand_from {s}", spec
            )
    return "\n".join(lines) + "\n"


def script(shell: str) -> str:
    if shell not in SHELLS:
        raise UsageError(f'unsupported shell "{shell}": must be one of {", ".join(SHELLS)}')
    return {"bash": bash, "zsh": zsh, "fish": fish}[shell]()


def cmd_completion(c: Client, opts: dict[str, Any], args: list[str]) -> int:
    if len(args) != 1:
        raise UsageError('"completion" requires exactly 1 argument.')
    out(script(args[0]).rstrip("\n"))
    return 0
