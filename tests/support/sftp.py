"""The asyncssh client the tests log in to the gateway's SFTP with."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncssh


def sftp_connect(port: int, user: str, password: str, **options: Any) -> Any:
    """`async with sftp_connect(...) as conn`: a password login to the local
    gateway that trusts any host key and offers no client key (so the server
    sees only the password a recorder would send)."""
    return asyncssh.connect(
        "127.0.0.1",
        port,
        username=user,
        password=password,
        known_hosts=None,
        client_keys=None,
        **options,
    )


def sftp_run(port: int, user: str, password: str, fn: Any) -> Any:
    """Run `await fn(sftp)` with an asyncssh SFTP client logged in."""

    async def main() -> Any:
        async with sftp_connect(port, user, password) as conn:
            async with conn.start_sftp_client() as sftp:
                return await fn(sftp)

    return asyncio.run(main())
