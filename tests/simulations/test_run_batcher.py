"""``RunBatcher``: a batch that fails fails every run in it; none waits forever."""

from __future__ import annotations

import threading

from stamen.simulations.run_batcher import RunBatcher


class Ungroupable:
    """A round whose grouping key cannot be computed."""

    @property
    def key(self) -> tuple:
        raise TypeError("unhashable type: 'list'")


def test_a_batch_that_cannot_be_grouped_fails_every_run_in_it():
    batcher = RunBatcher(runs=2, window_s=5.0)
    errors: list[Exception] = []

    def run() -> None:
        try:
            batcher.train(Ungroupable())
        except TypeError as error:
            errors.append(error)
        finally:
            batcher.finished()

    threads = [threading.Thread(target=run, daemon=True) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=20)
    assert not any(thread.is_alive() for thread in threads)
    assert [str(error) for error in errors] == ["unhashable type: 'list'"] * 2
