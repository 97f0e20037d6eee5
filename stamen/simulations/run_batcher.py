"""Several runs in one process, their rounds' clients trained together on one device.

A grid is many small runs of the same shapes. ``stamen bench --runs-per-worker N`` runs N
cells in threads of one worker process; each run's in-process engine hands its round
(``PreparedRound``) to the process's ``RunBatcher``, which waits until every live run has
handed one in (or ``window_s`` has passed), concatenates the rounds of equal architecture and
settings along the client axis, with each client starting from its own run's model, trains
them in one ``BatchedSGD`` call and hands each run its clients' results. A run's results
equal its results alone to float rounding: each client's steps depend only on its own start,
batches and seed.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import torch

from stamen.clients.batched_round import PreparedRound

Trained = tuple[dict[str, torch.Tensor], torch.Tensor]


@dataclass(eq=False)
class _Request:
    prepared: PreparedRound
    result: Trained | None = None
    error: BaseException | None = None
    done: bool = False


class RunBatcher:
    """Trains the rounds that ``runs`` threads hand in together; see the module docstring."""

    def __init__(self, runs: int, window_s: float = 0.5) -> None:
        self._live = runs
        self._window_s = window_s
        self._waiting: list[_Request] = []
        self._condition = threading.Condition()
        self._finished: set[int] = set()  # the threads whose runs ended
        self.most_runs_together = 0  # the largest number of rounds trained in one call

    def finished(self) -> None:
        """The calling thread's run ended, or will hand in nothing: no longer wait for it
        (once per thread; later calls do nothing)."""
        with self._condition:
            if threading.get_ident() in self._finished:
                return
            self._finished.add(threading.get_ident())
            self._live -= 1
            self._condition.notify_all()

    def train(self, prepared: PreparedRound) -> Trained:
        """``prepared``'s clients' parameters (K, ...) and losses (K,), trained with the
        other runs' rounds handed in meanwhile."""
        request = _Request(prepared)
        deadline = time.monotonic() + self._window_s
        with self._condition:
            self._waiting.append(request)
            self._condition.notify_all()
            while not request.done:
                everyone = len(self._waiting) >= self._live
                if request in self._waiting and (everyone or time.monotonic() >= deadline):
                    batch, self._waiting = self._waiting, []
                    self._condition.release()
                    try:
                        _train(batch)
                    except Exception as exc:  # noqa: BLE001  every run of the batch gets it, none hangs
                        for waiting in batch:
                            waiting.error, waiting.done = waiting.error or exc, True
                    finally:
                        self._condition.acquire()
                        self.most_runs_together = max(self.most_runs_together, len(batch))
                        self._condition.notify_all()
                elif request in self._waiting:
                    self._condition.wait(timeout=max(deadline - time.monotonic(), 0.01))
                else:  # another thread is training it
                    self._condition.wait()
        if request.error is not None:
            raise request.error
        return request.result


def _train(batch: list[_Request]) -> None:
    """Train the requests, one call per group of equal ``PreparedRound.key``."""
    groups: dict[tuple, list[_Request]] = {}
    for request in batch:
        groups.setdefault(request.prepared.key, []).append(request)
    for group in groups.values():
        try:
            rounds = [request.prepared for request in group]
            starts = [prepared.start() for prepared in rounds]
            masks = [prepared.masks() for prepared in rounds]  # same names: in the key
            params, losses = rounds[0].trainer.run(
                torch.cat([prepared.inputs for prepared in rounds]),
                torch.cat([prepared.labels for prepared in rounds]),
                [seed for prepared in rounds for seed in prepared.seeds],
                {name: torch.cat([start[name] for start in starts]) for name in starts[0]},
                {name: torch.cat([mask[name] for mask in masks]) for name in masks[0]},
                rounds[0].feedback,
            )
            offset = 0
            for request in group:
                clients = len(request.prepared.tasks)
                part = slice(offset, offset + clients)
                request.result = ({n: p[part] for n, p in params.items()}, losses[part])
                offset += clients
        except Exception as exc:  # noqa: BLE001  each run reports it as its own
            for request in group:
                request.error = exc
        for request in group:
            request.done = True
