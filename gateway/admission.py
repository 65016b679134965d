"""Who may hold a connection to a gateway process: one gate per protocol.

Connections that have not logged in yet cost a stranger nothing to open and
hold: 3 000 idle SSH connections were once held open, and on FTP 9
addresses x 60 idle sockets answered every real recorder `421` for the
whole idle timeout. So a gate counts three things: connections in all
(`total`), connections per address (`per_ip`) and connections still
waiting to log in (`unauthenticated`, a pool smaller than `total`: the rest
is a reserve only a logged-in session can hold).

When the unauthenticated pool (or the whole gate) is full, a newcomer does
not get refused: it evicts the oldest connection still waiting to log in
from the busiest address, much as OpenSSH's `MaxStartups` drops
unauthenticated connections, but deterministically. Plain refusal would
turn away a real recorder for as long as a flood of idle sockets sits
there; eviction makes a flood push out itself, since its addresses hold
most of the pool, while a recorder's fresh connection is the newest of its
address and has until many more newcomers arrive to log in (the login
timeout, 30 s by default, ends idle ones anyway). A logged-in session never
loses its slot: with every slot held by logged-in sessions, a newcomer is
refused. An address over `per_ip` is refused too: it only shuts out itself.

A gate belongs to one event loop (pyftpdlib's, or asyncio's for SFTP) and
is called from that loop's thread only, so it takes no lock.
"""

from __future__ import annotations

import itertools
import logging
from collections import Counter, OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

log = logging.getLogger("cam2drive.admission")

_order = itertools.count()


@dataclass(eq=False)
class Ticket:
    """One admitted connection; `close` ends it when it is evicted."""

    ip: str
    close: Callable[[], None]
    seq: int = field(default_factory=lambda: next(_order))
    logged_in: bool = False
    gone: bool = False


class Refused(Exception):
    """The newcomer was not admitted; `str()` is the reason for its client."""


class Admission:
    """The connection limits of one protocol in one gateway process."""

    def __init__(self, protocol: str, total: int, per_ip: int, unauthenticated: int) -> None:
        self.protocol = protocol
        self.total = total
        self.per_ip = per_ip
        self.unauthenticated = min(unauthenticated, total)
        self.by_ip: Counter[str] = Counter()
        # per address, its connections waiting to log in, oldest first
        self.waiting: dict[str, OrderedDict[int, Ticket]] = {}
        self.logged = 0
        self.unauth = 0
        self.evicted = 0  # for tests and the operator
        self.refused = 0

    def admit(self, ip: str, close: Callable[[], None]) -> Ticket:
        """Admit a new connection from `ip`, evicting a waiting one if the pool
        is full; raise Refused if it may not stay (close it then)."""
        if self.by_ip[ip] >= self.per_ip:
            self.refused += 1
            raise Refused("too many connections from your address")
        victim = None
        if self.unauth >= self.unauthenticated or self.logged + self.unauth >= self.total:
            victim = self._oldest_of_busiest()
            if victim is None:
                self.refused += 1
                raise Refused("too many connections, try again later")
            self.leave(victim)
            self.evicted += 1
        ticket = Ticket(ip, close)
        self.by_ip[ip] += 1
        self.waiting.setdefault(ip, OrderedDict())[ticket.seq] = ticket
        self.unauth += 1
        if victim is not None:
            log.debug(
                "%s: %d connections waiting to log in; closed the oldest from %s",
                self.protocol,
                self.unauth,
                victim.ip,
            )
            victim.close()  # last: closing may call leave(), which finds it gone
        return ticket

    def logged_in(self, ticket: Ticket) -> None:
        """The connection has logged in: it leaves the pool and can no longer be evicted."""
        if ticket.gone or ticket.logged_in:
            return
        self._unwait(ticket)
        ticket.logged_in = True
        self.logged += 1

    def leave(self, ticket: Ticket) -> None:
        """The connection has ended (or is being evicted); safe to call twice."""
        if ticket.gone:
            return
        ticket.gone = True
        if ticket.logged_in:
            self.logged -= 1
        else:
            self._unwait(ticket)
        self.by_ip[ticket.ip] -= 1
        if self.by_ip[ticket.ip] <= 0:
            del self.by_ip[ticket.ip]

    def _unwait(self, ticket: Ticket) -> None:
        queue = self.waiting[ticket.ip]
        del queue[ticket.seq]
        if not queue:
            del self.waiting[ticket.ip]
        self.unauth -= 1

    def _oldest_of_busiest(self) -> Ticket | None:
        """The oldest waiting connection of the address with the most waiting
        (ties: the address whose oldest is oldest). At most `unauthenticated`
        addresses wait, so the scan is bounded."""
        best: Ticket | None = None
        most = 0
        for queue in self.waiting.values():
            oldest = next(iter(queue.values()))
            if len(queue) > most or (len(queue) == most and best and oldest.seq < best.seq):
                best, most = oldest, len(queue)
        return best
