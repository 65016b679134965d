"""Passive-mode listeners that stay correct when many sessions PASV at once.

pyftpdlib's `PassiveDTP` picks a random port of the configured range, binds
it with SO_REUSEADDR and only then listens. Two servers in one process (an
embedder's, or the tests') can bind the same free port in that window, as
could two sessions under pyftpdlib's threaded server; the second `listen()`
then fails with EADDRINUSE and pyftpdlib drops the whole control
connection: a recorder's upload lost to a race, seen with 30 concurrent
sessions on a 100-port range.

When every port of the range is in use, pyftpdlib falls back to a port the
kernel picks, outside the range, which the firewall then blocks: the
client's data connection hangs instead of failing. Here PASV and EPSV get
`425` instead, counted in `COUNTERS` for the metrics endpoint.
"""

from __future__ import annotations

import errno
import threading
from dataclasses import dataclass
from typing import Any

from pyftpdlib.handlers.ftp.dispatchers import PassiveDTP

from gateway.ftp.bases import ControlChannel

# One per process: bind+listen of passive sockets is a few microseconds,
# and holding it makes "bound but not yet listening" invisible to the
# other sessions' threads, so pyftpdlib's own EADDRINUSE retry works.
_BIND_LOCK = threading.Lock()


@dataclass
class PassiveCounters:
    """This process's passive-mode refusals, ready for a metrics collector."""

    exhausted: int = 0  # PASV/EPSV answered 425: every port of the range was in use


COUNTERS = PassiveCounters()


class RangeExhausted(OSError):
    """No free port in the passive range (never a port outside it)."""

    def __init__(self) -> None:
        super().__init__(errno.EADDRINUSE, "no free port in the passive range")


class PassiveListener(PassiveDTP):
    """`PassiveDTP` whose bind and listen are one step within the process.

    The lock is taken at the first bind() and given back at listen(), not
    held around the whole constructor: that also sends the 227 reply, and
    under load a thread waiting for the GIL after that send held every
    other session's PASV (BENCHMARKS.md, fleet).
    """

    _holding = False
    _tried_range = False  # a port of the range was tried: port 0 now means "outside it"

    def __init__(self, cmd_channel: Any, extmode: bool = False) -> None:
        try:
            super().__init__(cmd_channel, extmode)
        finally:
            self._let_go()

    def bind(self, addr: Any) -> None:
        if addr[1] != 0:
            self._tried_range = True
        elif self._tried_range:
            # pyftpdlib's fallback once every port of the range was taken
            self.close()
            raise RangeExhausted()
        if not self._holding:
            _BIND_LOCK.acquire()
            self._holding = True
        super().bind(addr)

    def listen(self, num: int) -> None:
        try:
            super().listen(num)
        finally:
            self._let_go()

    def _let_go(self) -> None:
        if self._holding:
            self._holding = False
            _BIND_LOCK.release()


class PassiveRetryMixin(ControlChannel):
    """Turn a lost port race with another process into a clean 425.

    Two gateway processes on one host sharing a passive range can still
    collide (the README gives each node its own range); the client then
    gets a retryable 425 on its PASV instead of a dropped session.
    """

    def _make_epasv(self, extmode: bool = False) -> None:
        try:
            super()._make_epasv(extmode)
        except OSError as err:
            if err.errno != errno.EADDRINUSE:
                raise
            self._dtp_acceptor = None
            if isinstance(err, RangeExhausted):
                COUNTERS.exhausted += 1
                self.log("passive port range used up: PASV/EPSV refused with 425")
            self.respond("425 No passive port free right now; try again.")
