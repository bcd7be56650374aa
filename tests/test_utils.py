"""Shared helpers: the prefetching reader keeps order, raises where the error happened, and stops when left."""

import threading

import pytest

from promptlift.utils import prefetch


def test_prefetch_keeps_order_and_applies_fn():
    assert list(prefetch(range(100), lambda i: i * i, depth=3)) == [i * i for i in range(100)]


def test_prefetch_raises_the_workers_error_at_its_item():
    def fn(i):
        if i == 5:
            raise OSError("disk gone")
        return i

    seen = []
    with pytest.raises(OSError, match="disk gone"):
        for x in prefetch(range(10), fn, depth=2):
            seen.append(x)
    assert seen == [0, 1, 2, 3, 4]


def test_prefetch_stops_its_thread_when_the_loop_is_left():
    before = threading.active_count()
    for x in prefetch(iter(range(10**9)), lambda i: i, depth=4):
        if x == 10:
            break
    assert threading.active_count() == before
