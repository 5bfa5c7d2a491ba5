"""The decoded-pixel budget, driven by a fake clock: no HTTP, no sleeping."""

from __future__ import annotations

import asyncio

import pytest
from tests.unit.test_batcher import FakeClock, settle

from visionserve.errors import ImageTooLargeError, OverloadedError
from visionserve.serving.pixel_budget import PixelBudget, PixelHold

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def test_reservations_that_fit_are_granted_at_once_and_given_back() -> None:
    budget = PixelBudget(100, clock=FakeClock())
    first = await budget.reserve(60)
    second = await budget.reserve(40)
    assert budget.held == 100
    first.release()
    first.release()  # idempotent
    assert budget.held == 40
    async with second:
        pass
    assert budget.held == 0


async def test_a_waiter_is_granted_when_enough_is_given_back() -> None:
    clock = FakeClock()
    budget = PixelBudget(100, max_wait_s=2.0, clock=clock)
    held = await budget.reserve(80)
    waiting = asyncio.ensure_future(budget.reserve(50))
    await settle()
    await clock.advance(1.0)
    assert not waiting.done() and budget.held == 80
    held.release()
    await settle()
    assert waiting.done() and budget.held == 50
    (await waiting).release()
    assert budget.held == 0


async def test_a_waiter_not_granted_in_time_gets_overloaded_and_holds_nothing() -> None:
    clock = FakeClock()
    budget = PixelBudget(100, max_wait_s=2.0, clock=clock)
    held = await budget.reserve(80)
    waiting = asyncio.ensure_future(budget.reserve(50))
    await settle()
    await clock.advance(2.0)
    with pytest.raises(OverloadedError, match="decoding 80 of its 100 pixels") as caught:
        await waiting
    assert caught.value.retry_after >= 1.0
    held.release()
    assert budget.held == 0
    assert (await budget.reserve(100)).pixels == 100


async def test_a_request_larger_than_the_whole_budget_is_too_large() -> None:
    budget = PixelBudget(100, clock=FakeClock())
    with pytest.raises(ImageTooLargeError, match=r"these 3 images decode to 101 pixels, more than .*\(100 pixels"):
        await budget.reserve(101, "these 3 images")
    assert budget.held == 0


async def test_waiters_are_served_first_come_first_served() -> None:
    """A small request behind a large one waits its turn (the large one is not starved)."""
    clock = FakeClock()
    budget = PixelBudget(100, max_wait_s=10.0, clock=clock)
    held = await budget.reserve(70)
    large = asyncio.ensure_future(budget.reserve(90))
    await settle()
    small = asyncio.ensure_future(budget.reserve(20))  # it would fit now, but the large one is first
    await settle()
    assert not small.done()
    held.release()
    await settle()
    assert large.done() and not small.done()
    (await large).release()
    await settle()
    assert small.done() and budget.held == 20


async def test_a_cancelled_or_timed_out_head_unblocks_the_line() -> None:
    clock = FakeClock()
    budget = PixelBudget(100, max_wait_s=5.0, clock=clock)
    await budget.reserve(70)
    large = asyncio.ensure_future(budget.reserve(90))
    await settle()
    small = asyncio.ensure_future(budget.reserve(20))
    await settle()
    large.cancel()
    await settle()
    assert large.cancelled() and small.done() and budget.held == 90


async def test_a_hold_releases_everything_it_was_given() -> None:
    budget = PixelBudget(100, clock=FakeClock())
    hold = PixelHold()
    hold.add(await budget.reserve(30))
    hold.add(await budget.reserve(30))
    assert budget.held == 60
    hold.release()
    hold.release()
    assert budget.held == 0


def test_bad_budgets_are_refused() -> None:
    with pytest.raises(ValueError, match="capacity"):
        PixelBudget(0)
    with pytest.raises(ValueError, match="max_wait_s"):
        PixelBudget(10, max_wait_s=-1)
