"""How figures read in text: one formatter per kind of figure."""

from __future__ import annotations

import pytest

from ims_kit.formatting import (
    duration_ms,
    money,
    percent,
    price,
    size,
    text_table,
    time_left,
    when,
)


@pytest.mark.parametrize(
    ("value", "unpriced", "text"),
    [
        (None, 0, "unpriced"),
        (0.0, 0, "$0.0000"),
        (0.000123, 0, "$0.000123"),
        (1.23456, 0, "$1.2346"),
        (1234.5, 0, "$1,234.50"),
        (0.5, 3, "$0.5000 (+3 unpriced)"),
    ],
)
def test_money_is_never_zero_for_unknown(value, unpriced, text):
    """Unknown money is "unpriced"; small amounts keep their digits; unpriced calls are said."""
    assert money(value, unpriced=unpriced) == text


def test_the_other_figures():
    """Prices, shares, durations, sizes and timestamps each read one way."""
    assert (price(None), price(0.075)) == ("unpriced", "0.075")
    assert (percent(None), percent(0.955)) == ("-", "95.5%")
    assert (duration_ms(None), duration_ms(512.4), duration_ms(1500)) == ("-", "512 ms", "1.50 s")
    assert (size(512), size(2048), size(3 * 1024**3)) == ("512 B", "2.0 KB", "3.0 GB")
    assert when("2026-12-02T10:11:12.345+00:00") == "2026-12-02 10:11:12" and when(None) == ""
    assert (time_left(-5), time_left(4 * 3600 + 600), time_left(2 * 86400 + 3 * 3600 + 59)) == (
        "0 h 0 min", "4 h 10 min", "2 d 3 h"
    )  # fmt: skip


def test_text_table_aligns_numbers_right():
    """Columns are as wide as their widest cell; numeric columns are right-aligned."""
    table = text_table([{"model": "a", "n": "5"}, {"model": "bbb", "n": "1,000"}])
    assert table.splitlines() == ["model      n", "-----  -----", "a          5", "bbb    1,000"]
