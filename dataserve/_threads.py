"""The threads a plain ``handle_request`` runs in, off the event loop.

A call hops to a handler thread and its reply back to the event loop: one queue put, and one
``call_soon_threadsafe``. A pool made for any function (``anyio.to_thread``,
``run_in_executor``) costs more than a whole ProxyServer call for this hop. The threads are
made as calls first need them, up to ``count``, and take calls in the order they came.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import threading
from collections.abc import Callable
from typing import Any, TypeVar

__all__ = ["HandlerThreads"]

logger = logging.getLogger("dataserve")

T = TypeVar("T")

_Job = tuple[asyncio.AbstractEventLoop, Callable[..., Any], tuple[Any, ...], Callable[[Any], None] | None]


class HandlerThreads:
    """At most ``count`` threads that run calls one at a time each, in the order they are submitted."""

    def __init__(self, count: int, name: str = "dataserve") -> None:
        if count < 1:
            raise ValueError(f"max_concurrency must be 1 or more, not {count}")
        self.count = count
        self.name = name
        self._queue: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._idle = 0
        self._lock = threading.Lock()

    def submit(
        self,
        loop: asyncio.AbstractEventLoop,
        function: Callable[..., T],
        args: tuple[Any, ...],
        done: Callable[[T], None] | None,
    ) -> None:
        """Run ``function(*args)`` in a handler thread, then ``done(result)`` on ``loop``, if given.

        ``function`` must not raise: what it raises is logged, and ``done`` is not called.
        """
        with self._lock:
            if self._idle:
                self._idle -= 1
            elif len(self._threads) < self.count:
                thread = threading.Thread(
                    target=self._work, name=f"{self.name}-{len(self._threads) + 1}", daemon=True
                )
                self._threads.append(thread)
                thread.start()
        self._queue.put((loop, function, args, done))

    async def run(self, function: Callable[..., T], *args: Any) -> T:
        """Run ``function(*args)`` in a handler thread and return what it returns."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()

        def done(result: T) -> None:
            if not future.done():  # it is cancelled if the caller stopped waiting
                future.set_result(result)

        self.submit(loop, function, args, done)
        return await future

    def stop(self) -> None:
        """Let each thread end once the calls submitted before have run."""
        with self._lock:
            threads, self._threads = self._threads, []
            self._idle = 0
        for _ in threads:
            self._queue.put(None)

    def _work(self) -> None:
        while (job := self._queue.get()) is not None:
            loop, function, args, done = job
            try:
                result = function(*args)
            except BaseException:
                logger.exception("a dataserve handler thread failed")
                done = None
            with self._lock:
                self._idle += 1
            if done is not None:
                # The last thing before the thread waits again: the loop it wakes takes the GIL at once.
                with contextlib.suppress(RuntimeError):  # a closed loop: nobody is left to answer
                    loop.call_soon_threadsafe(done, result)
