"""One Temporal lookup per chain however many readers arrive at once (durable/flight.py)."""

from __future__ import annotations

import asyncio

import pytest

from services.web.durable.flight import SingleFlight


async def test_askers_that_come_while_one_asks_share_its_answer() -> None:
    flight: SingleFlight[int] = SingleFlight()
    asked, answer = 0, asyncio.Event()

    async def ask() -> int:
        nonlocal asked
        asked += 1
        await answer.wait()
        return 42

    askers = [asyncio.create_task(flight.run("chain", ask)) for _ in range(100)]
    await asyncio.sleep(0)  # every asker is waiting on the one lookup
    askers[0].cancel()  # a client that leaves does not cancel the others' answer
    answer.set()
    results = await asyncio.gather(*askers[1:])
    assert asked == 1 and results == [42] * 99
    assert await flight.run("chain", ask) == 42 and asked == 2  # landed: the next one asks anew


async def test_a_failed_lookup_fails_every_asker_and_is_not_kept() -> None:
    flight: SingleFlight[int] = SingleFlight()

    async def refused() -> int:
        await asyncio.sleep(0)
        raise LookupError("no such chain")

    results = await asyncio.gather(
        *(flight.run("c", refused) for _ in range(3)), return_exceptions=True
    )
    assert [str(r) for r in results] == ["no such chain"] * 3

    async def found() -> int:
        return 7

    assert await flight.run("c", found) == 7
    with pytest.raises(LookupError):
        await flight.run("other", refused)
