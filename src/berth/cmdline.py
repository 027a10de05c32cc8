"""Command-line flags with typed results, shared by `berth` and `berth-runtime`.

A command's options are a class: each flag is a class attribute made by one of the typed
constructors below, and `parse` returns an instance with the values, so reading an option
that does not exist is a type error (mypy), not a KeyError at run time::

    class PsOptions(Options):
        all = boolean("all", "a", help="Show all containers")
        last = integer("last", "n", default=-1, help="Show n last created containers")

    opts, args = PsOptions.parse(["-a", "-n", "3"])   # opts.all: bool, opts.last: int

The rules are the docker CLI's (pflag): `-it`, `-e K=V`, `-eK=V`, `--env=K=V`, `--env K=V`,
`--` ends the flags, and with `INTERSPERSED = False` the first positional ends them too (the
rest is a command to run). Its errors are pflag's words (`unknown flag: --foo`); a command
says them its own way.

A leaf: imports nothing of berth's, and of the standard library nothing at run time (not
`typing`, `dataclasses` or `argparse`: each costs milliseconds of every command's start-up).
"""

from __future__ import annotations

TYPE_CHECKING = False  # not typing's: importing typing costs ~3 ms of start-up
if TYPE_CHECKING:
    from typing import Any, TypeVar

    _O = TypeVar("_O", bound="Options")


class UsageError(Exception):
    """A command line that does not fit the command's flags (or its arguments)."""


class Flag:
    """One flag: its names, kind (`bool`, `str`, `int`, `list` of str), default and help.
    `attr` is the attribute of the options class that holds its value. A plain class, not a
    dataclass: `dataclasses` costs ~8 ms of start-up."""

    __slots__ = ("long", "short", "kind", "default", "help", "attr")

    def __init__(self, long: str, short: str, kind: str, default: Any, help: str) -> None:
        self.long = long
        self.short = short
        self.kind = kind
        self.default = default
        self.help = help
        self.attr = long.replace("-", "_")

    def value_name(self) -> str:
        """The word usage shows after a flag that takes a value (pflag's)."""
        return {"bool": "", "int": "int", "list": "list"}.get(self.kind, "string")


# The constructors claim to return the value's type: the class attribute is a Flag, but what
# a parsed instance holds under that name is the value, and that is what mypy should check.


def boolean(long: str, short: str = "", *, default: bool = False, help: str = "") -> bool:
    """`--long` (true), `--long=false`; shorthands combine (`-it`)."""
    return Flag(long, short, "bool", default, help)  # type: ignore[return-value]


def tristate(long: str, short: str = "", *, help: str = "") -> bool | None:
    """A boolean that is None until given (a default that depends on other flags)."""
    return Flag(long, short, "bool", None, help)  # type: ignore[return-value]


def string(long: str, short: str = "", *, default: str = "", help: str = "") -> str:
    return Flag(long, short, "str", default, help)  # type: ignore[return-value]


def optional_string(long: str, short: str = "", *, help: str = "") -> str | None:
    """A string that is None until given: `--user ""` is not the same as no `--user`."""
    return Flag(long, short, "str", None, help)  # type: ignore[return-value]


def integer(long: str, short: str = "", *, default: int = 0, help: str = "") -> int:
    return Flag(long, short, "int", default, help)  # type: ignore[return-value]


def optional_integer(long: str, short: str = "", *, help: str = "") -> int | None:
    return Flag(long, short, "int", None, help)  # type: ignore[return-value]


def strings(long: str, short: str = "", *, help: str = "") -> list[str]:
    """A flag that may be given many times; its values in order."""
    return Flag(long, short, "list", None, help)  # type: ignore[return-value]


class Options:
    """The base of a command's options class. A subclass declares its flags as class
    attributes (the constructors above); it inherits its bases' flags, before its own.

    FLAGS: every flag, in declaration order (usage, completion scripts).
    INTERSPERSED: False to end the flags at the first positional (`run IMAGE CMD -x`)."""

    FLAGS: tuple[Flag, ...] = ()
    INTERSPERSED = True

    def __init_subclass__(cls) -> None:
        own = []
        for name, value in vars(cls).items():
            if isinstance(value, Flag):
                value.attr = name  # `from_ = string("from")`: the attribute is the name
                own.append(value)
        cls.FLAGS = (*cls.FLAGS, *own)

    @classmethod
    def parse(cls: type[_O], argv: list[str]) -> tuple[_O, list[str]]:
        """The options and the positional arguments of `argv`.

        Raises:
            UsageError: an unknown flag, a missing value, a value of the wrong kind.
        """
        opts = cls.__new__(cls)
        values = opts.__dict__
        for f in cls.FLAGS:
            values[f.attr] = [] if f.kind == "list" else f.default
        return opts, parse_into(values, cls.FLAGS, argv, cls.INTERSPERSED)

    @classmethod
    def usage(cls) -> str:
        """The flags as docker's `--help` lists them, one a line."""
        return usage(cls.FLAGS)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.__dict__!r})"


def parse_into(
    values: dict[str, Any],
    flags: tuple[Flag, ...] | list[Flag],
    argv: list[str],
    interspersed: bool = True,
) -> list[str]:
    """Parse `argv` against `flags`, each value into `values[flag.attr]` (lists appended to);
    returns the positionals."""
    by_long = {f.long: f for f in flags}
    by_short = {f.short: f for f in flags if f.short}
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
            values[f.attr].append(inline)
        elif f.kind == "int":
            try:
                values[f.attr] = int(inline)
            except ValueError:
                raise UsageError(
                    f'invalid argument "{inline}" for "{name}" flag: '
                    f'strconv.ParseInt: parsing "{inline}": invalid syntax'
                ) from None
        else:
            values[f.attr] = inline

    while i < len(argv):
        a = argv[i]
        if a == "--":
            pos.extend(argv[i + 1 :])
            break
        if a.startswith("--") and len(a) > 2:
            name, eq, val = a[2:].partition("=")
            f = by_long.get(name)
            if f is None:
                raise UsageError(f"unknown flag: --{name}")
            if f.kind != "bool":
                take_value(f, val if eq else None, "--" + name)
            elif not eq:
                values[f.attr] = True
            elif val.lower() in ("true", "1", "false", "0"):
                values[f.attr] = val.lower() in ("true", "1")
            else:
                raise UsageError(
                    f'invalid argument "{val}" for "--{name}" flag: '
                    f'strconv.ParseBool: parsing "{val}": invalid syntax'
                )
        elif a.startswith("-") and len(a) > 1:
            j = 1
            while j < len(a):
                c = a[j]
                short = by_short.get(c)
                if short is None:
                    raise UsageError(f"unknown shorthand flag: '{c}' in {a}")
                if short.kind == "bool":
                    values[short.attr] = True
                    j += 1
                    continue
                rest = a[j + 1 :]
                take_value(short, rest.removeprefix("=") if rest else None, "-" + c)
                break
        else:
            pos.append(a)
            if not interspersed:
                pos.extend(argv[i + 1 :])
                break
        i += 1
    return pos


def usage(flags: tuple[Flag, ...] | list[Flag]) -> str:
    lines = []
    for f in flags:
        names = (f"-{f.short}, " if f.short else "    ") + f"--{f.long}"
        if f.kind != "bool":
            names += " " + f.value_name()
        lines.append(f"  {names:<32} {f.help}")
    return "\n".join(lines)


__all__ = [
    "Flag",
    "Options",
    "UsageError",
    "boolean",
    "integer",
    "optional_integer",
    "optional_string",
    "parse_into",
    "string",
    "strings",
    "tristate",
    "usage",
]
