"""The classification table: every failure to one ErrorKind and a retryable flag."""

from __future__ import annotations

import pytest

from ims_kit.classify import RULES, classify, rules_table
from ims_kit.errors import ErrorKind, ProviderError


@pytest.mark.parametrize(
    "error, kind, retryable",
    [
        (
            ProviderError("x", provider="p", status=429, code="insufficient_quota"),
            "RATE_LIMIT",
            False,
        ),
        (
            ProviderError(
                "Your credit balance is too low to access the Anthropic API.",
                provider="p",
                status=400,
                error_type="invalid_request_error",
            ),
            "RATE_LIMIT",
            False,
        ),
        (ProviderError("slow down", provider="p", status=429), "RATE_LIMIT", True),
        (
            ProviderError("x", provider="p", status=529, error_type="overloaded_error"),
            "OVERLOAD",
            True,
        ),
        (ProviderError("x", provider="p", status=503, error_type="UNAVAILABLE"), "OVERLOAD", True),
        (ProviderError("x", provider="p", status=504), "TIMEOUT", True),
        (ProviderError("x", provider="p", transport="timeout"), "TIMEOUT", True),
        (ProviderError("x", provider="p", transport="connect"), "OVERLOAD", True),
        (
            ProviderError(
                "prompt is too long: 210000 tokens > 200000 maximum", provider="p", status=400
            ),
            "CONTEXT_OVERFLOW",
            False,
        ),
        (
            ProviderError("x", provider="p", status=404, code="model_not_found"),
            "INVALID_REQUEST",
            False,
        ),
        (ProviderError("x", provider="p", status=401), "AUTHENTICATION", False),
        (ProviderError("x", provider="p", status=302), "UNKNOWN", False),
        (TimeoutError("read timed out"), "TIMEOUT", True),
        (ConnectionRefusedError(111, "refused"), "OVERLOAD", True),
        (ConnectionResetError(104, "reset"), "OVERLOAD", True),
        (ValueError("something else"), "UNKNOWN", False),
    ],
)
def test_classification_table(error, kind, retryable):
    """Every kind of failure maps to exactly one ErrorKind value and a retryable flag."""
    result = classify(error)
    assert (result.kind.value, result.retryable) == (kind, retryable)
    assert result.kind.value in {k.value for k in ErrorKind}


def test_the_table_is_documented():
    """rules_table() renders every rule (the README prints it)."""
    table = rules_table()
    assert table.count("\n") == len(RULES) + 2 and "insufficient_quota" in table
