"""Process-task helpers: start methods, pickling checks, ``_task_id``, a
worker process as the parent sees it, decoding answers, killing trees."""

from __future__ import annotations

import functools
import inspect
import multiprocessing
import os
import pickle
import reprlib
from typing import Any, Callable, Optional, Union

import psutil

from ._errors import RemoteTraceback

_PROTOCOL = pickle.HIGHEST_PROTOCOL


def default_mp_pool_size() -> int:
    return os.cpu_count() or 1


def resolve_context(context: Union[None, str, Any]) -> Any:
    """A multiprocessing context: the given one, a start method's, or the
    default -- ``forkserver`` where available, else ``spawn`` (never plain
    ``fork``: the supervisor has threads)."""
    if context is None:
        methods = multiprocessing.get_all_start_methods()
        return multiprocessing.get_context(
            "forkserver" if "forkserver" in methods else "spawn")
    if isinstance(context, str):
        try:
            return multiprocessing.get_context(context)
        except ValueError:
            raise ValueError(
                f"context {context!r} is not a start method here; choose "
                f"from {multiprocessing.get_all_start_methods()}") from None
    if hasattr(context, "Process") and hasattr(context, "Pipe"):
        return context
    raise TypeError(f"context must be a start method name or a "
                    f"multiprocessing context, got {context!r}")


def pickle_task(function: Callable[..., Any], args: tuple,
                kwargs: dict,
                dumps: Callable[..., bytes] = pickle.dumps) -> bytes:
    """Pickle a process task once, at submission.

    Raises ``TypeError`` naming the first object that cannot be pickled.
    """
    try:
        return dumps((function, args, kwargs), _PROTOCOL)
    except Exception as exc:
        parts: list[tuple[str, Any]] = [("function", function)]
        parts += [(f"argument {i}", arg) for i, arg in enumerate(args)]
        parts += [(f"keyword argument {key!r}", value)
                  for key, value in kwargs.items()]
        culprit = "the task"
        for what, obj in parts:
            try:
                dumps(obj, _PROTOCOL)
            except Exception:
                culprit = f"{what} {_short_repr(obj)}"
                break
        raise TypeError(
            f"{culprit} cannot be pickled for a TT_MP task ({exc}); a "
            f"process task needs a module-level function and picklable "
            f"arguments") from exc


def prepare_payload(target: Callable[..., Any], args: tuple, kwargs: dict,
                    task_id: str,
                    dumps: Callable[..., bytes] = pickle.dumps) -> bytes:
    """The bytes a process task travels as: ``(target, args, kwargs)``
    pickled once, at submission (so errors reach the caller), with
    ``_task_id`` added for a target that accepts it."""
    if accepts_task_id(target):
        kwargs = {**kwargs, "_task_id": task_id}
    return pickle_task(target, args, kwargs, dumps)


def _short_repr(obj: Any) -> str:
    """A bounded repr: shallow (a deeply nested value must not recurse
    again) and short."""
    try:
        text = _REPR.repr(obj)
    except Exception:   # a broken __repr__
        text = f"<{type(obj).__name__} object>"
    return text if len(text) <= 80 else text[:77] + "..."


_REPR = reprlib.Repr()
_REPR.maxlevel = 3
_REPR.maxother = _REPR.maxstring = 80


@functools.lru_cache(maxsize=512)
def _accepts_task_id(function: Callable[..., Any]) -> bool:
    try:
        parameters = inspect.signature(function).parameters.values()
    except (TypeError, ValueError):     # builtins without a signature
        return False
    return any(p.name == "_task_id" or p.kind is p.VAR_KEYWORD
               for p in parameters)


def accepts_task_id(function: Callable[..., Any]) -> bool:
    """Whether *function* takes a ``_task_id`` keyword (or ``**kwargs``)."""
    try:
        return _accepts_task_id(function)
    except TypeError:                   # unhashable callable
        return _accepts_task_id.__wrapped__(function)


def forget_child(process: Any) -> None:
    """In a forked child: *process* is the parent's child, not ours; keep
    multiprocessing from joining it at exit."""
    children = getattr(multiprocessing.process, "_children", None)
    if children is not None:
        children.discard(process)


def check_mp_numbers(pool_size: Optional[int],
                     max_tasks_per_child: Optional[int]) -> None:
    if pool_size is not None and not isinstance(pool_size, bool) \
            and isinstance(pool_size, int) and pool_size < 1:
        raise ValueError(f"pool_size of the process pool must be >= 1, "
                         f"got {pool_size}")
    if max_tasks_per_child is not None:
        if isinstance(max_tasks_per_child, bool) or \
                not isinstance(max_tasks_per_child, int):
            raise TypeError(f"max_tasks_per_child must be an int or None, "
                            f"not {type(max_tasks_per_child).__name__}")
        if max_tasks_per_child < 1:
            raise ValueError(f"max_tasks_per_child must be >= 1, got "
                             f"{max_tasks_per_child}")


class Proc:
    """One worker process as the parent sees it."""

    __slots__ = ("process", "conn", "task", "done", "leaving", "buried",
                 "orphan")

    def __init__(self, process: Any, conn: Any) -> None:
        self.process = process
        self.conn = conn
        self.task: Any = None       # the record it runs, or None
        self.done = 0               # tasks it has finished
        self.leaving = False        # told to exit, or being killed
        self.buried = False         # gone (read and set by the manager only)
        # its forkserver is gone, and its exit status with it: a handle
        # (psutil tells a reused pid apart) to check whether it runs on;
        # its pipe tells when it ends (manager only)
        self.orphan: Optional[psutil.Process] = None


def decode(data: bytes) -> tuple[bool, Any]:
    """Turn a worker's answer into an outcome ``(ok, value)``."""
    try:
        answer = pickle.loads(data)
    except Exception as exc:
        return False, TypeError(
            f"the task's outcome could not be unpickled in the parent: "
            f"{exc!r}")
    if answer[0]:
        return True, answer[1]
    remote, text = answer[1], answer[2]
    remote.__cause__ = RemoteTraceback(text)
    return False, remote


#: the exit code multiprocessing reports for a process started by a
#: forkserver when the forkserver closed its status pipe without one
#: (the forkserver is gone; the process may well be running)
STATUS_LOST = 255


def running(pid: int) -> Optional[psutil.Process]:
    """A handle of process *pid* if it exists and has not exited."""
    try:
        process = psutil.Process(pid)
        if process.status() != psutil.STATUS_ZOMBIE:
            return process
    except psutil.Error:
        pass
    return None


def still_running(process: psutil.Process) -> bool:
    """*process* (a handle from :func:`running`) has not exited; its pid
    was not reused since (psutil compares start times)."""
    try:
        return process.is_running() and \
            process.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def kill_tree(pid: int) -> None:
    """Kill process *pid* and all of its descendants, children first."""
    try:
        parent = psutil.Process(pid)
        victims = parent.children(recursive=True)
    except psutil.NoSuchProcess:
        return
    for victim in reversed(victims):
        try:
            victim.kill()
        except psutil.NoSuchProcess:
            pass
    try:
        parent.kill()
    except psutil.NoSuchProcess:
        pass
