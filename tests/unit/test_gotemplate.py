"""Go's text/template as berth.gotemplate runs it: cases from the text/template documentation
(its examples of pipelines, variables, range, with, if/else if, trim markers, functions), Go's
fmt and encoding/json output, and the docker CLI's template functions and tables."""

from __future__ import annotations

from typing import Any

import pytest

from berth import gotemplate as gt
from berth.cli import fmt


def run(text: str, data: Any = None, **kw: Any) -> str:
    return gt.execute(text, data, **kw)


# the documentation's examples: each prints "output" quoted
@pytest.mark.parametrize(
    "text",
    [
        '{{"\\"output\\""}}',
        '{{`"output"`}}',
        '{{printf "%q" "output"}}',
        '{{"output" | printf "%q"}}',
        '{{printf "%q" (print "out" "put")}}',
        '{{"put" | printf "%s%s" "out" | printf "%q"}}',
        '{{"output" | printf "%s" | printf "%q"}}',
        '{{with "output"}}{{printf "%q" .}}{{end}}',
        '{{with $x := "output" | printf "%q"}}{{$x}}{{end}}',
        '{{with $x := "output"}}{{printf "%q" $x}}{{end}}',
        '{{with $x := "output"}}{{$x | printf "%q"}}{{end}}',
    ],
)
def test_documented_pipelines(text: str) -> None:
    assert run(text) == '"output"'


def test_trim_markers_and_comments() -> None:
    assert run("{{23 -}} < {{- 45}}") == "23<45"
    assert run("a {{/* a comment */}} b") == "a  b"
    assert run("a  {{- /* gone */ -}}  \n b") == "ab"
    assert run("{{- 1}}\n") == "1\n"
    assert run("x\n  {{- 1 -}}\n  y") == "x1y"
    assert run("{{-3}}") == "-3"  # a number, not a trim marker


def test_fields_variables_and_chains() -> None:
    data = {"A": {"B": {"C": "deep"}}, "L": [{"Name": "x"}, {"Name": "y"}], "S": "s"}
    assert run("{{.A.B.C}}", data) == "deep"
    assert run("{{$}}", "dot") == "dot"
    assert run("{{$x := .A}}{{$x.B.C}}", data) == "deep"
    assert run("{{$x := 1}}{{$x = 2}}{{$x}}", data) == "2"
    assert run("{{(index .L 1).Name}}", data) == "y"
    assert run("{{with .A}}{{.B.C}} {{$.S}}{{end}}", data) == "deep s"
    assert run("{{.}}", None) == "<no value>"
    assert run("{{.Nope}} {{.A.Nope.X}}", data) == "<no value> <no value>"
    assert run("{{print .Nope}}", data) == "<nil>"


def test_if_else_if_with_else() -> None:
    t = '{{if eq .S "a"}}A{{else if eq .S "b"}}B{{else}}other{{end}}'
    assert [run(t, {"S": s}) for s in "abc"] == ["A", "B", "other"]
    assert run("{{with .X}}has {{.}}{{else}}none{{end}}", {"X": ""}) == "none"
    assert run("{{with .X}}has {{.}}{{else with .Y}}y {{.}}{{end}}", {"X": 0, "Y": 2}) == "y 2"
    # Go's truth: empty values are false
    for v in ("", 0, 0.0, False, None, [], {}):
        assert run("{{if .}}t{{else}}f{{end}}", v) == "f"
    for v in ("x", 1, -0.5, True, [0], {"a": 0}):
        assert run("{{if .}}t{{else}}f{{end}}", v) == "t"


def test_range() -> None:
    assert run("{{range .}}{{.}},{{end}}", ["a", "b"]) == "a,b,"
    assert run("{{range $i, $e := .}}{{$i}}={{$e}} {{end}}", ["a", "b"]) == "0=a 1=b "
    assert run("{{range $e := .}}{{$e}}{{end}}", ["a", "b"]) == "ab"
    # maps in sorted key order
    assert run("{{range $k, $v := .}}{{$k}}:{{$v}} {{end}}", {"b": 2, "a": 1}) == "a:1 b:2 "
    assert run("{{range .}}x{{else}}empty{{end}}", []) == "empty"
    assert run("{{range .Nope}}x{{else}}empty{{end}}", {}) == "empty"
    t = "{{range .}}{{if eq . 3}}{{break}}{{end}}{{.}}{{end}}"
    assert run(t, [1, 2, 3, 4]) == "12"
    t = "{{range .}}{{if eq . 2}}{{continue}}{{end}}{{.}}{{end}}"
    assert run(t, [1, 2, 3]) == "13"
    assert run("{{range 3}}{{.}}{{end}}") == "012"
    # variables declared in a range body are gone at the next iteration
    assert run("{{range .}}{{$x := .}}{{$x}}{{end}}", [1, 2]) == "12"


def test_define_template_block() -> None:
    t = '{{define "T1"}}ONE{{end}}{{define "T2"}}TWO {{template "T1"}}{{end}}{{template "T2"}}'
    assert run(t) == "TWO ONE"
    assert run('{{define "n"}}[{{.}}]{{end}}{{template "n" .X}}', {"X": 5}) == "[5]"
    assert run('{{block "b" .}}default {{.}}{{end}}', "x") == "default x"


def test_builtins() -> None:
    d = {"L": ["a", "b", "c"], "M": {"one": 1}, "S": "héllo", "E": []}
    assert run('{{index .L 1}} {{index .M "one"}} {{len .L}} {{len .S}}', d) == "b 1 3 6"
    assert run('{{slice .L 1}} {{slice .L 1 2}} {{slice "abcd" 1 3}}', d) == "[b c] [b] bc"
    assert run('{{and 1 0}} {{and 1 2}} {{or 0 2}} {{or 0 ""}}|{{not 0}}') == "0 2 2 |true"
    # and/or stop at the operand that decides
    assert run("{{and 0 (index .L 9)}}{{or 1 (index .L 9)}}", d) == "01"
    assert run('{{print 1 2 "x" 3 "y" "z"}}') == "1 2x3yz"
    assert run('{{println 1 "x"}}') == "1 x\n"
    assert run("{{html \"<a href='x'>&\"}}") == "&lt;a href=&#39;x&#39;&gt;&amp;"
    assert run('{{js "a\'b\\"<c>="}}') == "a\\'b\\\"\\u003Cc\\u003E\\u003D"
    assert run('{{urlquery "a b&c/é"}}') == "a+b%26c%2F%C3%A9"
    assert run('{{index .M "nope"}}', d) == "<no value>"
    assert run('{{index . "nope"}}|', {"a": "b"}) == "|"  # a map of strings: its zero value


def test_comparisons() -> None:
    assert (
        run('{{eq 1 1}} {{eq "a" "b" "a"}} {{ne 1 2}} {{lt 1 2}} {{le 2 2}}')
        == "true true true true true"
    )
    assert (
        run('{{gt "b" "a"}} {{ge 1.5 2.5}} {{eq .X .Y}}', {"X": None, "Y": None})
        == "true false true"
    )
    with pytest.raises(gt.ExecError, match="incompatible types for comparison"):
        run("{{eq 1 2.0}}")
    with pytest.raises(gt.ExecError, match="incompatible types for comparison"):
        run('{{lt 1 "a"}}')
    with pytest.raises(gt.ExecError, match="missing argument for comparison"):
        run("{{eq 1}}")


def test_constants() -> None:
    assert (
        run("{{0x10}} {{0o17}} {{0b101}} {{1_000}} {{'a'}} {{-3}} {{+4}}") == "16 15 5 1000 97 -3 4"
    )
    assert run("{{1.5}} {{1e3}} {{1e6}} {{true}} {{false}}") == "1.5 1000 1e+06 true false"
    assert run('{{"a\\tb\\u00e9\\x41"}}') == "a\tbéA"


@pytest.mark.parametrize(
    "value,text",
    [
        (3.5, "3.5"),
        (1e6, "1e+06"),
        (123456789.0, "1.23456789e+08"),
        (100000.0, "100000"),
        (0.0001, "0.0001"),
        (0.00001, "1e-05"),
        (2.0, "2"),
        (-1.25, "-1.25"),
        (float("inf"), "+Inf"),
        (7, "7"),
        (True, "true"),
        (None, "<nil>"),
        (["a", 1, None], "[a 1 <nil>]"),
        ({"b": [1], "a": {"x": "y"}}, "map[a:map[x:y] b:[1]]"),
    ],
)
def test_values_print_as_go_fmt(value: Any, text: str) -> None:
    assert run("{{print .}}", value) == text


@pytest.mark.parametrize(
    "f,args,out",
    [
        ("%5.2f|", [3.14159], " 3.14|"),
        ("%-5d|", [42], "42   |"),
        ("%05d", [42], "00042"),
        ("%x %X %o %b %c %q %U", [255, 255, 8, 5, 65, 65, 0x1F600], "ff FF 10 101 A 'A' U+1F600"),
        ("%+d % d %#x %#o", [5, 5, 255, 8], "+5  5 0xff 010"),
        ("%t %v", [True, None], "true <nil>"),
        ("%s|%10s|%-10s|%.2s", ["abc"] * 4, "abc|       abc|abc       |ab"),
        ("%q %x % x %X", ["é\n", "hi", "hi", "hi"], '"é\\n" 6869 68 69 6869'),
        (
            "%e %E %g %g %.3g",
            [1234.5678, 1234.5678, 1e21, 0.5, 1234.5678],
            "1.234568e+03 1.234568E+03 1e+21 0.5 1.23e+03",
        ),
        ("%v %s %d", [["a", "b"], ["a", "b"], [1, 2]], "[a b] [a b] [1 2]"),
        ("%T %T %T %T", ["s", 1, 1.5, {"a": 1}], "string int float64 map[string]interface {}"),
        ("%d%%", [50], "50%"),
        ("%d %d", [1], "1 %!d(MISSING)"),
        ("%d", [1, "x"], "1%!(EXTRA string=x)"),
        ("%d %s %f", ["x", 3, 1], "%!d(string=x) %!s(int=3) %!f(int=1)"),
        ("%s", [None], "%!s(<nil>)"),
        ("%q", ['\x01\\"'], '"\\x01\\\\\\""'),
        ("%*d|", [4, 7], "   7|"),
        # checked against the docker CLI (Go 1.24): strings pad with zeros, a bad verb keeps its
        # flags, floats print in hex
        ("%06s|%-06s|", ["ab", "x"], "0000ab|x     |"),
        ("%.2f %5.1s", [1, 4], "%!f(int=01) %!s(int=    4)"),
        ("%x %X %x", [1.5, -2.0, 1.0], "0x1.8p+00 -0X1P+01 0x1p+00"),
    ],
)
def test_printf(f: str, args: list[Any], out: str) -> None:
    assert gt.sprintf(f, args) == out


def test_docker_functions() -> None:
    d = {"Env": ["A=1", "B"], "Labels": {"z": "<&>", "a": "1"}, "Name": "web", "ID": "abcdef"}
    assert run("{{json .Env}} {{json .Labels}}", d) == '["A=1","B"] {"a":"1","z":"<&>"}'
    assert (
        run("{{json .}}", {"S": {"n": 1.5, "u": "\u2028", "t": "\t"}})
        == '{"S":{"n":1.5,"t":"\\t","u":"\\u2028"}}'
    )
    assert (
        run('{{split "a,b,c" ","}} {{join .Env ","}} {{join (split "x y" " ") "+"}}', d)
        == "[a b c] A=1,B x+y"
    )
    assert (
        run('{{title "foo.bar x_y hello-world"}} {{upper .Name}} {{lower "AbC"}}', d)
        == "Foo.Bar X_y Hello-World WEB abc"
    )
    assert (
        run('[{{pad "x" 1 2}}][{{pad "" 1 1}}] {{truncate .ID 3}} {{truncate "ab" 5}}', d)
        == "[ x  ][] abc ab"
    )
    assert run('{{upper "straße"}} {{title "élan straße"}}') == "STRAßE Élan Straße"


def test_go_json() -> None:
    assert gt.to_json({"a": "<b>&"}) == '{"a":"\\u003cb\\u003e\\u0026"}'
    assert gt.to_json({"a": "<b>"}, escape_html=False) == '{"a":"<b>"}'
    assert (
        gt.to_json([1e21, 1e-7, 0.000001, 1e20, 2.0, None, True])
        == "[1e+21,1e-7,0.000001,100000000000000000000,2,null,true]"
    )
    # structs (exported field names, mixed values) keep their order; maps are sorted
    assert gt.to_json({"Zeta": 1, "Alpha": [1]}) == '{"Zeta":1,"Alpha":[1]}'
    assert gt.to_json({"b": 1, "a": [1]}) == '{"a":[1],"b":1}'
    assert gt.to_json({"b": 1, "a": 2}, sort_maps=False) == '{"b":1,"a":2}'
    assert gt.to_json({"x": gt.NilList(), "y": gt.NilMap()}) == '{"x":null,"y":null}'
    assert run("{{.}}|{{len .}}|{{json .}}", gt.NilList()) == "[]|0|null"


def test_missingkey() -> None:
    assert run("{{.Nope}}", {}) == "<no value>"
    with pytest.raises(gt.ExecError) as e:
        run("{{.A}} {{.Config.Nope.X}}", {"A": 1, "Config": {"B": 1}}, missingkey="error")
    assert str(e.value) == (
        'template: :1:16: executing "" at <.Config.Nope.X>: map has no entry for key "Nope"'
    )
    # docker inspect's: a map (of strings here) gives <no value>, a struct-like object an error
    data = {"Config": {"Labels": {"a": "b"}, "Image": "x"}}
    assert run("{{.Config.Labels.nope}}", data, missingkey="inspect") == "<no value>"
    with pytest.raises(gt.ExecError, match='map has no entry for key "Nope"'):
        run("{{.Config.Nope}}", data, missingkey="inspect")


@pytest.mark.parametrize(
    "text,message",
    [
        ("{{.ID", "template: :1: unclosed action"),
        ("a\n{{end}}", "template: :2: unexpected {{end}}"),
        ("{{if .X}}", "template: :1: unexpected EOF"),
        ("{{$x}}", 'template: :1: undefined variable "$x"'),
        ("{{nope 3}}", 'template: :1: function "nope" not defined'),
        ("{{break}}", "template: :1: {{break}} outside {{range}}"),
        ("{{/* x", "template: :1: unclosed comment"),
        ('{{"abc}}', "template: :1: unterminated quoted string"),
        ("{{3x}}", 'template: :1: bad number syntax: "3x"'),
        ("{{}}", "template: :1: missing value for command"),
        ('{{"a" | 3}}', "template: :1: non executable command in pipeline stage 2"),
        ("{{.A.}}", "template: :1: unexpected <.> in operand"),
        ("{{(1}}", "template: :1: unclosed left paren"),
        ("{{1)}}", "template: :1: unexpected right paren"),
        ("{{1.2.3}}", 'template: :1: unexpected ".3" in operand'),
        ("{{0x}}", 'template: :1: illegal number syntax: "0x"'),
    ],
)
def test_parse_errors(text: str, message: str) -> None:
    with pytest.raises(gt.ParseError) as e:
        gt.Template(text)
    assert str(e.value) == message


@pytest.mark.parametrize(
    "text,message",
    [
        (
            "{{index .L 5}}",
            'template: :1:2: executing "" at <index .L 5>: '
            "error calling index: index out of range: 5",
        ),
        ("{{upper 3}}", 'template: :1:8: executing "" at <3>: expected string; found 3'),
        (
            "{{upper .N}}",
            'template: :1:8: executing "" at <.N>: wrong type for value; expected string; got int',
        ),
        (
            "x\n {{.L.X}}",
            'template: :2:5: executing "" at <.L.X>: '
            "can't evaluate field X in type []interface {}",
        ),
        (
            "{{join .L}}",
            'template: :1:2: executing "" at <join>: wrong number of args for join: want 2 got 1',
        ),
        (
            "{{len 3}}",
            'template: :1:2: executing "" at <len 3>: error calling len: len of type int',
        ),
        (
            '{{template "x"}}',
            'template: :1:11: executing "" at <{{template "x"}}>: template "x" not defined',
        ),
        (
            '{{"a" 1}}',
            'template: :1:2: executing "" at <"a">: can\'t give argument to non-function "a"',
        ),
        ("{{nil}}", 'template: :1:2: executing "" at <nil>: nil is not a command'),
    ],
)
def test_exec_errors(text: str, message: str) -> None:
    with pytest.raises(gt.ExecError) as e:
        run(text, {"L": [1, {"a": 2}], "N": 3})
    assert str(e.value) == message


def test_tabwriter_as_docker_sets_it_up() -> None:
    text = "CONTAINER ID\tNAMES\nabc\tweb\nlongerthanheader12\tx\n"
    w = 18 + 3  # the widest cell and the padding
    assert gt.tabwrite(text) == (
        "CONTAINER ID".ljust(w)
        + "NAMES\n"
        + "abc".ljust(w)
        + "web\n"
        + "longerthanheader12".ljust(w)
        + "x\n"
    )
    # a cell narrower than the minimum width still takes 10 columns; the last is not padded
    assert gt.tabwrite("a\tb\tc\n") == "a         b         c\n"
    # a line with fewer cells ends the column block
    assert gt.tabwrite("a\tb\nxx\nlonger-cell\tc\n") == "a         b\nxx\nlonger-cell   c\n"


def test_rows_labels_headers_and_tables(capsys: pytest.CaptureFixture[str]) -> None:
    rows = [
        fmt.Row(
            {"ID": "abc", "Names": "web", "State": "running"},
            {"com.example.foo": "bar"},
            "*formatter.ContainerContext",
        )
    ]
    cols = [("CONTAINER ID", "ID"), ("NAMES", "Names")]
    fmt.render(rows, '{{.Label "com.example.foo"}}|{{.Label "x"}}|{{.Names}}', cols)
    assert capsys.readouterr().out == "bar||web\n"
    fmt.render(
        rows,
        'table {{.ID}}\\t{{.Label "com.example.foo"}}\\t{{upper .Names}}|{{json .State}}',
        cols,
    )
    assert capsys.readouterr().out == (
        'CONTAINER ID   foo       NAMES|STATE\nabc            bar       WEB|"running"\n'
    )
    fmt.render(rows, "json", cols)
    assert capsys.readouterr().out == '{"ID":"abc","Names":"web","State":"running"}\n'
    with pytest.raises(fmt.FormatFailed) as e:
        fmt.render(
            rows, "{{.Nope}}", cols, "failed to parse template: ", "failed to execute template: "
        )
    assert str(e.value) == (
        'failed to execute template: template: :1:2: executing "" at '
        "<.Nope>: can't evaluate field Nope in type "
        "*formatter.ContainerContext"
    )
    with pytest.raises(fmt.FormatFailed) as e:
        fmt.compile_format("{{.ID")
    assert (
        e.value.code == 64
        and str(e.value) == "template parsing error: template: :1: unclosed action"
    )


def test_typed_values_of_docker_inspect() -> None:
    """docker inspect runs its template over a typed struct first: a null there is a typed
    nil, known maps marshal sorted, a field the JSON left out is still there (and stays out of
    `json`), a network's Created prints as Go's Time.String."""
    obj = fmt.typed_nils(
        {
            "Id": "x",
            "Config": {
                "Entrypoint": None,
                "Labels": {"b": "1", "a": "2"},
                "Volumes": None,
                "Healthcheck": None,
            },
            "State": {"Status": "running"},
            "GraphDriver": {"Data": {"UpperDir": "u", "LowerDir": "l"}},
        },
        "container",
    )
    t = (
        "{{.Config.Entrypoint}} {{.Config.Volumes}} {{.Config.Healthcheck}} {{.State.Health}} "
        "{{.SizeRw}} {{if .SizeRw}}y{{else}}n{{end}} {{json .GraphDriver}} {{json .State}} "
        "{{json .Config.Entrypoint}}"
    )
    assert (
        run(t, obj, missingkey="inspect")
        == '[] map[] <nil> <nil> <nil> n {"Data":{"LowerDir":"l","UpperDir":"u"}} '
        '{"Status":"running"} null'
    )
    net = fmt.typed_nils({"Name": "n", "Created": "2026-12-01T03:11:14.5Z"}, "network")
    assert (
        run("{{.Created}} {{json .Created}} {{.Peers}}", net)
        == '2026-12-01 03:11:14.5 +0000 UTC "2026-12-01T03:11:14.5Z" []'
    )
    assert fmt.go_time("2026-12-01T03:11:14.123000+05:30") == "2026-12-01 03:11:14.123 +0530 +0530"
