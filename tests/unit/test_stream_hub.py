"""The hub: every viewer gets the newest item, a slow one drops instead of queueing, close ends all."""

from __future__ import annotations

import asyncio

import pytest

from visionserve.streams.hub import Hub, Mailbox
from visionserve.streams.state import TRANSITIONS, StreamState, can_change


def test_every_subscriber_gets_each_item_and_a_slow_one_only_the_newest() -> None:
    asyncio.run(_every_subscriber_gets_each_item_and_a_slow_one_only_the_newest())


async def _every_subscriber_gets_each_item_and_a_slow_one_only_the_newest() -> None:
    hub: Hub[int] = Hub()
    with hub.subscribe() as fast, hub.subscribe() as slow:
        assert hub.count == 2 and hub.idle_since is None
        for i in range(5):
            hub.publish(i)
            assert await fast.get() == i
        assert await slow.get() == 4
        assert slow.dropped == 4 and fast.dropped == 0
    assert hub.count == 0 and hub.idle_since is not None and hub.latest == 4


def test_close_wakes_waiting_viewers_with_the_end() -> None:
    asyncio.run(_close_wakes_waiting_viewers_with_the_end())


async def _close_wakes_waiting_viewers_with_the_end() -> None:
    hub: Hub[int] = Hub()
    with hub.subscribe() as box:
        waiting = asyncio.ensure_future(box.get())
        await asyncio.sleep(0)
        hub.close()
        assert await asyncio.wait_for(waiting, 1) is None
    with hub.subscribe() as late:
        assert await late.get() is None


def test_a_mailbox_delivers_a_pending_item_before_reporting_closed() -> None:
    asyncio.run(_a_mailbox_delivers_a_pending_item_before_reporting_closed())


async def _a_mailbox_delivers_a_pending_item_before_reporting_closed() -> None:
    box: Mailbox[str] = Mailbox()
    box.put("last")
    box.close()
    assert await box.get() == "last"
    assert await box.get() is None


@pytest.mark.parametrize("state", list(StreamState))
def test_ended_and_error_are_final_and_every_state_is_in_the_table(state: StreamState) -> None:
    assert state in TRANSITIONS
    if state in {StreamState.ENDED, StreamState.ERROR}:
        assert not any(can_change(state, other) for other in StreamState if other is not state)
    else:
        assert can_change(state, StreamState.ENDED) and can_change(state, StreamState.ERROR)


def test_a_paused_stream_resumes_to_running_only() -> None:
    assert can_change(StreamState.PAUSED, StreamState.RUNNING)
    assert not can_change(StreamState.PAUSED, StreamState.RECONNECTING)
    assert not can_change(StreamState.RUNNING, StreamState.STARTING)
