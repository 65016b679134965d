"""One login notice for both protocols: FTP's 230 line and SFTP's auth banner say the same."""

from __future__ import annotations

import asyncssh
import pytest

from tests.support.sftp import sftp_run
from tests.support.stack import Stack


def sftp_banner(port: int, user: str, password: str) -> str:
    """The auth banner an SFTP client is shown when it logs in."""
    seen: list[str] = []

    class Client(asyncssh.SSHClient):
        def auth_banner_received(self, msg: str, lang: str) -> None:
            seen.append(msg)

    sftp_run(port, user, password, lambda sftp: sftp.listdir("."), client_factory=Client)
    return "".join(seen).strip()


@pytest.mark.parametrize("grant", [False, True])
def test_ftp_and_sftp_tell_a_device_the_same_thing(stack: Stack, grant: bool) -> None:
    dev = stack.device(grant=grant)
    with stack.ftp() as ftp:
        welcome = ftp.login(dev.username, dev.password)
    assert welcome.startswith("230 ")
    banner = sftp_banner(stack.start_sftp(), dev.username, dev.password)
    assert banner == welcome[4:]
    assert ("no subscription" in banner) is not grant


def test_a_viewer_is_told_it_is_read_only_over_both(stack: Stack) -> None:
    dev = stack.device()
    email, password = stack.viewer(dev)
    with stack.ftp() as ftp:
        welcome = ftp.login(email, password)
    banner = sftp_banner(stack.start_sftp(), email, password)
    assert banner == welcome[4:] and "read-only" in banner
