"""argparse `type=` functions for the numeric options of the commands.

A value is checked where argparse reads it, so a bad one stops the command before any work, with argparse's usage
line and `error: argument --top-k: '-1': must be an integer >= 1` (exit status 2). Floats must be finite: `nan`,
`inf` and `1e400` are refused.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable


def int_at_least(minimum: int) -> Callable[[str], int]:
    """An argparse type: an integer that is at least `minimum`."""
    return _number_type(int, lambda value: value >= minimum, f"an integer >= {minimum}")


def int_between(low: int, high: int) -> Callable[[str], int]:
    """An argparse type: an integer from `low` to `high` (both included)."""
    return _number_type(int, lambda value: low <= value <= high, f"an integer from {low} to {high}")


def float_between(
    low: float, high: float = math.inf, *, exclude_low: bool = False, exclude_high: bool = False
) -> Callable[[str], float]:
    """An argparse type: a finite float from `low` to `high` (each end included unless excluded; no upper bound
    when `high` is infinite)."""

    def accepts(value: float) -> bool:
        above_low = value > low if exclude_low else value >= low
        below_high = value < high if exclude_high else value <= high
        return math.isfinite(value) and above_low and below_high

    if math.isinf(high):
        expected = f"a finite number {'>' if exclude_low else '>='} {low:g}"
    else:
        expected = f"a finite number in {'(' if exclude_low else '['}{low:g}, {high:g}{')' if exclude_high else ']'}"
    return _number_type(float, accepts, expected)


def _number_type(kind: type, accepts: Callable, expected: str) -> Callable[[str], int | float]:
    """An argparse type reading `kind` from the text and keeping it if `accepts` it; else an error saying what is
    `expected`."""

    def parse(text: str) -> int | float:
        try:
            value = kind(text)
        except ValueError:
            value = None
        if value is None or not accepts(value):
            raise argparse.ArgumentTypeError(f"{text!r}: must be {expected}")
        return value

    return parse


positive_int = int_at_least(1)
non_negative_int = int_at_least(0)
positive_float = float_between(0.0, exclude_low=True)
probability = float_between(0.0, 1.0)  # scores and score thresholds
