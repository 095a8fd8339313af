"""Command-line values every command parses the same way."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from cremad import CremadError

T = TypeVar("T")


def comma_list(
    text: str | None, option: str, convert: Callable[[str], T] = str, example: str = ""
) -> list[T]:
    """`--option "a,b,c"` as a list: each item stripped and converted, empty items dropped,
    duplicates kept once in the order given; [] for None or "". A bad item raises CremadError
    naming the option (and `example`, a valid value)."""
    items = [item.strip() for item in (text or "").split(",") if item.strip()]
    try:
        values = [convert(item) for item in items]
    except ValueError as error:
        hint = f", e.g. {example}" if example else ""
        raise CremadError(f"{option} {text!r}: {error}{hint}") from None
    return list(dict.fromkeys(values))


def nonnegative_int(text: str) -> int:
    """A whole number >= 0 (a seed)."""
    if not text.isdigit():
        raise ValueError(f"{text!r} is not a whole number >= 0")
    return int(text)
