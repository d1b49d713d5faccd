"""What makes an answer acceptable: non-empty, JSON, a JSON Schema (jsonschema), your check."""

from __future__ import annotations

import pytest

from ims_kit.errors import InvalidInputError
from ims_kit.validators import resolve_validator

SCHEMA = {
    "type": "object",
    "required": ["name", "tags"],
    "properties": {
        "name": {"type": "string", "minLength": 1},
        "age": {"type": ["integer", "null"]},
        "tags": {"type": "array", "items": {"enum": ["a", "b"]}},
    },
    "additionalProperties": False,
}


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ('{"name": "x", "tags": ["a"]}', None),
        ('```json\n{"name": "x", "tags": [], "age": 3}\n```', None),
        ('{"name": "x", "tags": [], "age": null}', None),
        ('{"name": "x"}', "$: 'tags' is a required property"),
        ('{"name": 1, "tags": []}', "$.name: 1 is not of type 'string'"),
        ('{"name": "", "tags": []}', "$.name: '' should be non-empty"),
        ('{"name": "x", "tags": ["c"]}', "$.tags[0]: 'c' is not one of ['a', 'b']"),
        ('{"name": "x", "tags": [], "age": true}', "$.age: True is not of type 'integer', 'null'"),
        ('{"name": "x", "tags": [], "extra": 1}', "('extra' was unexpected)"),
        ("[1, 2]", "$: [1, 2] is not of type 'object'"),
        ("Sure! Here it is", "not valid JSON"),
    ],
)
def test_a_json_schema_is_checked_in_full(text, problem):
    """Every JSON Schema keyword is checked (jsonschema), the failure said in one line."""
    _, check = resolve_validator(SCHEMA)
    found = check(text)
    assert found is None if problem is None else problem in found


@pytest.mark.parametrize(
    "schema", [{"type": "decimal"}, {"properties": {"a": 1}}, {"minLength": -1}, "object"]
)
def test_a_malformed_schema_is_refused_up_front(schema):
    """A schema that is not a valid JSON Schema is an error before any answer is checked."""
    with pytest.raises(InvalidInputError, match="schema"):
        resolve_validator(schema if isinstance(schema, dict) else {"type": [schema, 5]})


def test_callable_validators_pass_on_true_or_none_and_fail_on_false_or_raise():
    """A callable rejects by returning a false value other than None, or by raising."""

    def must_mention_paris(text):
        if "Paris" not in text:
            raise ValueError("the answer does not mention Paris")

    name, check = resolve_validator(must_mention_paris)
    assert name == "must_mention_paris"
    assert check("Paris.") is None
    assert check("Lyon.") == "the answer does not mention Paris"
    assert resolve_validator(lambda t: False)[1]("x") == "the validator returned False"
    assert resolve_validator(lambda t: True)[1]("x") is None


@pytest.mark.parametrize(
    ("validate", "text", "ok"),
    [(None, "x", True), (None, "  \n", False), ("nonempty", "", False), ("json", "[1]", True)],
)
def test_named_validators(validate, text, ok):
    """The default accepts any non-blank answer; "json" accepts any JSON document."""
    assert (resolve_validator(validate)[1](text) is None) is ok
