"""What makes an answer acceptable: non-empty, JSON, valid against a JSON Schema, or your check.

A check takes the answer text and returns None when it passes, else the reason in one line.
JSON Schema validation is the ``jsonschema`` package (draft 2020-12 unless the schema's
``$schema`` says otherwise), imported on first use; a malformed schema is refused up front.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

from ims_kit.errors import InvalidInputError

Check = Callable[[str], str | None]  # the reason an answer is rejected, None when it passes


def resolve_validator(validate: Any) -> tuple[str, Check]:
    """A name (for the workflow's context) and a check from ``None``, ``"nonempty"``,
    ``"json"``, a JSON Schema dict or a callable.

    A callable gets the answer text. It accepts by returning True or None; it rejects by
    returning False, by returning a string (the reason, as the built-in checks do), or by
    raising (the exception's message is the reason).
    """
    if validate is None or validate == "nonempty":
        return "nonempty", nonempty
    if validate == "json":
        return "json", lambda text: parse_json(text)[1]
    if isinstance(validate, Mapping):
        check = json_check(validate)
        return "json-schema", lambda text: check(text)[1]
    if callable(validate):
        return getattr(validate, "__name__", type(validate).__name__), _wrap(validate)
    raise InvalidInputError(
        f"validate must be None, 'nonempty', 'json', a JSON schema dict or a callable,"
        f" got {validate!r}"
    )


def nonempty(text: str) -> str | None:
    """Rejects an answer with nothing but whitespace."""
    return None if text.strip() else "the answer is empty"


def parse_json(text: str) -> tuple[Any, str | None]:
    """The JSON value of an answer (a Markdown code fence around it is allowed), or why not."""
    body = text.strip()
    if body.startswith("```"):  # models often fence JSON in markdown
        body = body.strip("`").removeprefix("json").strip()
    try:
        return json.loads(body), None
    except json.JSONDecodeError as exc:
        return None, f"the answer is not valid JSON ({exc.msg} at line {exc.lineno})"


def schema_validator(schema: Any) -> Any:
    """A ``jsonschema`` validator for ``schema``; InvalidInputError when the schema is malformed."""
    if not isinstance(schema, Mapping):
        raise InvalidInputError(f"a JSON schema must be an object, got {type(schema).__name__}")
    import jsonschema

    cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)
    try:
        cls.check_schema(schema)
    except jsonschema.SchemaError as exc:
        where = _path(exc.absolute_path)
        raise InvalidInputError(f"the JSON schema is malformed at {where}: {exc.message}") from None
    return cls(dict(schema))


def schema_problem(value: Any, validator: Any) -> str | None:
    """The most relevant way ``value`` breaks the schema, as one line, or None."""
    import jsonschema

    error = jsonschema.exceptions.best_match(validator.iter_errors(value))
    return None if error is None else f"{_path(error.absolute_path)}: {error.message}"


def json_check(schema: Mapping[str, Any]) -> Callable[[str], tuple[Any, str | None]]:
    """For JSON output: the answer parsed and validated against ``schema`` (checked now),
    as (value, None), or (None, the reason it is not acceptable)."""
    validator = schema_validator(schema)

    def check(text: str) -> tuple[Any, str | None]:
        value, problem = parse_json(text)
        problem = problem or schema_problem(value, validator)
        return (None, problem) if problem else (value, None)

    return check


def _path(parts: Any) -> str:
    return "$" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in parts)


def _wrap(fn: Callable[[str], Any]) -> Check:
    def check(text: str) -> str | None:
        try:
            verdict = fn(text)
        except Exception as exc:
            return str(exc) or type(exc).__name__
        if isinstance(verdict, str):  # a reason, like the built-in checks return
            return verdict or "the validator returned an empty reason"
        if verdict is None or verdict:
            return None
        return f"the validator returned {verdict!r}"

    return check


def is_closed(schema: Any) -> bool:
    """True when every object in the schema is closed (``additionalProperties: false``) and
    requires all its properties: what constrained decoding (OpenAI strict mode, Anthropic
    structured outputs) accepts."""
    if not isinstance(schema, Mapping):
        return True
    if schema.get("type") == "object" or "properties" in schema:
        properties = schema.get("properties") or {}
        if schema.get("additionalProperties") is not False:
            return False
        if set(schema.get("required") or ()) != set(properties):
            return False
    children = list((schema.get("properties") or {}).values())
    children += [schema[k] for k in ("items",) if isinstance(schema.get(k), Mapping)]
    children += [s for k in ("anyOf", "$defs") for s in _listed(schema.get(k))]
    return all(is_closed(c) for c in children)


def _listed(value: Any) -> list[Any]:
    if isinstance(value, Mapping):
        return list(value.values())
    return list(value) if isinstance(value, list) else []
