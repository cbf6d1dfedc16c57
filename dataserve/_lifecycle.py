"""A handler's life in one server process: setup() once as it starts, teardown() once as it stops."""

from __future__ import annotations

import asyncio
import contextlib
import enum
import inspect
import logging
import os
import sys
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from ._handler import HTTPDataHandler

__all__ = ["Lifecycle", "State"]

logger = logging.getLogger("dataserve")

STARTUP_FAILURE = 3
"""The exit status of a process whose handler's setup() failed: uvicorn's own for a failed start,
so that its worker supervisor stops instead of restarting the worker in a loop."""


class State(enum.Enum):
    """Where a handler is in its life."""

    IDLE = "idle"
    STARTING = "starting"
    READY = "ready"
    STOPPING = "stopping"
    """Ready for the calls already under way, but the server is stopping: not ready for new ones."""
    FAILED = "failed"
    STOPPED = "stopped"

    @property
    def serves(self) -> bool:
        """Whether the handler takes calls: ready, or stopping with calls still to answer."""
        return self in (State.READY, State.STOPPING)


class Lifecycle:
    """Runs a handler's ``setup()`` in the background once the app starts, and ``teardown()`` as it stops.

    The app starts with its ASGI lifespan, or, when mounted in a host app that does not pass
    the lifespan on, with the first request that reaches it; then ``teardown()`` runs when the
    server's event loop ends. ``on_failure`` is told if ``setup()`` raises; by default it ends
    the process, as a failed start must not leave a half-alive server.
    """

    def __init__(
        self,
        handler: HTTPDataHandler,
        on_failure: Callable[[BaseException], None] | None = None,
    ) -> None:
        self.handler = handler
        self.name = type(handler).__name__
        self.on_failure = on_failure or _exit_process
        self._state = State.IDLE
        self.serves = False
        """Whether the handler takes calls now (``state.serves``), read by every call."""
        self.error: BaseException | None = None
        self.setup_seconds: float | None = None
        """How long ``setup()`` took, once it has finished."""
        self.listeners: list[Callable[[State], None]] = []
        """Told each new state, on the event loop (metrics follow readiness so)."""
        self._settled: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._tear_down = True

    @property
    def state(self) -> State:
        """Where the handler is: idle, starting (in ``setup()``), ready, stopping, stopped or failed."""
        return self._state

    @state.setter
    def state(self, state: State) -> None:
        changed = state is not self._state
        self._state = state
        self.serves = state.serves
        if changed:
            for listener in self.listeners:
                listener(state)

    def start(self) -> None:
        """Begin ``setup()`` in the background; only the first call in a process does anything."""
        if self.state is not State.IDLE:
            return
        self._settled = asyncio.Event()
        if type(self.handler).setup is HTTPDataHandler.setup:
            self.setup_seconds = 0.0
            self._settle(State.READY)
        else:
            self.state = State.STARTING
        self._task = asyncio.get_running_loop().create_task(self._live(), name=f"dataserve {self.name}")

    def stopping(self) -> None:
        """The server has begun to stop: the health check answers 503 from now on."""
        if self.state is State.READY:
            self.state = State.STOPPING

    async def stop(self, *, tear_down: bool = True) -> None:
        """Run ``teardown()`` if ``setup()`` finished and ``tear_down``; abandon a ``setup()`` under way."""
        self._tear_down = tear_down
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self.state = State.STOPPED

    async def ready(self) -> State:
        """Wait until ``setup()`` has finished or failed, starting it if need be, and say which."""
        self.start()
        if self.state is State.STARTING:
            assert self._settled is not None
            await self._settled.wait()
        return self.state

    @contextlib.asynccontextmanager
    async def lifespan(self, app: object = None) -> AsyncIterator[None]:
        """The ASGI lifespan: ``Starlette(..., lifespan=data_app.lifespan)`` for a host app."""
        self.start()
        try:
            yield
        finally:
            await self.stop()

    async def _live(self) -> None:
        if self.state is State.STARTING:
            began = time.perf_counter()
            try:
                await _call(self.handler.setup)
            except Exception as exc:
                self.error = exc
                self._settle(State.FAILED)
                logger.critical("%s.setup() failed; the server stops", self.name, exc_info=exc)
                self.on_failure(exc)
                return
            except asyncio.CancelledError:
                self._settle(State.STOPPED)
                raise
            self.setup_seconds = time.perf_counter() - began
            self._settle(State.READY)
        try:
            await asyncio.Event().wait()
        finally:
            self.state = State.STOPPED
            if self._tear_down:
                try:
                    await _call(self.handler.teardown)
                except Exception:
                    logger.exception("%s.teardown() failed", self.name)

    def _settle(self, state: State) -> None:
        assert self._settled is not None
        self.state = state
        self._settled.set()


async def _call(hook: Callable[[], Any]) -> None:
    """Await an ``async def`` hook, or run a plain one in a worker thread off the event loop."""
    if inspect.iscoroutinefunction(hook):
        await hook()
    else:
        await asyncio.to_thread(hook)


def _exit_process(exc: BaseException) -> None:
    """End a process whose handler could not start, after its log has gone out."""
    for handler in logging.getLogger().handlers + logger.handlers:
        handler.flush()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(STARTUP_FAILURE)
