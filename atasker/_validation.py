"""Argument checks shared by the public entry points.

Each raises ``TypeError`` or ``ValueError`` with the argument's name.
"""

from __future__ import annotations

import inspect
import threading
import time
from collections.abc import Mapping
from inspect import CO_COROUTINE
from types import FunctionType
from typing import Any, Callable, Iterable, Optional, Union

from ._constants import TT_COROUTINE, TT_MP, TT_THREAD

_INF = float("inf")


def check_seconds(name: str, value: Optional[float]) -> None:
    """Validate an optional number of seconds: ``None``, a finite number
    >= 0 that the clock can wait for, or ``inf``."""
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(
            f"{name} must be a number of seconds, not "
            f"{type(value).__name__}")
    if not value >= 0:          # also rejects NaN
        raise ValueError(f"{name} must be >= 0, got {value!r}")
    if value != _INF and value > threading.TIMEOUT_MAX:
        raise ValueError(f"{name} is too large ({value!r} s); use None or "
                         f"float('inf') for no limit")


def timeout_arg(name: str, value: Optional[float]) -> float:
    """*value* checked, as ``Lock.acquire(timeout=)`` takes it (``-1``: no
    limit)."""
    check_seconds(name, value)
    return -1 if value is None or value == _INF else float(value)


def time_left(deadline: Optional[float]) -> Optional[float]:
    """Seconds until the monotonic *deadline* (never negative), or None
    for no deadline: what ``join(timeout=)`` takes."""
    return None if deadline is None \
        else max(0.0, deadline - time.monotonic())


def deadline_of(name: str, wait: Union[bool, float]) -> Optional[float]:
    """The monotonic deadline of a ``wait=`` argument: ``True``/``False``/
    ``inf`` have none."""
    if wait is None or isinstance(wait, bool):
        return None
    check_seconds(name, wait)
    if wait == _INF:
        return None
    return time.monotonic() + wait


def check_priority(priority: int) -> None:
    if isinstance(priority, bool) or not isinstance(priority, int):
        raise TypeError(
            f"priority must be an int, not {type(priority).__name__}")


def check_callable(name: str, value: Any, optional: bool = True) -> None:
    if value is None and optional:
        return
    if not callable(value):
        raise TypeError(f"{name} must be callable, got {value!r}")


def check_task_options(priority: int, delay: Optional[float], tt: int,
                       callback: Any, error_callback: Any,
                       timeout: Optional[float]) -> None:
    """Validate the options shared by ``put_task`` and ``background_task``."""
    check_priority(priority)
    check_seconds("delay", delay)
    check_seconds("timeout", timeout)
    if timeout == 0:
        raise ValueError("timeout must be > 0")
    check_callable("callback", callback)
    check_callable("error_callback", error_callback)
    if type(tt) is not int:     # not bool, not 2.0
        raise TypeError(f"tt must be TT_THREAD, TT_MP or TT_COROUTINE, "
                        f"not {type(tt).__name__}")
    if tt in (TT_THREAD, TT_MP, TT_COROUTINE):
        return
    raise ValueError(f"tt must be TT_THREAD, TT_MP or TT_COROUTINE, "
                     f"got {tt!r}")


def check_args(args: Iterable[Any]) -> tuple:
    """The positional arguments for a task, as a tuple: any iterable but
    a string (which would be split into characters) or a mapping (its keys
    would be passed: ``kwargs=`` was meant)."""
    if isinstance(args, tuple):
        return args
    if isinstance(args, (str, bytes, bytearray)):
        raise TypeError(f"args must be a tuple or list of arguments, not a "
                        f"{type(args).__name__} (for one argument: "
                        f"args=(value,))")
    if isinstance(args, Mapping):
        raise TypeError("args must be a tuple or list of arguments, not a "
                        "mapping; keyword arguments go in kwargs=")
    try:
        return tuple(args)
    except TypeError:
        raise TypeError(f"args must be a tuple or list of arguments, not "
                        f"{type(args).__name__} (for one argument: "
                        f"args=(value,))") from None


def check_kwargs(kwargs: Optional[dict]) -> dict:
    """The keyword arguments for a task: a dict with str keys (``None``
    means none)."""
    if kwargs is None:
        return {}
    if not isinstance(kwargs, dict):
        raise TypeError(f"kwargs must be a dict, not {type(kwargs).__name__}")
    for key in kwargs:
        if type(key) is not str:
            raise TypeError(f"kwargs keys must be str (argument names), got "
                            f"{key!r}")
    return kwargs


def check_name(name: Optional[str]) -> None:
    if name is not None and not isinstance(name, str):
        raise TypeError(f"name must be a str, not {type(name).__name__}")


def resolve_tt(target: Callable[..., Any], tt: int) -> int:
    """The task type for *target*: coroutine functions are ``TT_COROUTINE``
    whatever the default says; ``ValueError`` for impossible pairs."""
    if type(target) is FunctionType and \
            not hasattr(target, "_is_coroutine_marker"):
        # a plain function (not marked by markcoroutinefunction): what
        # iscoroutinefunction() finds, four times faster
        is_coroutine = bool(target.__code__.co_flags & CO_COROUTINE)
    else:
        is_coroutine = inspect.iscoroutinefunction(target)
    if is_coroutine and tt in (TT_THREAD, TT_COROUTINE):
        return TT_COROUTINE
    if is_coroutine:
        raise ValueError("a coroutine function runs on an aloop, not with "
                         f"tt={tt!r}; pass a plain function for TT_MP")
    if tt == TT_COROUTINE:
        raise ValueError(f"tt=TT_COROUTINE needs a coroutine function, got "
                         f"{target!r}")
    return tt


def task_name(target: Callable[..., Any]) -> str:
    return getattr(target, "__qualname__", None) or repr(target)
