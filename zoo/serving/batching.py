"""Micro-batching for the HTTP service: concurrent requests that arrive within a short window are
answered by one tower call and one index query.

Each request becomes a :class:`Job` with a *group key* (what must be equal to share a call: the kind
of request and its options). Jobs wait in one first-in, first-out queue; a single collector task takes
the oldest job, waits up to ``window_s`` for more (or until ``max_batch`` jobs wait), takes at most
``max_batch`` of them in arrival order, and runs one call per group, oldest group first. Jobs that
arrive while a batch runs wait for the next one, which starts as soon as the worker is free (they have
waited already), so no request is overtaken by a later one. The window is waited only when the
previous batch held more than one job: a request that comes alone after a lone one (no concurrent
traffic) is answered at once instead of waiting for company that is not coming. Requests with item
filters form groups of their own options, so they batch only with identical ones.

The calls run on one worker: a single thread (``threaded=True``, which owns torch and the index, so
their work never competes with itself), or the event loop's own thread (``threaded=False``: no
hand-over between threads; the loop reads no new request while a call runs).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Callable, Hashable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

#: ``run(payloads) -> answers`` for one group, called on the worker
GroupRunner = Callable[[Sequence[Any]], Sequence[Any]]


@dataclass
class Job:
    """One request waiting for its answer."""

    key: Hashable
    payload: Any
    runner: GroupRunner
    future: asyncio.Future[Any] = field(repr=False, default=None)  # type: ignore[assignment]


class MicroBatcher:
    """Collects jobs for up to ``window_s`` (at most ``max_batch`` of them) and answers each group with
    one call. ``batching=False`` answers every job on its own (the reference the load test compares),
    on the same single worker and in arrival order."""

    def __init__(
        self, *, window_s: float = 0.002, max_batch: int = 64, batching: bool = True, threaded: bool = True
    ) -> None:
        self.window_s = float(window_s)
        self.max_batch = int(max_batch)
        self.batching = bool(batching)
        self.threaded = bool(threaded)
        self._pending: deque[Job] = deque()
        self._wake: asyncio.Future[None] | None = None
        self._wake_when_full = False  # the collector waits for a full batch (True) or any job (False)
        self._task: asyncio.Task[None] | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._last_batch = 0  # jobs in the previous batch (the traffic is concurrent when > 1)
        #: calls made and jobs answered (``GET /metadata`` shows them: the batching actually happening)
        self.calls = 0
        self.jobs = 0

    async def start(self) -> None:
        if self.threaded:
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="zoo-serve-worker")
        if self.batching:
            self._task = asyncio.create_task(self._collect(), name="zoo-micro-batcher")

    async def stop(self) -> None:
        """Stop collecting; jobs still queued are failed with a clear error instead of hanging."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        while self._pending:
            job = self._pending.popleft()
            if not job.future.done():
                job.future.set_exception(RuntimeError("the service is shutting down"))
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None

    async def submit(self, key: Hashable, payload: Any, runner: GroupRunner) -> Any:
        """The answer to ``payload`` (an exception raised by the runner is raised here)."""
        if self._task is None:  # no batching (or not started): answer it on its own
            self.calls += 1
            self.jobs += 1
            (answer,) = await self._run(runner, [payload])
            return answer
        job = Job(key=key, payload=payload, runner=runner, future=asyncio.get_running_loop().create_future())
        self._pending.append(job)
        wake = self._wake
        full = len(self._pending) >= self.max_batch
        if wake is not None and not wake.done() and (full or not self._wake_when_full):
            wake.set_result(None)
        return await job.future

    async def _run(self, runner: GroupRunner, payloads: list[Any]) -> Sequence[Any]:
        if self._executor is None:
            return runner(payloads)
        return await asyncio.get_running_loop().run_in_executor(self._executor, runner, payloads)

    async def _wait(self, *, full: bool, timeout: float | None) -> None:
        """Until a job arrives (``full=False``) or ``max_batch`` jobs wait, at most ``timeout`` s."""
        loop = asyncio.get_running_loop()
        self._wake = wake = loop.create_future()
        self._wake_when_full = full
        timer = None if timeout is None else loop.call_later(timeout, _resolve, wake)
        try:
            await wake
        finally:
            if timer is not None:
                timer.cancel()
            self._wake = None

    async def _collect(self) -> None:
        while True:
            if not self._pending:
                await self._wait(full=False, timeout=None)
                if self.window_s > 0 and self._last_batch > 1 and len(self._pending) < self.max_batch:
                    await self._wait(full=True, timeout=self.window_s)
            jobs = [self._pending.popleft() for _ in range(min(self.max_batch, len(self._pending)))]
            self._last_batch = len(jobs)
            groups: dict[Hashable, list[Job]] = {}
            for job in jobs:
                groups.setdefault(job.key, []).append(job)
            for group in groups.values():
                await self._answer(group)

    async def _answer(self, group: list[Job]) -> None:
        self.calls += 1
        self.jobs += len(group)
        try:
            answers = await self._run(group[0].runner, [job.payload for job in group])
        except Exception as exc:  # noqa: BLE001 - one bad request must not fail the others
            if len(group) > 1:  # answer each on its own: the error belongs to one of them
                for job in group:
                    await self._answer([job])
                return
            if not group[0].future.done():
                group[0].future.set_exception(exc)
            return
        for job, answer in zip(group, answers, strict=True):
            if not job.future.done():
                job.future.set_result(answer)


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)
