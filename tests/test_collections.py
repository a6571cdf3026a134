"""FunctionCollection and TaskCollection."""

from __future__ import annotations

import threading

import pytest

from atasker import (TASK_HIGH, TASK_LOW, FunctionCollection,
                     TaskCollection)


def build(collection, order):
    @collection
    def normal():
        order.append("normal")
        return 1

    @collection(priority=TASK_HIGH)
    def high():
        order.append("high")
        return 2

    @collection(priority=TASK_LOW)
    def low():
        order.append("low")
        return 3

    return normal, high, low


def test_function_collection_runs_in_priority_order():
    order = []
    c = FunctionCollection()
    build(c, order)
    result = c.run()
    assert order == ["high", "normal", "low"]
    prefix = __name__
    assert result == {f"{prefix}.high": 2, f"{prefix}.normal": 1,
                      f"{prefix}.low": 3}
    assert c() == result          # calling the collection runs it


def test_execute_reports_failures_to_on_error():
    calls = []
    c = FunctionCollection(on_error=lambda **kw: calls.append(kw),
                           on_error_kwargs={"where": "startup"},
                           include_exceptions=True)

    @c
    def bad():
        raise ValueError("nope")

    @c(priority=TASK_LOW)
    def good():
        return "ok"

    result, all_ok = c.execute()
    assert not all_ok and calls == [{"where": "startup"}]
    exc, text = result[f"{__name__}.bad"]
    assert isinstance(exc, ValueError) and "ValueError: nope" in text
    assert result[f"{__name__}.good"] == "ok"


def test_without_on_error_the_exception_propagates():
    c = FunctionCollection()

    @c
    def bad():
        raise KeyError("k")

    with pytest.raises(KeyError):
        c.execute()


def test_append_remove():
    c = FunctionCollection()

    def f():
        return 1

    c.append(f)
    c.append(f)                   # once only
    assert c.run() == {f"{__name__}.f": 1}
    c.remove(f)
    assert c.run() == {}
    with pytest.raises(ValueError):
        c.remove(f)
    with pytest.raises(TypeError):
        c.append(5)
    with pytest.raises(TypeError):
        c.append(f, priority="high")


def test_task_collection_runs_on_threads(sup):
    c = TaskCollection(supervisor=sup)
    threads = set()
    barrier = threading.Barrier(3, timeout=10)

    for n in range(3):
        def f(n=n):
            threads.add(threading.current_thread().name)
            barrier.wait()        # all three run at the same time
            return n
        f.__name__ = f"f{n}"
        c.append(f)

    result, all_ok = c.execute()
    assert all_ok
    assert result == {f"{__name__}.f0": 0, f"{__name__}.f1": 1,
                      f"{__name__}.f2": 2}
    assert len(threads) == 3 and threading.current_thread().name \
        not in threads


def test_task_collection_errors(sup):
    errors = []
    c = TaskCollection(supervisor=sup, on_error=lambda: errors.append(1))

    @c
    def bad():
        raise ValueError("x")

    @c
    def good():
        return 5

    result, all_ok = c.execute()
    assert not all_ok and errors == [1]
    assert result == {f"{__name__}.bad": None, f"{__name__}.good": 5}
    plain = TaskCollection(supervisor=sup)
    plain.append(bad)
    with pytest.raises(ValueError):
        plain.run()
