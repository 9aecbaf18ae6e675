"""Pure batching decisions: which decoded images go to Triton together."""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from typing import TypeVar

T = TypeVar("T")


def group_by_shape(
    items: Sequence[T], shape_of: Callable[[T], Hashable], max_size: int
) -> list[list[T]]:
    """Batches of equal shape, at most ``max_size`` each, in first-come order within a shape."""
    if max_size < 1:
        raise ValueError("max_size must be >= 1")
    groups: dict[Hashable, list[T]] = {}
    for item in items:
        groups.setdefault(shape_of(item), []).append(item)
    return [
        members[i : i + max_size]
        for members in groups.values()
        for i in range(0, len(members), max_size)
    ]


def backoff_s(attempt: int, base_s: float, max_s: float) -> float:
    """Exponential backoff for retry number ``attempt`` (0-based), capped."""
    return float(min(max_s, base_s * 2**attempt))
