"""Go's text/template, as the docker CLI runs it for `--format`, over the JSON values the CLI has.

A hand-written lexer and parser after the language text/template documents (actions, pipelines,
variables, if/else if/else, range with break/continue and else, with/else with, define, template,
block, trim markers, comments) and an evaluator with Go's builtins (and, or, not, len, index,
slice, print, printf, println, eq, ne, lt, le, gt, ge, html, js, urlquery, call) and the docker
CLI's functions (json, split, join, title, lower, upper, pad, truncate). Values print as Go's
fmt prints them: maps as `map[k:v]` in key order, lists as `[a b]`, floats as `%v` does.

Imports nothing of berth's and neither `re` nor `json`: the CLI imports this module only when a
`--format` is given, and it stays cheap then too.
"""

from __future__ import annotations

TYPE_CHECKING = False  # not typing's: importing typing costs ~3 ms of CLI start-up
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any


class TemplateError(Exception):
    """A template that does not parse or does not execute; the text is Go's."""


class ParseError(TemplateError):
    pass


class ExecError(TemplateError):
    """A template that fails as it runs; `partial` is what it had written by then."""

    partial = ""


class _Missing:
    """Go's invalid reflect.Value: what a missing map key gives; prints `<no value>`."""

    def __repr__(self) -> str:
        return "<no value>"


MISSING: Any = _Missing()


class _NilPtr:
    """A typed nil pointer or interface of a Go struct: prints `<nil>` (a null in a raw JSON
    map prints `<no value>`), is false, marshals as null."""

    def __str__(self) -> str:
        return "<nil>"

    def __bool__(self) -> bool:
        return False


NILPTR: Any = _NilPtr()


def omitted(v: Any) -> Any:
    """`v` (a typed nil) marked as a field the JSON left out: `json` leaves it out too."""
    if isinstance(v, _NilPtr):
        v = _NilPtr()
    v.go_omit = True
    return v


class GoMap(dict):  # type: ignore[type-arg]
    """A JSON object known to come from a Go map: `json` sorts its keys, as Go's does."""


class GoTime(str):
    """A time.Time field: the JSON text, printed as Go's Time.String (`go_string`)."""

    go_string = ""


class NilList(list):  # type: ignore[type-arg]
    """A typed nil slice ([]string(nil)): prints `[]`, is false and empty, marshals as null."""


class NilMap(dict):  # type: ignore[type-arg]
    """A typed nil map: prints `map[]`, marshals as null."""


# ---------------------------------------------------------------------------------------------
# lexer

_SPACE = " \t\r\n"
_ALNUM = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_")
_KEYWORDS = frozenset(["block", "break", "continue", "define", "else", "end", "if", "range",
                       "template", "with"])

# item kinds
EOF, TEXT, LEFT, RIGHT, SPACE, IDENT, KEYWORD, FIELD, VARIABLE, DOT, STRING, RAW, CHAR, NUMBER, \
    BOOL, NIL, LPAREN, RPAREN, PIPE, DECLARE, ASSIGN, COMMA, OTHER, ERROR = range(24)


class _Item:
    __slots__ = ("kind", "val", "pos", "line")

    def __init__(self, kind: int, val: str, pos: int, line: int) -> None:
        self.kind, self.val, self.pos, self.line = kind, val, pos, line

    def __str__(self) -> str:
        if self.kind == EOF:
            return "EOF"
        if self.kind == ERROR:
            return self.val
        if self.kind in (KEYWORD, DOT, NIL):
            return f"<{self.val}>"
        if len(self.val) > 10:
            return _quote(self.val[:10]) + "..."
        return _quote(self.val)


def _is_alnum(c: str) -> bool:
    return c in _ALNUM or (c > "\x7f" and (c.isalnum() or c == "_"))


def lex(text: str) -> list[_Item]:
    """The items of `text`; an error item (and then EOF) where it cannot be lexed."""
    items: list[_Item] = []
    pos = 0
    n = len(text)

    def line_at(p: int) -> int:
        return 1 + text.count("\n", 0, p)

    def emit(kind: int, start: int, end: int) -> None:
        items.append(_Item(kind, text[start:end], start, line_at(start)))

    def fail(msg: str, at: int) -> list[_Item]:
        items.append(_Item(ERROR, msg, at, line_at(at)))
        items.append(_Item(EOF, "", n, line_at(n)))
        return items

    def right_delim(p: int) -> tuple[bool, bool]:
        if p + 1 < n and text[p] in _SPACE and text[p + 1] == "-" and text.startswith("}}", p + 2):
            return True, True
        return text.startswith("}}", p), False

    while True:
        left = text.find("{{", pos)
        if left < 0:
            if pos < n:
                emit(TEXT, pos, n)
            items.append(_Item(EOF, "", n, line_at(n)))
            return items
        trim = text.startswith("-", left + 2) and left + 3 < n and text[left + 3] in _SPACE
        end_text = left
        if trim:
            while end_text > pos and text[end_text - 1] in _SPACE:
                end_text -= 1
        if end_text > pos:
            emit(TEXT, pos, end_text)
        p = left + 2 + (2 if trim else 0)
        if text.startswith("/*", p):  # a comment
            close = text.find("*/", p + 2)
            if close < 0:
                return fail("unclosed comment", left)
            p = close + 2
            is_delim, trim_right = right_delim(p)
            if not is_delim:
                return fail("comment ends before closing delimiter", left)
            p += 2 + (2 if trim_right else 0)
            if trim_right:
                while p < n and text[p] in _SPACE:
                    p += 1
            pos = p
            continue
        items.append(_Item(LEFT, "{{", left, line_at(left)))
        depth = 0
        while True:
            is_delim, trim_right = right_delim(p)
            if is_delim and depth > 0:
                return fail("unclosed left paren", p)
            if is_delim:
                start = p
                p += 2 + (2 if trim_right else 0)
                emit(RIGHT, start, p)
                if trim_right:
                    while p < n and text[p] in _SPACE:
                        p += 1
                break
            if p >= n:
                return fail("unclosed action", p)
            c = text[p]
            if c in _SPACE:
                start = p
                while p < n and text[p] in _SPACE:
                    p += 1
                # a space before a trimmed `-}}` belongs to the delimiter
                if p - 1 >= start and text[p - 1] in _SPACE and text.startswith("-}}", p):
                    p -= 1
                    if p == start:
                        continue
                emit(SPACE, start, p)
            elif c == "=":
                emit(ASSIGN, p, p + 1)
                p += 1
            elif c == ":":
                if not text.startswith(":=", p):
                    return fail("expected :=", p)
                emit(DECLARE, p, p + 2)
                p += 2
            elif c == "|":
                emit(PIPE, p, p + 1)
                p += 1
            elif c == ",":
                emit(COMMA, p, p + 1)
                p += 1
            elif c == '"':
                q = p + 1
                while True:
                    if q >= n or text[q] == "\n":
                        return fail("unterminated quoted string", p)
                    if text[q] == "\\":
                        q += 2
                        continue
                    if text[q] == '"':
                        break
                    q += 1
                emit(STRING, p, q + 1)
                p = q + 1
            elif c == "`":
                q = text.find("`", p + 1)
                if q < 0:
                    return fail("unterminated raw quoted string", p)
                emit(RAW, p, q + 1)
                p = q + 1
            elif c == "'":
                q = p + 1
                while True:
                    if q >= n or text[q] == "\n":
                        return fail("unterminated character constant", p)
                    if text[q] == "\\":
                        q += 2
                        continue
                    if text[q] == "'":
                        break
                    q += 1
                emit(CHAR, p, q + 1)
                p = q + 1
            elif c == "$" or (c == "." and not (p + 1 < n and text[p + 1].isdigit())):
                q = p + 1
                while q < n and _is_alnum(text[q]):
                    q += 1
                if c == "." and q == p + 1:
                    emit(DOT, p, q)
                else:
                    emit(VARIABLE if c == "$" else FIELD, p, q)
                p = q
                if p < n and not _at_terminator(text, p):
                    return fail(f"bad character {_rune(text[p])}", p)
            elif c.isdigit() or c in "+-.":
                q = _scan_number(text, p)
                if q < 0:
                    return fail(f"bad number syntax: {_quote(text[p:-q])}", p)
                emit(NUMBER, p, q)
                p = q
            elif c == "(":
                depth += 1
                emit(LPAREN, p, p + 1)
                p += 1
            elif c == ")":
                depth -= 1
                if depth < 0:
                    return fail("unexpected right paren", p)
                emit(RPAREN, p, p + 1)
                p += 1
            elif _is_alnum(c):
                q = p
                while q < n and _is_alnum(text[q]):
                    q += 1
                word = text[p:q]
                if q < n and not _at_terminator(text, q):
                    return fail(f"bad character {_rune(text[q])}", q)
                kind = KEYWORD if word in _KEYWORDS else BOOL if word in ("true", "false") \
                    else NIL if word == "nil" else IDENT
                emit(kind, p, q)
                p = q
            elif " " <= c <= "~":
                emit(OTHER, p, p + 1)
                p += 1
            else:
                return fail(f"unrecognized character in action: {_rune(c)}", p)
        pos = p


def _scan_number(text: str, p: int) -> int:
    """Where the number at `p` ends, as Go's lexer scans one (sign, base prefix, digits, one
    point, exponent); minus one past the end when a letter or digit follows it."""
    n = len(text)

    def run(q: int, chars: str) -> int:
        while q < n and text[q] in chars:
            q += 1
        return q

    q = p + 1 if text[p] in "+-" else p
    digits = "0123456789_"
    if text.startswith("0", q) and q + 1 < n and text[q + 1] in "xXoObB":
        digits = {"x": "0123456789abcdefABCDEF_", "o": "01234567_", "b": "01_"}[
            text[q + 1].lower()]
        q += 2
    q = run(q, digits)
    if q < n and text[q] == ".":
        q = run(q + 1, digits)
    if len(digits) == 11 and q < n and text[q] in "eE":
        q = run(q + 1, "+-")
        q = run(q, "0123456789_")
    if len(digits) == 23 and q < n and text[q] in "pP":
        q = run(q + 1, "+-")
        q = run(q, "0123456789_")
    if q < n and text[q] == "i":
        q += 1
    if q < n and _is_alnum(text[q]):
        return -(q + 1)
    return q


def _at_terminator(text: str, p: int) -> bool:
    c = text[p]
    return c in _SPACE or c in ".,|:()" or text.startswith("}}", p)


def _rune(c: str) -> str:
    return f"U+{ord(c):04X} {_quote_rune(ord(c))}"


# ---------------------------------------------------------------------------------------------
# nodes


class Node:
    pos = 0

    def __str__(self) -> str:  # as Go's parse nodes print themselves
        return ""


class TextNode(Node):
    def __init__(self, pos: int, text: str) -> None:
        self.pos, self.text = pos, text


class DotNode(Node):
    def __init__(self, pos: int) -> None:
        self.pos = pos

    def __str__(self) -> str:
        return "."


class NilNode(Node):
    def __init__(self, pos: int) -> None:
        self.pos = pos

    def __str__(self) -> str:
        return "nil"


class BoolNode(Node):
    def __init__(self, pos: int, val: bool) -> None:
        self.pos, self.val = pos, val

    def __str__(self) -> str:
        return "true" if self.val else "false"


class StringNode(Node):
    def __init__(self, pos: int, quoted: str, val: str) -> None:
        self.pos, self.quoted, self.val = pos, quoted, val

    def __str__(self) -> str:
        return self.quoted


class NumberNode(Node):
    def __init__(self, pos: int, text: str, val: int | float, is_int: bool) -> None:
        self.pos, self.text, self.val, self.is_int = pos, text, val, is_int

    def __str__(self) -> str:
        return self.text


class FieldNode(Node):
    def __init__(self, pos: int, idents: list[str]) -> None:
        self.pos, self.idents = pos, idents

    def __str__(self) -> str:
        return "".join("." + i for i in self.idents)


class VariableNode(Node):
    def __init__(self, pos: int, idents: list[str]) -> None:
        self.pos, self.idents = pos, idents  # idents[0] is "$" or "$name"

    def __str__(self) -> str:
        return ".".join(self.idents)


class IdentifierNode(Node):
    def __init__(self, pos: int, name: str) -> None:
        self.pos, self.name = pos, name

    def __str__(self) -> str:
        return self.name


class ChainNode(Node):
    def __init__(self, pos: int, node: Node, fields: list[str]) -> None:
        self.pos, self.node, self.fields = pos, node, fields

    def __str__(self) -> str:
        s = f"({self.node})" if isinstance(self.node, PipeNode) else str(self.node)
        return s + "".join("." + f for f in self.fields)


class CommandNode(Node):
    def __init__(self, pos: int) -> None:
        self.pos = pos
        self.args: list[Node] = []

    def __str__(self) -> str:
        return " ".join(f"({a})" if isinstance(a, PipeNode) else str(a) for a in self.args)


class PipeNode(Node):
    def __init__(self, pos: int, decl: list[VariableNode], is_assign: bool) -> None:
        self.pos, self.decl, self.is_assign = pos, decl, is_assign
        self.cmds: list[CommandNode] = []

    def __str__(self) -> str:
        s = ""
        if self.decl:
            s = ", ".join(str(v) for v in self.decl) + (" = " if self.is_assign else " := ")
        return s + " | ".join(str(c) for c in self.cmds)


class ActionNode(Node):
    def __init__(self, pos: int, pipe: PipeNode) -> None:
        self.pos, self.pipe = pos, pipe


class ListNode(Node):
    def __init__(self, pos: int) -> None:
        self.pos = pos
        self.nodes: list[Node] = []


class BranchNode(Node):
    def __init__(self, kind: str, pos: int, pipe: PipeNode, body: ListNode,
                 else_: ListNode | None) -> None:
        self.kind, self.pos, self.pipe, self.body, self.else_ = kind, pos, pipe, body, else_


class BreakNode(Node):
    def __init__(self, pos: int) -> None:
        self.pos = pos


class ContinueNode(Node):
    def __init__(self, pos: int) -> None:
        self.pos = pos


class TemplateNode(Node):
    def __init__(self, pos: int, name: str, pipe: PipeNode | None) -> None:
        self.pos, self.name, self.pipe = pos, name, pipe

    def __str__(self) -> str:
        return f"{{{{template {_quote(self.name)}{' ' + str(self.pipe) if self.pipe else ''}}}}}"


class _Else(Node):
    def __init__(self, pos: int, line: int) -> None:
        self.pos, self.line = pos, line


class _End(Node):
    def __init__(self, pos: int) -> None:
        self.pos = pos


# ---------------------------------------------------------------------------------------------
# parser


class _Parser:
    def __init__(self, text: str, name: str, funcs: dict[str, Any]) -> None:
        self.items = lex(text)
        self.i = 0
        self.name = name
        self.funcs = funcs
        self.vars = ["$"]
        self.range_depth = 0
        self.defs: dict[str, ListNode] = {}
        self.last = self.items[0]

    # items
    def next(self) -> _Item:
        it = self.items[self.i]
        if it.kind != EOF:
            self.i += 1
        self.last = it
        if it.kind == ERROR:
            self.fail(it.val, it)
        return it

    def backup(self, k: int = 1) -> None:
        self.i -= k

    def peek(self) -> _Item:
        return self.items[self.i]

    def next_non_space(self) -> _Item:
        it = self.next()
        while it.kind == SPACE:
            it = self.next()
        return it

    def peek_non_space(self) -> _Item:
        while self.items[self.i].kind == SPACE:
            self.i += 1
        return self.items[self.i]

    def fail(self, msg: str, it: _Item | None = None) -> Any:
        it = it or self.last
        raise ParseError(f"template: {self.name}:{it.line}: {msg}")

    def unexpected(self, it: _Item, context: str) -> Any:
        if it.kind == ERROR:
            self.fail(it.val, it)
        self.fail(f"unexpected {it} in {context}", it)

    def expect(self, kind: int, context: str) -> _Item:
        it = self.next_non_space()
        if it.kind != kind:
            self.unexpected(it, context)
        return it

    # structure
    def parse(self) -> ListNode:
        root = ListNode(0)
        while self.peek().kind != EOF:
            if self.peek().kind == LEFT:
                save = self.i
                self.next()
                if self.next_non_space().kind == KEYWORD and self.last.val == "define":
                    self.parse_define()
                    continue
                self.i = save
            node = self.text_or_action()
            if isinstance(node, (_End, _Else)):
                self.fail(f"unexpected {{{{{'end' if isinstance(node, _End) else 'else'}}}}}")
            root.nodes.append(node)
        return root

    def parse_define(self) -> None:
        name_item = self.next_non_space()
        if name_item.kind not in (STRING, RAW):
            self.unexpected(name_item, "define clause")
        name = _unquote(name_item.val, self)
        self.expect(RIGHT, "define clause")
        saved = self.vars
        self.vars = ["$"]
        body, end = self.item_list()
        self.vars = saved
        if not isinstance(end, _End):
            self.fail("unexpected {{else}} in define clause")
        self.defs[name] = body

    def item_list(self) -> tuple[ListNode, Node]:
        lst = ListNode(self.peek_non_space().pos)
        while self.peek_non_space().kind != EOF:
            node = self.text_or_action()
            if isinstance(node, (_End, _Else)):
                return lst, node
            lst.nodes.append(node)
        return self.fail("unexpected EOF")  # type: ignore[no-any-return]

    def text_or_action(self) -> Node:
        it = self.next_non_space()
        if it.kind == TEXT:
            return TextNode(it.pos, it.val)
        if it.kind == LEFT:
            return self.action()
        return self.unexpected(it, "input")  # type: ignore[no-any-return]

    def action(self) -> Node:
        it = self.next_non_space()
        if it.kind == KEYWORD:
            kw = it.val
            if kw == "block":
                return self.block_control(it)
            if kw == "break" or kw == "continue":
                if self.range_depth == 0:
                    self.fail(f"{{{{{kw}}}}} outside {{{{range}}}}")
                self.expect(RIGHT, f"{{{{{kw}}}}}")
                return BreakNode(it.pos) if kw == "break" else ContinueNode(it.pos)
            if kw == "else":
                nxt = self.peek_non_space()
                if nxt.kind == KEYWORD and nxt.val in ("if", "with"):
                    return _Else(it.pos, it.line)  # `else if`: the `if` stays pending
                self.expect(RIGHT, "else")
                return _Else(it.pos, it.line)
            if kw == "end":
                self.expect(RIGHT, "end")
                return _End(it.pos)
            if kw in ("if", "range", "with"):
                return self.control(kw, it)
            if kw == "template":
                return self.template_control(it)
            self.fail(f"unexpected {it} in command")
        self.backup()
        start = self.peek()
        return ActionNode(start.pos, self.pipeline("command", RIGHT))

    def control(self, kind: str, it: _Item) -> BranchNode:
        nvars = len(self.vars)
        if kind == "range":
            self.range_depth += 1
        pipe = self.pipeline(kind, RIGHT)
        body, nxt = self.item_list()
        if kind == "range":
            self.range_depth -= 1
        else_: ListNode | None = None
        if isinstance(nxt, _Else):
            pending = self.peek_non_space()
            if kind in ("if", "with") and pending.kind == KEYWORD and pending.val == kind:
                kw = self.next_non_space()
                else_ = ListNode(nxt.pos)
                else_.nodes.append(self.control(kind, kw))
            else:
                else_, nxt = self.item_list()
                if not isinstance(nxt, _End):
                    self.fail("expected end; found {{else}}")
        del self.vars[nvars:]
        return BranchNode(kind, it.pos, pipe, body, else_)

    def template_control(self, it: _Item) -> TemplateNode:
        name_item = self.next_non_space()
        if name_item.kind not in (STRING, RAW):
            self.unexpected(name_item, "template clause")
        name = _unquote(name_item.val, self)
        pipe = None
        if self.peek_non_space().kind != RIGHT:
            pipe = self.pipeline("template clause", RIGHT)
        else:
            self.next_non_space()
        return TemplateNode(name_item.pos, name, pipe)

    def block_control(self, it: _Item) -> TemplateNode:
        name_item = self.next_non_space()
        if name_item.kind not in (STRING, RAW):
            self.unexpected(name_item, "block clause")
        name = _unquote(name_item.val, self)
        pipe = self.pipeline("block clause", RIGHT)
        saved = self.vars
        self.vars = ["$"]
        body, end = self.item_list()
        self.vars = saved
        if not isinstance(end, _End):
            self.fail("unexpected {{else}} in block clause")
        self.defs.setdefault(name, body)
        return TemplateNode(name_item.pos, name, pipe)

    def pipeline(self, context: str, end: int) -> PipeNode:
        start = self.peek_non_space()
        pipe = PipeNode(start.pos, [], False)
        while True:
            v = self.peek_non_space()
            if v.kind != VARIABLE:
                break
            save = self.i
            self.next_non_space()
            nxt = self.peek_non_space()
            if nxt.kind in (ASSIGN, DECLARE):
                pipe.is_assign = nxt.kind == ASSIGN
                self.next_non_space()
                pipe.decl.append(VariableNode(v.pos, [v.val]))
                self.vars.append(v.val)
                break
            if nxt.kind == COMMA:
                self.next_non_space()
                pipe.decl.append(VariableNode(v.pos, [v.val]))
                self.vars.append(v.val)
                if context == "range" and len(pipe.decl) < 2:
                    if self.peek_non_space().kind in (VARIABLE, RIGHT, RPAREN):
                        continue
                    self.fail("range can only initialize variables")
                self.fail(f"too many declarations in {context}")
            self.i = save  # an operand, not a declaration: put the variable back
            break
        while True:
            it = self.next_non_space()
            if it.kind == end:
                if not pipe.cmds:
                    self.fail(f"missing value for {context}")
                for i, c in enumerate(pipe.cmds[1:], 1):
                    if isinstance(c.args[0], (BoolNode, DotNode, NilNode, NumberNode,
                                              StringNode)):
                        self.fail(f"non executable command in pipeline stage {i + 1}")
                return pipe
            if it.kind in (BOOL, CHAR, DOT, FIELD, IDENT, NUMBER, NIL, RAW, STRING, VARIABLE,
                           LPAREN):
                self.backup()
                pipe.cmds.append(self.command())
            else:
                self.unexpected(it, context)

    def command(self) -> CommandNode:
        cmd = CommandNode(self.peek_non_space().pos)
        while True:
            self.peek_non_space()
            operand = self.operand()
            if operand is not None:
                cmd.args.append(operand)
            it = self.next()
            if it.kind == SPACE:
                continue
            if it.kind in (RIGHT, RPAREN):
                self.backup()
            elif it.kind != PIPE:
                self.unexpected(it, "operand")
            break
        if not cmd.args:
            self.fail("empty command")
        return cmd

    def operand(self) -> Node | None:
        node = self.term()
        if node is None:
            return None
        if self.peek().kind == FIELD:
            pos = self.peek().pos
            fields = []
            while self.peek().kind == FIELD:
                fields.append(self.next().val[1:])
            if isinstance(node, FieldNode):
                return FieldNode(pos, node.idents + fields)
            if isinstance(node, VariableNode):
                return VariableNode(pos, node.idents + fields)
            if isinstance(node, (BoolNode, StringNode, NumberNode, NilNode, DotNode)):
                self.fail(f"unexpected . after term {_quote(str(node))}")
            return ChainNode(pos, node, fields)
        return node

    def term(self) -> Node | None:
        it = self.next_non_space()
        k = it.kind
        if k == IDENT:
            if it.val not in self.funcs:
                self.fail(f"function {_quote(it.val)} not defined")
            return IdentifierNode(it.pos, it.val)
        if k == DOT:
            return DotNode(it.pos)
        if k == NIL:
            return NilNode(it.pos)
        if k == VARIABLE:
            if it.val not in self.vars:
                self.fail(f"undefined variable {_quote(it.val)}")
            return VariableNode(it.pos, [it.val])
        if k == FIELD:
            return FieldNode(it.pos, [it.val[1:]])
        if k == BOOL:
            return BoolNode(it.pos, it.val == "true")
        if k in (NUMBER, CHAR):
            return self.number(it)
        if k == LPAREN:
            return self.pipeline("parenthesized pipeline", RPAREN)
        if k in (STRING, RAW):
            return StringNode(it.pos, it.val, _unquote(it.val, self))
        self.backup()
        return None

    def number(self, it: _Item) -> NumberNode:
        text = it.val
        if it.kind == CHAR:
            s = _unquote(text, self)
            if len(s) != 1:
                self.fail(f"malformed character constant: {text}")
            return NumberNode(it.pos, text, ord(s), True)
        val = _parse_number(text)
        if val is None:
            self.fail(f"illegal number syntax: {_quote(text)}")
        assert val is not None
        is_float = isinstance(val, float) and not text.lower().lstrip("+-").startswith("0x") \
            and any(ch in text for ch in ".eEpP")
        if isinstance(val, float) and not is_float and val == int(val):
            val = int(val)
        return NumberNode(it.pos, text, val, not is_float)


def _parse_number(text: str) -> int | float | None:
    t = text.replace("_", "")
    sign = 1
    if t[:1] in "+-":
        sign = -1 if t[0] == "-" else 1
        t = t[1:]
    if not t:
        return None
    low = t.lower()
    try:
        if low.startswith("0x"):
            if "p" in low or "." in low:
                return sign * float.fromhex(t)
            return sign * int(t[2:], 16)
        if low.startswith("0b"):
            return sign * int(t[2:], 2)
        if low.startswith("0o"):
            return sign * int(t[2:], 8)
        if low.isdigit():
            if len(low) > 1 and low[0] == "0":
                return sign * int(low, 8)
            return sign * int(low)
        if any(c not in "0123456789.e+-" for c in low):
            return None
        return sign * float(t)
    except ValueError:
        return None


_ESCAPES = {"a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v",
            "\\": "\\", "'": "'", '"': '"'}


def _unquote(q: str, p: _Parser | None = None) -> str:
    """Go's strconv.Unquote for "...", `...` and '...'."""
    if q[0] == "`":
        return q[1:-1].replace("\r", "")
    body, quote = q[1:-1], q[0]
    out = []
    i = 0
    try:
        while i < len(body):
            c = body[i]
            if c != "\\":
                if c == quote:
                    raise ValueError
                out.append(c)
                i += 1
                continue
            e = body[i + 1]
            if e in _ESCAPES:
                if (e == "'" and quote == '"') or (e == '"' and quote == "'"):
                    raise ValueError
                out.append(_ESCAPES[e])
                i += 2
            elif e in "xuU":
                width = {"x": 2, "u": 4, "U": 8}[e]
                digits = body[i + 2:i + 2 + width]
                if len(digits) != width or any(d not in "0123456789abcdefABCDEF" for d in digits):
                    raise ValueError
                v = int(digits, 16)
                if e == "x":
                    out.append(chr(v) if v < 0x80 else bytes([v]).decode("latin-1"))
                else:
                    out.append(chr(v))
                i += 2 + width
            elif e in "01234567":
                digits = body[i + 1:i + 4]
                if len(digits) != 3 or any(d not in "01234567" for d in digits):
                    raise ValueError
                out.append(chr(int(digits, 8)))
                i += 4
            else:
                raise ValueError
    except (ValueError, IndexError):
        if p is not None:
            p.fail("invalid syntax")
        raise ParseError("invalid syntax") from None
    return "".join(out)


# ---------------------------------------------------------------------------------------------
# values as Go prints them


def type_name(v: Any) -> str:
    if v is None or v is MISSING or isinstance(v, _NilPtr):
        return "<nil>"
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, int):
        return "int"
    if isinstance(v, float):
        return "float64"
    if isinstance(v, str):
        return "string"
    if isinstance(v, list):
        return "[]string" if isinstance(v, NilList) or (v and all(isinstance(x, str) for x in v)) \
            else "[]interface {}"
    if isinstance(v, dict):
        gt = getattr(v, "go_type", None)
        if gt:
            return str(gt)
        return "map[string]string" if isinstance(v, NilMap) or (
            v and all(isinstance(x, str) for x in v.values())) else "map[string]interface {}"
    return type(v).__name__


def _shortest(f: float) -> tuple[str, int]:
    """The shortest decimal digits that give `f` back and the decimal point's place:
    f == 0.DIGITS * 10**dp."""
    r = repr(abs(f))
    mant, _, exp = r.partition("e")
    ip, _, fp = mant.partition(".")
    if fp == "0":
        fp = ""
    digits = (ip + fp)
    dp = len(ip) + (int(exp) if exp else 0)
    stripped = digits.lstrip("0")
    dp -= len(digits) - len(stripped)
    digits = stripped.rstrip("0")
    if not digits:
        return "0", 1
    return digits, dp


def _exp_form(digits: str, dp: int, upper: bool = False) -> str:
    e = dp - 1
    s = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
    return s + ("E" if upper else "e") + ("-" if e < 0 else "+") + f"{abs(e):02d}"


def _fixed_form(digits: str, dp: int) -> str:
    if dp <= 0:
        return "0." + "0" * -dp + digits
    if dp >= len(digits):
        return digits + "0" * (dp - len(digits))
    return digits[:dp] + "." + digits[dp:]


def format_float(f: float, verb: str = "v", prec: int = -1) -> str:
    """Go's fmt of a float64 for %v/%g (shortest), %e, %f with a precision."""
    if f != f:
        return "NaN"
    if f in (float("inf"), float("-inf")):
        return "+Inf" if f > 0 else "-Inf"
    sign = "-" if f < 0 or (f == 0 and str(f).startswith("-")) else ""
    if verb in "vgG" and prec < 0:
        digits, dp = _shortest(f)
        if f == 0:
            return sign + "0"
        e = dp - 1
        if e < -4 or e >= 6:
            return sign + _exp_form(digits, dp, verb == "G")
        return sign + _fixed_form(digits, dp)
    if verb in "gG":
        s = format(abs(f), f".{prec or 1}g")
        if "e" in s:
            m, _, x = s.partition("e")
            s = m + "e" + x[0] + x[1:].lstrip("0").rjust(2, "0")
        return sign + (s.upper() if verb == "G" else s)
    py = "f" if verb in "fF" else "e" if verb == "e" else "E"
    return sign + format(abs(f), f".{6 if prec < 0 else prec}{py}")


def show(v: Any) -> str:
    """fmt.Sprint of one value (%v)."""
    if v is None:
        return "<nil>"
    if v is MISSING:
        return "<no value>"
    if v is True:
        return "true"
    if v is False:
        return "false"
    if isinstance(v, str):
        return getattr(v, "go_string", None) or v
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return format_float(v)
    if isinstance(v, list):
        return "[" + " ".join(show(x) for x in v) + "]"
    if isinstance(v, dict):
        return "map[" + " ".join(f"{show(k)}:{show(x)}" for k, x in sorted(v.items())) + "]"
    return str(v)


def _sprint(args: list[Any]) -> str:
    out = []
    prev_str = False
    for i, a in enumerate(args):
        is_str = isinstance(a, str)
        if i > 0 and not is_str and not prev_str:
            out.append(" ")
        out.append(show(a))
        prev_str = is_str
    return "".join(out)


def _quote_rune(r: int) -> str:
    return "'" + _escape_rune(r, "'") + "'"


def _escape_rune(r: int, quote: str, ascii_only: bool = False) -> str:
    c = chr(r)
    if c == quote or c == "\\":
        return "\\" + c
    if (c.isprintable() and not (ascii_only and r >= 0x80)) or (r == 0x20):
        return c
    short = {7: "\\a", 8: "\\b", 12: "\\f", 10: "\\n", 13: "\\r", 9: "\\t", 11: "\\v"}
    if r in short:
        return short[r]
    if r < 0x20 or r == 0x7f:
        return f"\\x{r:02x}"
    if 0xD800 <= r <= 0xDFFF:
        return "\\ufffd"
    if r < 0x10000:
        return f"\\u{r:04x}"
    return f"\\U{r:08x}"


def _quote(s: str, ascii_only: bool = False) -> str:
    """Go's strconv.Quote."""
    return '"' + "".join(_escape_rune(ord(c), '"', ascii_only) for c in s) + '"'


# Go's encoding/json


def _json_str(s: str, escape_html: bool) -> str:
    out = ['"']
    for c in s:
        o = ord(c)
        if c == '"':
            out.append('\\"')
        elif c == "\\":
            out.append("\\\\")
        elif o < 0x20:
            out.append({10: "\\n", 13: "\\r", 9: "\\t", 8: "\\b", 12: "\\f"}.get(
                o, f"\\u{o:04x}"))
        elif escape_html and c in "<>&":
            out.append(f"\\u{o:04x}")
        elif o in (0x2028, 0x2029):
            out.append(f"\\u{o:04x}")
        elif 0xD800 <= o <= 0xDFFF:
            out.append("\ufffd")
        else:
            out.append(c)
    out.append('"')
    return "".join(out)


def _json_float(f: float) -> str:
    if f != f or f in (float("inf"), float("-inf")):
        raise ExecError(f"json: unsupported value: {format_float(f)}")
    if f == 0:
        return "0" if not str(f).startswith("-") else "-0"
    digits, dp = _shortest(f)
    sign = "-" if f < 0 else ""
    a = abs(f)
    if a < 1e-6 or a >= 1e21:
        s = _exp_form(digits, dp)
        m, _, e = s.partition("e")
        return sign + m + "e" + e[0] + e[1:].lstrip("0").rjust(1, "0")
    return sign + _fixed_form(digits, dp)


def _is_go_map(d: dict[Any, Any]) -> bool:
    """JSON objects from Go maps have their keys sorted; Go structs keep their field order.
    A map of strings, or one whose keys are not exported Go names, is taken for a map."""
    if isinstance(d, (NilMap, GoMap)):
        return True
    if getattr(d, "go_type", None):  # a struct: its fields in their order
        return False
    return not all(isinstance(k, str) and k[:1].isupper() and all(_is_alnum(c) for c in k)
                   for k in d)


def to_json(v: Any, escape_html: bool = True, sort_maps: bool = True) -> str:
    """Go's json.Marshal: compact, keys of maps sorted, `<>&` escaped unless told not to.
    Without `sort_maps`, objects keep their order (JSON passed through as it came)."""
    marshal = getattr(v, "go_json", None)
    if marshal is not None:
        return str(marshal())
    if v is None or v is MISSING or isinstance(v, _NilPtr) or isinstance(v, (NilList, NilMap)):
        return "null"
    if v is True:
        return "true"
    if v is False:
        return "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return _json_float(v)
    if isinstance(v, str):
        return _json_str(v, escape_html)
    if isinstance(v, (list, tuple)):
        return "[" + ",".join(to_json(x, escape_html, sort_maps) for x in v) + "]"
    if isinstance(v, dict):
        items = [(k, x) for k, x in (sorted(v.items()) if sort_maps and _is_go_map(v)
                                     else v.items()) if not getattr(x, "go_omit", False)]
        return "{" + ",".join(_json_str(str(k), escape_html) + ":" +
                              to_json(x, escape_html, sort_maps) for k, x in items) + "}"
    raise ExecError(f"json: unsupported type: {type_name(v)}")


# ---------------------------------------------------------------------------------------------
# printf


def _pad(s: str, width: int, minus: bool, zero: bool = False) -> str:
    if width <= len(s):
        return s
    if minus:
        return s + " " * (width - len(s))
    if zero:
        sign = s[0] if s[:1] in "+- " else ""
        return sign + "0" * (width - len(s)) + s[len(sign):]
    return " " * (width - len(s)) + s


def _bad(verb: str, a: Any, flags: str = "", width: int = -1, prec: int = -1) -> str:
    """Go's %!verb(type=value), the value printed with %v and the verb's flags."""
    if a is None or a is MISSING:
        return f"%!{verb}(<nil>)"
    return f"%!{verb}({type_name(a)}={_fmt_one('v', a, flags, width, prec)})"


def _fmt_one(verb: str, a: Any, flags: str, width: int, prec: int) -> str:
    minus, plus, sharp, space, zero = ("-" in flags, "+" in flags, "#" in flags, " " in flags,
                                       "0" in flags)
    if isinstance(a, list) and verb != "T":
        return "[" + " ".join(_fmt_one(verb, x, flags, width, prec) for x in a) + "]"
    if isinstance(a, dict) and verb != "T":
        return "map[" + " ".join(f"{_fmt_one(verb, k, flags, width, prec)}:"
                                 f"{_fmt_one(verb, x, flags, width, prec)}"
                                 for k, x in sorted(a.items())) + "]"
    if verb == "T":
        return _pad(type_name(a), width, minus)
    if verb == "v":
        if isinstance(a, float):
            return _fmt_one("g", a, flags, width, prec)
        if isinstance(a, int) and not isinstance(a, bool):
            return _fmt_one("d", a, flags, width, prec)
        if sharp and isinstance(a, str):
            return _pad(_quote(a), width, minus)
        s = show(a)
        if isinstance(a, str) and prec >= 0:
            s = s[:prec]
        return _pad(s, width, minus)
    if isinstance(a, bool):
        if verb == "t":
            return _pad("true" if a else "false", width, minus)
        return _bad(verb, a, flags, width, prec)
    if isinstance(a, int):
        if verb == "c":
            return _pad(chr(a), width, minus)
        if verb == "q":
            return _pad(_quote_rune(a), width, minus)
        if verb == "U":
            s = f"U+{a:04X}"
            return _pad(s + (f" '{chr(a)}'" if sharp else ""), width, minus)
        base = {"d": "d", "x": "x", "X": "X", "o": "o", "O": "o", "b": "b"}.get(verb)
        if base is None:
            if verb in "eEfFgG":
                return _bad(verb, a, flags, width, prec)
            return _bad(verb, a, flags, width, prec)
        digits = format(abs(a), base)
        if prec >= 0:
            digits = digits.rjust(prec, "0") if prec else ("" if a == 0 else digits)
        if sharp or verb == "O":
            digits = {"x": "0x", "X": "0X", "o": "0", "O": "0o", "b": "0b"}.get(verb, "") + digits
        sign = "-" if a < 0 else "+" if plus else " " if space else ""
        return _pad(sign + digits, width, minus, zero and prec < 0)
    if isinstance(a, float) and verb in "xX" and a == a and abs(a) != float("inf"):
        mant, _, e = float.hex(abs(a)).partition("p")
        mant = mant.rstrip("0").rstrip(".")
        if prec >= 0:  # hex digits after the point: cut, where Go rounds
            whole, _, frac = mant[2:].partition(".")
            digits = (frac + "0" * prec)[:prec]
            mant = "0x" + whole + ("." + digits if prec else "")
        x = int(e)
        h = ("-" if a < 0 else "+" if plus else "") + mant + "p" + ("-" if x < 0 else "+") + \
            f"{abs(x):02d}"
        return _pad(h.upper() if verb == "X" else h, width, minus)
    if isinstance(a, float):
        if verb not in "eEfFgG":
            return _bad(verb, a, flags, width, prec)
        s = format_float(a, verb, prec)
        if plus and not s.startswith(("-", "+")):
            s = "+" + s
        elif space and not s.startswith(("-", "+")):
            s = " " + s
        return _pad(s, width, minus, zero and s[-1:].isdigit())
    if isinstance(a, str):
        a = getattr(a, "go_string", None) or a
        if prec >= 0 and verb in "sq":
            a = a[:prec]
        if verb == "s":
            return _pad(a, width, minus, zero)
        if verb == "q":
            if sharp and "`" not in a and all(c.isprintable() or c == "\t" for c in a):
                return _pad("`" + a + "`", width, minus)
            return _pad(_quote(a, plus), width, minus)
        if verb in "xX":
            data = a.encode("utf-8", "surrogateescape")
            if prec >= 0:
                data = data[:prec]
            hexes = [f"{b:02x}" if verb == "x" else f"{b:02X}" for b in data]
            pre = ("0x" if verb == "x" else "0X") if sharp else ""
            if space:
                return _pad(" ".join(pre + h for h in hexes), width, minus)
            return _pad(pre + "".join(hexes), width, minus)
        return _bad(verb, a, flags, width, prec)
    return _bad(verb, a, flags, width, prec)


def sprintf(fmt: str, args: list[Any]) -> str:
    """Go's fmt.Sprintf over the values the templates have."""
    out: list[str] = []
    argi = 0
    i = 0
    n = len(fmt)
    while i < n:
        j = fmt.find("%", i)
        if j < 0:
            out.append(fmt[i:])
            break
        out.append(fmt[i:j])
        i = j + 1
        flags = ""
        while i < n and fmt[i] in "+-# 0":
            flags += fmt[i]
            i += 1
        width = prec = -1
        if i < n and fmt[i] == "*":
            i += 1
            if argi < len(args) and isinstance(args[argi], int):
                width = args[argi]
                if width < 0:
                    flags += "-"
                    width = -width
            else:
                out.append("%!(BADWIDTH)")
            argi += 1
        else:
            s = i
            while i < n and fmt[i].isdigit():
                i += 1
            if i > s:
                width = int(fmt[s:i])
        if i < n and fmt[i] == ".":
            i += 1
            if i < n and fmt[i] == "*":
                i += 1
                if argi < len(args) and isinstance(args[argi], int):
                    prec = args[argi]
                else:
                    out.append("%!(BADPREC)")
                argi += 1
            else:
                s = i
                while i < n and fmt[i].isdigit():
                    i += 1
                prec = int(fmt[s:i] or 0)
        if i >= n:
            out.append("%!(NOVERB)")
            break
        verb = fmt[i]
        i += 1
        if verb == "%":
            out.append("%")
            continue
        if argi >= len(args):
            out.append(f"%!{verb}(MISSING)")
            continue
        a = args[argi]
        argi += 1
        if a is MISSING:
            a = None
        if a is None and verb not in "vT":
            out.append(_bad(verb, a))
            continue
        out.append(_fmt_one(verb, a, flags, width, prec))
    if argi < len(args):
        out.append("%!(EXTRA " + ", ".join(
            "<nil>" if a is None or a is MISSING else f"{type_name(a)}={show(a)}"
            for a in args[argi:]) + ")")
    return "".join(out)


# ---------------------------------------------------------------------------------------------
# functions


def truth(v: Any) -> bool:
    """Go's isTrue: empty strings, collections, zero numbers, false and nil are false."""
    if v is None or v is MISSING or isinstance(v, _NilPtr):
        return False
    if isinstance(v, (str, list, dict, tuple, bool, int, float)):
        return bool(v)
    return True


class _Fn:
    """A template function: its parameters' kinds ('a' any, 's' string, 'i' int, 'L' list of
    strings), variadic when the last is '*'."""

    def __init__(self, fn: Callable[..., Any], params: str) -> None:
        self.fn, self.params = fn, params


def _basic(v: Any) -> str:
    if v is None or v is MISSING:
        return "nil"
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, int):
        return "int"
    if isinstance(v, float):
        return "float"
    if isinstance(v, str):
        return "string"
    return "other"


def _eq(a: Any, *bs: Any) -> bool:
    if not bs:
        raise _CallError("missing argument for comparison")
    ka = _basic(a)
    for b in bs:
        kb = _basic(b)
        if ka != kb:
            if ka != "nil" and kb != "nil":
                raise _CallError("incompatible types for comparison")
            continue
        if ka == "other":
            if isinstance(a, (list, dict)) or isinstance(b, (list, dict)):
                raise _CallError(f"non-comparable types {show(a)}: {type_name(a)}, "
                                 f"{type_name(b)}: {show(b)}")
        if ka == "nil" or a == b:
            return True
    return False


def _lt(a: Any, b: Any) -> bool:
    ka, kb = _basic(a), _basic(b)
    if ka in ("nil", "other", "bool") or kb in ("nil", "other", "bool"):
        raise _CallError("invalid type for comparison")
    if ka != kb:
        raise _CallError("incompatible types for comparison")
    return bool(a < b)


class _CallError(Exception):
    pass


def _index(item: Any, *indexes: Any) -> Any:
    if item is None or item is MISSING:
        raise _CallError("index of untyped nil")
    for ix in indexes:
        if item is None or item is MISSING:
            raise _CallError("index of nil pointer")
        if isinstance(item, (list, str)):
            if ix is None or ix is MISSING:
                raise _CallError("cannot index slice/array with nil")
            if not isinstance(ix, int) or isinstance(ix, bool):
                raise _CallError(f"cannot index slice/array with type {type_name(ix)}")
            if ix < 0 or ix >= len(item):
                raise _CallError(f"index out of range: {ix}")
            item = item[ix] if isinstance(item, list) else item.encode()[ix]
        elif isinstance(item, dict):
            if ix is None or ix is MISSING:
                raise _CallError("value is nil; should be of type string")
            if not isinstance(ix, str):
                raise _CallError(f"value has type {type_name(ix)}; should be string")
            if ix in item:
                item = item[ix]
            else:  # the zero value of the map's element type
                item = "" if type_name(item) == "map[string]string" else None
        else:
            raise _CallError(f"can't index item of type {type_name(item)}")
    return item


def _slice(item: Any, *idx: Any) -> Any:
    if item is None or item is MISSING:
        raise _CallError("slice of untyped nil")
    if len(idx) > 3:
        raise _CallError(f"too many slice indexes: {len(idx)}")
    if not isinstance(item, (list, str)):
        raise _CallError(f"can't slice item of type {type_name(item)}")
    if isinstance(item, str) and len(idx) == 3:
        raise _CallError("cannot 3-index slice a string")
    size = len(item.encode()) if isinstance(item, str) else len(item)
    ix = [0, size]
    for k, v in enumerate(idx[:2]):
        if not isinstance(v, int) or isinstance(v, bool):
            raise _CallError(f"cannot index slice/array with type {type_name(v)}")
        if v < 0 or v > size:
            raise _CallError(f"index out of range: {v}")
        ix[k] = v
    if ix[0] > ix[1]:
        raise _CallError(f"invalid slice index: {ix[0]} > {ix[1]}")
    if isinstance(item, str):
        return item.encode()[ix[0]:ix[1]].decode("utf-8", "replace")
    return item[ix[0]:ix[1]]


def _len(v: Any) -> int:
    if v is None or v is MISSING:
        raise _CallError("len of nil pointer")
    if isinstance(v, str):
        return len(v.encode("utf-8", "surrogateescape"))
    if isinstance(v, (list, dict)):
        return len(v)
    raise _CallError(f"len of type {type_name(v)}")


def _eval_args(args: tuple[Any, ...]) -> str:
    if len(args) == 1 and isinstance(args[0], str):
        return args[0]
    return _sprint(list(args))


def _html(*args: Any) -> str:
    s = _eval_args(args)
    rep = {"<": "&lt;", ">": "&gt;", "&": "&amp;", "'": "&#39;", '"': "&#34;", "\0": "\ufffd"}
    return "".join(rep.get(c, c) for c in s)


def _js(*args: Any) -> str:
    s = _eval_args(args)
    out = []
    for c in s:
        if c == "\\":
            out.append("\\\\")
        elif c == "'":
            out.append("\\'")
        elif c == '"':
            out.append('\\"')
        elif c in "<>&=":
            out.append(f"\\u{ord(c):04X}")
        elif ord(c) < 0x20 or not c.isprintable():
            out.append(f"\\u{ord(c):04X}")
        else:
            out.append(c)
    return "".join(out)


def _urlquery(*args: Any) -> str:
    s = _eval_args(args)
    safe = _ALNUM - {"_"} | {"-", "_", ".", "~"}
    out = []
    for b in s.encode():
        c = chr(b)
        if c in safe:
            out.append(c)
        elif c == " ":
            out.append("+")
        else:
            out.append(f"%{b:02X}")
    return "".join(out)


def _upper(s: str) -> str:
    """strings.ToUpper: each rune's own upper case (ß stays ß)."""
    return "".join(u if len(u := c.upper()) == 1 else c for c in s)


def _lower(s: str) -> str:
    return "".join(lo if len(lo := c.lower()) == 1 else c for c in s)


def _split(s: str, sep: str) -> list[str]:
    if sep == "":
        return list(s)
    return s.split(sep)


def _title(s: str) -> str:
    """strings.Title: the first letter of each word upper-cased, the rest left alone."""
    out = []
    prev_sep = True
    for c in s:
        out.append(_upper(c) if prev_sep else c)
        if c.isascii():
            prev_sep = not (c.isalnum() or c == "_")
        else:
            prev_sep = c.isspace() or not (c.isalpha() or c.isdigit())
    return "".join(out)


def _pad_space(s: str, prefix: int, suffix: int) -> str:
    if s == "":
        return s
    return " " * prefix + s + " " * suffix


def _truncate(s: str, length: int) -> str:
    if len(s) < length:
        return s
    return s[:length]


def _call(fn: Any, *args: Any) -> Any:
    if not callable(fn):
        raise _CallError(f"non-function {show(fn)} of type {type_name(fn)}")
    return fn(*args)


def _println(*args: Any) -> str:
    return " ".join(show(a) for a in args) + "\n"


BUILTINS: dict[str, _Fn] = {
    "and": _Fn(lambda *a: a[-1], "aa*"), "or": _Fn(lambda *a: a[-1], "aa*"),
    "not": _Fn(lambda a: not truth(a), "a"), "len": _Fn(_len, "a"),
    "index": _Fn(_index, "aa*"), "slice": _Fn(_slice, "aa*"),
    "print": _Fn(lambda *a: _sprint(list(a)), "a*"),
    "printf": _Fn(lambda f, *a: sprintf(f, list(a)), "sa*"), "println": _Fn(_println, "a*"),
    "eq": _Fn(_eq, "aa*"), "ne": _Fn(lambda a, b: not _eq(a, b), "aa"),
    "lt": _Fn(_lt, "aa"), "le": _Fn(lambda a, b: _lt(a, b) or _eq(a, b), "aa"),
    "gt": _Fn(lambda a, b: not (_lt(a, b) or _eq(a, b)), "aa"),
    "ge": _Fn(lambda a, b: not _lt(a, b), "aa"),
    "html": _Fn(_html, "a*"), "js": _Fn(_js, "a*"), "urlquery": _Fn(_urlquery, "a*"),
    "call": _Fn(_call, "aa*"),
}

# the docker CLI's (cli/templates): json without HTML escaping, as its encoder is set up
DOCKER_FUNCS: dict[str, _Fn] = {
    "json": _Fn(lambda v: to_json(v, escape_html=False).strip(" \t\r\n"), "a"),
    "split": _Fn(_split, "ss"), "join": _Fn(lambda a, sep: sep.join(a), "Ls"),
    "title": _Fn(_title, "s"), "lower": _Fn(_lower, "s"),
    "upper": _Fn(_upper, "s"), "pad": _Fn(_pad_space, "sii"),
    "truncate": _Fn(_truncate, "si"),
}

# what the docker CLI runs a table's header through: each function gives back its first
# argument, but pad, which pads the title as it pads the column
HEADER_FUNCS: dict[str, _Fn] = {
    name: _Fn(lambda v, *rest: v, "aa*") for name in DOCKER_FUNCS if name != "pad"
}


# ---------------------------------------------------------------------------------------------
# execution


class _Break(Exception):
    pass


class _Continue(Exception):
    pass


_NO_FINAL: Any = object()


class Template:
    """A parsed template: `Template(text).execute(data)` gives the text Go's would."""

    def __init__(self, text: str, name: str = "", funcs: dict[str, _Fn] | None = None,
                 missingkey: str = "default") -> None:
        """`missingkey` as Go's option: "default" (`<no value>`), "zero", "error"; or
        "inspect", docker inspect's way: its typed struct first, so a key missing from a map
        field gives `<no value>`, one missing from an object standing for a struct an error
        (that of the raw JSON it falls back to)."""
        self.text = text
        self.name = name
        self.funcs = {**BUILTINS, **DOCKER_FUNCS, **(funcs or {})}
        self.missingkey = missingkey
        p = _Parser(text, name, self.funcs)
        self.root = p.parse()
        self.defs = p.defs

    def execute(self, data: Any, funcs: dict[str, _Fn] | None = None) -> str:
        st = _State(self, data, {**self.funcs, **(funcs or {})})
        try:
            st.walk(data, self.root)
        except ExecError as e:
            e.partial = "".join(st.out)
            raise
        return "".join(st.out)


class _State:
    def __init__(self, tmpl: Template, data: Any, funcs: dict[str, _Fn]) -> None:
        self.tmpl = tmpl
        self.funcs = funcs
        self.vars: list[list[Any]] = [["$", data]]
        self.out: list[str] = []
        self.node: Node | None = None
        self.depth = 0
        self.name = tmpl.name

    def fail(self, msg: str, node: Node | None = None) -> Any:
        node = node or self.node
        text = self.tmpl.text
        pos = node.pos if node else 0
        line = 1 + text.count("\n", 0, pos)
        nl = text.rfind("\n", 0, pos)
        col = pos if nl < 0 else pos - (nl + 1)
        where = f"{self.tmpl.name}:{line}:{col}"
        raise ExecError(f'template: {where}: executing "{self.name}" at <{node}>: {msg}')

    # control
    def walk(self, dot: Any, node: Node) -> None:
        self.node = node
        if isinstance(node, TextNode):
            self.out.append(node.text)
        elif isinstance(node, ActionNode):
            v = self.eval_pipeline(dot, node.pipe)
            if not node.pipe.decl:
                self.out.append(self.printable(v, node))
        elif isinstance(node, ListNode):
            for n in node.nodes:
                self.walk(dot, n)
        elif isinstance(node, BranchNode):
            if node.kind == "range":
                self.walk_range(dot, node)
            else:
                mark = len(self.vars)
                v = self.eval_pipeline(dot, node.pipe)
                if truth(v):
                    self.walk(v if node.kind == "with" else dot, node.body)
                elif node.else_ is not None:
                    self.walk(dot, node.else_)
                del self.vars[mark:]
        elif isinstance(node, BreakNode):
            raise _Break
        elif isinstance(node, ContinueNode):
            raise _Continue
        elif isinstance(node, TemplateNode):
            body = self.tmpl.defs.get(node.name)
            if body is None:
                self.fail(f"template {_quote(node.name)} not defined", node)
            assert body is not None
            new_dot = self.eval_pipeline(dot, node.pipe) if node.pipe else None
            if self.depth >= 10000:
                self.fail("exceeded maximum template depth (100000)", node)
            saved_vars, saved_name = self.vars, self.name
            self.vars, self.name = [["$", new_dot]], node.name
            self.depth += 1
            try:
                self.walk(new_dot, body)
            finally:
                self.vars, self.name = saved_vars, saved_name
                self.depth -= 1

    def walk_range(self, dot: Any, node: BranchNode) -> None:
        mark = len(self.vars)
        v = self.eval_pipeline(dot, node.pipe)
        if isinstance(v, dict):
            items: list[tuple[Any, Any]] = sorted(v.items())
        elif isinstance(v, list):
            items = list(enumerate(v))
        elif isinstance(v, int) and not isinstance(v, bool):
            if len(node.pipe.decl) > 1:
                self.fail("can't use {} to iterate over more than one variable".format(v), node)
            items = [(i, i) for i in range(v)]
        elif v is None or v is MISSING or isinstance(v, _NilPtr):
            items = []
        else:
            self.fail(f"range can't iterate over {show(v)}")
        for k, elem in items:
            if node.pipe.decl:
                decl = node.pipe.decl
                if len(decl) == 1:
                    self.set_top(decl[0].idents[0], elem, mark)
                else:
                    self.set_top(decl[0].idents[0], k, mark)
                    self.set_top(decl[1].idents[0], elem, mark)
            inner = len(self.vars)
            try:
                self.walk(elem, node.body)
            except _Continue:
                pass
            except _Break:
                del self.vars[inner:]
                break
            del self.vars[inner:]
        if not items and node.else_ is not None:
            self.walk(dot, node.else_)
        del self.vars[mark:]

    def set_top(self, name: str, value: Any, mark: int) -> None:
        for slot in self.vars[mark:]:
            if slot[0] == name:
                slot[1] = value
                return
        self.vars.append([name, value])

    def printable(self, v: Any, node: Node) -> str:
        if v is MISSING or v is None:
            return "<no value>"
        if callable(v) and not isinstance(v, (dict, list)):
            self.fail(f"can't print {node} of type {type_name(v)}", node)
        return show(v)

    # pipelines
    def eval_pipeline(self, dot: Any, pipe: PipeNode) -> Any:
        self.node = pipe
        value: Any = _NO_FINAL
        for cmd in pipe.cmds:
            value = self.eval_command(dot, cmd, value)
        for var in pipe.decl:
            if pipe.is_assign:
                self.set_var(var.idents[0], value, var)
            else:
                self.vars.append([var.idents[0], value])
        return value

    def set_var(self, name: str, value: Any, node: Node) -> None:
        for slot in reversed(self.vars):
            if slot[0] == name:
                slot[1] = value
                return
        self.fail(f"undefined variable: {name}", node)

    def var(self, name: str, node: Node) -> Any:
        for slot in reversed(self.vars):
            if slot[0] == name:
                return slot[1]
        return self.fail(f"undefined variable: {name}", node)

    def not_a_function(self, args: list[Node], final: Any) -> None:
        if len(args) > 1 or final is not _NO_FINAL:
            self.fail(f"can't give argument to non-function {args[0]}", args[0])

    def eval_command(self, dot: Any, cmd: CommandNode, final: Any) -> Any:
        first = cmd.args[0]
        self.node = first
        if isinstance(first, FieldNode):
            return self.eval_field_chain(dot, dot, first, first.idents, cmd.args, final)
        if isinstance(first, ChainNode):
            return self.eval_chain(dot, first, cmd.args, final)
        if isinstance(first, IdentifierNode):
            return self.eval_function(dot, first, cmd, cmd.args, final)
        if isinstance(first, PipeNode):
            self.not_a_function(cmd.args, final)
            return self.eval_pipeline(dot, first)
        if isinstance(first, VariableNode):
            return self.eval_variable(dot, first, cmd.args, final)
        self.node = first
        self.not_a_function(cmd.args, final)
        if isinstance(first, BoolNode):
            return first.val
        if isinstance(first, DotNode):
            return dot
        if isinstance(first, NilNode):
            self.fail("nil is not a command", first)
        if isinstance(first, NumberNode):
            return first.val
        if isinstance(first, StringNode):
            return first.val
        return self.fail(f"can't evaluate command {first}", first)

    def eval_variable(self, dot: Any, node: VariableNode, args: list[Node], final: Any) -> Any:
        value = self.var(node.idents[0], node)
        if len(node.idents) == 1:
            self.not_a_function(args, final)
            return value
        return self.eval_field_chain(dot, value, node, node.idents[1:], args, final)

    def eval_chain(self, dot: Any, chain: ChainNode, args: list[Node], final: Any) -> Any:
        if isinstance(chain.node, NilNode):
            self.fail("indirection through explicit nil in " + str(chain), chain)
        pipe = chain.node
        value = self.eval_arg(dot, "a", pipe)
        return self.eval_field_chain(dot, value, chain, chain.fields, args, final)

    def eval_field_chain(self, dot: Any, receiver: Any, node: Node, idents: list[str],
                         args: list[Node], final: Any) -> Any:
        for ident in idents[:-1]:
            receiver = self.eval_field(dot, ident, node, [], _NO_FINAL, receiver)
        return self.eval_field(dot, idents[-1], node, args, final, receiver)

    def eval_field(self, dot: Any, name: str, node: Node, args: list[Node], final: Any,
                   receiver: Any) -> Any:
        self.node = node
        if receiver is None or receiver is MISSING or isinstance(receiver, _NilPtr):
            if self.tmpl.missingkey in ("error", "inspect") and not isinstance(receiver, NilMap):
                self.fail(f"nil data; no entry for key {_quote(name)}", node)
            return MISSING
        has_args = len(args) > 1 or final is not _NO_FINAL
        method = getattr(receiver, "go_methods", {}).get(name) \
            if not isinstance(receiver, (str, int, float, list)) else None
        if method is not None:
            return self.call(dot, _Fn(method[0], method[1]), node, name, args, final)
        if isinstance(receiver, dict):
            renames = getattr(receiver, "go_renames", None)
            if renames:  # a Go struct whose field is named otherwise in its JSON
                if name in renames:
                    name = renames[name]
                elif name in renames.values():
                    self.fail(f"can't evaluate field {name} in type "
                              f"{getattr(receiver, 'go_type', type_name(receiver))}", node)
            elif name not in receiver and self.tmpl.missingkey == "inspect":
                name = _json_name(name)
            if name in receiver:
                if has_args and getattr(receiver, "go_fields_are_methods", False):
                    got = len(args) - 1 + (final is not _NO_FINAL)
                    self.fail(f"wrong number of args for {name}: want 0 got {got}", node)
                if has_args:
                    self.fail(f"{name} is not a method but has arguments", node)
                return receiver[name]
            gt = getattr(receiver, "go_type", None)
            if gt:
                self.fail(f"can't evaluate field {name} in type {gt}", node)
            mk = self.tmpl.missingkey
            if mk == "error" or (mk == "inspect" and not _is_go_map(receiver)):
                self.fail(f"map has no entry for key {_quote(name)}", node)
            if mk == "zero":
                return None
            return MISSING
        return self.fail(f"can't evaluate field {name} in type {type_name(receiver)}", node)

    def eval_function(self, dot: Any, ident: IdentifierNode, cmd: CommandNode, args: list[Node],
                      final: Any) -> Any:
        self.node = ident
        name = ident.name
        fn = self.funcs.get(name)
        if fn is None:
            self.fail(f"{_quote(name)} is not a defined function", ident)
        assert fn is not None
        if name in ("and", "or") and fn is BUILTINS[name]:
            return self.eval_and_or(dot, name, cmd, args, final)
        return self.call(dot, fn, cmd, name, args, final)

    def eval_and_or(self, dot: Any, name: str, cmd: CommandNode, args: list[Node],
                    final: Any) -> Any:
        nodes = args[1:]
        total = len(nodes) + (final is not _NO_FINAL)
        if total < 1:
            self.fail(f"wrong number of args for {name}: want at least 1 got 0", cmd)
        v: Any = None
        for i in range(total):
            v = self.eval_arg(dot, "a", nodes[i]) if i < len(nodes) else final
            if v is MISSING:
                v = None
            if truth(v) == (name == "or"):
                return v
        return v

    def call(self, dot: Any, fn: _Fn, node: Node, name: str, args: list[Node],
             final: Any) -> Any:
        nodes = args[1:]
        params = fn.params
        variadic = params.endswith("*")
        fixed = params[:-2] if variadic else params
        got = len(nodes) + (final is not _NO_FINAL)
        # as Go's, reported at the function's name (the node being evaluated)
        if variadic:
            if got < len(fixed):
                self.fail(f"wrong number of args for {name}: want at least {len(fixed)} "
                          f"got {len(nodes)}")
        elif got != len(fixed):
            self.fail(f"wrong number of args for {name}: want {len(fixed)} got {got}")

        def kind_at(i: int) -> str:
            return fixed[i] if i < len(fixed) else params[-2]

        values = [self.eval_arg(dot, kind_at(i), n) for i, n in enumerate(nodes)]
        if final is not _NO_FINAL:
            values.append(self.check_value(kind_at(len(nodes)), final, node))
        values = [None if v is MISSING or isinstance(v, _NilPtr) else v for v in values]
        try:
            return fn.fn(*values)
        except _CallError as e:
            self.fail(f"error calling {name}: {e}", node)
        except ExecError:
            raise
        except (TypeError, ValueError) as e:
            self.fail(f"error calling {name}: {e}", node)

    def check_value(self, kind: str, v: Any, node: Node) -> Any:
        if isinstance(v, _NilPtr):
            v = None
        if kind == "s" and not isinstance(v, str):
            want = "string"
        elif kind == "i" and (not isinstance(v, int) or isinstance(v, bool)):
            want = "int"
        elif kind == "L" and not (isinstance(v, list) and all(isinstance(x, str) for x in v)):
            want = "[]string"
        else:
            return v
        if v is None or v is MISSING:
            if kind == "L":
                return []
            self.fail(f"invalid value; expected {want}", node)
        return self.fail(f"wrong type for value; expected {want}; got {type_name(v)}", node)

    def eval_arg(self, dot: Any, kind: str, n: Node) -> Any:
        self.node = n
        if kind in "siL" and isinstance(n, (NumberNode, BoolNode, StringNode, NilNode)):
            if kind == "s" and isinstance(n, StringNode):
                return n.val
            if kind == "i" and isinstance(n, NumberNode) and n.is_int:
                return n.val
            if isinstance(n, NilNode):
                self.fail(f"cannot assign nil to {'[]string' if kind == 'L' else kind}", n)
            want = {"s": "string", "i": "integer", "L": "[]string"}[kind]
            self.fail(f"expected {want}; found {n}", n)
        if isinstance(n, DotNode):
            v = dot
        elif isinstance(n, NilNode):
            v = None
        elif isinstance(n, FieldNode):
            v = self.eval_field_chain(dot, dot, n, n.idents, [n], _NO_FINAL)
        elif isinstance(n, VariableNode):
            v = self.eval_variable(dot, n, [n], _NO_FINAL)
        elif isinstance(n, PipeNode):
            v = self.eval_pipeline(dot, n)
        elif isinstance(n, IdentifierNode):
            cmd = CommandNode(n.pos)
            cmd.args = [n]
            v = self.eval_function(dot, n, cmd, [n], _NO_FINAL)
        elif isinstance(n, ChainNode):
            v = self.eval_chain(dot, n, [n], _NO_FINAL)
        elif isinstance(n, (BoolNode, StringNode, NumberNode)):
            v = n.val
        else:
            v = self.fail(f"can't handle {n} for arg", n)
        if kind == "a":
            return None if v is MISSING or isinstance(v, _NilPtr) else v
        return self.check_value(kind, v, n)


_ACRONYMS = (("ID", "Id"), ("CPU", "Cpu"), ("DNS", "Dns"), ("API", "Api"), ("OOM", "Oom"),
             ("IPC", "Ipc"), ("PID", "Pid"), ("UTS", "Uts"), ("IO", "Io"))


def _json_name(name: str) -> str:
    """The JSON key of a Go field named with an acronym (ID: Id, NanoCPUs: NanoCpus): docker
    inspect runs a template over its typed struct first, so both names work there."""
    for go, js in _ACRONYMS:
        name = name.replace(go, js)
    return name


def execute(text: str, data: Any, *, name: str = "", missingkey: str = "default",
            funcs: dict[str, _Fn] | None = None) -> str:
    """Parse and run `text` on `data` in one step."""
    return Template(text, name=name, missingkey=missingkey, funcs=funcs).execute(data)


# ---------------------------------------------------------------------------------------------
# Go's text/tabwriter


def tabwrite(text: str, minwidth: int = 10, padding: int = 3) -> str:
    """Align tab-separated cells as Go's tabwriter.NewWriter(w, minwidth, 1, padding, ' ', 0):
    a column block is a run of lines that have that cell; its width is the widest cell plus
    the padding, at least minwidth; text after a line's last tab is not aligned."""
    lines = [ln.split("\t") for ln in text.split("\n")]
    widths: list[int] = []
    out: list[str] = []

    def write_lines(line0: int, line1: int) -> None:
        for i in range(line0, line1):
            parts = []
            for j, c in enumerate(lines[i]):
                parts.append(c)
                if j < len(widths) and widths[j] > len(c):
                    parts.append(" " * (widths[j] - len(c)))
            out.append("".join(parts))

    def block(line0: int, line1: int) -> None:
        column = len(widths)
        this = line0
        while this < line1:
            if column >= len(lines[this]) - 1:
                this += 1
                continue
            write_lines(line0, this)
            line0 = this
            width = minwidth
            while this < line1 and column < len(lines[this]) - 1:
                width = max(width, len(lines[this][column]) + padding)
                this += 1
            widths.append(width)
            block(line0, this)
            widths.pop()
            line0 = this
        write_lines(line0, line1)

    block(0, len(lines))
    return "\n".join(out)
