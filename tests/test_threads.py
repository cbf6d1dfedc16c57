"""The handler threads: order, the bound on calls at once, threads made as needed, stop and cancellation."""

from __future__ import annotations

import asyncio
import logging
import threading
import time

import pytest

from dataserve._threads import HandlerThreads


def test_one_thread_runs_calls_in_the_order_they_were_submitted() -> None:
    threads = HandlerThreads(1)
    ran: list[int] = []

    def record(n: int) -> int:
        ran.append(n)
        return n

    async def main() -> list[int]:
        return list(await asyncio.gather(*(threads.run(record, n) for n in range(200))))

    assert asyncio.run(main()) == list(range(200))
    assert ran == list(range(200))
    threads.stop()


def test_no_more_than_count_calls_run_at_once_and_threads_are_made_as_needed() -> None:
    threads = HandlerThreads(3)
    lock = threading.Lock()
    running, most = 0, 0

    def work() -> None:
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
        time.sleep(0.02)
        with lock:
            running -= 1

    async def main() -> None:
        await threads.run(work)
        assert len(threads._threads) == 1  # one call needed one thread
        await asyncio.gather(*(threads.run(work) for _ in range(12)))

    asyncio.run(main())
    assert most == 3
    assert len(threads._threads) == 3
    threads.stop()


def test_stop_lets_the_submitted_calls_run_then_ends_the_threads() -> None:
    threads = HandlerThreads(2)
    done: list[int] = []

    async def main() -> None:
        loop = asyncio.get_running_loop()
        finished = asyncio.Event()

        def nap(n: int) -> int:
            time.sleep(0.01)
            return n

        for n in range(4):
            threads.submit(loop, nap, (n,), done.append)
        threads.submit(loop, lambda: None, (), lambda _: finished.set())
        started = list(threads._threads)
        threads.stop()
        await asyncio.wait_for(finished.wait(), 10)
        for thread in started:
            thread.join(10)
            assert not thread.is_alive()

    asyncio.run(main())
    assert sorted(done) == [0, 1, 2, 3]


def test_a_cancelled_wait_leaves_the_call_to_finish_and_its_late_result_unused() -> None:
    threads = HandlerThreads(1)
    finished = threading.Event()

    def slow() -> str:
        time.sleep(0.2)
        finished.set()
        return "late"

    async def main() -> str:
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(threads.run(slow), 0.05)
        return await threads.run(lambda: "next")  # the thread takes it once the slow call is done

    assert asyncio.run(main()) == "next"
    assert finished.is_set()
    threads.stop()


def test_a_function_that_raises_is_logged_and_the_thread_goes_on(caplog: pytest.LogCaptureFixture) -> None:
    threads = HandlerThreads(1)

    def broken() -> None:
        raise RuntimeError("a bug in dataserve")

    async def main() -> str:
        threads.submit(asyncio.get_running_loop(), broken, (), lambda _: None)
        return await threads.run(lambda: "still working")

    with caplog.at_level(logging.ERROR, logger="dataserve"):
        assert asyncio.run(main()) == "still working"
    assert "a dataserve handler thread failed" in caplog.text
    assert "a bug in dataserve" in caplog.text
    threads.stop()


@pytest.mark.parametrize("count", [0, -1])
def test_fewer_than_one_thread_is_refused(count: int) -> None:
    with pytest.raises(ValueError, match="max_concurrency must be 1 or more"):
        HandlerThreads(count)
