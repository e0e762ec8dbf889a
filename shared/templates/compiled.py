"""A fast path for the templates certificates use: the parse tree turned once into Python closures.

Why: a provisioner's template is rendered for every certificate, and walking the tree node by node
(`execute`) was most of a template's CPU per certificate. Most certificate templates are text,
actions calling functions on fields, string and number literals and sub-pipelines, and `if`/`else`;
such a template is compiled here when it is parsed. Anything else (variables, `range`, `with`,
`define`/`template`, `and`/`or`, functions that change their arguments) keeps the tree walker.

Safe by construction, as the walker is: the closures read only the data given and call only the
template functions. They do not reproduce the walker's error messages: when anything goes wrong
(a wrong type, a missing field, `fail`, an output limit) the compiled run is abandoned and the
walker renders the same template over the same data, so errors and their template lines are
exactly the walker's. Without loops a compiled template cannot run long: its steps are bounded by
its size; its output is bounded by `Limits.max_output`, as the walker's is.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from shared.templates import nodes as n
from shared.templates.arguments import check_value, literal_arg
from shared.templates.errors import TemplateError
from shared.templates.functions import Func
from shared.templates.values import MISSING, GoStruct, Lazy, sprint_value, truth

Value = Callable[[Any], Any]  # dot -> value
Emit = Callable[[Any], str]  # dot -> the text of a node


class _Unsupported(Exception):
    pass


class _Abandon(Exception):
    """The compiled run gives up; the walker renders instead."""


# Functions that change their arguments: a compiled run abandoned after calling one would leave the
# walker's run different data. Short-circuit `and`/`or` are evaluated differently from calls.
_EXCLUDED = frozenset({"and", "or", "set", "unset", "merge", "mergeOverwrite", "mustMerge",
                       "mustMergeOverwrite", "call"})


def _no_fail(message: str) -> TemplateError:
    raise _Abandon(message)


def _field(idents: list[str]) -> Value:
    def read(dot: Any) -> Any:
        receiver = dot
        for ident in idents:
            t = type(receiver)
            if t is dict:
                receiver = receiver.get(ident, MISSING)
            elif t is GoStruct and ident in receiver.values:
                receiver = receiver.field(ident)
            elif receiver is not MISSING:  # a field of a missing value is missing, as in the walker
                raise _Abandon(ident)  # nil or another type: the walker's rules and errors
        return receiver

    # `.key` and `.key.field` of the data (most reads): unrolled for a dict of data (a struct's
    # fields or anything else take the loop above, with its rules).
    if len(idents) == 1:
        key = idents[0]
        return lambda dot: dot.get(key, MISSING) if type(dot) is dict else read(dot)
    if len(idents) == 2:
        first, second = idents

        def read2(dot: Any) -> Any:
            if type(dot) is dict:
                receiver = dot.get(first, MISSING)
                t = type(receiver)
                if t is GoStruct:
                    values = receiver.values
                    if second in values:
                        value = values[second]
                        return value if type(value) is not Lazy else receiver.field(second)
                elif t is dict:
                    return receiver.get(second, MISSING)
            return read(dot)

        return read2
    return read


def _arg(node: n.Node, typ: str, funcs: dict[str, Func]) -> Value:
    kind = type(node)
    if kind is n.Field or kind is n.Pipe:
        # Inlined for the usual parameter types (each argument of each call of every render);
        # what they accept and reject is `check_value`'s, which the other types call.
        fused = _fused_arg(node, typ, funcs)
        if fused is not None:
            return fused
        inner = _field(node.idents) if kind is n.Field else _pipeline(node, funcs)  # type: ignore[attr-defined,arg-type]
        if typ == "any":
            def any_arg(dot: Any) -> Any:
                value = inner(dot)
                return None if value is MISSING else value

            return any_arg
        if typ == "string":
            def string_arg(dot: Any) -> Any:
                value = inner(dot)
                return value if type(value) is str else check_value(value, typ, _no_fail)

            return string_arg
        return lambda dot: check_value(inner(dot), typ, _no_fail)
    if kind is n.Dot:
        if typ == "any":
            return _any
        return lambda dot: check_value(dot, typ, _no_fail)
    if kind in (n.String, n.Number, n.Bool):
        try:
            constant = literal_arg(node, typ, _no_fail)
        except _Abandon:
            raise _Unsupported() from None
        return lambda dot: constant
    raise _Unsupported()


def _fused_arg(node: n.Node, typ: str, funcs: dict[str, Func]) -> Value | None:
    """The commonest arguments as one closure instead of a reader inside a converter (a call less
    for each argument of each call): `.key` and `.key.field` of the data as interface{} or
    string, and a sub-pipeline of one command as interface{}. Same values and failures as the
    general route (`_field`, `_pipeline`, then `check_value`'s rule)."""
    if type(node) is n.Pipe:
        pipe: n.Pipe = node  # type: ignore[assignment]
        if typ != "any" or pipe.decl or len(pipe.cmds) != 1:
            return None
        only = _command(pipe.cmds[0], funcs, False)

        def pipe_any(dot: Any) -> Any:
            value = only(dot, None)  # nil stays nil, missing becomes nil (single(), then _any)
            return None if value is MISSING else value

        return pipe_any
    idents: list[str] = node.idents  # type: ignore[attr-defined]
    if len(idents) != 1 or typ not in ("any", "string"):
        return None
    key = idents[0]
    read = _field(idents)
    if typ == "any":  # a missing key is nil: dict.get's default
        return lambda dot: dot.get(key) if type(dot) is dict else _any(read(dot))

    def string_field(dot: Any) -> Any:
        value = dot.get(key, MISSING) if type(dot) is dict else read(dot)
        return value if type(value) is str else check_value(value, typ, _no_fail)

    return string_field


def _any(value: Any) -> Any:
    """An interface{} parameter: a missing value is passed as nil (`check_value`'s rule)."""
    return None if value is MISSING else value


def _command(cmd: n.Command, funcs: dict[str, Func], piped: bool) -> Callable[[Any, Any], Any]:
    first = cmd.args[0]
    if type(first) is n.Field and len(cmd.args) == 1 and not piped:
        read = _field(first.idents)  # type: ignore[attr-defined]
        return lambda dot, final: read(dot)
    if type(first) is not n.Identifier:
        raise _Unsupported()
    name = first.name  # type: ignore[attr-defined]
    func = funcs.get(name)
    if func is None or name in _EXCLUDED:
        raise _Unsupported()
    params = func.params
    count = len(cmd.args) - 1 + (1 if piped else 0)
    if (func.variadic is None and count != len(params)) or count < len(params):
        raise _Unsupported()
    types = [params[i] if i < len(params) else func.variadic for i in range(count)]
    args = [_arg(a, types[i], funcs) for i, a in enumerate(cmd.args[1:])]  # type: ignore[arg-type]
    final_type = types[-1] if piped else None
    call = func.call
    if name == "printf" and not piped and type(cmd.args[1]) is n.String:
        plain = _plain_printf(cmd.args[1].value, args[1:], call)  # type: ignore[attr-defined]
        if plain is not None:
            return plain
    if final_type is None:  # the first command of a pipeline: by arity, without an argument list
        if not args:
            return lambda dot, final: call()
        if len(args) == 1:
            a0 = args[0]
            return lambda dot, final: call(a0(dot))
        if len(args) == 2:
            a0, a1 = args
            return lambda dot, final: call(a0(dot), a1(dot))
        if len(args) == 3:
            a0, a1, a2 = args
            return lambda dot, final: call(a0(dot), a1(dot), a2(dot))
        if len(args) == 4:  # `dict "k" v "k" v`
            a0, a1, a2, a3 = args
            return lambda dot, final: call(a0(dot), a1(dot), a2(dot), a3(dot))

    def run(dot: Any, final: Any) -> Any:
        argv = [a(dot) for a in args]
        if final_type is not None:
            argv.append(final if final_type == "any" and final is not MISSING
                        else check_value(final, final_type, _no_fail))
        return call(*argv)

    return run


def _plain_printf(fmt: str, args: list[Value], call: Callable[..., Any]) -> Callable[[Any, Any], Any] | None:
    """`printf "%s.%s" .a .b`, the usual use: the format split once; `sprintf`'s own fast path
    (string arguments, plain `%s` verbs) without its checks per call, anything else calls it."""
    pieces = fmt.split("%s")
    if len(pieces) != len(args) + 1 or any("%" in p for p in pieces):
        return None
    head, tails = pieces[0], pieces[1:]

    def plain(dot: Any, final: Any) -> Any:
        values = [a(dot) for a in args]
        for v in values:
            if type(v) is not str:
                return call(fmt, *values)
        return head + "".join([v + t for v, t in zip(values, tails)])  # noqa: B905 - same lengths

    return plain


def _pipeline(pipe: n.Pipe, funcs: dict[str, Func]) -> Value:
    if pipe.decl or not pipe.cmds:
        raise _Unsupported()
    commands = [_command(c, funcs, i > 0) for i, c in enumerate(pipe.cmds)]
    if len(commands) == 1:
        only = commands[0]

        def single(dot: Any) -> Any:
            value = only(dot, None)
            return MISSING if value is None else value

        return single

    first, rest = commands[0], commands[1:]

    def chain(dot: Any) -> Any:
        value = first(dot, None)
        for command in rest:
            value = command(dot, value)  # a nil result is piped on as nil (the walker's order)
        return MISSING if value is None else value

    return chain


def _node(node: n.Node, funcs: dict[str, Func]) -> Emit | str:
    """A node as a function of dot returning its text, or its text itself when it is constant."""
    kind = type(node)
    if kind is n.Text:
        text: str = node.text  # type: ignore[attr-defined]
        return text
    if kind is n.Action:
        pipe: n.Pipe = node.pipe  # type: ignore[attr-defined]
        if len(pipe.cmds) == 1 and not pipe.decl:  # one command (most actions): called directly
            only = _command(pipe.cmds[0], funcs, False)

            def action_one(dot: Any) -> str:
                v = only(dot, None)
                return v if type(v) is str else sprint_value(MISSING if v is None else v)

            return action_one
        value = _pipeline(pipe, funcs)

        def action(dot: Any) -> str:
            v = value(dot)
            return v if type(v) is str else sprint_value(v)

        return action
    if kind is n.ListNode:
        parts = [_node(c, funcs) for c in node.nodes]  # type: ignore[attr-defined]
        if all(type(p) is str for p in parts):
            return "".join(parts)  # type: ignore[arg-type]

        texts = [p if type(p) is str else "" for p in parts]
        calls = [(i, p) for i, p in enumerate(parts) if type(p) is not str]

        def sequence(dot: Any) -> str:
            out = texts.copy()  # the text between actions is in place; each action fills its slot
            for i, emit in calls:
                out[i] = emit(dot)  # type: ignore[operator]
            return "".join(out)

        return sequence
    if kind is n.Branch and node.kind == "if":  # type: ignore[attr-defined]
        test = _pipeline(node.pipe, funcs)  # type: ignore[attr-defined]
        body = _emit(_node(node.body, funcs))  # type: ignore[attr-defined]
        other = _emit(_node(node.else_body, funcs)) if node.else_body is not None else None  # type: ignore[attr-defined]

        def branch(dot: Any) -> str:
            value = test(dot)
            if value is True or (value is not False and truth(value)):  # a comparison's bool: no call
                return body(dot)
            return other(dot) if other is not None else ""

        return branch
    raise _Unsupported()


def _emit(part: Emit | str) -> Emit:
    if type(part) is str:
        return lambda dot: part  # type: ignore[return-value]
    return part  # type: ignore[return-value]


class Compiled:
    """A template's main tree as closures; `render` returns None when the walker must render.

    The text is built whole and measured once: without loops or template calls every piece is a
    value the walker would also hold in memory before writing it, so checking the limit at the end
    bounds the output as the walker's check per write does (an over-long text goes to the walker,
    which refuses it with its own error)."""

    __slots__ = ("_emit",)

    def __init__(self, emit: Emit) -> None:
        self._emit = emit

    def render(self, data: Any, max_output: int) -> str | None:
        try:
            text = self._emit(MISSING if data is None else data)
        except Exception:  # any failure: the walker renders, with its own errors
            return None
        return text if len(text) <= max_output else None


def compile_template(name: str, trees: dict[str, n.ListNode], funcs: dict[str, Func]) -> Compiled | None:
    """The compiled main tree of a parsed template, or None when it uses what only the walker runs."""
    tree = trees.get(name)
    if tree is None or len(trees) != 1:
        return None
    try:
        return Compiled(_emit(_node(tree, funcs)))
    except (_Unsupported, RecursionError):
        return None
