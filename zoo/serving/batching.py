"""Micro-batching for the HTTP service: concurrent requests that arrive within a short window are
answered by one tower call and one index query.

Each request becomes a :class:`Job` with a *group key* (what must be equal to share a call: the kind
of request and its options); a single collector task waits up to ``window_s`` after the first job of
a batch (or until ``max_batch`` jobs wait), then runs one call per group in a worker thread and
hands each job its own answer. Requests with item filters form groups of their own options, so they
batch only with identical ones.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any

#: ``run(payloads) -> answers`` for one group, called in a worker thread
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
    one call. ``batching=False`` answers every job on its own (the reference the load test compares)."""

    def __init__(self, *, window_s: float = 0.002, max_batch: int = 64, batching: bool = True) -> None:
        self.window_s = float(window_s)
        self.max_batch = int(max_batch)
        self.batching = bool(batching)
        self._queue: asyncio.Queue[Job] | None = None
        self._task: asyncio.Task[None] | None = None
        #: calls made and jobs answered (``GET /metadata`` shows them: the batching actually happening)
        self.calls = 0
        self.jobs = 0

    async def start(self) -> None:
        self._queue = asyncio.Queue()
        self._task = asyncio.create_task(self._collect(), name="zoo-micro-batcher")

    async def stop(self) -> None:
        """Stop collecting; jobs still queued are failed with a clear error instead of hanging."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        while self._queue is not None and not self._queue.empty():
            job = self._queue.get_nowait()
            if not job.future.done():
                job.future.set_exception(RuntimeError("the service is shutting down"))

    async def submit(self, key: Hashable, payload: Any, runner: GroupRunner) -> Any:
        """The answer to ``payload`` (an exception raised by the runner is raised here)."""
        loop = asyncio.get_running_loop()
        if not self.batching or self._queue is None:
            self.calls += 1
            self.jobs += 1
            (answer,) = await loop.run_in_executor(None, runner, [payload])
            return answer
        job = Job(key=key, payload=payload, runner=runner, future=loop.create_future())
        await self._queue.put(job)
        return await job.future

    async def _collect(self) -> None:
        assert self._queue is not None
        while True:
            jobs = [await self._queue.get()]
            deadline = time.monotonic() + self.window_s
            while len(jobs) < self.max_batch:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                try:
                    jobs.append(await asyncio.wait_for(self._queue.get(), remaining))
                except asyncio.TimeoutError:
                    break
            groups: dict[Hashable, list[Job]] = {}
            for job in jobs:
                groups.setdefault(job.key, []).append(job)
            await asyncio.gather(*(self._answer(group) for group in groups.values()))

    async def _answer(self, group: list[Job]) -> None:
        loop = asyncio.get_running_loop()
        self.calls += 1
        self.jobs += len(group)
        try:
            answers = await loop.run_in_executor(None, group[0].runner, [job.payload for job in group])
        except Exception as exc:  # noqa: BLE001 - one bad request must not fail the others
            if len(group) > 1:  # answer each on its own: the error belongs to one of them
                await asyncio.gather(*(self._answer([job]) for job in group))
                return
            if not group[0].future.done():
                group[0].future.set_exception(exc)
            return
        for job, answer in zip(group, answers, strict=True):
            if not job.future.done():
                job.future.set_result(answer)
