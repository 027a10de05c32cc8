"""The CLI's flag tables as string-keyed dicts, on berth.cmdline's parser: what the command
modules not yet given an options class (berth.cmdline.Options) still use.
"""

from __future__ import annotations

from berth.cmdline import Flag, UsageError, parse_into, usage

TYPE_CHECKING = False  # not typing's: importing typing costs ~3 ms of CLI start-up
if TYPE_CHECKING:
    from typing import Any


class Spec:
    __slots__ = ("FLAGS", "INTERSPERSED")

    def __init__(self, flags: list[Flag] | None = None, interspersed: bool = True) -> None:
        self.FLAGS = tuple(flags or ())
        self.INTERSPERSED = interspersed  # False: stop at the first positional (run, exec)

    def parse(self, argv: list[str]) -> tuple[dict[str, Any], list[str]]:
        values: dict[str, Any] = {f.attr: [] if f.kind == "list" else f.default
                                  for f in self.FLAGS}
        pos = parse_into(values, self.FLAGS, argv, self.INTERSPERSED)
        return {f.long: values[f.attr] for f in self.FLAGS}, pos

    def usage(self) -> str:
        return usage(self.FLAGS)


def flag(long: str, short: str = "", kind: str = "bool", default: Any = None,
         help: str = "") -> Flag:  # noqa: A002 - the word users see
    if kind == "bool" and default is None:
        default = False
    return Flag(long, short, kind, default, help)


__all__ = ["Spec", "UsageError", "flag"]
