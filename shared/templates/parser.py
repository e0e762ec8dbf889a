"""Parser for Go's `text/template` syntax, following `text/template/parse/parse.go`.

Produces a tree per template name (`define`/`block` add more). Like Go, it refuses undefined
variables and functions at parse time, so a template that parses only fails at run time on data.

What a literal's text means (Go's `strconv` rules for strings, characters and numbers) lives in
`shared.templates.literals`; this module is the grammar: statements, pipelines, commands, operands.
"""

from __future__ import annotations

from collections.abc import Collection

from shared.templates import nodes as n
from shared.templates.errors import TemplateError
from shared.templates.lexer import Token, tokenize
from shared.templates.literals import make_number, token_string, unquote_go

MAX_PARSE_DEPTH = 100


class Parser:
    """Recursive-descent parser over the lexer's tokens."""

    def __init__(self, text: str, name: str, funcs: Collection[str]) -> None:
        self.name = name
        self.tokens = tokenize(text, name)
        self.i = 0
        self.funcs = funcs
        self.vars: list[str] = ["$"]
        self.trees: dict[str, n.ListNode] = {}
        self.range_depth = 0
        self.depth = 0

    def fail(self, message: str, tok: Token | None = None) -> TemplateError:
        t = tok or self.tokens[min(self.i, len(self.tokens) - 1)]
        return TemplateError(message, t.line, self.name)

    def next(self) -> Token:
        tok = self.tokens[self.i]
        if tok.kind != "eof":
            self.i += 1
        return tok

    def peek(self) -> Token:
        return self.tokens[self.i]

    def next_nonspace(self) -> Token:
        tok = self.next()
        while tok.kind == "space":
            tok = self.next()
        return tok

    def peek_nonspace(self) -> Token:
        j = self.i
        while self.tokens[j].kind == "space":
            j += 1
        return self.tokens[j]

    def expect(self, kind: str, context: str) -> Token:
        tok = self.next_nonspace()
        if tok.kind != kind:
            raise self.fail(f"unexpected {self.describe(tok)} in {context}", tok)
        return tok

    @staticmethod
    def describe(tok: Token) -> str:
        if tok.kind == "eof":
            return "EOF"
        if tok.kind == "right":
            return "\"}}\""
        return f"<{tok.value}>" if tok.kind in ("keyword", "identifier") else repr(tok.value)

    # --- top level -------------------------------------------------------------------------

    def parse(self) -> dict[str, n.ListNode]:
        root = n.ListNode(1)
        while self.peek().kind != "eof":
            if self.peek().kind == "left":
                j = self.i + 1
                while self.tokens[j].kind == "space":
                    j += 1
                if self.tokens[j].kind == "keyword" and self.tokens[j].value == "define":
                    self.next()
                    self.next_nonspace()
                    self.parse_define()
                    continue
            node = self.text_or_action()
            if isinstance(node, tuple):
                raise self.fail(f"unexpected {node[0]}", node[1])
            root.nodes.append(node)
        self.add_tree(self.name, root)
        return self.trees

    def parse_define(self) -> None:
        tok = self.next_nonspace()
        if tok.kind not in ("string", "rawstring"):
            raise self.fail("unexpected " + self.describe(tok) + " in define clause", tok)
        name = token_string(tok, self.name)
        self.expect("right", "define clause")
        saved = self.vars
        self.vars = ["$"]
        body, end = self.item_list()
        self.vars = saved
        if end != "end":
            raise self.fail(f"unexpected {{{{{end}}}}}")
        self.add_tree(name, body)

    def add_tree(self, name: str, body: n.ListNode) -> None:
        existing = self.trees.get(name)
        if existing is not None and not _is_empty(existing) and not _is_empty(body):
            raise self.fail(f"template: multiple definition of template {name!r}")
        if existing is None or not _is_empty(body):
            self.trees[name] = body

    def item_list(self) -> tuple[n.ListNode, str]:
        """Items up to an {{end}} or {{else}}; returns the list and which one ended it."""
        self.depth += 1
        if self.depth > MAX_PARSE_DEPTH:
            raise self.fail("template nesting too deep")
        body = n.ListNode(self.peek().line)
        while True:
            if self.peek_nonspace().kind == "eof":
                raise self.fail("unexpected EOF")
            node = self.text_or_action()
            if isinstance(node, tuple):
                self.depth -= 1
                return body, node[0]
            body.nodes.append(node)

    def text_or_action(self) -> n.Node | tuple[str, Token]:
        tok = self.next()
        if tok.kind == "text":
            return n.Text(tok.line, tok.value)
        if tok.kind == "left":
            return self.action()
        raise self.fail(f"unexpected {self.describe(tok)} in input", tok)

    def action(self) -> n.Node | tuple[str, Token]:
        tok = self.peek_nonspace()
        if tok.kind == "keyword":
            word = tok.value
            if word in ("if", "range", "with"):
                self.next_nonspace()
                return self.branch(word, tok)
            if word == "block":
                self.next_nonspace()
                return self.block(tok)
            if word == "template":
                self.next_nonspace()
                return self.template_call(tok)
            if word in ("end", "else"):
                self.next_nonspace()
                if word == "end":
                    self.expect("right", "end")
                    return ("end", tok)
                nxt = self.peek_nonspace()
                if nxt.kind == "keyword" and nxt.value == "if":
                    return ("elseif", tok)
                self.expect("right", "else")
                return ("else", tok)
            if word in ("break", "continue"):
                self.next_nonspace()
                if self.range_depth == 0:
                    raise self.fail(f"{{{{{word}}}}} outside {{{{range}}}}", tok)
                self.expect("right", word)
                return n.Break(tok.line) if word == "break" else n.Continue(tok.line)
        pipe = self.pipeline("command", "right")
        return n.Action(tok.line, pipe)

    def branch(self, kind: str, tok: Token) -> n.Node:
        mark = len(self.vars)
        pipe = self.pipeline(kind, "right")
        if kind == "range":
            self.range_depth += 1
        body, end = self.item_list()
        if kind == "range":
            self.range_depth -= 1
        else_body: n.ListNode | None = None
        if end in ("else", "elseif"):
            if end == "elseif":
                if kind != "if":
                    raise self.fail(f"unexpected <if> in {kind}")
                # {{else if ...}} is {{else}}{{if ...}}...{{end}}{{end}} with one shared end.
                self.next_nonspace()
                inner_tok = self.tokens[self.i - 1]
                else_body = n.ListNode(inner_tok.line, [self.branch("if", inner_tok)])
                del self.vars[mark:]
                return n.Branch(tok.line, kind, pipe, body, else_body)
            else_body, end = self.item_list()
            if end != "end":
                raise self.fail(f"expected end; found {{{{{end}}}}}")
        del self.vars[mark:]
        return n.Branch(tok.line, kind, pipe, body, else_body)

    def block(self, tok: Token) -> n.Node:
        name_tok = self.next_nonspace()
        if name_tok.kind not in ("string", "rawstring"):
            raise self.fail(f"unexpected {self.describe(name_tok)} in block clause", name_tok)
        name = token_string(name_tok, self.name)
        pipe = self.pipeline("block clause", "right")
        saved = self.vars
        self.vars = ["$"]
        body, end = self.item_list()
        self.vars = saved
        if end != "end":
            raise self.fail(f"unexpected {{{{{end}}}}}")
        self.add_tree(name, body)
        return n.TemplateCall(tok.line, name, pipe)

    def template_call(self, tok: Token) -> n.Node:
        name_tok = self.next_nonspace()
        if name_tok.kind not in ("string", "rawstring"):
            raise self.fail(f"unexpected {self.describe(name_tok)} in template clause", name_tok)
        name = token_string(name_tok, self.name)
        pipe: n.Pipe | None = None
        if self.peek_nonspace().kind != "right":
            pipe = self.pipeline("template clause", "right")
        else:
            self.next_nonspace()
        return n.TemplateCall(tok.line, name, pipe)

    # --- pipelines ----------------------------------------------------------------------------

    def pipeline(self, context: str, end: str) -> n.Pipe:
        decl: list[str] = []
        is_assign = False
        line = self.peek_nonspace().line
        tok = self.peek_nonspace()
        if tok.kind == "variable":
            save = self.i
            self.next_nonspace()
            nxt = self.peek_nonspace()
            if nxt.kind in ("declare", "assign"):
                self.next_nonspace()
                is_assign = nxt.kind == "assign"
                decl.append(tok.value)
                self.vars.append(tok.value)
            elif nxt.kind == "charitem" and nxt.value == ",":
                self.next_nonspace()
                if context != "range":
                    raise self.fail(f"too many declarations in {context}", nxt)
                second = self.next_nonspace()
                if second.kind != "variable":
                    raise self.fail("range can only initialize variables", second)
                op = self.next_nonspace()
                if op.kind not in ("declare", "assign"):
                    raise self.fail(f"unexpected {self.describe(op)} in range", op)
                is_assign = op.kind == "assign"
                decl = [tok.value, second.value]
                self.vars.extend(decl)
            else:
                self.i = save
        cmds: list[n.Command] = []
        while True:
            tok = self.peek_nonspace()
            if tok.kind == end:
                self.next_nonspace()
                break
            if tok.kind in ("bool", "char", "dot", "field", "identifier", "number", "rawstring",
                            "string", "variable", "lparen") or (tok.kind == "keyword" and tok.value == "nil"):
                cmds.append(self.command(end))
            else:
                raise self.fail(f"unexpected {self.describe(tok)} in {context}", tok)
        if not cmds:
            raise self.fail(f"missing value for {context}")
        for index, cmd in enumerate(cmds[1:], start=2):
            if isinstance(cmd.args[0], (n.Bool, n.Dot, n.Nil, n.Number, n.String)):
                raise self.fail(f"non executable command in pipeline stage {index}")
        return n.Pipe(line, decl, is_assign, cmds)

    def command(self, end: str) -> n.Command:
        line = self.peek_nonspace().line
        args: list[n.Node] = []
        while True:
            while self.peek().kind == "space":
                self.next()
            operand = self.operand()
            if operand is not None:
                args.append(operand)
            tok = self.next()
            if tok.kind == "space":
                continue
            if tok.kind in ("right", "rparen"):
                self.i -= 1
            elif tok.kind != "pipe":
                raise self.fail(f"unexpected {self.describe(tok)} in operand", tok)
            break
        if not args:
            raise self.fail("empty command")
        return n.Command(line, args)

    def operand(self) -> n.Node | None:
        node = self.term()
        if node is None:
            return None
        if self.peek().kind == "field":
            fields: list[str] = []
            while self.peek().kind == "field":
                fields.append(self.next().value[1:])
            if isinstance(node, n.Field):
                return n.Field(node.line, node.idents + fields)
            if isinstance(node, n.Variable):
                return n.Variable(node.line, node.idents + fields)
            if isinstance(node, (n.Bool, n.String, n.Number, n.Nil, n.Dot)):
                raise self.fail("unexpected . after term")
            return n.Chain(node.line, node, fields)
        return node

    def term(self) -> n.Node | None:
        tok = self.next_nonspace()
        kind = tok.kind
        if kind == "identifier":
            if tok.value not in self.funcs:
                raise self.fail(f"function {tok.value!r} not defined", tok)
            return n.Identifier(tok.line, tok.value)
        if kind == "dot":
            return n.Dot(tok.line)
        if kind == "keyword" and tok.value == "nil":
            return n.Nil(tok.line)
        if kind == "variable":
            if tok.value not in self.vars:
                raise self.fail(f"undefined variable {tok.value!r}", tok)
            return n.Variable(tok.line, [tok.value])
        if kind == "field":
            return n.Field(tok.line, [tok.value[1:]])
        if kind == "bool":
            return n.Bool(tok.line, tok.value == "true")
        if kind in ("number", "char"):
            return make_number(tok, self.name)
        if kind == "lparen":
            self.depth += 1
            if self.depth > MAX_PARSE_DEPTH:
                raise self.fail("template nesting too deep")
            pipe = self.pipeline("parenthesized pipeline", "rparen")
            self.depth -= 1
            return pipe
        if kind in ("string", "rawstring"):
            if kind == "string":
                value = unquote_go(tok.value[1:-1], '"')
                if value is None:
                    raise self.fail(f"invalid syntax: {tok.value}", tok)
                return n.String(tok.line, value)
            return n.String(tok.line, token_string(tok, self.name))
        self.i -= 1
        return None


def _is_empty(body: n.ListNode) -> bool:
    for node in body.nodes:
        if isinstance(node, n.Text):
            if node.text.strip(" \t\r\n"):
                return False
        else:
            return False
    return True


def parse(text: str, name: str, funcs: Collection[str]) -> dict[str, n.ListNode]:
    """All templates defined by `text`: the main one under `name`, plus each define/block."""
    return Parser(text, name, funcs).parse()
