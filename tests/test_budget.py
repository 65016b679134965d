"""The upload buffer budget (gateway/memory.py): charged as buffers fill; in a
standstill the oldest holding finishes its part; waits on threads and on loops."""

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


def test_a_standstill_lets_the_oldest_finish_its_part() -> None:
    """Two half-filled buffers fill the budget and both wait for more: the
    oldest goes past the limit (not after the bound: at once), sends its
    part, and its bytes coming back let the other go on."""
    budget = BufferBudget(4 * MiB, wait=60)
    a, b = Holding(), Holding()
    budget.take(2 * MiB, a)
    budget.take(2 * MiB, b)
    waiter = blocked(lambda: budget.take(MiB, b))  # a still receives: b waits
    assert budget.stretches == 0
    budget.take(MiB, a)  # now both wait, nothing in flight: a goes over
    budget.take(MiB, a)
    assert budget.used == 6 * MiB and budget.stretches == 2 and waiter.is_alive()
    budget.send(4 * MiB, a)  # a's part is full and goes to S3 ...
    time.sleep(0.2)
    assert waiter.is_alive()
    budget.landed(4 * MiB)  # ... and lands
    waiter.join(5)
    assert not waiter.is_alive() and b.held == 3 * MiB and budget.used == 3 * MiB
    assert budget.overdrafts == 0 and budget.peak == 6 * MiB


def test_no_standstill_while_a_part_is_on_its_way() -> None:
    budget = BufferBudget(4 * MiB, wait=60)
    a, b = Holding(), Holding()
    budget.take(2 * MiB, a)
    budget.take(2 * MiB, b)
    budget.send(2 * MiB, a)  # a sent a part: it will come back
    wa = blocked(lambda: budget.take(MiB, a))
    wb = blocked(lambda: budget.take(MiB, b))
    assert budget.stretches == 0 and budget.used == 4 * MiB
    budget.landed(2 * MiB)
    wa.join(5)
    wb.join(5)
    assert not wa.is_alive() and not wb.is_alive() and budget.used == 4 * MiB
    assert budget.stretches == 0 and budget.overdrafts == 0 and budget.peak == 4 * MiB


def test_a_buffer_larger_than_the_budget_is_granted_when_nothing_else_is_held() -> None:
    budget = BufferBudget(2 * MiB, wait=60)
    a = Holding()
    for _ in range(5):
        budget.take(MiB, a)
    assert budget.used == 5 * MiB and budget.waits == 0 and budget.overdrafts == 0
    budget.release(a)
    assert budget.used == 0


def test_a_coroutine_waits_on_its_loop_and_wakes_when_bytes_come_back() -> None:
    budget = BufferBudget(2 * MiB, wait=60)
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
    budget = BufferBudget(MiB, wait=0.2)
    stuck, late = Holding(), Holding()
    budget.take(MiB, stuck)  # a recorder that stopped sending mid-part
    budget.take(MiB, late)
    asyncio.run(budget.take_async(MiB, late))
    assert budget.overdrafts == 2 and budget.used == 3 * MiB and budget.peak == 3 * MiB


def test_growing_buffers_never_deadlock() -> None:
    """Twelve uploads of random sizes, each charging a MiB per MiB that arrives
    and sending a part when it fills (landing a little later, on another
    thread), through a budget of two parts: none waits past its bound, and
    memory never goes over the budget by more than the part the oldest
    finishes in a standstill."""
    budget = BufferBudget(2 * PART, wait=30)
    rng = random.Random(6)
    sizes = [rng.randrange(MiB, 5 * PART) for _ in range(12)]
    errors: list[BaseException] = []

    def land(n: int) -> None:
        time.sleep(rng.random() / 100)
        budget.landed(n)

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
    assert budget.overdrafts == 0 and budget.waits > 0 and budget.peak <= budget.limit + PART
    assert budget.most_holders > 2  # dozens of partial buffers, not one part each


def test_a_coroutine_whose_wait_completes_a_standstill_goes_on() -> None:
    """The oldest holding is the last to start waiting (an SFTP session, on its
    loop): its own wait makes the standstill, so it must not sleep through it."""
    budget = BufferBudget(4 * MiB, wait=60)
    a, b = Holding(), Holding()
    budget.take(2 * MiB, a)
    budget.take(2 * MiB, b)
    waiter = blocked(lambda: budget.take(MiB, b))
    asyncio.run(asyncio.wait_for(budget.take_async(MiB, a), 5))
    assert a.held == 3 * MiB and budget.stretches == 1 and budget.overdrafts == 0
    budget.release(a)
    waiter.join(5)
    assert not waiter.is_alive() and b.held == 3 * MiB == budget.used
