"""Bans that hold: per address and per account, never reset by another account's login.

Each test speaks from loopback addresses of its own (127.0.0.x), so the
bans it earns touch no other test; it clears them when done.
"""

from __future__ import annotations

import asyncio
import ftplib
import statistics
import time
from collections.abc import Iterator

import asyncssh
import pytest

from billing.core.settings import Settings
from cli.devstack.seaweed import SeaweedServer, free_port
from gateway.auth import Authenticator, AuthFailed
from tests.support.stack import Stack, passive_range, stack_with


@pytest.fixture
def strict(db_url: str, seaweed: SeaweedServer) -> Iterator[Stack]:
    """A stack that bans after 3 failures per address and 3 per account."""
    with stack_with(db_url, seaweed, ban_max_failures=3, ban_max_failures_per_account=3) as s:
        s.clear_bans()
        yield s
        s.clear_bans()


def ftp_from(stack: Stack, source: str) -> ftplib.FTP:
    client = ftplib.FTP()
    client.connect("127.0.0.1", stack.port, timeout=30, source_address=(source, 0))
    return client


def fails(stack: Stack, source: str, user: str) -> None:
    with ftp_from(stack, source) as ftp:
        with pytest.raises(ftplib.error_perm, match="^530"):
            ftp.login(user, "wrong-password")


def test_a_good_login_to_one_account_never_clears_failures_at_another(strict: Stack) -> None:
    """The attack: guess at B, log in as A (known password), guess at B again..."""
    a, b = strict.device(), strict.device()
    ip = "127.0.0.41"
    fails(strict, ip, b.username)
    fails(strict, ip, b.username)
    with ftp_from(strict, ip) as ftp:
        ftp.login(a.username, a.password)  # today this reset the address's count
    fails(strict, ip, b.username)  # the third failure of this address: banned
    with pytest.raises(ftplib.error_temp, match=r"^421 Too many failed logins from 127\.0\.0\.41"):
        ftp_from(strict, ip)
    with ftp_from(strict, "127.0.0.42") as ftp:  # other addresses are not concerned
        assert ftp.login(a.username, a.password).startswith("230")


def test_guesses_at_one_account_from_many_addresses_add_up(strict: Stack) -> None:
    dev = strict.device()
    fails(strict, "127.0.0.51", dev.username)
    with ftp_from(strict, "127.0.0.50") as ftp:  # the recorder's own address
        ftp.login(dev.username, dev.password)
    fails(strict, "127.0.0.52", dev.username)
    fails(strict, "127.0.0.53", dev.username)  # third failure at this account: banned
    with ftp_from(strict, "127.0.0.54") as ftp:  # even with the right password
        with pytest.raises(ftplib.error_temp, match="^421 Too many failed logins for this acc"):
            ftp.login(dev.username, dev.password)
    with ftp_from(strict, "127.0.0.50") as ftp:  # strangers cannot lock the recorder out
        assert ftp.login(dev.username, dev.password).startswith("230")
    # unknown names are counted too, with the same reply: nothing tells them apart
    for source in ("127.0.0.55", "127.0.0.56", "127.0.0.57"):
        fails(strict, source, "c2d-nosuchdv")
    with ftp_from(strict, "127.0.0.58") as ftp:
        with pytest.raises(ftplib.error_temp, match="^421 Too many failed logins for this acc"):
            ftp.login("c2d-nosuchdv", "whatever")


def test_ssh_failures_wait_as_long_as_ftp_failures(db_url: str, seaweed: SeaweedServer) -> None:
    delay, tries = 0.4, 3
    with stack_with(db_url, seaweed, auth_failed_delay=delay, ban_max_failures=100) as stack:
        try:
            port = stack.start_sftp()
            dev = stack.device()

            async def one_try() -> None:
                with pytest.raises(asyncssh.PermissionDenied):
                    await asyncssh.connect(
                        "127.0.0.1",
                        port,
                        local_addr=("127.0.0.61", 0),
                        username=dev.username,
                        password="wrong-password",
                        known_hosts=None,
                        client_keys=None,
                    )

            started = time.monotonic()
            for _ in range(tries):
                asyncio.run(one_try())
            # a lower bound: each refusal came after the configured pause, never sooner
            assert time.monotonic() - started >= delay * tries
        finally:
            stack.clear_bans()


def test_unknown_and_known_emails_cost_the_same_check(stack: Stack) -> None:
    """An unknown email is verified against a dummy argon2 hash, not refused at once
    (which told anyone which emails are customers, by ~200 ms)."""
    dev = stack.device()
    email, _ = stack.viewer(dev)
    st = Settings(
        **{
            **stack.settings.model_dump(),
            "ban_max_failures": 10_000,
            "ban_max_failures_per_account": 10_000,
            "ftp_port": free_port(),
            "ftp_passive_ports": passive_range(),
        }
    )
    auth = Authenticator(st, stack.engine)

    def cost(name: str, n: int) -> float:
        times = []
        for i in range(n):
            started = time.perf_counter()
            with pytest.raises(AuthFailed):
                auth.authenticate(name, "not-the-password", f"127.0.1.{i + 1}")
            times.append(time.perf_counter() - started)
        return statistics.median(times)

    try:
        cost("nobody@example.com", 1)  # the dummy hash is made once, at the first unknown
        known, unknown = cost(email, 5), cost("nobody@example.com", 5)
        # the same argon2 work both ways; before, unknown took a few % of known
        assert unknown > known / 3, (known, unknown)
    finally:
        stack.clear_bans()
