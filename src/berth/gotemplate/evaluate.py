"""Execution: a parsed template walked over data, after Go's text/template/exec.go, with its
error messages (`template: NAME:LINE:COL: executing "NAME" at <NODE>: ...`). The data is
JSON's values; the marks of values.py and the `go_*` attributes the CLI sets on them stand for
what Go's reflection would know (struct types, methods, typed nils, renamed fields)."""

from __future__ import annotations

from berth.gotemplate.funcs import BUILTINS, CallError, Fn
from berth.gotemplate.parse import (
    ActionNode,
    BoolNode,
    BranchNode,
    BreakNode,
    ChainNode,
    CommandNode,
    ContinueNode,
    DotNode,
    FieldNode,
    IdentifierNode,
    ListNode,
    NilNode,
    Node,
    NumberNode,
    PipeNode,
    StringNode,
    TemplateNode,
    TextNode,
    VariableNode,
)
from berth.gotemplate.values import (
    MISSING,
    ExecError,
    NilMap,
    NilPtr,
    is_go_map,
    quote,
    show,
    truth,
    type_name,
)

TYPE_CHECKING = False  # not typing's: importing typing costs ~3 ms of CLI start-up
if TYPE_CHECKING:
    from typing import Any, NoReturn

    from berth.gotemplate import Template


class _Break(Exception):
    pass


class _Continue(Exception):
    pass


# no value piped in from the previous command (None is a value: nil)
NO_FINAL: Any = object()


class State:
    """One execution: the output so far, the variables in scope (innermost last), the node
    being evaluated (for errors) and the depth of {{template}} calls."""

    def __init__(self, tmpl: Template, data: Any, funcs: dict[str, Fn]) -> None:
        self.tmpl = tmpl
        self.funcs = funcs
        self.vars: list[list[Any]] = [["$", data]]
        self.out: list[str] = []
        self.node: Node | None = None
        self.depth = 0
        self.name = tmpl.name

    def fail(self, msg: str, node: Node | None = None) -> NoReturn:
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
                self.walk_if_or_with(dot, node)
        elif isinstance(node, BreakNode):
            raise _Break
        elif isinstance(node, ContinueNode):
            raise _Continue
        elif isinstance(node, TemplateNode):
            self.walk_template(dot, node)

    def walk_if_or_with(self, dot: Any, node: BranchNode) -> None:
        mark = len(self.vars)
        v = self.eval_pipeline(dot, node.pipe)
        if truth(v):
            self.walk(v if node.kind == "with" else dot, node.body)
        elif node.else_ is not None:
            self.walk(dot, node.else_)
        del self.vars[mark:]

    def walk_template(self, dot: Any, node: TemplateNode) -> None:
        """{{template "name" pipeline}}: the named body with its own `$` and variables."""
        body = self.tmpl.defs.get(node.name)
        if body is None:
            self.fail(f"template {quote(node.name)} not defined", node)
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
        elif v is None or v is MISSING or isinstance(v, NilPtr):
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
        value: Any = NO_FINAL
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
        if len(args) > 1 or final is not NO_FINAL:
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

    def eval_field_chain(
        self, dot: Any, receiver: Any, node: Node, idents: list[str], args: list[Node], final: Any
    ) -> Any:
        for ident in idents[:-1]:
            receiver = self.eval_field(dot, ident, node, [], NO_FINAL, receiver)
        return self.eval_field(dot, idents[-1], node, args, final, receiver)

    def eval_field(
        self, dot: Any, name: str, node: Node, args: list[Node], final: Any, receiver: Any
    ) -> Any:
        self.node = node
        if receiver is None or receiver is MISSING or isinstance(receiver, NilPtr):
            if self.tmpl.missingkey in ("error", "inspect") and not isinstance(receiver, NilMap):
                self.fail(f"nil data; no entry for key {quote(name)}", node)
            return MISSING
        method = (
            getattr(receiver, "go_methods", {}).get(name)
            if not isinstance(receiver, (str, int, float, list))
            else None
        )
        if method is not None:
            return self.call(dot, Fn(method[0], method[1]), node, name, args, final)
        if isinstance(receiver, dict):
            return self.eval_key(receiver, name, node, args, final)
        self.fail(f"can't evaluate field {name} in type {type_name(receiver)}", node)

    def eval_key(
        self, receiver: dict[str, Any], name: str, node: Node, args: list[Node], final: Any
    ) -> Any:
        """`.name` of a JSON object: a Go struct's field (it has `go_type`, maybe
        `go_renames`) or a map's entry, where `missingkey` decides what a missing key gives."""
        has_args = len(args) > 1 or final is not NO_FINAL
        renames = getattr(receiver, "go_renames", None)
        if renames:  # a Go struct whose field is named otherwise in its JSON
            if name in renames:
                name = renames[name]
            elif name in renames.values():
                self.fail(
                    f"can't evaluate field {name} in type "
                    f"{getattr(receiver, 'go_type', type_name(receiver))}",
                    node,
                )
        elif name not in receiver and self.tmpl.missingkey == "inspect":
            name = _json_name(name)
        if name in receiver:
            if has_args and getattr(receiver, "go_fields_are_methods", False):
                got = len(args) - 1 + (final is not NO_FINAL)
                self.fail(f"wrong number of args for {name}: want 0 got {got}", node)
            if has_args:
                self.fail(f"{name} is not a method but has arguments", node)
            return receiver[name]
        gt = getattr(receiver, "go_type", None)
        if gt:
            self.fail(f"can't evaluate field {name} in type {gt}", node)
        mk = self.tmpl.missingkey
        if mk == "error" or (mk == "inspect" and not is_go_map(receiver)):
            self.fail(f"map has no entry for key {quote(name)}", node)
        if mk == "zero":
            return None
        return MISSING

    def eval_function(
        self, dot: Any, ident: IdentifierNode, cmd: CommandNode, args: list[Node], final: Any
    ) -> Any:
        self.node = ident
        name = ident.name
        fn = self.funcs.get(name)
        if fn is None:
            self.fail(f"{quote(name)} is not a defined function", ident)
        if name in ("and", "or") and fn is BUILTINS[name]:
            return self.eval_and_or(dot, name, cmd, args, final)
        return self.call(dot, fn, cmd, name, args, final)

    def eval_and_or(
        self, dot: Any, name: str, cmd: CommandNode, args: list[Node], final: Any
    ) -> Any:
        nodes = args[1:]
        total = len(nodes) + (final is not NO_FINAL)
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

    def call(self, dot: Any, fn: Fn, node: Node, name: str, args: list[Node], final: Any) -> Any:
        nodes = args[1:]
        params = fn.params
        variadic = params.endswith("*")
        fixed = params[:-2] if variadic else params
        got = len(nodes) + (final is not NO_FINAL)
        # as Go's, reported at the function's name (the node being evaluated)
        if variadic:
            if got < len(fixed):
                self.fail(
                    f"wrong number of args for {name}: want at least {len(fixed)} got {len(nodes)}"
                )
        elif got != len(fixed):
            self.fail(f"wrong number of args for {name}: want {len(fixed)} got {got}")

        def kind_at(i: int) -> str:
            return fixed[i] if i < len(fixed) else params[-2]

        values = [self.eval_arg(dot, kind_at(i), n) for i, n in enumerate(nodes)]
        if final is not NO_FINAL:
            values.append(self.check_value(kind_at(len(nodes)), final, node))
        values = [None if v is MISSING or isinstance(v, NilPtr) else v for v in values]
        try:
            return fn.fn(*values)
        except CallError as e:
            self.fail(f"error calling {name}: {e}", node)
        except ExecError:
            raise
        except (TypeError, ValueError) as e:
            self.fail(f"error calling {name}: {e}", node)

    def check_value(self, kind: str, v: Any, node: Node) -> Any:
        if isinstance(v, NilPtr):
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
            v = self.eval_field_chain(dot, dot, n, n.idents, [n], NO_FINAL)
        elif isinstance(n, VariableNode):
            v = self.eval_variable(dot, n, [n], NO_FINAL)
        elif isinstance(n, PipeNode):
            v = self.eval_pipeline(dot, n)
        elif isinstance(n, IdentifierNode):
            cmd = CommandNode(n.pos)
            cmd.args = [n]
            v = self.eval_function(dot, n, cmd, [n], NO_FINAL)
        elif isinstance(n, ChainNode):
            v = self.eval_chain(dot, n, [n], NO_FINAL)
        elif isinstance(n, (BoolNode, StringNode, NumberNode)):
            v = n.val
        else:
            self.fail(f"can't handle {n} for arg", n)
        if kind == "a":
            return None if v is MISSING or isinstance(v, NilPtr) else v
        return self.check_value(kind, v, n)


_ACRONYMS = (
    ("ID", "Id"),
    ("CPU", "Cpu"),
    ("DNS", "Dns"),
    ("API", "Api"),
    ("OOM", "Oom"),
    ("IPC", "Ipc"),
    ("PID", "Pid"),
    ("UTS", "Uts"),
    ("IO", "Io"),
)


def _json_name(name: str) -> str:
    """The JSON key of a Go field named with an acronym (ID: Id, NanoCPUs: NanoCpus): docker
    inspect runs a template over its typed struct first, so both names work there."""
    for go, js in _ACRONYMS:
        name = name.replace(go, js)
    return name
