"""Which keys of its data a template can read, found once from its parse tree.

Why: step-ca hands every certificate template the whole request (`.Subject`, `.SANs`, `.Token`,
`.Insecure`, templateData...), and building and copying all of it for every certificate cost more
than some templates' rendering. A template that reads only `.Subject.CommonName` and `.Token.sub`
renders the same text over data holding only those: every read of a key it never names gives the
same result whether or not the key is there, because nothing else reaches the data.

The walk is deliberately narrow: it bounds only templates made of what the compiled fast path
runs (text, actions, function calls, field chains from dot, literals, `if`/`else`), where dot is
always the whole data. Anything that can hand the data on whole or under another name (`.` as a
value, variables, `with`/`range`, `template`/`block`, chained fields of a call's result) gives
`None`: the template gets everything, in step-ca's order.
"""

from __future__ import annotations

from typing import Any

from shared.templates import nodes as n
from shared.templates.values import PreparedData, normalize

# A top-level key read whole (None) or only through fields of it (the names of those fields).
Reads = dict[str, frozenset[str] | None]


class _Unbounded(Exception):
    pass


def data_reads(trees: dict[str, n.ListNode], name: str) -> Reads | None:
    """The data keys the template `name` reads (see the module's docstring), or None for all."""
    tree = trees.get(name)
    if tree is None or len(trees) != 1:  # `define`d templates: a `template` call can pass dot on
        return None
    found: dict[str, set[str] | None] = {}
    try:
        _node(tree, found)
    except (_Unbounded, RecursionError):
        return None
    return {key: None if fields is None else frozenset(fields) for key, fields in found.items()}


def _node(node: n.Node, found: dict[str, set[str] | None]) -> None:
    kind = type(node)
    if kind is n.Text:
        return
    if kind is n.Action:
        _pipe(node.pipe, found)  # type: ignore[attr-defined]
    elif kind is n.ListNode:
        for child in node.nodes:  # type: ignore[attr-defined]
            _node(child, found)
    elif kind is n.Branch and node.kind == "if":  # type: ignore[attr-defined]
        _pipe(node.pipe, found)  # type: ignore[attr-defined]
        _node(node.body, found)  # type: ignore[attr-defined]
        if node.else_body is not None:  # type: ignore[attr-defined]
            _node(node.else_body, found)  # type: ignore[attr-defined]
    else:
        raise _Unbounded()


def _pipe(pipe: n.Pipe, found: dict[str, set[str] | None]) -> None:
    if pipe.decl:
        raise _Unbounded()
    for cmd in pipe.cmds:
        for arg in cmd.args:
            _arg(arg, found)


def _arg(node: n.Node, found: dict[str, set[str] | None]) -> None:
    kind = type(node)
    if kind is n.Field:
        idents: list[str] = node.idents  # type: ignore[attr-defined]
        key = idents[0]
        if len(idents) == 1:
            found[key] = None
        elif key not in found:
            found[key] = {idents[1]}
        else:
            fields = found[key]
            if fields is not None:
                fields.add(idents[1])
    elif kind is n.Pipe:
        _pipe(node, found)  # type: ignore[arg-type]
    elif kind not in (n.Identifier, n.String, n.Number, n.Bool, n.Nil):
        raise _Unbounded()  # dot, a variable, a chain: the data may be read whole


def select(data: dict[str, Any], reads: Reads) -> dict[str, Any]:
    """`normalize(data)` of only what a template reads: the keys it names, and of a map read only
    through its fields, those fields (a Cirrus struct or any other value is kept whole)."""
    prepared = data.prepared if type(data) is PreparedData else _NONE
    out: dict[str, Any] = {}
    for key, fields in reads.items():
        if key in data:
            value = data[key]
            if key in prepared or type(value) is str:
                # Cirrus's own keys are as Go sees them (`template_data` built what `reads` names);
                # a templateData string needs no copy. Leaving fields out is only a saving.
                out[key] = value
                continue
            if fields is not None and type(value) is dict:
                value = {f: value[f] for f in fields if f in value}
            out[key] = normalize(value, 1)
    return out


_NONE: frozenset[str] = frozenset()
