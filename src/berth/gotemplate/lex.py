"""The lexer: a template's text as a list of items, after Go's text/template/parse/lex.go.
Text outside actions is one item; trim markers (`{{- ` and ` -}}`) eat the spaces beside them
and comments (`{{/* */}}`) leave nothing."""

from __future__ import annotations

from berth.gotemplate.values import is_alnum, quote, quote_rune

SPACE_CHARS = " \t\r\n"
_KEYWORDS = frozenset(
    ["block", "break", "continue", "define", "else", "end", "if", "range", "template", "with"]
)

# item kinds
(
    EOF,
    TEXT,
    LEFT,
    RIGHT,
    SPACE,
    IDENT,
    KEYWORD,
    FIELD,
    VARIABLE,
    DOT,
    STRING,
    RAW,
    CHAR,
    NUMBER,
    BOOL,
    NIL,
    LPAREN,
    RPAREN,
    PIPE,
    DECLARE,
    ASSIGN,
    COMMA,
    OTHER,
    ERROR,
) = range(24)

_PUNCTUATION = {"=": ASSIGN, "|": PIPE, ",": COMMA}


class Item:
    __slots__ = ("kind", "val", "pos", "line")

    def __init__(self, kind: int, val: str, pos: int, line: int) -> None:
        self.kind, self.val, self.pos, self.line = kind, val, pos, line

    def __str__(self) -> str:  # as Go's parser names an item in its errors
        if self.kind == EOF:
            return "EOF"
        if self.kind == ERROR:
            return self.val
        if self.kind in (KEYWORD, DOT, NIL):
            return f"<{self.val}>"
        if len(self.val) > 10:
            return quote(self.val[:10]) + "..."
        return quote(self.val)


def lex(text: str) -> list[Item]:
    """The items of `text`, ending in EOF; an error item before it where it cannot be lexed."""
    lexer = _Lexer(text)
    try:
        lexer.run()
    except _LexError as e:
        lexer.items.append(Item(ERROR, e.msg, e.at, lexer.line_at(e.at)))
    lexer.items.append(Item(EOF, "", lexer.n, lexer.line_at(lexer.n)))
    return lexer.items


class _LexError(Exception):
    def __init__(self, msg: str, at: int) -> None:
        self.msg, self.at = msg, at


class _Lexer:
    def __init__(self, text: str) -> None:
        self.text = text
        self.n = len(text)
        self.items: list[Item] = []

    def line_at(self, p: int) -> int:
        return 1 + self.text.count("\n", 0, p)

    def emit(self, kind: int, start: int, end: int) -> None:
        self.items.append(Item(kind, self.text[start:end], start, self.line_at(start)))

    def run(self) -> None:
        """Text and actions, one after the other, to the end."""
        text, n = self.text, self.n
        pos = 0
        while True:
            left = text.find("{{", pos)
            if left < 0:
                if pos < n:
                    self.emit(TEXT, pos, n)
                return
            trim = text.startswith("-", left + 2) and left + 3 < n and text[left + 3] in SPACE_CHARS
            end_text = left
            if trim:
                while end_text > pos and text[end_text - 1] in SPACE_CHARS:
                    end_text -= 1
            if end_text > pos:
                self.emit(TEXT, pos, end_text)
            p = left + 2 + (2 if trim else 0)
            if text.startswith("/*", p):
                pos = self.comment(left, p)
            else:
                self.emit(LEFT, left, left + 2)
                pos = self.action(p)

    def right_delim(self, p: int) -> tuple[bool, bool]:
        """Whether a right delimiter is at `p`, and whether it trims (` -}}`)."""
        text = self.text
        if (
            p + 1 < self.n
            and text[p] in SPACE_CHARS
            and text[p + 1] == "-"
            and text.startswith("}}", p + 2)
        ):
            return True, True
        return text.startswith("}}", p), False

    def past_right_delim(self, p: int, trim: bool) -> int:
        """Where the text goes on after the right delimiter at `p`."""
        p += 2 + (2 if trim else 0)
        if trim:
            while p < self.n and self.text[p] in SPACE_CHARS:
                p += 1
        return p

    def comment(self, left: int, p: int) -> int:
        close = self.text.find("*/", p + 2)
        if close < 0:
            raise _LexError("unclosed comment", left)
        is_delim, trim = self.right_delim(close + 2)
        if not is_delim:
            raise _LexError("comment ends before closing delimiter", left)
        return self.past_right_delim(close + 2, trim)

    def action(self, p: int) -> int:
        """The items of the action from `p` to its right delimiter; where the text goes on."""
        depth = 0
        while True:
            is_delim, trim = self.right_delim(p)
            if is_delim:
                if depth > 0:
                    raise _LexError("unclosed left paren", p)
                end = self.past_right_delim(p, trim)
                self.emit(RIGHT, p, p + 2 + (2 if trim else 0))
                return end
            if p >= self.n:
                raise _LexError("unclosed action", p)
            c = self.text[p]
            if c == "(":
                depth += 1
                self.emit(LPAREN, p, p + 1)
                p += 1
            elif c == ")":
                depth -= 1
                if depth < 0:
                    raise _LexError("unexpected right paren", p)
                self.emit(RPAREN, p, p + 1)
                p += 1
            else:
                p = self.token(p, c)

    def token(self, p: int, c: str) -> int:
        """The item at `p` (not a parenthesis); where the next begins."""
        text, n = self.text, self.n
        if c in SPACE_CHARS:
            return self.space(p)
        if c in _PUNCTUATION:
            self.emit(_PUNCTUATION[c], p, p + 1)
            return p + 1
        if c == ":":
            if not text.startswith(":=", p):
                raise _LexError("expected :=", p)
            self.emit(DECLARE, p, p + 2)
            return p + 2
        if c == '"':
            return self.quoted(p, STRING, "unterminated quoted string")
        if c == "'":
            return self.quoted(p, CHAR, "unterminated character constant")
        if c == "`":
            q = text.find("`", p + 1)
            if q < 0:
                raise _LexError("unterminated raw quoted string", p)
            self.emit(RAW, p, q + 1)
            return q + 1
        if c == "$" or (c == "." and not (p + 1 < n and text[p + 1].isdigit())):
            return self.variable_or_field(p, c)
        if c.isdigit() or c in "+-.":
            q = _scan_number(text, p)
            if q < 0:
                raise _LexError(f"bad number syntax: {quote(text[p:-q])}", p)
            self.emit(NUMBER, p, q)
            return q
        if is_alnum(c):
            return self.word(p)
        if " " <= c <= "~":
            self.emit(OTHER, p, p + 1)
            return p + 1
        raise _LexError(f"unrecognized character in action: {_rune(c)}", p)

    def space(self, p: int) -> int:
        start = p
        while p < self.n and self.text[p] in SPACE_CHARS:
            p += 1
        # a space before a trimmed `-}}` belongs to the delimiter
        if self.text.startswith("-}}", p):
            p -= 1
            if p == start:
                return p
        self.emit(SPACE, start, p)
        return p

    def quoted(self, p: int, kind: int, unterminated: str) -> int:
        """A "string" or 'c'haracter: to its closing quote on the same line."""
        text, n, q = self.text, self.n, p + 1
        while True:
            if q >= n or text[q] == "\n":
                raise _LexError(unterminated, p)
            if text[q] == "\\":
                q += 2
                continue
            if text[q] == text[p]:
                break
            q += 1
        self.emit(kind, p, q + 1)
        return q + 1

    def variable_or_field(self, p: int, c: str) -> int:
        q = p + 1
        while q < self.n and is_alnum(self.text[q]):
            q += 1
        if c == "." and q == p + 1:
            self.emit(DOT, p, q)
        else:
            self.emit(VARIABLE if c == "$" else FIELD, p, q)
        self.check_terminator(q)
        return q

    def word(self, p: int) -> int:
        q = p
        while q < self.n and is_alnum(self.text[q]):
            q += 1
        word = self.text[p:q]
        self.check_terminator(q)
        kind = (
            KEYWORD
            if word in _KEYWORDS
            else BOOL
            if word in ("true", "false")
            else NIL
            if word == "nil"
            else IDENT
        )
        self.emit(kind, p, q)
        return q

    def check_terminator(self, q: int) -> None:
        """A word, variable or field ends at a space, punctuation or the delimiter."""
        if q < self.n and not _at_terminator(self.text, q):
            raise _LexError(f"bad character {_rune(self.text[q])}", q)


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
        digits = {"x": "0123456789abcdefABCDEF_", "o": "01234567_", "b": "01_"}[text[q + 1].lower()]
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
    if q < n and is_alnum(text[q]):
        return -(q + 1)
    return q


def _at_terminator(text: str, p: int) -> bool:
    c = text[p]
    return c in SPACE_CHARS or c in ".,|:()" or text.startswith("}}", p)


def _rune(c: str) -> str:
    return f"U+{ord(c):04X} {quote_rune(ord(c))}"
