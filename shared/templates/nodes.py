"""Parse-tree nodes of a Go template (mirroring `text/template/parse/node.go`)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(slots=True)
class Node:
    """Base: every node knows its line, for error messages."""

    line: int


@dataclass(slots=True)
class Text(Node):
    text: str


@dataclass(slots=True)
class Dot(Node):
    pass


@dataclass(slots=True)
class Nil(Node):
    pass


@dataclass(slots=True)
class Bool(Node):
    value: bool


@dataclass(slots=True)
class Number(Node):
    text: str
    is_int: bool
    is_float: bool
    int_value: int
    float_value: float
    ideal_float: bool  # written with . e E p P (and not hex/char): evaluates to float64


@dataclass(slots=True)
class String(Node):
    value: str


@dataclass(slots=True)
class Field(Node):
    idents: list[str]


@dataclass(slots=True)
class Variable(Node):
    idents: list[str]  # first is "$name"


@dataclass(slots=True)
class Identifier(Node):
    name: str


@dataclass(slots=True)
class Chain(Node):
    node: Node
    fields: list[str]


@dataclass(slots=True)
class Command(Node):
    args: list[Node]


@dataclass(slots=True)
class Pipe(Node):
    decl: list[str]
    is_assign: bool
    cmds: list[Command]


@dataclass(slots=True)
class Action(Node):
    pipe: Pipe


@dataclass(slots=True)
class ListNode(Node):
    nodes: list[Node] = field(default_factory=list)


@dataclass(slots=True)
class Branch(Node):
    kind: str  # if, range, with
    pipe: Pipe
    body: ListNode
    else_body: ListNode | None


@dataclass(slots=True)
class TemplateCall(Node):
    name: str
    pipe: Pipe | None


@dataclass(slots=True)
class Break(Node):
    pass


@dataclass(slots=True)
class Continue(Node):
    pass
