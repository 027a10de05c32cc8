"""Variable expansion and quote removal as BuildKit's shell lexer does it (ProcessWord).

Imports `errors`. Used for the instructions Docker expands: ADD, COPY, ENV, EXPOSE, FROM,
LABEL, STOPSIGNAL, USER, VOLUME, WORKDIR, ARG and ONBUILD's neighbours (not RUN, CMD or
ENTRYPOINT, which the shell in the container expands).

- `'...'` is literal; `"..."` expands `$` forms and honours the escape character before `$`,
  `"` and itself; outside quotes the escape character takes the next character literally.
- `$NAME`, `${NAME}`, `${NAME:-word}`, `${NAME-word}`, `${NAME:+word}`, `${NAME+word}`,
  `${NAME:?message}`, `${NAME?message}`, `${NAME#pattern}`, `${NAME##pattern}`,
  `${NAME%pattern}`, `${NAME%%pattern}`; an unset name is empty.
"""

from __future__ import annotations

import fnmatch

from berth.errors import InvalidArgument

_NAME_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_")


class Lexer:
    def __init__(self, escape: str = "\\") -> None:
        self.escape = escape

    def word(self, text: str, env: dict[str, str]) -> str:
        out, pos = self._process(text, 0, env, stop="")
        return out

    def words(self, text: str, env: dict[str, str]) -> list[str]:
        """Split on unquoted whitespace after expansion (ProcessWords)."""
        words: list[str] = []
        cur: list[str] = []
        in_word = False
        i = 0
        n = len(text)
        while i < n:
            c = text[i]
            if c in " \t\n":
                if in_word:
                    words.append("".join(cur))
                    cur, in_word = [], False
                i += 1
                continue
            j = i
            quote = ""
            while j < n and (quote or text[j] not in " \t\n"):
                ch = text[j]
                if ch == self.escape and not quote == "'" and j + 1 < n:
                    j += 2
                    continue
                if quote and ch == quote:
                    quote = ""
                elif not quote and ch in "'\"":
                    quote = ch
                j += 1
            cur.append(self.word(text[i:j], env))
            in_word = True
            i = j
        if in_word:
            words.append("".join(cur))
        return words

    def _process(self, text: str, i: int, env: dict[str, str], stop: str) -> tuple[str, int]:
        out: list[str] = []
        n = len(text)
        while i < n:
            c = text[i]
            if stop and c in stop:
                break
            if c == self.escape:
                if i + 1 < n:
                    out.append(text[i + 1])
                    i += 2
                else:
                    i += 1
                continue
            if c == "'":
                j = text.find("'", i + 1)
                if j < 0:
                    raise InvalidArgument(
                        f"unexpected end of statement while looking for "
                        f"matching single-quote: {text}"
                    )
                out.append(text[i + 1 : j])
                i = j + 1
                continue
            if c == '"':
                s, i = self._double(text, i + 1, env)
                out.append(s)
                continue
            if c == "$":
                s, i = self._dollar(text, i + 1, env)
                out.append(s)
                continue
            out.append(c)
            i += 1
        return "".join(out), i

    def _double(self, text: str, i: int, env: dict[str, str]) -> tuple[str, int]:
        out: list[str] = []
        n = len(text)
        while i < n:
            c = text[i]
            if c == '"':
                return "".join(out), i + 1
            if c == self.escape and i + 1 < n and text[i + 1] in ('"', "$", self.escape):
                out.append(text[i + 1])
                i += 2
                continue
            if c == "$":
                s, i = self._dollar(text, i + 1, env)
                out.append(s)
                continue
            out.append(c)
            i += 1
        raise InvalidArgument(
            f"unexpected end of statement while looking for matching double-quote: {text}"
        )

    def _dollar(self, text: str, i: int, env: dict[str, str]) -> tuple[str, int]:
        n = len(text)
        if i >= n:
            return "$", i
        if text[i] != "{":
            j = i
            while j < n and text[j] in _NAME_CHARS:
                j += 1
            if j == i:
                return "$", i
            return env.get(text[i:j], ""), j
        j = i + 1
        while j < n and text[j] in _NAME_CHARS:
            j += 1
        name = text[i + 1 : j]
        if not name:
            raise InvalidArgument(f"bad substitution: {text}")
        if j >= n:
            raise InvalidArgument(f"missing '}}' in {text}")
        if text[j] == "}":
            return env.get(name, ""), j + 1
        # a modifier
        op = text[j]
        colon = op == ":"
        if colon:
            j += 1
            if j >= n:
                raise InvalidArgument(f"missing '}}' in {text}")
            op = text[j]
        if op in "#%" and not colon:
            longest = j + 1 < n and text[j + 1] == op
            word, end = self._process(text, j + (2 if longest else 1), env, stop="}")
            if end >= n:
                raise InvalidArgument(f"missing '}}' in {text}")
            return _trim(env.get(name, ""), word, op, longest), end + 1
        if op not in "-+?":
            raise InvalidArgument(f"unsupported modifier ({op}) in substitution: {text}")
        word, end = self._process(text, j + 1, env, stop="}")
        if end >= n:
            raise InvalidArgument(f"missing '}}' in {text}")
        value = env.get(name)
        is_set = value is not None and (value != "" or not colon)
        if op == "-":
            return (value if is_set else word) or "", end + 1
        if op == "+":
            return (word if is_set else ""), end + 1
        if not is_set:
            raise InvalidArgument(f"{name}: {word or 'is not allowed to be unset'}")
        return value or "", end + 1


def _trim(value: str, pattern: str, op: str, longest: bool) -> str:
    rng = range(len(value), -1, -1) if longest else range(len(value) + 1)
    for k in rng:
        if op == "#" and fnmatch.fnmatchcase(value[:k], pattern):
            return value[k:]
        if op == "%" and fnmatch.fnmatchcase(value[len(value) - k :], pattern):
            return value[: len(value) - k]
    return value


__all__ = ["Lexer"]
