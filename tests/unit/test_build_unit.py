"""The builder's pure parts: BuildKit's word expansion, .dockerignore patterns, parsing."""

from __future__ import annotations

from pathlib import Path

import pytest

from berth.builder import parse, stages_of
from berth.builder.shell import Lexer
from berth.dockerignore import Matcher, read_patterns
from berth.errors import InvalidArgument

ENV = {"A": "a", "EMPTY": "", "PATH": "/usr/bin:/bin", "FILE": "dir/name.tar.gz"}


@pytest.mark.parametrize(
    "word,want",
    [
        ("$A", "a"),
        ("${A}", "a"),
        ("x${A}y", "xay"),
        ("$A$A", "aa"),
        ("$NOPE", ""),
        ("${NOPE:-dflt}", "dflt"),
        ("${EMPTY:-dflt}", "dflt"),
        ("${EMPTY-dflt}", ""),
        ("${A:-dflt}", "a"),
        ("${A:+alt}", "alt"),
        ("${NOPE:+alt}", ""),
        ("${EMPTY:+alt}", ""),
        ("${EMPTY+alt}", "alt"),
        ("${NOPE+alt}", ""),
        ("${NOPE:-$A}", "a"),
        ("'$A'", "$A"),
        ('"$A"', "a"),
        ('"a b"', "a b"),
        ('"\\$A"', "$A"),
        ("\\$A", "$A"),
        ('"\\"q\\""', '"q"'),
        ('"x\\y"', "x\\y"),
        ("a\\ b", "a b"),
        ("$", "$"),
        ("$1", ""),
        ("${FILE#*/}", "name.tar.gz"),
        ("${FILE##*.}", "gz"),
        ("${FILE%.*}", "dir/name.tar"),
        ("${FILE%%.*}", "dir/name"),
        ("it's", None),
    ],
)
def test_word_expansion(word: str, want: str | None) -> None:
    lx = Lexer()
    if want is None:
        with pytest.raises(InvalidArgument):
            lx.word(word, ENV)
    else:
        assert lx.word(word, ENV) == want


def test_escape_directive_and_words() -> None:
    assert Lexer("`").word("a`$A", ENV) == "a$A"
    assert Lexer().words('a "b c" $A ${NOPE}x', ENV) == ["a", "b c", "a", "x"]
    with pytest.raises(InvalidArgument, match="NOPE: must be set"):
        Lexer().word("${NOPE:?must be set}", ENV)


@pytest.mark.parametrize(
    "patterns,path,excluded",
    [
        (["*.log"], "a.log", True),
        (["*.log"], "sub/a.log", False),
        (["**/*.log"], "sub/a.log", True),
        (["*.log", "!keep.log"], "keep.log", False),
        (["tmp"], "tmp/x/y", True),
        (["**/tmp"], "a/b/tmp/x", True),
        (["/abs"], "abs", True),
        (["./dot"], "dot", True),
        (["a/*/c"], "a/b/c", True),
        (["a/*/c"], "a/b/x/c", False),
        (["file?"], "file1", True),
        (["[ab].txt"], "b.txt", True),
        (["dir", "!dir/keep"], "dir/keep", False),
        (["dir", "!dir/keep"], "dir/other", True),
        (["**"], "anything/at/all", True),
    ],
)
def test_dockerignore(patterns: list[str], path: str, excluded: bool) -> None:
    assert Matcher(read_patterns("\n".join(patterns))).excluded(path) is excluded


# the examples of Docker's documentation (the .dockerignore file, in the build context page)
DOCS_IGNORE = "# comment\n*/temp*\n*/*/temp*\ntemp?\n"


@pytest.mark.parametrize(
    "text,path,excluded",
    [
        (DOCS_IGNORE, "somedir/temporary.txt", True),
        (DOCS_IGNORE, "somedir/temp", True),
        (DOCS_IGNORE, "temporary.txt", False),
        (DOCS_IGNORE, "somedir/subdir/temporary.txt", True),
        (DOCS_IGNORE, "a/b/c/temporary.txt", False),
        (DOCS_IGNORE, "tempa", True),
        (DOCS_IGNORE, "tempab", False),
        (DOCS_IGNORE, "x/y/z/tempa", False),
        ("**/*.go\n", "a/b/c.go", True),
        ("**/*.go\n", "c.go", True),
        ("**/*.go\n", "c.gox", False),
        ("*.md\n!README.md\n", "README.md", False),
        ("*.md\n!README.md\n", "CHANGELOG.md", True),
        # a later pattern decides: README-secret.md is left out, then brought back
        ("*.md\n!README*.md\nREADME-secret.md\n", "README-secret.md", True),
        ("*.md\n!README*.md\nREADME-secret.md\n", "README-x.md", False),
        ("*.md\nREADME-secret.md\n!README*.md\n", "README-secret.md", False),
        # a directory's exclusion covers what is below it; an exception below brings that back
        ("docs\n!docs/keep.md\n", "docs/keep.md", False),
        ("docs\n!docs/keep.md\n", "docs/x", True),
        ("/docs/\n", "docs/x/y", True),
        ("./a/../b\n", "b", True),
        ("a/**/z\n", "a/z", True),
        ("a/**/z\n", "a/b/c/z", True),
        ("a/**\n", "a/b", True),
        ("a/**\n", "b/a", False),
        ("*\n!keep\n", "keep", False),
        ("*\n!keep\n", "keep2", True),
        ("\\*x\n", "*x", True),
        ("\\*x\n", "ax", False),
        ("[!a]b\n", "cb", True),
        ("[!a]b\n", "ab", False),
        ("  !  keep  \n*\n", "keep", True),
    ],
)
def test_dockerignore_docs_examples(text: str, path: str, excluded: bool) -> None:
    assert Matcher(read_patterns(text)).excluded(path) is excluded


def test_dockerignore_comments_and_blank_lines() -> None:
    assert read_patterns("# comment\n\n  *.o  \n!\n") == ["*.o", "!"]
    # as moby's ignorefile: only a line that starts with # is a comment; a BOM is dropped;
    # blanks after ! are trimmed; the pattern is cleaned as a path, its leading / dropped
    assert read_patterns("\ufeff*.a\n #x\n!  b \n/c/../d/\n./e\n") == ["*.a", "#x", "!b", "d", "e"]


def test_parse_errors_name_file_and_line() -> None:
    with pytest.raises(
        InvalidArgument,
        match=r"^df:3: dockerfile parse error on line 3: "
        "unknown instruction: BOGUS",
    ):
        parse("FROM x\nRUN a\nBOGUS b\n", "df")
    ins, _ = parse("ARG V=1\nFROM x AS one\nRUN a\nFROM one\n")
    meta, stages = stages_of(ins, "Dockerfile")
    assert [m.cmd for m in meta] == ["ARG"]
    assert [(s.name, s.base, len(s.steps)) for s in stages] == [("one", "x", 1), ("", "one", 0)]
    with pytest.raises(InvalidArgument, match="FROM requires either one or three"):
        stages_of(parse("FROM a b\n")[0], "Dockerfile")


@pytest.mark.parametrize(
    "flag,ok",
    [
        ("--network=host", True),
        ("--network=none", True),
        ("--network=default", True),
        ("--network=container:abc", False),
        ("--network=bridge", False),
        ("--network", False),
    ],
)
def test_run_network_modes(flag: str, ok: bool) -> None:
    text = f"FROM busybox\nRUN {flag} true\n"
    if ok:
        assert parse(text)[0][1].flags["network"] == flag.split("=", 1)[1]
    else:
        with pytest.raises(InvalidArgument, match=r"Dockerfile:2: invalid network mode"):
            parse(text)


def test_entitlement_names() -> None:
    from berth.builder import check_entitlements

    assert check_entitlements(["network.host", "network.host"]) == ["network.host"]
    with pytest.raises(InvalidArgument, match="unknown entitlement"):
        check_entitlements(["network.hots"])
    with pytest.raises(InvalidArgument, match="security.insecure is not supported"):
        check_entitlements(["security.insecure"])


def test_daemon_entitlements_from_flag_and_daemon_json(tmp_path: Path) -> None:
    from berth.daemon.main import parse_args

    cfg = tmp_path / "daemon.json"
    cfg.write_text("{}")
    base = ["--config-file", str(cfg), "--init-path", "/bin/true"]
    assert parse_args(base).insecure_entitlements == frozenset()
    assert parse_args(
        [*base, "--allow-insecure-entitlement", "network.host"]
    ).insecure_entitlements == {"network.host"}
    cfg.write_text('{"allow-insecure-entitlement": ["network.host"]}')
    assert parse_args(base).insecure_entitlements == {"network.host"}
    cfg.write_text('{"allow-insecure-entitlement": ["device"]}')
    with pytest.raises(SystemExit):
        parse_args(base)
