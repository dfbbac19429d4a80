"""DEBA's own-time stopwatch accumulates what runs inside it and what is added."""

from __future__ import annotations

import time

from deba.training.stopwatch import Stopwatch


def test_the_stopwatch_accumulates_blocks_and_additions():
    watch = Stopwatch()
    assert watch.seconds == 0.0
    with watch:
        time.sleep(0.01)
    first = watch.seconds
    assert first >= 0.01 and watch.last == first
    mark = watch.seconds
    with watch:
        pass
    assert watch.seconds >= first and watch.since(mark) == watch.last
    watch.add(2.0)
    assert watch.seconds == first + watch.last + 2.0


def test_nested_blocks_each_count():
    watch = Stopwatch(1.0)
    with watch:
        with watch:
            time.sleep(0.005)
        inner = watch.last
    assert watch.last >= inner and watch.seconds == 1.0 + inner + watch.last


def test_an_exception_still_stops_the_block():
    watch = Stopwatch()
    try:
        with watch:
            raise ValueError("x")
    except ValueError:
        pass
    assert watch.seconds == watch.last >= 0.0 and watch._starts == []
