"""The evaluator: walks a parsed template over JSON-like data, as `text/template/exec.go` does.

Safe by construction: the only values are the data given and what the functions return (no
attribute access on Python objects, no I/O), and every run is bounded in steps, template call
depth and output size; exceeding a bound is a `TemplateError`, never a hang.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from shared.templates import nodes as n
from shared.templates.arguments import GO_TYPES, check_value, ideal_constant, literal_arg
from shared.templates.errors import TemplateError
from shared.templates.functions import Func, FuncError
from shared.templates.values import MISSING, GoStruct, GoTyped, sprint_value, truth, type_name


@dataclass(frozen=True, slots=True)
class Limits:
    """Bounds on one rendering."""

    max_steps: int = 1_000_000
    max_depth: int = 100
    max_output: int = 1 << 20


NO_FINAL: Any = object()  # "no piped value" (Go's missingVal), distinct from an invalid value


class _Break(Exception):
    pass


class _Continue(Exception):
    pass



class State:
    """One execution: variables, output, counters."""

    def __init__(self, name: str, trees: dict[str, n.ListNode], funcs: dict[str, Func], limits: Limits) -> None:
        self.name = name
        self.trees = trees
        self.funcs = funcs
        self.limits = limits
        self.vars: list[tuple[str, Any]] = []
        self.out: list[str] = []
        self.size = 0
        self.steps = 0
        self.depth = 0
        self.line = 0

    def fail(self, message: str, line: int | None = None) -> TemplateError:
        return TemplateError(message, line if line is not None else self.line, self.name)

    def step(self, node: n.Node) -> None:
        self.line = node.line
        self.steps += 1
        if self.steps > self.limits.max_steps:
            raise self.fail(f"template exceeded {self.limits.max_steps} evaluation steps")

    def write(self, text: str) -> None:
        self.size += len(text)
        if self.size > self.limits.max_output:
            raise self.fail(f"template output exceeds {self.limits.max_output} bytes")
        self.out.append(text)

    # --- variables ---------------------------------------------------------------------------

    def set_var(self, name: str, value: Any) -> None:
        for i in range(len(self.vars) - 1, -1, -1):
            if self.vars[i][0] == name:
                self.vars[i] = (name, value)
                return
        raise self.fail(f"undefined variable: {name}")

    def var_value(self, name: str) -> Any:
        for i in range(len(self.vars) - 1, -1, -1):
            if self.vars[i][0] == name:
                return self.vars[i][1]
        raise self.fail(f"undefined variable: {name}")

    # --- walking -----------------------------------------------------------------------------

    def walk(self, dot: Any, node: n.Node) -> None:
        # `step` and `write` inlined, and exact-type tests (the node classes have no subclasses):
        # this loop is most of a render's time.
        self.line = node.line
        self.steps += 1
        if self.steps > self.limits.max_steps:
            raise self.fail(f"template exceeded {self.limits.max_steps} evaluation steps")
        kind = type(node)
        if kind is n.Text:
            text = node.text  # type: ignore[attr-defined]
            self.size += len(text)
            if self.size > self.limits.max_output:
                raise self.fail(f"template output exceeds {self.limits.max_output} bytes")
            self.out.append(text)
        elif kind is n.Action:
            pipe = node.pipe  # type: ignore[attr-defined]
            value = self.eval_pipeline(dot, pipe)
            if not pipe.decl:
                self.write(value if type(value) is str else sprint_value(value))
        elif kind is n.ListNode:
            for child in node.nodes:  # type: ignore[attr-defined]
                self.walk(dot, child)
        elif isinstance(node, n.Branch):
            if node.kind == "range":
                self.walk_range(dot, node)
            else:
                mark = len(self.vars)
                value = self.eval_pipeline(dot, node.pipe)
                if truth(value):
                    self.walk(value if node.kind == "with" else dot, node.body)
                elif node.else_body is not None:
                    self.walk(dot, node.else_body)
                del self.vars[mark:]
        elif isinstance(node, n.TemplateCall):
            self.walk_template(dot, node)
        elif isinstance(node, n.Break):
            raise _Break()
        elif isinstance(node, n.Continue):
            raise _Continue()
        else:
            raise self.fail("unknown node")

    def walk_range(self, dot: Any, node: n.Branch) -> None:
        mark = len(self.vars)
        value = self.eval_pipeline(dot, node.pipe)
        decl = node.pipe.decl
        items: list[tuple[Any, Any]]
        if isinstance(value, list):
            items = [(i, v) for i, v in enumerate(value)]
        elif isinstance(value, dict):
            items = [(k, value[k]) for k in sorted(value)]
        elif value is MISSING or value is None:
            items = []
        else:
            raise self.fail(f"range can't iterate over {sprint_value(value)}", node.line)
        inner = len(self.vars)
        for key, elem in items:
            self.step(node)
            if decl:
                if node.pipe.is_assign:
                    self.set_var(decl[0], key if len(decl) > 1 else elem)
                    if len(decl) > 1:
                        self.set_var(decl[1], elem)
                else:
                    self.vars[-1] = (self.vars[-1][0], elem)
                    if len(decl) > 1:
                        self.vars[-2] = (self.vars[-2][0], key)
            try:
                self.walk(elem, node.body)
            except _Continue:
                pass
            except _Break:
                del self.vars[inner:]
                break
            del self.vars[inner:]
        if not items and node.else_body is not None:
            self.walk(dot, node.else_body)
        del self.vars[mark:]

    def walk_template(self, dot: Any, node: n.TemplateCall) -> None:
        tree = self.trees.get(node.name)
        if tree is None:
            raise self.fail(f"template {node.name!r} not defined", node.line)
        if self.depth >= self.limits.max_depth:
            raise self.fail(f"exceeded maximum template depth ({self.limits.max_depth})", node.line)
        new_dot = self.eval_pipeline(dot, node.pipe) if node.pipe is not None else MISSING
        saved = self.vars
        self.vars = [("$", new_dot)]
        self.depth += 1
        try:
            self.walk(new_dot, tree)
        finally:
            self.depth -= 1
            self.vars = saved

    # --- pipelines and commands --------------------------------------------------------------

    def eval_pipeline(self, dot: Any, pipe: n.Pipe) -> Any:
        self.line = pipe.line
        self.steps += 1
        if self.steps > self.limits.max_steps:
            raise self.fail(f"template exceeded {self.limits.max_steps} evaluation steps")
        value: Any = NO_FINAL
        for cmd in pipe.cmds:
            value = self.eval_command(dot, cmd, value)
        if value is None:
            value = MISSING
        for name in pipe.decl:
            if pipe.is_assign:
                self.set_var(name, value)
            else:
                self.vars.append((name, value))
        return value

    def eval_command(self, dot: Any, cmd: n.Command, final: Any) -> Any:
        first = cmd.args[0]
        self.line = first.line
        self.steps += 1
        if self.steps > self.limits.max_steps:
            raise self.fail(f"template exceeded {self.limits.max_steps} evaluation steps")
        kind = type(first)
        if kind is n.Identifier:
            return self.eval_function(dot, first, cmd.args, final)  # type: ignore[arg-type]
        if kind is n.Field:
            return self.eval_field_chain(dot, dot, first, first.idents, cmd.args, final)  # type: ignore[attr-defined]
        if isinstance(first, n.Chain):
            return self.eval_chain(dot, first, cmd.args, final)
        if isinstance(first, n.Pipe):
            self.not_a_function(cmd.args, final)
            return self.eval_pipeline(dot, first)
        if isinstance(first, n.Variable):
            return self.eval_variable(dot, first, cmd.args, final)
        self.not_a_function(cmd.args, final)
        if isinstance(first, n.Bool):
            return first.value
        if isinstance(first, n.Dot):
            return dot
        if isinstance(first, n.Nil):
            raise self.fail("nil is not a command")
        if isinstance(first, n.Number):
            return ideal_constant(first, self.fail)
        if isinstance(first, n.String):
            return first.value
        raise self.fail("can't evaluate command")

    def not_a_function(self, args: list[n.Node], final: Any) -> None:
        if len(args) > 1 or final is not NO_FINAL:
            raise self.fail("can't give argument to non-function")

    def eval_variable(self, dot: Any, var: n.Variable, args: list[n.Node], final: Any) -> Any:
        value = self.var_value(var.idents[0])
        if len(var.idents) == 1:
            self.not_a_function(args, final)
            return value
        return self.eval_field_chain(dot, value, var, var.idents[1:], args, final)

    def eval_chain(self, dot: Any, chain: n.Chain, args: list[n.Node], final: Any) -> Any:
        if len(args) > 1 and False:
            pass
        if isinstance(chain.node, n.Pipe):
            pipe_value = self.eval_pipeline(dot, chain.node)
        else:
            pipe_value = self.eval_arg(dot, "any_raw", chain.node)
        return self.eval_field_chain(dot, pipe_value, chain, chain.fields, args, final)

    def eval_field_chain(self, dot: Any, receiver: Any, node: n.Node, idents: list[str],
                         args: list[n.Node], final: Any) -> Any:
        last = len(idents) - 1
        for i, ident in enumerate(idents):
            # Fast path: a data map (not the last link, which may be given arguments) read by key.
            if i < last and type(receiver) is dict:
                receiver = receiver.get(ident, MISSING)
                continue
            if i < last:
                receiver = self.eval_field(ident, receiver, [], NO_FINAL)
            else:
                return self.eval_field(ident, receiver, args, final)
        return receiver

    def eval_field(self, name: str, receiver: Any, args: list[n.Node], final: Any) -> Any:
        if receiver is MISSING:
            return MISSING
        if receiver is None:
            raise self.fail(f"nil pointer evaluating interface {{}}.{name}")
        if isinstance(receiver, GoStruct):
            if len(args) > 1 or final is not NO_FINAL:
                raise self.fail(f"{name} has arguments but cannot be invoked as function")
            try:
                return receiver.field(name)
            except KeyError:
                raise self.fail(f"can't evaluate field {name} in type {receiver.go_type}") from None
        if isinstance(receiver, dict):
            if len(args) > 1 or final is not NO_FINAL:
                raise self.fail(f"{name} is not a method but has arguments")
            if name in receiver:
                return receiver[name]
            return MISSING
        raise self.fail(f"can't evaluate field {name} in type {type_name(receiver)}")

    def eval_function(self, dot: Any, ident: n.Identifier, args: list[n.Node], final: Any) -> Any:
        name = ident.name
        func = self.funcs.get(name)
        if func is None:
            raise self.fail(f"{name!r} is not a defined function")
        call_args = args[1:]
        num_in = len(call_args) + (0 if final is NO_FINAL else 1)
        fixed = func.params
        if func.variadic is not None:
            if num_in < len(fixed):
                raise self.fail(f"wrong number of args for {name}: want at least {len(fixed)} got {len(call_args)}")
        elif num_in != len(fixed):
            raise self.fail(f"wrong number of args for {name}: want {len(fixed)} got {num_in}")
        if name in ("and", "or"):
            value: Any = MISSING
            for arg in call_args:
                value = self.eval_arg(dot, "value", arg)
                if truth(value) == (name == "or"):
                    return value
            if final is not NO_FINAL:
                value = self.validate(final, "value")
            return value
        argv: list[Any] = []
        nfixed = len(fixed)
        i = 0
        for arg in call_args:
            argv.append(self.eval_arg(dot, fixed[i] if i < nfixed else func.variadic, arg))  # type: ignore[arg-type]
            i += 1
        if final is not NO_FINAL:
            argv.append(self.validate(final, fixed[i] if i < nfixed else func.variadic))  # type: ignore[arg-type]
        self.line = ident.line
        try:
            return func.call(*argv)
        except FuncError as exc:
            raise self.fail(f"error calling {name}: {exc}", ident.line) from None
        except TemplateError as exc:
            raise TemplateError(f"error calling {name}: {exc.message}", ident.line, self.name,
                                failed=exc.failed, reason=exc.reason) from None
        except (ValueError, TypeError, ArithmeticError, LookupError, OverflowError, RecursionError,
                MemoryError) as exc:
            raise self.fail(f"error calling {name}: {exc}", ident.line) from None

    def eval_arg(self, dot: Any, typ: str, node: n.Node) -> Any:
        self.line = node.line
        self.steps += 1
        if self.steps > self.limits.max_steps:
            raise self.fail(f"template exceeded {self.limits.max_steps} evaluation steps")
        kind = type(node)
        if kind is n.Field:
            # `.A.B.C` read link by link here for data maps and Cirrus's structs (most arguments are
            # such fields); anything else (missing, nil, other types, errors) goes through eval_field.
            receiver = dot
            for ident in node.idents:  # type: ignore[attr-defined]
                t = type(receiver)
                if t is dict:
                    receiver = receiver.get(ident, MISSING)
                elif t is GoStruct and ident in receiver.values:
                    receiver = receiver.field(ident)
                else:
                    receiver = self.eval_field(ident, receiver, [node], NO_FINAL)
            return receiver if typ == "any" and receiver is not MISSING else self.validate(receiver, typ)
        if kind is n.String and typ in ("any", "value", "any_raw", "string"):
            return node.value  # type: ignore[attr-defined]
        if isinstance(node, n.Dot):
            return self.validate(dot, typ)
        if isinstance(node, n.Nil):
            if typ in ("any", "map", "list", "any_raw"):
                return None
            if typ == "value":
                return None
            raise self.fail(f"cannot assign nil to {GO_TYPES.get(typ, typ)}")
        if isinstance(node, n.Field):
            return self.validate(self.eval_field_chain(dot, dot, node, node.idents, [node], NO_FINAL), typ)
        if isinstance(node, n.Variable):
            return self.validate(self.eval_variable(dot, node, [node], NO_FINAL), typ)
        if isinstance(node, n.Pipe):
            return self.validate(self.eval_pipeline(dot, node), typ)
        if isinstance(node, n.Identifier):
            return self.validate(self.eval_function(dot, node, [node], NO_FINAL), typ)
        if isinstance(node, n.Chain):
            return self.validate(self.eval_chain(dot, node, [node], NO_FINAL), typ)
        return literal_arg(node, typ, self.fail)

    def validate(self, value: Any, typ: str) -> Any:
        if typ == "any_raw" or (typ == "any" and value is not MISSING):
            return value
        return check_value(value, typ, self.fail)


def execute(name: str, trees: dict[str, n.ListNode], funcs: dict[str, Func], data: Any, limits: Limits) -> str:
    """Render template `name` over `data` (already normalized)."""
    state = State(name, trees, funcs, limits)
    tree = trees.get(name)
    if tree is None:
        raise TemplateError(f"{name!r} is an incomplete or empty template", 0, name)
    root = MISSING if data is None else data
    state.vars = [("$", root)]
    try:
        state.walk(root, tree)
    except (_Break, _Continue):
        raise state.fail("break or continue outside range") from None
    except RecursionError:
        raise state.fail("template nesting too deep") from None
    return "".join(state.out)


__all__ = ["GoTyped", "Limits", "execute"]
