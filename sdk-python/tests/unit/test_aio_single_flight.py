"""The asyncio single-flight: one fetch per key, shared; each caller's own bound and
cancellation (spec 7.8)."""

from __future__ import annotations

import asyncio

import pytest

from secinfra.aio._single_flight import AsyncSingleFlight


class Fetch:
    """A fetch that waits until released, counting how often it started."""

    def __init__(self) -> None:
        self.started = 0
        self.cancelled = False
        self.release = asyncio.Event()

    async def __call__(self) -> str:
        self.started += 1
        try:
            await self.release.wait()
        except asyncio.CancelledError:
            self.cancelled = True
            raise
        return "answer"


async def test_concurrent_callers_share_one_fetch() -> None:
    flights, fetch = AsyncSingleFlight(), Fetch()
    callers = [asyncio.ensure_future(flights.do("k", fetch)) for _ in range(10)]
    await asyncio.sleep(0)
    assert flights.waiting("k") == 10
    fetch.release.set()
    assert await asyncio.gather(*callers) == ["answer"] * 10
    assert fetch.started == 1
    assert flights.in_flight() == 0


async def test_an_error_reaches_every_caller() -> None:
    flights = AsyncSingleFlight()

    async def fail() -> str:
        await asyncio.sleep(0.01)
        raise ValueError("boom")

    results = await asyncio.gather(
        *(flights.do("k", fail) for _ in range(3)), return_exceptions=True
    )
    assert [type(r) for r in results] == [ValueError] * 3


async def test_a_joiner_times_out_alone() -> None:
    flights, fetch = AsyncSingleFlight(), Fetch()
    leader = asyncio.ensure_future(flights.do("k", fetch))
    await asyncio.sleep(0)
    with pytest.raises(TimeoutError, match=r"did not finish in 0\.01 s"):
        await flights.do("k", fetch, timeout=0.01)
    fetch.release.set()
    assert await leader == "answer"
    assert fetch.started == 1


async def test_a_cancelled_leader_leaves_the_fetch_to_its_joiners() -> None:
    flights, fetch = AsyncSingleFlight(), Fetch()
    leader = asyncio.ensure_future(flights.do("k", fetch))
    await asyncio.sleep(0)
    joiner = asyncio.ensure_future(flights.do("k", fetch))
    await asyncio.sleep(0)
    leader.cancel()
    await asyncio.sleep(0)
    fetch.release.set()
    assert await joiner == "answer"
    assert not fetch.cancelled


async def test_when_every_caller_is_cancelled_the_fetch_is_too_and_nothing_is_left() -> None:
    flights, fetch = AsyncSingleFlight(), Fetch()
    callers = [asyncio.ensure_future(flights.do("k", fetch)) for _ in range(3)]
    await asyncio.sleep(0)
    for caller in callers:
        caller.cancel()
    await asyncio.gather(*callers, return_exceptions=True)
    await asyncio.sleep(0)
    assert fetch.cancelled
    assert flights.in_flight() == 0
    assert flights.waiting("k") == 0
    # The next caller starts a new fetch.
    fetch.release.set()
    assert await flights.do("k", fetch) == "answer"
    assert fetch.started == 2


async def test_timeout_must_not_be_negative() -> None:
    with pytest.raises(ValueError, match="timeout must be a number >= 0"):
        await AsyncSingleFlight().do("k", Fetch(), timeout=-1)
