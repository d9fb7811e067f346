"""support/parallel.py: chains of steps side by side, in order within a chain, stopped by a failure."""

from __future__ import annotations

import threading
import time

import pytest

from ecoctl.support.parallel import gather, run_chains

ITEMS = [(chain, step) for step in range(3) for chain in "abcdefgh"]
"""Eight chains of three steps, interleaved the way a plan may list them."""


class Recorder:
    def __init__(self, fail: tuple | None = None):
        self.lock = threading.Lock()
        self.events: list[tuple[str, tuple]] = []
        self.running = 0
        self.peak = 0
        self.fail = fail

    def run(self, item: tuple) -> None:
        with self.lock:
            self.events.append(("start", item))
            self.running += 1
            self.peak = max(self.peak, self.running)
        time.sleep(0.002)  # long enough for others to start meanwhile
        with self.lock:
            self.running -= 1
            self.events.append(("end", item))
        if item == self.fail:
            raise RuntimeError(f"{item} failed")


def test_one_at_a_time_is_the_given_order():
    recorder, done = Recorder(), []
    assert run_chains(ITEMS, lambda item: item[0], recorder.run, done.append, limit=1) is None
    assert done == ITEMS and recorder.peak == 1


def test_chains_run_side_by_side_each_in_its_order():
    recorder, done = Recorder(), []
    assert run_chains(ITEMS, lambda item: item[0], recorder.run, done.append, limit=4) is None
    assert sorted(done) == sorted(ITEMS) and 1 < recorder.peak <= 4
    position = {event: index for index, event in enumerate(recorder.events)}
    for chain, step in ITEMS:
        if step:
            assert position[("start", (chain, step))] > position[("end", (chain, step - 1))]


@pytest.mark.parametrize("limit", [1, 3])
def test_the_first_failure_stops_new_starts_and_running_steps_finish(limit):
    failing = ("b", 1)
    recorder, done = Recorder(fail=failing), []
    item, error = run_chains(ITEMS, lambda item: item[0], recorder.run, done.append, limit=limit)
    assert item == failing and str(error) == "('b', 1) failed"
    started = [item for kind, item in recorder.events if kind == "start"]
    ended = [item for kind, item in recorder.events if kind == "end"]
    assert sorted(started) == sorted(ended)  # nothing left running
    assert sorted(done) == sorted(set(started) - {failing})
    assert ("b", 2) not in started and len(started) < len(ITEMS)


def test_gather_keeps_the_order_and_raises_the_first_failure_in_it():
    assert gather([lambda n=n: n * n for n in range(6)], limit=3) == [0, 1, 4, 9, 16, 25]

    def boom(message):
        raise ValueError(message)

    with pytest.raises(ValueError, match="^second$"):
        gather([lambda: 1, lambda: boom("second"), lambda: boom("third")], limit=3)


def test_an_interruption_returns_at_once_without_waiting_for_running_steps():
    release, finished = threading.Event(), []

    def run(item):
        if item == ("b", 0):
            release.wait(10)
            finished.append(item)

    def on_done(item):
        if item == ("a", 0):
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_chains(ITEMS, lambda item: item[0], run, on_done, limit=3)
    assert finished == []  # ("b", 0) still running: the caller closes what it uses
    release.set()
