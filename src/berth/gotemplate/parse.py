"""The parser: items into a tree of nodes, after Go's text/template/parse (node.go, parse.go),
with its error messages. `{{define}}` and `{{block}}` bodies go to `defs` by name. A node prints
itself as Go's does: execution errors quote the node they stopped at (`at <.Foo.Bar>`)."""

from __future__ import annotations

from berth.gotemplate.lex import (
    ASSIGN,
    BOOL,
    CHAR,
    COMMA,
    DECLARE,
    DOT,
    EOF,
    ERROR,
    FIELD,
    IDENT,
    KEYWORD,
    LEFT,
    LPAREN,
    NIL,
    NUMBER,
    PIPE,
    RAW,
    RIGHT,
    RPAREN,
    SPACE,
    STRING,
    TEXT,
    VARIABLE,
    Item,
    lex,
)
from berth.gotemplate.values import ParseError, quote, unquote

TYPE_CHECKING = False  # not typing's: importing typing costs ~3 ms of CLI start-up
if TYPE_CHECKING:
    from typing import Any, NoReturn


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
    """if, range or with (`kind`): `else_` holds an `else if` as a list of one branch."""

    def __init__(
        self, kind: str, pos: int, pipe: PipeNode, body: ListNode, else_: ListNode | None
    ) -> None:
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
        return f"{{{{template {quote(self.name)}{' ' + str(self.pipe) if self.pipe else ''}}}}}"


class Else(Node):
    """`{{else}}` as the parser meets it: it ends a list and never stays in the tree."""

    def __init__(self, pos: int) -> None:
        self.pos = pos


class End(Node):
    """`{{end}}` as the parser meets it."""

    def __init__(self, pos: int) -> None:
        self.pos = pos


class Parser:
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
    def next(self) -> Item:
        it = self.items[self.i]
        if it.kind != EOF:
            self.i += 1
        self.last = it
        if it.kind == ERROR:
            self.fail(it.val, it)
        return it

    def backup(self) -> None:
        self.i -= 1

    def peek(self) -> Item:
        return self.items[self.i]

    def next_non_space(self) -> Item:
        it = self.next()
        while it.kind == SPACE:
            it = self.next()
        return it

    def peek_non_space(self) -> Item:
        while self.items[self.i].kind == SPACE:
            self.i += 1
        return self.items[self.i]

    def fail(self, msg: str, it: Item | None = None) -> NoReturn:
        it = it or self.last
        raise ParseError(f"template: {self.name}:{it.line}: {msg}")

    def unexpected(self, it: Item, context: str) -> NoReturn:
        if it.kind == ERROR:
            self.fail(it.val, it)
        self.fail(f"unexpected {it} in {context}", it)

    def expect(self, kind: int, context: str) -> Item:
        it = self.next_non_space()
        if it.kind != kind:
            self.unexpected(it, context)
        return it

    def unquote(self, quoted: str) -> str:
        try:
            return unquote(quoted)
        except ValueError:
            self.fail("invalid syntax")

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
            if isinstance(node, (End, Else)):
                self.fail(f"unexpected {{{{{'end' if isinstance(node, End) else 'else'}}}}}")
            root.nodes.append(node)
        return root

    def parse_define(self) -> None:
        name_item = self.next_non_space()
        if name_item.kind not in (STRING, RAW):
            self.unexpected(name_item, "define clause")
        name = self.unquote(name_item.val)
        self.expect(RIGHT, "define clause")
        saved = self.vars
        self.vars = ["$"]
        body, end = self.item_list()
        self.vars = saved
        if not isinstance(end, End):
            self.fail("unexpected {{else}} in define clause")
        self.defs[name] = body

    def item_list(self) -> tuple[ListNode, Node]:
        lst = ListNode(self.peek_non_space().pos)
        while self.peek_non_space().kind != EOF:
            node = self.text_or_action()
            if isinstance(node, (End, Else)):
                return lst, node
            lst.nodes.append(node)
        return self.fail("unexpected EOF")

    def text_or_action(self) -> Node:
        it = self.next_non_space()
        if it.kind == TEXT:
            return TextNode(it.pos, it.val)
        if it.kind == LEFT:
            return self.action()
        return self.unexpected(it, "input")

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
                    return Else(it.pos)  # `else if`: the `if` stays pending
                self.expect(RIGHT, "else")
                return Else(it.pos)
            if kw == "end":
                self.expect(RIGHT, "end")
                return End(it.pos)
            if kw in ("if", "range", "with"):
                return self.control(kw, it)
            if kw == "template":
                return self.template_control(it)
            self.fail(f"unexpected {it} in command")
        self.backup()
        start = self.peek()
        return ActionNode(start.pos, self.pipeline("command", RIGHT))

    def control(self, kind: str, it: Item) -> BranchNode:
        nvars = len(self.vars)
        if kind == "range":
            self.range_depth += 1
        pipe = self.pipeline(kind, RIGHT)
        body, nxt = self.item_list()
        if kind == "range":
            self.range_depth -= 1
        else_: ListNode | None = None
        if isinstance(nxt, Else):
            pending = self.peek_non_space()
            if kind in ("if", "with") and pending.kind == KEYWORD and pending.val == kind:
                kw = self.next_non_space()
                else_ = ListNode(nxt.pos)
                else_.nodes.append(self.control(kind, kw))
            else:
                else_, nxt = self.item_list()
                if not isinstance(nxt, End):
                    self.fail("expected end; found {{else}}")
        del self.vars[nvars:]
        return BranchNode(kind, it.pos, pipe, body, else_)

    def template_control(self, it: Item) -> TemplateNode:
        name_item = self.next_non_space()
        if name_item.kind not in (STRING, RAW):
            self.unexpected(name_item, "template clause")
        name = self.unquote(name_item.val)
        pipe = None
        if self.peek_non_space().kind != RIGHT:
            pipe = self.pipeline("template clause", RIGHT)
        else:
            self.next_non_space()
        return TemplateNode(name_item.pos, name, pipe)

    def block_control(self, it: Item) -> TemplateNode:
        name_item = self.next_non_space()
        if name_item.kind not in (STRING, RAW):
            self.unexpected(name_item, "block clause")
        name = self.unquote(name_item.val)
        pipe = self.pipeline("block clause", RIGHT)
        saved = self.vars
        self.vars = ["$"]
        body, end = self.item_list()
        self.vars = saved
        if not isinstance(end, End):
            self.fail("unexpected {{else}} in block clause")
        self.defs.setdefault(name, body)
        return TemplateNode(name_item.pos, name, pipe)

    def pipeline(self, context: str, end: int) -> PipeNode:
        start = self.peek_non_space()
        pipe = PipeNode(start.pos, [], False)
        self.declarations(pipe, context)
        while True:
            it = self.next_non_space()
            if it.kind == end:
                if not pipe.cmds:
                    self.fail(f"missing value for {context}")
                for i, c in enumerate(pipe.cmds[1:], 1):
                    if isinstance(c.args[0], (BoolNode, DotNode, NilNode, NumberNode, StringNode)):
                        self.fail(f"non executable command in pipeline stage {i + 1}")
                return pipe
            if it.kind in (
                BOOL,
                CHAR,
                DOT,
                FIELD,
                IDENT,
                NUMBER,
                NIL,
                RAW,
                STRING,
                VARIABLE,
                LPAREN,
            ):
                self.backup()
                pipe.cmds.append(self.command())
            else:
                self.unexpected(it, context)

    def declarations(self, pipe: PipeNode, context: str) -> None:
        """`$x :=`, `$x =`, or range's `$i, $e :=` at the start of a pipeline, if any."""
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
                self.fail(f"unexpected . after term {quote(str(node))}")
            return ChainNode(pos, node, fields)
        return node

    def term(self) -> Node | None:
        it = self.next_non_space()
        k = it.kind
        if k == IDENT:
            if it.val not in self.funcs:
                self.fail(f"function {quote(it.val)} not defined")
            return IdentifierNode(it.pos, it.val)
        if k == DOT:
            return DotNode(it.pos)
        if k == NIL:
            return NilNode(it.pos)
        if k == VARIABLE:
            if it.val not in self.vars:
                self.fail(f"undefined variable {quote(it.val)}")
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
            return StringNode(it.pos, it.val, self.unquote(it.val))
        self.backup()
        return None

    def number(self, it: Item) -> NumberNode:
        text = it.val
        if it.kind == CHAR:
            s = self.unquote(text)
            if len(s) != 1:
                self.fail(f"malformed character constant: {text}")
            return NumberNode(it.pos, text, ord(s), True)
        val = _parse_number(text)
        if val is None:
            self.fail(f"illegal number syntax: {quote(text)}")
        is_float = (
            isinstance(val, float)
            and not text.lower().lstrip("+-").startswith("0x")
            and any(ch in text for ch in ".eEpP")
        )
        if isinstance(val, float) and not is_float and val == int(val):
            val = int(val)
        return NumberNode(it.pos, text, val, not is_float)


def _parse_number(text: str) -> int | float | None:
    """A number literal's value as Go's parser reads it (a leading 0 is octal); None if it is
    no number."""
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
