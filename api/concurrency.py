"""How the API runs model work off the event loop: a bounded number of model threads, writes one
at a time, identical concurrent requests sharing one computation."""

from __future__ import annotations

import asyncio
import functools
import threading
import weakref
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, TypeVar

import anyio
import anyio.to_thread
from fastapi import Request

T = TypeVar("T")


async def disconnected(request: Request, poll_s: float = 0.25) -> None:
    """Returns once the client of ``request`` has gone away (run it as a task, cancel it after)."""
    while not await request.is_disconnected():
        await asyncio.sleep(poll_s)


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


class ClientGone(Exception):
    """The client of a request went away before its answer was ready."""


@dataclass
class _Shared:
    future: asyncio.Future
    stop: threading.Event
    waiters: int = 0


class InFlight:
    """Identical concurrent requests share one computation (keyed per event loop): /ask and /extract.

    It goes on while one of their clients is still there: a client that goes away does not cancel
    the work others wait for. Once the last one has gone, work still queued for a model thread is
    dropped and work under way is told to stop (the computation is given ``stop``, a callable it
    asks as it goes: the reader, before each layer), so clients that time out and retry do not
    pile up unanswered work.
    """

    def __init__(self) -> None:
        self._shared: dict[tuple, _Shared] = {}

    async def run(self, key: tuple, fn: Callable[[Callable[[], bool]], T], runner: Callable[..., Awaitable[T]], request: Request | None = None) -> T:
        """``fn(stop)``'s result, run by ``runner`` once for all identical ``key``s in flight;
        ``ClientGone`` when the client of ``request`` goes away first."""
        key = (id(asyncio.get_running_loop()), *key)
        shared = self._shared.get(key)
        if shared is None:
            stop = threading.Event()
            shared = _Shared(asyncio.ensure_future(runner(functools.partial(fn, stop.is_set))), stop)
            self._shared[key] = shared
            shared.future.add_done_callback(functools.partial(self._done, key, shared))
        shared.waiters += 1
        watcher = asyncio.ensure_future(disconnected(request)) if request is not None else None
        try:
            await asyncio.wait([shared.future, *([watcher] if watcher else [])], return_when=asyncio.FIRST_COMPLETED)
            if not shared.future.done():
                raise ClientGone()
            return shared.future.result()
        finally:
            if watcher is not None:
                watcher.cancel()
            shared.waiters -= 1
            if shared.waiters == 0 and not shared.future.done():
                shared.stop.set()  # under way: stops at its next check (a layer of the reader)
                shared.future.cancel()  # still waiting for a thread: never runs
                self._done(key, shared, shared.future)

    def _done(self, key: tuple, shared: _Shared, future: asyncio.Future) -> None:
        if self._shared.get(key) is shared:
            del self._shared[key]
        if future.done() and not future.cancelled():
            future.exception()  # mark as retrieved; waiters re-raise it

    def clear(self) -> None:
        self._shared.clear()
