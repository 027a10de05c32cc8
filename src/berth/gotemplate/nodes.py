"""The parse tree, after Go's text/template/parse/node.go. A node prints itself as Go's does:
execution errors quote the node they stopped at (`at <.Foo.Bar>`)."""

from __future__ import annotations

from berth.gotemplate.strconv import quote


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
        return f"{{{{template {quote(self.name)}{' ' + str(self.pipe) if self.pipe else ''}}}}}"


class Else(Node):
    """`{{else}}` as the parser meets it: it ends a list and never stays in the tree."""

    def __init__(self, pos: int) -> None:
        self.pos = pos


class End(Node):
    """`{{end}}` as the parser meets it."""

    def __init__(self, pos: int) -> None:
        self.pos = pos
