"""How the API runs model work off the event loop: a bounded number of model threads, writes one
at a time, identical concurrent requests sharing one computation."""

from __future__ import annotations

import asyncio
import functools
import threading
import weakref
from typing import Any, Awaitable, Callable, TypeVar

import anyio
import anyio.to_thread
from fastapi import Request

T = TypeVar("T")


async def set_when_disconnected(request: Request, event: threading.Event, poll_s: float = 0.25) -> None:
    """Set ``event`` once the client of ``request`` has gone away (run as a task, cancel it after)."""
    while not await request.is_disconnected():
        await asyncio.sleep(poll_s)
    event.set()


class ModelThreads:
    """Runs model work (searches, reading, writes) in at most ``n`` threads at a time.

    Each thread that runs torch keeps its own team of OpenMP threads and their buffers, so 64
    requests at once in the default pool of 40 threads grew a server by more than a GB for no more
    answers per second (``bench/ask_load.py``); beyond ``n`` requests wait in the event loop, where
    waiting costs nothing, and /health never waits behind them. Writes queue for their turn in the
    event loop too (``write``), so that writes waiting for one another never hold the threads that
    searches need: the store lets searches in between a long write's batches.
    """

    def __init__(self, n: int) -> None:
        self.n = n
        # per event loop (a TestClient runs one of its own): anyio's limiters belong to one
        self._limiters: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, tuple[anyio.CapacityLimiter, anyio.Lock]] = weakref.WeakKeyDictionary()

    def _for_loop(self) -> tuple[anyio.CapacityLimiter, anyio.Lock]:
        loop = asyncio.get_running_loop()
        if loop not in self._limiters:
            self._limiters[loop] = (anyio.CapacityLimiter(self.n), anyio.Lock())
        return self._limiters[loop]

    async def __call__(self, fn: Callable[..., T], *args: Any) -> T:
        return await anyio.to_thread.run_sync(functools.partial(fn, *args), limiter=self._for_loop()[0])

    async def write(self, fn: Callable[..., T], *args: Any) -> T:
        async with self._for_loop()[1]:
            return await self(fn, *args)


class InFlight:
    """Identical concurrent requests share one computation (keyed per event loop)."""

    def __init__(self) -> None:
        self._futures: dict[tuple, asyncio.Future] = {}

    async def run(self, key: tuple, fn: Callable[[], T], runner: Callable[..., Awaitable[T]]) -> T:
        loop = asyncio.get_running_loop()
        key = (id(loop), *key)
        fut = self._futures.get(key)
        if fut is None:
            fut = asyncio.ensure_future(runner(fn))
            self._futures[key] = fut

            def _done(f: asyncio.Future, key: tuple = key) -> None:
                if self._futures.get(key) is f:
                    del self._futures[key]
                if not f.cancelled():
                    f.exception()  # mark as retrieved; waiters re-raise it

            fut.add_done_callback(_done)
        # shield: a client that goes away does not cancel the work others wait for
        return await asyncio.shield(fut)

    def clear(self) -> None:
        self._futures.clear()
