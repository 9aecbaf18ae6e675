from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from service.batching import backoff_s, group_by_shape


def test_groups_equal_shapes_and_caps_size() -> None:
    items = [("a", (2, 2)), ("b", (3, 3)), ("c", (2, 2)), ("d", (2, 2))]
    batches = group_by_shape(items, lambda it: it[1], max_size=2)
    assert [[name for name, _ in b] for b in batches] == [["a", "c"], ["d"], ["b"]]


@given(st.lists(st.tuples(st.integers(0, 5), st.integers(0, 3)), max_size=60), st.integers(1, 8))
def test_every_item_lands_in_exactly_one_batch(items: list[tuple[int, int]], size: int) -> None:
    tagged = list(enumerate(items))
    batches = group_by_shape(tagged, lambda it: it[1], size)
    flat = [it for b in batches for it in b]
    assert sorted(flat) == sorted(tagged)
    assert all(1 <= len(b) <= size and len({it[1] for it in b}) == 1 for b in batches)


def test_rejects_empty_batches() -> None:
    with pytest.raises(ValueError):
        group_by_shape([1], lambda x: x, 0)


def test_backoff_doubles_and_caps() -> None:
    assert [backoff_s(i, 0.5, 3.0) for i in range(5)] == [0.5, 1.0, 2.0, 3.0, 3.0]


def test_pixel_cap_splits_batches_of_large_images() -> None:
    items = [(i, (1024, 1024, 3)) for i in range(5)] + [(9, (4000, 3000, 3))]
    batches = group_by_shape(items, lambda it: it[1], max_size=4, max_pixels=2 * 1024 * 1024)
    assert [len(b) for b in batches] == [2, 2, 1, 1]  # the oversized image still goes, alone
