"""The serve layer's cheap per-request machinery: coarse alarms and session names."""

from __future__ import annotations

import asyncio

from cspm.serve.alarms import Alarms
from cspm.serve.openai_api import SESSION, new_session


def test_an_alarm_fires_once_after_its_delay_and_a_cleared_one_never() -> None:
    async def scenario() -> tuple[list[str], float, bool]:
        alarms = Alarms(resolution=0.01)
        loop = asyncio.get_running_loop()
        fired: list[str] = []
        began = loop.time()
        alarms.set(0.03, lambda: fired.append("due"))
        cleared = alarms.set(0.02, lambda: fired.append("cleared"))
        alarms.clear(cleared)
        await asyncio.sleep(0.12)
        took = loop.time() - began
        return fired, took, alarms._ticker is None  # the ticker stops once nothing is due

    fired, took, idle = asyncio.run(scenario())
    assert fired == ["due"]
    assert took >= 0.03
    assert idle


def test_an_alarm_is_not_early_and_at_most_a_tick_late() -> None:
    async def scenario() -> float:
        alarms = Alarms(resolution=0.02)
        loop = asyncio.get_running_loop()
        at = loop.create_future()
        began = loop.time()
        alarms.set(0.05, lambda: at.set_result(loop.time() - began))
        return await asyncio.wait_for(at, 1)

    late = asyncio.run(scenario())
    assert 0.05 <= late < 0.05 + 0.02 + 0.2  # the tick, plus a generous margin for a loaded machine


def test_session_names_are_distinct_well_formed_and_not_a_counter() -> None:
    names = [new_session() for _ in range(10_000)]
    assert len(set(names)) == len(names)
    assert all(SESSION.fullmatch(name) and len(name) == 32 for name in names)
    assert names[0][:8] != names[1][:8]  # keyed hash: neighbours share nothing visible
