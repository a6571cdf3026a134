"""g, the thread-local proxy."""

from __future__ import annotations

import threading

from atasker import LocalProxy, g


def test_get_set_has_clear():
    local = LocalProxy()
    assert local.get("x") is None and local.get("x", 5) == 5
    assert not local.has("x")
    local.set("x", 1)
    assert local.has("x") and local.get("x") == 1
    local.clear("x")
    local.clear("x")               # clearing twice is fine
    assert not local.has("x")


def test_values_are_per_thread():
    g.set("who", "main")
    seen = []
    thread = threading.Thread(target=lambda: seen.append(g.get("who")))
    thread.start()
    thread.join()
    assert seen == [None] and g.get("who") == "main"
    g.clear("who")
