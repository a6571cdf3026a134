"""The status snapshot of a supervisor and its Prometheus rendering.

:func:`snapshot` reads the engine under its lock once (numbers and a list
of the records), then reads the live records without the lock, a field at
a time, so a snapshot never holds up the pools for long.
"""

from __future__ import annotations

import time
from typing import Any, Optional

from ._constants import (BAND_NAMES, FINAL_STATUSES, SUPERVISOR_NEW,
                         SUPERVISOR_RUNNING, TASK_STATUS_DELAYED,
                         TASK_STATUS_QUEUED, TASK_STATUS_STARTED,
                         TT_COROUTINE, TT_MP, TT_NAMES, TT_THREAD,
                         priority_band)
from ._dispatcher import Dispatcher
from ._engine import Engine
from ._taskinfo import SupervisorInfo

#: running tasks listed in a snapshot, longest-running first
RUNNING_SHOWN = 50

_TOTAL_NAMES = ("completed", "failed", "canceled")


def snapshot(engine: Engine) -> dict:
    """A JSON-ready snapshot of what *engine* is doing.

    Keys: ``supervisor``, ``state``, ``uptime`` (seconds since the last
    start, else ``None``), ``time`` (``time.time()``), ``pools``
    (``thread`` and ``process``: ``size``, ``reserve_normal``,
    ``reserve_high``, ``running``, ``running_by_band``, ``queued``,
    ``queued_by_band``, ``queued_by_priority`` and
    ``threads``/``idle_threads`` or ``processes``), ``coroutines``
    (``running``, ``queued``), ``delayed``, ``running`` (up to 50 running
    tasks, longest-running first: ``id``, ``name``, ``tt``, ``priority``,
    ``band``, ``age``), ``running_count``, ``workers`` (``name``,
    ``kind``, ``active``), ``aloops`` (``name``, ``active``) and
    ``totals`` (``completed``/``failed``/``canceled`` overall and
    ``by_tt``).
    """
    now_wall, now = time.time(), time.monotonic()
    threads, processes = engine.threads, engine.mp_pool
    with engine.lock:
        state, started_at = engine.state, engine.started_at
        totals = {tt: list(values)
                  for tt, values in engine.registry.totals.items()}
        records = list(engine.registry.tasks.values())
        pools = {"thread": _pool_status(threads.dispatcher),
                 "process": _pool_status(processes.dispatcher)}
        pools["thread"].update(threads=threads.thread_count,
                               idle_threads=threads.idle_count)
        pools["process"]["processes"] = processes.process_count
        executor = getattr(processes, "executor", None)
        if executor is not None:
            pools["process"]["executor"] = type(executor).__name__
        workers = list(engine.schedulers)
        aloops = engine.aloops.all_locked()
    tasks = _tasks_now(records, now_wall)
    pools["thread"]["running_by_band"] = tasks["by_band"][TT_THREAD]
    pools["process"]["running_by_band"] = tasks["by_band"][TT_MP]
    return {
        "supervisor": engine.id,
        "state": state,
        "uptime": None if started_at is None else now - started_at,
        "time": now_wall,
        "pools": pools,
        "coroutines": tasks["coroutines"],
        "delayed": tasks["delayed"],
        "running": tasks["running"][:RUNNING_SHOWN],
        "running_count": len(tasks["running"]),
        "workers": [{"name": getattr(w, "name", repr(w)),
                     "kind": type(w).__name__,
                     "active": bool(w.is_active())} for w in workers],
        "aloops": [{"name": a.name, "active": bool(a.is_active())}
                   for a in aloops],
        "totals": {
            **{name: sum(values[i] for values in totals.values())
               for i, name in enumerate(_TOTAL_NAMES)},
            "by_tt": {TT_NAMES[tt]: dict(zip(_TOTAL_NAMES, values))
                      for tt, values in totals.items()}},
    }


def supervisor_info(engine: Engine, tt: Optional[int], aloops: bool,
                    schedulers: bool) -> SupervisorInfo:
    """The snapshot of :meth:`TaskSupervisor.get_info`."""
    threads, processes = engine.threads, engine.mp_pool
    dispatcher = threads.dispatcher
    with engine.lock:
        info = SupervisorInfo(
            id=engine.id, active=engine.state == SUPERVISOR_RUNNING,
            started=engine.state != SUPERVISOR_NEW,
            thread_pool_size=dispatcher.pool_size,
            thread_reserve_normal=dispatcher.reserve_normal,
            thread_reserve_high=dispatcher.reserve_high,
            thread_tasks_count=dispatcher.running,
            thread_queue=dispatcher.queued(),
            thread_queue_by_band={
                name: dispatcher.queued(band)
                for band, name in enumerate(BAND_NAMES)},
            thread_threads=threads.thread_count,
            mp_tasks_count=processes.dispatcher.running,
            mp_queue=processes.dispatcher.queued(),
            mp_processes=processes.process_count)
        info.mp_pool_size, info.mp_reserve_normal, \
            info.mp_reserve_high = processes.limits_locked()
        if schedulers:
            info.schedulers = list(engine.schedulers)
        if aloops:
            info.aloops = engine.aloops.mapping_locked()
        info.task_info = {
            task_id: record
            for task_id, record in engine.registry.tasks.items()
            if record.status not in FINAL_STATUSES
            and (tt is None or record.tt == tt)}
    return info


def _tasks_now(records: list, now_wall: float) -> dict:
    """Count and list the unfinished ones of *records* (live objects, read
    without the lock, a field at a time)."""
    running = []
    by_band = {TT_THREAD: dict.fromkeys(BAND_NAMES, 0),
               TT_MP: dict.fromkeys(BAND_NAMES, 0)}
    coroutines = {"running": 0, "queued": 0}
    delayed = 0
    for record in records:
        status = record.status
        if status in FINAL_STATUSES:
            continue
        if status == TASK_STATUS_DELAYED:
            delayed += 1
        elif record.tt == TT_COROUTINE:
            if status == TASK_STATUS_QUEUED:
                coroutines["queued"] += 1
            elif status == TASK_STATUS_STARTED:
                coroutines["running"] += 1
        if status != TASK_STATUS_STARTED:
            continue
        band = BAND_NAMES[priority_band(record.priority)]
        if record.tt in by_band:
            by_band[record.tt][band] += 1
        started = record.time_started or now_wall
        running.append({
            "id": record.id, "name": record.name,
            "tt": TT_NAMES.get(record.tt, str(record.tt)),
            "priority": record.priority, "band": band,
            "age": max(0.0, now_wall - started)})
    running.sort(key=lambda item: -item["age"])
    return {"running": running, "by_band": by_band,
            "coroutines": coroutines, "delayed": delayed}


def _pool_status(dispatcher: Dispatcher) -> dict:
    """A pool's part of the snapshot (the engine's lock held).
    ``running_by_band`` is filled in from the task records."""
    return {"size": dispatcher.pool_size,
            "reserve_normal": dispatcher.reserve_normal,
            "reserve_high": dispatcher.reserve_high,
            "running": dispatcher.running,
            "queued": dispatcher.queued(),
            "queued_by_band": {name: dispatcher.queued(band)
                               for band, name in enumerate(BAND_NAMES)},
            "queued_by_priority": {
                str(priority): count for priority, count in
                sorted(dispatcher.queued_by_priority().items())}}


# -- Prometheus text format ---------------------------------------------------
def _labels(**labels: Any) -> str:
    return "{" + ",".join(f'{key}="{_escape(str(value))}"'
                          for key, value in labels.items()) + "}"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace(
        '"', '\\"')


def render_metrics(snapshot: dict) -> str:
    """The Prometheus text exposition of a :func:`snapshot`:
    ``atasker_*`` counters and gauges labelled by supervisor, task type
    (``tt``), band and status."""
    sup = snapshot["supervisor"]
    lines: list[str] = []
    for name, (kind, text, samples) in _families(snapshot).items():
        lines.append(f"# HELP {name} {text}")
        lines.append(f"# TYPE {name} {kind}")
        for labels, value in samples:
            lines.append(f"{name}{_labels(supervisor=sup, **labels)} "
                         f"{value}")
    return "\n".join(lines) + "\n"


def _families(snapshot: dict
              ) -> dict[str, tuple[str, str, list[tuple[dict, Any]]]]:
    """name -> (type, help, [(labels, value)])"""
    pools = {"thread": snapshot["pools"]["thread"],
             "mp": snapshot["pools"]["process"]}
    return {
        "atasker_tasks_total": (
            "counter", "Tasks that reached a final status.",
            [({"tt": tt, "status": status}, value)
             for tt, counts in snapshot["totals"]["by_tt"].items()
             for status, value in counts.items()]),
        "atasker_tasks_running": (
            "gauge", "Tasks running now, by task type and priority band.",
            [({"tt": tt, "band": band}, value)
             for tt, pool in pools.items()
             for band, value in pool["running_by_band"].items()]
            + [({"tt": "coroutine", "band": "all"},
                snapshot["coroutines"]["running"])]),
        "atasker_tasks_queued": (
            "gauge", "Tasks waiting for a pool slot, by task type and "
            "priority band.",
            [({"tt": tt, "band": band}, value)
             for tt, pool in pools.items()
             for band, value in pool["queued_by_band"].items()]
            + [({"tt": "coroutine", "band": "all"},
                snapshot["coroutines"]["queued"])]),
        "atasker_tasks_delayed": (
            "gauge", "Tasks waiting for their delay to pass.",
            [({}, snapshot["delayed"])]),
        "atasker_pool_size": (
            "gauge", "Pool size (the slots of low-priority tasks).",
            [({"tt": tt}, pool["size"]) for tt, pool in pools.items()]),
        "atasker_pool_threads": (
            "gauge", "Live thread-pool threads.",
            [({}, pools["thread"]["threads"])]),
        "atasker_pool_processes": (
            "gauge", "Live worker processes.",
            [({}, pools["mp"]["processes"])]),
        "atasker_workers_active": (
            "gauge", "Workers that are started.",
            [({}, sum(1 for w in snapshot["workers"] if w["active"]))]),
        "atasker_uptime_seconds": (
            "gauge", "Seconds since the supervisor started.",
            [({}, round(snapshot["uptime"] or 0.0, 3))]),
    }
