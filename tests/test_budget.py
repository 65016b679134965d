"""The upload buffer budget (gateway/memory.py): charged as buffers fill, the
oldest holding may always finish its part, waits on threads and on loops."""

from __future__ import annotations

import asyncio
import random
import threading
import time
from collections.abc import Callable

from gateway.memory import BufferBudget, Holding
from tests.conftest import MiB
from tests.test_durability import wait_for

PART = 4 * MiB


def blocked(fn: Callable[[], None]) -> threading.Thread:
    """Run `fn` on a thread and return it once it is seen waiting."""
    t = threading.Thread(target=fn, daemon=True)
    t.start()
    t.join(0.3)
    assert t.is_alive(), "expected to wait for budget"
    return t


def test_the_oldest_holding_can_always_finish_its_part() -> None:
    budget = BufferBudget(2 * PART, wait=60, part=PART)
    a, b = Holding(), Holding()
    budget.take(MiB, a)  # a is the oldest: PART - 1 MiB stays free for it
    for _ in range(4):  # the others share the rest: 8 - 1 - 3 = 4 MiB
        budget.take(MiB, b)
    waiter = blocked(lambda: budget.take(MiB, b))
    for _ in range(3):
        budget.take(MiB, a)  # never waits: its part can always fill
    assert a.held == PART and budget.used == 2 * PART and budget.waits == 1
    budget.send(PART, a)  # a's full part goes to S3 ...
    budget.give(PART)  # ... and lands; a's next part is still kept for it
    time.sleep(0.2)
    assert waiter.is_alive() and budget.used == PART
    budget.release(a)  # a's file ended: b is the oldest, its MiB fits
    waiter.join(5)
    assert not waiter.is_alive() and b.held == 5 * MiB == budget.used
    assert budget.overdrafts == 0


def test_when_the_oldest_leaves_the_next_one_is_kept_for() -> None:
    budget = BufferBudget(2 * PART, wait=60, part=PART)
    a, b, c = Holding(), Holding(), Holding()
    for h in (a, b, c):
        budget.take(2 * MiB, h)  # b and c have what a's claim leaves them
    waiter = blocked(lambda: budget.take(MiB, c))
    budget.release(a)  # b is the oldest now: 2 MiB kept for it, c's MiB fits
    waiter.join(5)
    assert not waiter.is_alive() and c.held == 3 * MiB
    budget.take(MiB, c)
    waiter = blocked(lambda: budget.take(MiB, c))  # 2 + 4 + the 2 kept for b
    budget.take(2 * MiB, b)  # the oldest finishes its part without waiting
    assert budget.used == 2 * PART and waiter.is_alive()
    budget.release(b)
    waiter.join(5)
    assert not waiter.is_alive() and c.held == 5 * MiB == budget.used
    assert budget.waits == 2 and budget.overdrafts == 0


def test_a_buffer_larger_than_the_budget_is_granted_when_nothing_else_is_held() -> None:
    budget = BufferBudget(2 * MiB, wait=60, part=PART)
    a = Holding()
    for _ in range(5):
        budget.take(MiB, a)
    assert budget.used == 5 * MiB and budget.waits == 0 and budget.overdrafts == 0
    budget.release(a)
    assert budget.used == 0


def test_a_coroutine_waits_on_its_loop_and_wakes_when_bytes_come_back() -> None:
    budget = BufferBudget(2 * MiB, wait=60, part=PART)
    other, mine = Holding(), Holding()
    budget.take(2 * MiB, other)
    ticks = []

    async def main() -> None:
        async def ticker() -> None:  # the loop stays free while the coroutine waits
            while True:
                ticks.append(1)
                await asyncio.sleep(0.01)

        tick = asyncio.create_task(ticker())
        loop = asyncio.get_running_loop()
        loop.call_later(0.3, lambda: threading.Thread(target=budget.release,
                                                      args=(other,)).start())
        await budget.take_async(MiB, mine)
        tick.cancel()

    asyncio.run(main())
    assert mine.held == MiB == budget.used and budget.waits == 1
    assert len(ticks) > 10 and budget.overdrafts == 0


def test_a_wait_is_bounded_then_counted_as_an_overdraft() -> None:
    budget = BufferBudget(MiB, wait=0.2, part=PART)
    stuck, late = Holding(), Holding()
    budget.take(MiB, stuck)  # a recorder that stopped sending mid-part
    budget.take(MiB, late)
    asyncio.run(budget.take_async(MiB, late))
    assert budget.overdrafts == 2 and budget.used == 3 * MiB and budget.peak == 3 * MiB


def test_growing_buffers_never_deadlock() -> None:
    """Twelve uploads of random sizes, each charging a MiB per MiB that arrives
    and sending a part when it fills (landing a little later, on another
    thread), through a budget of two parts: none waits past its bound, and
    memory never goes over the budget."""
    budget = BufferBudget(2 * PART, wait=30, part=PART)
    rng = random.Random(6)
    sizes = [rng.randrange(MiB, 5 * PART) for _ in range(12)]
    errors: list[BaseException] = []

    def land(n: int) -> None:
        time.sleep(rng.random() / 100)
        budget.give(n)

    def upload(size: int) -> None:
        h = Holding()
        try:
            filled = 0
            for _ in range(0, size, MiB):
                budget.take(MiB, h)
                filled += MiB
                time.sleep(rng.random() / 200)
                if filled == PART:
                    budget.send(PART, h)
                    threading.Thread(target=land, args=(PART,)).start()
                    filled = 0
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)
        finally:
            budget.release(h)

    threads = [threading.Thread(target=upload, args=(s,)) for s in sizes]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == [] and not any(t.is_alive() for t in threads)
    wait_for(lambda: budget.used == 0, 5)
    assert budget.overdrafts == 0 and budget.waits > 0 and budget.peak <= budget.limit
    assert budget.most_holders > 2  # dozens of partial buffers, not one part each
