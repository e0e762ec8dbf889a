"""Tokenizer for Go's `text/template` syntax.

Hand-written because no Python package implements Go's template language (Jinja2 and friends are
different languages with different whitespace, truthiness and pipeline rules). It follows
`text/template/parse/lex.go`: `{{`/`}}` delimiters, `{{- `/` -}}` trim markers, `{{/* */}}`
comments, and inside actions fields, variables, strings, raw strings, characters, numbers,
identifiers, pipes, parentheses, `:=` and `=`.
"""

from __future__ import annotations

from dataclasses import dataclass

from shared.templates.errors import TemplateError

LEFT, RIGHT = "{{", "}}"
SPACE_CHARS = " \t\r\n"
KEYWORDS = frozenset({"block", "break", "continue", "define", "else", "end", "if", "range", "nil", "template", "with"})


@dataclass(frozen=True, slots=True)
class Token:
    """One lexical item: kind, text and the 1-based line where it starts."""

    kind: str  # text, left, right, space, field, variable, string, rawstring, char, number,
    #            identifier, keyword, bool, dot, pipe, assign, declare, lparen, rparen, charitem, eof
    value: str
    line: int


def _is_alnum(c: str) -> bool:
    return c == "_" or c.isalpha() or c.isdigit()


class _Lexer:
    def __init__(self, text: str, name: str) -> None:
        self.s = text
        self.name = name
        self.pos = 0
        self.tokens: list[Token] = []

    def line_at(self, pos: int) -> int:
        return self.s.count("\n", 0, pos) + 1

    def fail(self, message: str, pos: int | None = None) -> TemplateError:
        return TemplateError(message, self.line_at(self.pos if pos is None else pos), self.name)

    def emit(self, kind: str, start: int, end: int) -> None:
        self.tokens.append(Token(kind, self.s[start:end], self.line_at(start)))

    def at_right(self, pos: int) -> tuple[bool, bool]:
        s = self.s
        if s.startswith(RIGHT, pos):
            return True, False
        if pos < len(s) and s[pos] in SPACE_CHARS and s.startswith("-" + RIGHT, pos + 1):
            return True, True
        return False, False

    def run(self) -> list[Token]:
        s = self.s
        n = len(s)
        while True:
            i = s.find(LEFT, self.pos)
            if i < 0:
                if self.pos < n:
                    self.emit("text", self.pos, n)
                break
            trim = s.startswith("-", i + 2) and i + 3 < n and s[i + 3] in SPACE_CHARS
            end = i
            if trim:
                while end > self.pos and s[end - 1] in SPACE_CHARS:
                    end -= 1
            if end > self.pos:
                self.emit("text", self.pos, end)
            self.pos = i + 2
            after = self.pos + (2 if trim else 0)
            if s.startswith("/*", after):
                self.pos = after + 2
                j = s.find("*/", self.pos)
                if j < 0:
                    raise self.fail("unclosed comment", i)
                self.pos = j + 2
                delim, rtrim = self.at_right(self.pos)
                if not delim:
                    raise self.fail("comment ends before closing delimiter")
                self.pos += (2 if rtrim else 0) + 2
                if rtrim:
                    while self.pos < n and s[self.pos] in SPACE_CHARS:
                        self.pos += 1
                continue
            self.emit("left", i, i + 2)
            self.pos = after
            self.inside_action()
        self.tokens.append(Token("eof", "", self.line_at(n)))
        return self.tokens

    def inside_action(self) -> None:
        s = self.s
        n = len(s)
        depth = 0
        while True:
            delim, rtrim = self.at_right(self.pos)
            if delim:
                if depth:
                    raise self.fail("unclosed left paren")
                start = self.pos
                self.pos += (2 if rtrim else 0) + 2
                self.emit("right", start, self.pos)
                if rtrim:
                    while self.pos < n and s[self.pos] in SPACE_CHARS:
                        self.pos += 1
                return
            if self.pos >= n:
                raise self.fail("unclosed action")
            start = self.pos
            c = s[start]
            self.pos += 1
            if c in SPACE_CHARS:
                while self.pos < n and s[self.pos] in SPACE_CHARS:
                    if self.at_right(self.pos)[1]:
                        break
                    self.pos += 1
                self.emit("space", start, self.pos)
            elif c == "=":
                self.emit("assign", start, self.pos)
            elif c == ":":
                if not s.startswith("=", self.pos):
                    raise self.fail("expected :=")
                self.pos += 1
                self.emit("declare", start, self.pos)
            elif c == "|":
                self.emit("pipe", start, self.pos)
            elif c == '"':
                self.quote(start)
            elif c == "`":
                j = s.find("`", self.pos)
                if j < 0:
                    raise self.fail("unterminated raw quoted string")
                self.pos = j + 1
                self.emit("rawstring", start, self.pos)
            elif c == "$":
                while self.pos < n and _is_alnum(s[self.pos]):
                    self.pos += 1
                self.check_terminator()
                self.emit("variable", start, self.pos)
            elif c == "'":
                self.char(start)
            elif c == "." and not (self.pos < n and s[self.pos].isdigit() and s[self.pos].isascii()):
                while self.pos < n and _is_alnum(s[self.pos]):
                    self.pos += 1
                self.check_terminator()
                self.emit("dot" if self.pos == start + 1 else "field", start, self.pos)
            elif c in "+-." or ("0" <= c <= "9"):
                self.pos = start
                self.number()
            elif _is_alnum(c):
                while self.pos < n and _is_alnum(s[self.pos]):
                    self.pos += 1
                self.check_terminator()
                word = s[start:self.pos]
                kind = "keyword" if word in KEYWORDS else "bool" if word in ("true", "false") else "identifier"
                self.emit(kind, start, self.pos)
            elif c == "(":
                depth += 1
                self.emit("lparen", start, self.pos)
            elif c == ")":
                depth -= 1
                if depth < 0:
                    raise self.fail("unexpected right paren")
                self.emit("rparen", start, self.pos)
            elif c.isascii() and c.isprintable():
                self.emit("charitem", start, self.pos)
            else:
                raise self.fail(f"unrecognized character in action: {c!r}")

    def check_terminator(self) -> None:
        s = self.s
        if self.pos >= len(s):
            return
        c = s[self.pos]
        if c in SPACE_CHARS or c in ".,|:)(" or self.at_right(self.pos)[0]:
            return
        raise self.fail(f"bad character {c!r}")

    def quote(self, start: int) -> None:
        s = self.s
        while True:
            if self.pos >= len(s) or s[self.pos] == "\n":
                raise self.fail("unterminated quoted string")
            c = s[self.pos]
            self.pos += 1
            if c == "\\":
                if self.pos >= len(s) or s[self.pos] == "\n":
                    raise self.fail("unterminated quoted string")
                self.pos += 1
            elif c == '"':
                break
        self.emit("string", start, self.pos)

    def char(self, start: int) -> None:
        s = self.s
        while True:
            if self.pos >= len(s) or s[self.pos] == "\n":
                raise self.fail("unterminated character constant")
            c = s[self.pos]
            self.pos += 1
            if c == "\\":
                if self.pos >= len(s) or s[self.pos] == "\n":
                    raise self.fail("unterminated character constant")
                self.pos += 1
            elif c == "'":
                break
        self.emit("char", start, self.pos)

    def number(self) -> None:
        s = self.s
        start = self.pos
        if self.pos < len(s) and s[self.pos] in "+-":
            self.pos += 1
        digits = "0123456789_"
        if s.startswith(("0x", "0X"), self.pos):
            self.pos += 2
            digits = "0123456789abcdefABCDEF_"
        elif s.startswith(("0o", "0O"), self.pos):
            self.pos += 2
            digits = "01234567_"
        elif s.startswith(("0b", "0B"), self.pos):
            self.pos += 2
            digits = "01_"
        self.accept_run(digits)
        if self.pos < len(s) and s[self.pos] == ".":
            self.pos += 1
            self.accept_run(digits)
        if len(digits) == 11 and self.pos < len(s) and s[self.pos] in "eE":
            self.pos += 1
            if self.pos < len(s) and s[self.pos] in "+-":
                self.pos += 1
            self.accept_run("0123456789_")
        if len(digits) == 23 and self.pos < len(s) and s[self.pos] in "pP":
            self.pos += 1
            if self.pos < len(s) and s[self.pos] in "+-":
                self.pos += 1
            self.accept_run("0123456789_")
        if self.pos < len(s) and s[self.pos] == "i":
            self.pos += 1
        if self.pos < len(s) and _is_alnum(s[self.pos]):
            self.pos += 1
            raise self.fail(f"bad number syntax: {s[start:self.pos]!r}")
        self.emit("number", start, self.pos)

    def accept_run(self, chars: str) -> None:
        s = self.s
        while self.pos < len(s) and s[self.pos] in chars:
            self.pos += 1


def tokenize(text: str, name: str = "template") -> list[Token]:
    """The tokens of `text`, ending with an `eof` token; raises TemplateError on bad input."""
    return _Lexer(text, name).run()
