"""Bounded concurrency for work that waits on a server: independent chains of steps run side by
side, the steps of one chain in order. Threads, so a caller's blocking client (httpx) is shared."""

from __future__ import annotations

import heapq
from collections import deque
from typing import Callable, Hashable, Iterable, Sequence, TypeVar

T = TypeVar("T")
R = TypeVar("R")


def run_chains(items: Sequence[T], chain_of: Callable[[T], Hashable], run: Callable[[T], None],
               on_done: Callable[[T], None], limit: int) -> tuple[T, BaseException] | None:
    """Run every item, at most LIMIT at once. Items with the same `chain_of(item)` form a chain and
    run one after the other, in ITEMS' order; the next item to start is always the earliest in ITEMS
    that may start, so LIMIT 1 runs ITEMS exactly in order. `on_done(item)` is called in the
    caller's thread once `run(item)` returned.

    The first failure stops new starts; the items already running finish (reported by `on_done`
    when they succeed). Returns that first failure as (item, exception), or None. Interrupted
    (Ctrl-C, or `on_done` raised), it returns at once: the caller closes what running items use."""
    if limit <= 1:
        return _run_in_order(items, run, on_done)
    chains: dict[Hashable, deque[tuple[int, T]]] = {}
    for index, item in enumerate(items):
        chains.setdefault(chain_of(item), deque()).append((index, item))
    ready = [(chain[0][0], key) for key, chain in chains.items()]  # (index of its next item, chain)
    heapq.heapify(ready)
    from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait

    failure: tuple[T, BaseException] | None = None
    running: dict[Future, tuple[int, Hashable, T]] = {}
    pool = ThreadPoolExecutor(max_workers=limit, thread_name_prefix="ecoctl-apply")
    try:
        while running or (ready and failure is None):
            while ready and failure is None and len(running) < limit:
                _, key = heapq.heappop(ready)
                index, item = chains[key].popleft()
                running[pool.submit(run, item)] = (index, key, item)
            finished, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in sorted(finished, key=lambda future: running[future][0]):
                index, key, item = running.pop(future)
                error = future.exception()
                if error is not None:
                    failure = failure or (item, error)
                    continue
                on_done(item)
                if chains[key]:
                    heapq.heappush(ready, (chains[key][0][0], key))
    except BaseException:
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown()
    return failure


def _run_in_order(items: Iterable[T], run: Callable[[T], None],
                  on_done: Callable[[T], None]) -> tuple[T, BaseException] | None:
    for item in items:
        try:
            run(item)
        except Exception as error:
            return item, error
        on_done(item)
    return None


def gather(calls: Sequence[Callable[[], R]], limit: int) -> list[R]:
    """Each call's result, in order, with up to LIMIT calls running at once; when calls fail, the
    first failing one in CALLS' order is raised (once every call has returned)."""
    if limit <= 1 or len(calls) <= 1:
        return [call() for call in calls]
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=min(limit, len(calls)), thread_name_prefix="ecoctl-read") as pool:
        futures = [pool.submit(call) for call in calls]
        return [future.result() for future in futures]
