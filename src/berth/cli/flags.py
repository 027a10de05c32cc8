"""Docker-style flag parsing: `-it`, `-e K=V`, `-eK=V`, `--env=K=V`, `--env K=V`, `--`, and
for `run`/`create`/`exec` a stop at the first positional (the rest is the command).

Imports nothing of berth's. Cheaper than argparse on the fast path, and its errors are
Docker's: `unknown flag: --foo` then `See 'berth run --help'.`, exit 125.
"""

from __future__ import annotations

TYPE_CHECKING = False  # not typing's: importing typing costs ~3 ms of CLI start-up
if TYPE_CHECKING:
    from typing import Any


class UsageError(Exception):
    pass


class Flag:
    """One flag. A plain class, not a dataclass: `dataclasses` costs ~8 ms of CLI start-up."""

    __slots__ = ("long", "short", "kind", "default", "help")

    def __init__(self, long: str, short: str = "", kind: str = "bool", default: Any = None,
                 help: str = "") -> None:  # noqa: A002
        self.long = long
        self.short = short
        self.kind = kind          # bool | str | list | int
        self.default = default
        self.help = help


class Spec:
    __slots__ = ("flags", "interspersed")

    def __init__(self, flags: list[Flag] | None = None, interspersed: bool = True) -> None:
        self.flags = flags or []
        self.interspersed = interspersed  # False: stop at the first positional (run, exec)

    def parse(self, argv: list[str]) -> tuple[dict[str, Any], list[str]]:
        by_long = {f.long: f for f in self.flags}
        by_short = {f.short: f for f in self.flags if f.short}
        opts: dict[str, Any] = {}
        for f in self.flags:
            opts[f.long] = list(f.default or []) if f.kind == "list" else f.default
            if f.kind == "bool" and f.default is None:
                opts[f.long] = False
        pos: list[str] = []
        i = 0

        def take_value(f: Flag, inline: str | None, name: str) -> None:
            nonlocal i
            if inline is None:
                if i + 1 >= len(argv):
                    raise UsageError(f"flag needs an argument: {name}")
                i += 1
                inline = argv[i]
            if f.kind == "list":
                opts[f.long].append(inline)
            elif f.kind == "int":
                try:
                    opts[f.long] = int(inline)
                except ValueError:
                    raise UsageError(f'invalid argument "{inline}" for "{name}" flag: '
                                     "strconv.ParseInt: parsing "
                                     f'"{inline}": invalid syntax') from None
            else:
                opts[f.long] = inline

        while i < len(argv):
            a = argv[i]
            if a == "--":
                pos.extend(argv[i + 1:])
                break
            if a.startswith("--") and len(a) > 2:
                name, eq, val = a[2:].partition("=")
                found = by_long.get(name)
                if found is None:
                    raise UsageError(f"unknown flag: --{name}")
                f = found
                if f.kind == "bool":
                    if eq:
                        if val.lower() not in ("true", "false", "1", "0"):
                            raise UsageError(f'invalid argument "{val}" for "--{name}" flag: '
                                             "strconv.ParseBool: parsing "
                                             f'"{val}": invalid syntax')
                        opts[f.long] = val.lower() in ("true", "1")
                    else:
                        opts[f.long] = True
                else:
                    take_value(f, val if eq else None, "--" + name)
            elif a.startswith("-") and len(a) > 1:
                j = 1
                while j < len(a):
                    c = a[j]
                    short = by_short.get(c)
                    if short is None:
                        raise UsageError(f"unknown shorthand flag: '{c}' in {a}")
                    f = short
                    if f.kind == "bool":
                        opts[f.long] = True
                        j += 1
                        continue
                    rest = a[j + 1:]
                    take_value(f, rest.removeprefix("=") if rest else None, "-" + c)
                    break
            else:
                pos.append(a)
                if not self.interspersed:
                    pos.extend(argv[i + 1:])
                    break
            i += 1
        return opts, pos

    def usage(self) -> str:
        lines = []
        for f in self.flags:
            names = (f"-{f.short}, " if f.short else "    ") + f"--{f.long}"
            if f.kind != "bool":
                names += " " + ("list" if f.kind == "list" else f.kind if f.kind == "int" else "string")
            lines.append(f"  {names:<32} {f.help}")
        return "\n".join(lines)


def flag(long: str, short: str = "", kind: str = "bool", default: Any = None,
         help: str = "") -> Flag:  # noqa: A002 - the word users see
    return Flag(long=long, short=short, kind=kind, default=default, help=help)
