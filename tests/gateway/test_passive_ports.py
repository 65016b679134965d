"""Passive ports: never one outside the configured range (a firewall blocks it)."""

from __future__ import annotations

import ftplib
import logging
import os

import pytest

from cli.devstack.seaweed import SeaweedServer
from gateway.ftp.passive import COUNTERS
from tests.support.stack import stack_with
from tests.support.wait import wait_for


def test_pasv_and_epsv_get_425_when_the_range_is_used_up(
    db_url: str, seaweed: SeaweedServer, caplog: pytest.LogCaptureFixture
) -> None:
    base = 41000 + (os.getpid() % 150) * 100
    caplog.set_level(logging.WARNING, logger="cam2drive.ftp")
    with stack_with(db_url, seaweed, ftp_passive_ports=f"{base}-{base + 1}") as stack:
        # told at start: 2 ports for up to 512 sessions
        assert any(
            f"passive port range {base}-{base + 1} has 2 ports for up to 512" in r.getMessage()
            for r in caplog.records
        )
        dev = stack.device()
        holders = [stack.ftp(dev), stack.ftp(dev)]
        ports = set()
        for ftp in holders:  # each holds a listening passive port, unconnected
            reply = ftp.sendcmd("EPSV")
            ports.add(int(reply.split("|")[3]))
        assert ports == {base, base + 1}
        before = COUNTERS.exhausted
        with stack.ftp(dev) as ftp:
            for cmd in ("PASV", "EPSV"):  # today: a kernel port outside the range
                with pytest.raises(ftplib.error_temp, match="^425 No passive port free"):
                    ftp.sendcmd(cmd)
            assert COUNTERS.exhausted == before + 2
            assert ftp.pwd() == "/"  # the session goes on
            holders.pop().close()  # a port comes free once the gateway sees the close
            replies: list[str] = []

            def pasv_ok() -> bool:
                try:
                    replies.append(ftp.sendcmd("PASV"))
                    return True
                except ftplib.error_temp as err:
                    assert str(err).startswith("425")
                    return False

            wait_for(pasv_ok, what="a passive port freed by the closed session")
            reply = replies[-1]
            nums = [int(n) for n in reply[reply.index("(") + 1 : reply.index(")")].split(",")]
            assert nums[4] * 256 + nums[5] in (base, base + 1)
        for ftp in holders:
            ftp.close()
