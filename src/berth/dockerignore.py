""".dockerignore files in Docker's pattern semantics (moby/patternmatcher).

Imports nothing: the CLI filters its build context with it, as the docker CLI does.

Each line is a pattern; `#` starts a comment; a leading `!` re-includes what an earlier pattern
excluded; the last pattern that matches a path decides. A pattern is cleaned as a path (leading
`/` and `./` dropped) and matches a path or any of its parent directories. `*` matches any run
of characters but `/`, `?` one character but `/`, `**` any number of directories, `[...]`
a class, and `\\` escapes the next character.
"""

from __future__ import annotations

import os
import posixpath
import re


def read_patterns(text: str) -> list[str]:
    """The patterns of a .dockerignore, as moby's ignorefile.ReadAll reads them: a line that
    starts with `#` is a comment (a `#` after a blank is part of a pattern), blanks around a
    pattern and after its `!` are trimmed, the pattern is cleaned as a path and a leading `/`
    dropped."""
    out = []
    for n, line in enumerate(text.splitlines()):
        if n == 0:
            line = line.removeprefix("\ufeff")
        if line.startswith("#"):
            continue
        line = line.strip()
        if not line:
            continue
        neg = line.startswith("!")
        if neg:
            line = line[1:].strip()
        p = posixpath.normpath(line).lstrip("/") if line else ""
        if p == ".":
            p = ""
        if p or neg:
            out.append(("!" if neg else "") + p)
    return out


def _regex(pattern: str) -> re.Pattern[str]:
    out = ["^"]
    i, n = 0, len(pattern)
    while i < n:
        c = pattern[i]
        if c == "*":
            if pattern.startswith("**", i):
                i += 2
                if pattern.startswith("/", i):
                    i += 1
                    out.append("(?:.*/)?")  # **/ : zero or more directories
                else:
                    out.append(".*")
                continue
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "\\" and i + 1 < n:
            i += 1
            out.append(re.escape(pattern[i]))
        elif c == "[":
            j = pattern.find("]", i + 1)
            if j < 0:
                out.append(re.escape(c))
            else:
                cls = pattern[i + 1 : j]
                if cls.startswith(("^", "!")):
                    cls = "^" + cls[1:]
                out.append(f"[{cls}]")
                i = j
        else:
            out.append(re.escape(c))
        i += 1
    out.append("$")
    return re.compile("".join(out))


class Matcher:
    def __init__(self, patterns: list[str]) -> None:
        self.rules: list[tuple[bool, re.Pattern[str]]] = []
        for p in patterns:
            neg = p.startswith("!")
            self.rules.append((neg, _regex(p[1:] if neg else p)))

    def __bool__(self) -> bool:
        return bool(self.rules)

    def excluded(self, rel: str) -> bool:
        """Is this path (relative to the context, `/`-separated) left out?"""
        parents = []
        parts = rel.split("/")
        for k in range(1, len(parts) + 1):
            parents.append("/".join(parts[:k]))
        result = False
        for neg, rx in self.rules:
            if any(rx.match(p) for p in parents):
                result = not neg
        return result

    def may_have_inclusions(self) -> bool:
        """Whether a `!` rule could bring back something inside an excluded directory."""
        return any(neg for neg, _ in self.rules)


def load(context_dir: str, dockerfile: str = "Dockerfile") -> Matcher:
    """The matcher for a context: `<Dockerfile>.dockerignore` beside the Dockerfile wins over
    `.dockerignore` at the root of the context, as in BuildKit."""
    candidates = [dockerfile + ".dockerignore", os.path.join(context_dir, ".dockerignore")]
    for path in candidates:
        try:
            with open(path, encoding="utf-8") as f:
                return Matcher(read_patterns(f.read()))
        except FileNotFoundError:
            continue
    return Matcher([])


__all__ = ["Matcher", "read_patterns", "load"]
