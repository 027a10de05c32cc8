"""Go's text/template, as the docker CLI runs it for `--format`, over the JSON values the CLI has.

A hand-written lexer and parser after the language text/template documents (actions, pipelines,
variables, if/else if/else, range with break/continue and else, with/else with, define, template,
block, trim markers, comments) and an evaluator with Go's builtins (and, or, not, len, index,
slice, print, printf, println, eq, ne, lt, le, gt, ge, html, js, urlquery, call) and the docker
CLI's functions (json, split, join, title, lower, upper, pad, truncate). Values print as Go's
fmt prints them: maps as `map[k:v]` in key order, lists as `[a b]`, floats as `%v` does.

The modules, each importing only those before it: values (the errors, the Go values JSON cannot
express, type names, truth, quoting, %v), lex, parse (and the nodes), funcs (the functions
templates call), evaluate; and, imported when first needed, printf (fmt's verbs), marshal
(encoding/json) and tabwriter.

Imports nothing of berth's and neither `re` nor `json`: the CLI imports this package only when
a `--format` is given, and it stays cheap then too. Each module is some 70 µs of that start-up
on its own, hence few of them on the way of a plain `{{.ID}}`.
"""

from __future__ import annotations

from berth.gotemplate.evaluate import State
from berth.gotemplate.funcs import BUILTINS, DOCKER_FUNCS, HEADER_FUNCS, Fn
from berth.gotemplate.parse import Parser
from berth.gotemplate.values import (
    MISSING,
    NILPTR,
    ExecError,
    GoMap,
    GoTime,
    NilList,
    NilMap,
    ParseError,
    TemplateError,
    format_float,
    omitted,
    show,
    truth,
    type_name,
)

TYPE_CHECKING = False  # not typing's: importing typing costs ~3 ms of CLI start-up
if TYPE_CHECKING:
    from typing import Any

__all__ = [
    "BUILTINS",
    "DOCKER_FUNCS",
    "HEADER_FUNCS",
    "MISSING",
    "NILPTR",
    "ExecError",
    "GoMap",
    "GoTime",
    "NilList",
    "NilMap",
    "ParseError",
    "Template",
    "TemplateError",
    "execute",
    "format_float",
    "omitted",
    "show",
    "sprintf",
    "tabwrite",
    "to_json",
    "truth",
    "type_name",
]


class Template:
    """A parsed template: `Template(text).execute(data)` gives the text Go's would."""

    def __init__(
        self,
        text: str,
        name: str = "",
        funcs: dict[str, Fn] | None = None,
        missingkey: str = "default",
    ) -> None:
        """`missingkey` as Go's option: "default" (`<no value>`), "zero", "error"; or
        "inspect", docker inspect's way: its typed struct first, so a key missing from a map
        field gives `<no value>`, one missing from an object standing for a struct an error
        (that of the raw JSON it falls back to)."""
        self.text = text
        self.name = name
        self.funcs = {**BUILTINS, **DOCKER_FUNCS, **(funcs or {})}
        self.missingkey = missingkey
        p = Parser(text, name, self.funcs)
        self.root = p.parse()
        self.defs = p.defs

    def execute(self, data: Any, funcs: dict[str, Fn] | None = None) -> str:
        st = State(self, data, {**self.funcs, **(funcs or {})})
        try:
            st.walk(data, self.root)
        except ExecError as e:
            e.partial = "".join(st.out)
            raise
        return "".join(st.out)


def execute(
    text: str,
    data: Any,
    *,
    name: str = "",
    missingkey: str = "default",
    funcs: dict[str, Fn] | None = None,
) -> str:
    """Parse and run `text` on `data` in one step."""
    return Template(text, name=name, missingkey=missingkey, funcs=funcs).execute(data)


def sprintf(fmt: str, args: list[Any]) -> str:
    """Go's fmt.Sprintf over the values the templates have."""
    from berth.gotemplate import printf

    return printf.sprintf(fmt, args)


def to_json(v: Any, escape_html: bool = True, sort_maps: bool = True) -> str:
    """Go's json.Marshal: compact, keys of maps sorted, `<>&` escaped unless told not to.
    Without `sort_maps`, objects keep their order (JSON passed through as it came)."""
    from berth.gotemplate import marshal

    return marshal.to_json(v, escape_html, sort_maps)


def tabwrite(text: str, minwidth: int = 10, padding: int = 3) -> str:
    """Align tab-separated cells as Go's tabwriter.NewWriter(w, minwidth, 1, padding, ' ', 0)."""
    from berth.gotemplate import tabwriter

    return tabwriter.tabwrite(text, minwidth, padding)
