"""Pure batching decisions: which decoded images go to Triton together."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

T = TypeVar("T")


def group_by_shape(
    items: Sequence[T],
    shape_of: Callable[[T], tuple[int, ...]],
    max_size: int,
    max_pixels: int | None = None,
) -> list[list[T]]:
    """Batches of equal shape in first-come order within a shape, at most ``max_size`` images
    and (unless one image alone is larger) ``max_pixels`` pixels each: activations, and so the
    model server's memory, grow with the pixels in a call."""
    if max_size < 1:
        raise ValueError("max_size must be >= 1")
    groups: dict[tuple[int, ...], list[T]] = {}
    for item in items:
        groups.setdefault(shape_of(item), []).append(item)
    batches: list[list[T]] = []
    for shape, members in groups.items():
        pixels = int(shape[0]) * int(shape[1]) if len(shape) >= 2 else 1
        size = max_size if max_pixels is None else max(1, min(max_size, max_pixels // pixels))
        batches += [members[i : i + size] for i in range(0, len(members), size)]
    return batches


def backoff_s(attempt: int, base_s: float, max_s: float) -> float:
    """Exponential backoff for retry number ``attempt`` (0-based), capped."""
    return float(min(max_s, base_s * 2**attempt))
