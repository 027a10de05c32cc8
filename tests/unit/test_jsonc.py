"""berth.jsonc gives what the json package gives, for what berth sends and reads."""

from __future__ import annotations

import json

import pytest

from berth import jsonc

DOCS = [
    {"a": [1, 2.5, None, True, False, "x\u00e9\n\u2603"], "b": {"c": {}}},
    [],
    "s\u00e9",
    1,
    1.5,
    None,
    {"Id": "abc", "Env": ["A=1"]},
    12345678901234567890,
    {"k": float("inf")},
]


@pytest.mark.parametrize("doc", DOCS)
def test_same_as_json(doc: object) -> None:
    for ascii_only in (True, False):
        assert jsonc.dumps(doc, ensure_ascii=ascii_only) == json.dumps(doc, ensure_ascii=ascii_only)
    assert jsonc.loads(json.dumps(doc)) == json.loads(json.dumps(doc))
    assert jsonc.loads(json.dumps(doc).encode()) == json.loads(json.dumps(doc))


def test_other_options_go_to_json_and_errors_are_value_errors() -> None:
    assert jsonc.dumps({"b": 1, "a": 2}, indent=2, sort_keys=True) == json.dumps(
        {"b": 1, "a": 2}, indent=2, sort_keys=True
    )
    for bad in ("", "{", "[1,]", "1 2", "nul"):
        with pytest.raises(ValueError):
            jsonc.loads(bad)
    with pytest.raises(TypeError):
        jsonc.dumps({"a": object()})
