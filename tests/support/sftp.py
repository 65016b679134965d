"""The asyncssh client the tests log in to the gateway's SFTP with."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
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


def sftp_run(port: int, user: str, password: str, fn: Any, **options: Any) -> Any:
    """Run `await fn(sftp)` with an asyncssh SFTP client logged in (`options` as
    `sftp_connect`'s)."""

    async def main() -> Any:
        async with sftp_connect(port, user, password, **options) as conn:
            async with conn.start_sftp_client() as sftp:
                return await fn(sftp)

    return asyncio.run(main())


def stuck_uploader(port: int, user: str, password: str, body: str) -> subprocess.Popen[str]:
    """Another process, logged in over SFTP, that runs `body` (async code with `sftp`
    and `os` at hand) and then hangs mid-session: a recorder to kill as if it lost
    power. Returned once `body` has run."""
    script = "\n".join(
        [
            "import asyncio, asyncssh, os",
            "async def main():",
            f"    conn = await asyncssh.connect('127.0.0.1', {port}, username={user!r},",
            f"        password={password!r}, known_hosts=None, client_keys=None)",
            "    sftp = await conn.start_sftp_client()",
            *("    " + line for line in textwrap.dedent(body).strip().splitlines()),
            "    print('sent', flush=True)",
            "    await asyncio.sleep(60)",
            "asyncio.run(main())",
        ]
    )
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "sent"
    return proc
